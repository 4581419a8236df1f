"""``audionets separate`` (work in progress: being written)."""

HELP = "separate (not yet available)"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError("audionets separate is being written")
