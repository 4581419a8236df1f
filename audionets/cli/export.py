"""``audionets export`` (work in progress: being written)."""

HELP = "export (not yet available)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("audionets export is being written")
