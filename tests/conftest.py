import numpy as np
import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_simplex(rng, shape, zeros=0.0, concentration=1.0):
    """Random distributions along the last axis; a fraction ``zeros`` of entries set to 0."""
    x = rng.gamma(concentration, size=shape)
    if zeros:
        x = np.where(rng.random(shape) < zeros, 0.0, x)
        x[..., 0] += (x.sum(-1) == 0)  # keep every row non-empty
    return x / x.sum(-1, keepdims=True)


@pytest.fixture(autouse=True)
def _torch_seed():
    torch.manual_seed(0)
