import os

# Idle OpenMP threads sleep instead of spin-waiting: on a shared or small machine, spinning
# threads of one test process (or of the subprocesses tests start) slow every other one down
# by orders of magnitude. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Two threads per test process: CI has 2 cores; keeps timings predictable.
torch.set_num_threads(int(os.environ.get("AUDIONETS_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
