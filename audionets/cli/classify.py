"""``audionets classify`` (work in progress: being written)."""

HELP = "classify (not yet available)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("audionets classify is being written")
