"""``audionets train`` (work in progress: being written)."""

HELP = "train (not yet available)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("audionets train is being written")
