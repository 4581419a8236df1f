import os

import pytest
import torch

# Two threads per test process: CI has 2 cores; keeps timings predictable.
torch.set_num_threads(int(os.environ.get("AUDIONETS_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
