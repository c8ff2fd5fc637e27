"""Shared by the small torch-model tests: they run on one torch thread (tiny models get slower,
not faster, with two threads on a loaded 2-core machine). Import the fixture to use it."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
