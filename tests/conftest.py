import os

# Idle OpenMP threads sleep instead of spin-waiting: on a shared or small machine, spinning
# threads of one test process (or of the subprocesses tests start) slow every other one down
# by orders of magnitude. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# Two threads per test process: CI has 2 cores; keeps timings predictable.
torch.set_num_threads(int(os.environ.get("AUDIONETS_TEST_THREADS", "2")))


def drop_unimportable_lazy_modules() -> None:
    """Let hypothesis run after SpeechBrain was imported in the same process.

    SpeechBrain puts lazy modules in sys.modules (e.g. ``speechbrain.integrations.k2_fsa``)
    whose attribute access imports an optional dependency and raises ImportError; hypothesis
    reads ``__file__`` of every module in sys.modules (at collection and in each test) and fails
    on them. Such placeholders cannot be used anyway, so they are dropped from sys.modules.
    """
    with warnings.catch_warnings():  # SpeechBrain's deprecation redirects warn on access
        warnings.simplefilter("ignore")
        for name, module in list(sys.modules.items()):
            try:
                getattr(module, "__file__", None)
            except ImportError:
                del sys.modules[name]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    drop_unimportable_lazy_modules()  # before hypothesis's own hook scans sys.modules


@pytest.fixture(autouse=True)
def _seed():
    drop_unimportable_lazy_modules()
    torch.manual_seed(0)
