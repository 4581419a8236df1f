"""``audionets demo`` (work in progress: being written)."""

HELP = "demo (not yet available)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("audionets demo is being written")
