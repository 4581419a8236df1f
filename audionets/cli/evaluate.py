"""``audionets evaluate`` (work in progress: being written)."""

HELP = "evaluate (not yet available)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("audionets evaluate is being written")
