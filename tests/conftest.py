import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import settings

import divergences as dv

# trl.experimental (TRL's GKD loss, a peer in tests and benchmarks) warns on import otherwise
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.load_profile("ci")


# The named measures of `divergences.*` that take one pair (p, q) and no further parameter;
# test modules extend this table with the parametric ones they need.
NAMED_PAIRWISE = {
    "kl": dv.kl,
    "js": dv.js,
    "skew_kl": dv.skew_kl,
    "tv": dv.tv,
    "hellinger": dv.hellinger,
    "chi2": dv.chi2,
    "jeffreys": dv.jeffreys,
    "bhattacharyya": dv.bhattacharyya,
}


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


@pytest.fixture(scope="module")
def world1():
    """A torch.distributed world of one rank (gloo), for in-process tests of the
    vocab-parallel losses."""
    with tempfile.TemporaryDirectory() as d:
        dist.init_process_group("gloo", init_method=f"file://{d}/pg", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()
