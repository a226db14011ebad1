"""Fixtures of the detector check suite."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one thread: the networks are tiny, and on a shared 2-core CI runner a second
    OpenMP thread mostly waits, making some checks ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
