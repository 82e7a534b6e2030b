import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Two torch threads on a shared 2-core machine run the tiny model ~25x slower than one (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
