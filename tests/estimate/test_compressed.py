"""compressed_mutual_information: the Gaussian channel closed form, linear invariance, errors."""

import math

import numpy as np
import pytest

from divergences.estimate import compressed_mutual_information, mutual_information


def test_gaussian_channel_closed_form():
    # I(X; X + sigma Z) = 1/2 log(1 + var / sigma^2)
    x = np.random.default_rng(10).normal(size=(3000, 1)) * 1.5
    e = compressed_mutual_information(x, x, noise_std=0.5)
    truth = 0.5 * math.log(1 + 2.25 / 0.25)
    assert e.method == "compressed"
    assert abs(e.value - truth) < 4 * e.stderr + 0.03
    assert e.details["noise_entropy"] == pytest.approx(0.5 * math.log(2 * math.pi * math.e
                                                                      * 0.25))


def test_pca_keeps_the_signal_subspace():
    # a 1-D signal embedded in 5 columns: compressing the noisy layer to 1 PCA component
    rng = np.random.default_rng(1)
    s = rng.normal(size=(3000, 1)) * 3.0
    layer = s @ rng.normal(size=(1, 5))
    scale = float(np.linalg.norm(layer[0] / s[0, 0]))
    e = compressed_mutual_information(s, layer, dim=1, noise_std=0.5)
    truth = 0.5 * math.log(1 + 9.0 * scale**2 / 0.25)
    assert abs(e.value - truth) < 4 * e.stderr + 0.05


def test_invariant_under_invertible_linear_maps():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1500, 2))
    y = x @ np.array([[1.0, 0.3], [0.2, 0.8]]) + rng.normal(size=(1500, 2))
    a = compressed_mutual_information(x, y)
    b = compressed_mutual_information(x @ np.array([[2.0, 1.0], [0.5, 3.0]]) + 7, -4 * y)
    assert b.value == pytest.approx(a.value, abs=1e-8)
    # and it estimates the MI (Gaussian here)
    g = mutual_information(x, y, method="gaussian")
    assert abs(a.value - g.value) < 4 * a.stderr + 0.05


def test_callable_compressor_and_base():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 3))
    y = x[:, :1] + rng.normal(size=(1000, 1))
    e = compressed_mutual_information(x, y, compressor=lambda a: a[:, :1], base=2)
    truth = 0.5 * math.log(2) / math.log(2)  # corr^2 = 1/2: I = 1/2 log 2 nats
    assert e.base == 2 and abs(e.value - truth) < 4 * e.stderr + 0.05


def test_errors():
    x = np.random.default_rng(4).normal(size=(100, 2))
    with pytest.raises(ValueError, match="compressor must be 'pca' or a callable"):
        compressed_mutual_information(x, x, compressor="ae")
    with pytest.raises(TypeError, match="compressor must be"):
        compressed_mutual_information(x, x, compressor=3)
    with pytest.raises(ValueError, match="noise_std must be a positive"):
        compressed_mutual_information(x, x, noise_std=0.0)
    with pytest.raises(ValueError, match="noise_std needs compressor='pca'"):
        compressed_mutual_information(x, x, compressor=lambda a: a, noise_std=1.0)
    with pytest.raises(ValueError, match="dim=3 is larger"):
        compressed_mutual_information(x, x, dim=3)
    with pytest.raises(ValueError, match="must return a finite"):
        compressed_mutual_information(x, x, compressor=lambda a: a[:10])
    with pytest.raises(ValueError, match="same number of rows"):
        compressed_mutual_information(x, x[:-1])
    with pytest.raises(ValueError, match="singular covariance"):
        compressed_mutual_information(np.hstack([x, x]), x)
