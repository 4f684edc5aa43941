"""One torch thread for a test folder's in-process training (import `one_torch_thread` into its conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Other test processes share 2 cores; one thread keeps timings stable and results reproducible."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
