"""Diffusion spectral entropy and mutual information."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from divergences.estimate import (
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
)


def _clusters(rng, k, per=40, spread=0.1, gap=100.0, d=3):
    labels = np.repeat(np.arange(k), per)
    centres = rng.normal(size=(k, d))
    centres = gap * centres / np.linalg.norm(centres, axis=1, keepdims=True) * (
        1 + np.arange(k))[:, None]
    return centres[labels] + spread * rng.normal(size=(k * per, d)), labels


def test_top_eigenvalue_is_one(rng):
    z = rng.normal(size=(120, 4))
    e = diffusion_spectral_entropy(z, sigma=2.0)
    eig = e.details["eigenvalues"]
    assert eig.max() == pytest.approx(1.0, abs=1e-10)
    assert np.all(np.abs(eig) <= 1 + 1e-10)


def test_matches_the_random_walk_matrix(rng):
    """Independent route: eigenvalues of P = D^-1 G (non-symmetric), the entropy in bits."""
    z = rng.normal(size=(80, 3))
    g = np.exp(-cdist(z, z, "sqeuclidean") / (2 * 1.5**2))
    p = g / g.sum(axis=1, keepdims=True)
    lam = np.abs(np.linalg.eigvals(p).real) ** 2
    q = lam / lam.sum()
    q = q[q > 0]
    expected = -np.sum(q * np.log2(q))
    e = diffusion_spectral_entropy(z, sigma=1.5, t=2)
    assert e.value == pytest.approx(expected, abs=1e-8)
    assert e.base == 2 and e.method == "dse"
    assert diffusion_spectral_entropy(z, sigma=1.5, t=2, base=None).value == pytest.approx(
        expected * math.log(2), abs=1e-8)


def test_limits(rng):
    z = rng.normal(size=(64, 2))
    assert diffusion_spectral_entropy(z, sigma=1e6).value == pytest.approx(0.0, abs=1e-6)
    assert diffusion_spectral_entropy(z, sigma=1e-3).value == pytest.approx(6.0, abs=1e-9)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_separated_clusters_give_log2_k(rng, k):
    z, _ = _clusters(rng, k)
    assert diffusion_spectral_entropy(z).value == pytest.approx(math.log2(k), abs=0.05)


def test_interval_is_not_claimed(rng):
    e = diffusion_spectral_entropy(rng.normal(size=(30, 2)))
    assert math.isnan(e.stderr) and e.ci_method == "none"
    assert np.isfinite(e.value)


def test_subsampling_is_seeded(rng):
    z = rng.normal(size=(300, 2)) * 10
    a = diffusion_spectral_entropy(z, max_n=100, seed=1)
    assert a.n == 100 and a.details["n_input"] == 300
    assert a.value == diffusion_spectral_entropy(z, max_n=100, seed=1).value
    assert a.value != diffusion_spectral_entropy(z, max_n=100, seed=2).value


def test_dsmi_cluster_labels_and_random_labels(rng):
    z, labels = _clusters(rng, 4, per=30)
    informative = diffusion_spectral_mutual_information(z, labels)
    assert informative.value == pytest.approx(2.0, abs=0.15)
    assert informative.details["classes"] == 4 and informative.method == "dsmi"
    shuffled = diffusion_spectral_mutual_information(z, rng.permutation(labels))
    assert abs(shuffled.value) < 0.3
    assert math.isnan(informative.stderr)


def test_dsmi_continuous_labels(rng):
    z, labels = _clusters(rng, 3, per=30)
    # a 1-D float label: binned into n_clusters equal-width bins
    y1 = labels + 0.01 * rng.normal(size=labels.size)
    a = diffusion_spectral_mutual_information(z, y1, n_clusters=3)
    assert a.value == pytest.approx(math.log2(3), abs=0.15)
    # a multi-column float label: seeded k-means
    y2 = np.stack([labels * 10.0, -labels * 5.0], 1) + 0.01 * rng.normal(size=(labels.size, 2))
    b = diffusion_spectral_mutual_information(z, y2, n_clusters=3, seed=0)
    assert b.value == pytest.approx(math.log2(3), abs=0.15)
    again = diffusion_spectral_mutual_information(z, y2, n_clusters=3, seed=0)
    assert again.value == b.value and again.details == b.details


def test_errors(rng):
    z = rng.normal(size=(20, 2))
    with pytest.raises(ValueError, match="sigma"):
        diffusion_spectral_entropy(z, sigma=0.0)
    with pytest.raises(ValueError, match="sigma must be finite"):
        diffusion_spectral_entropy(z, sigma=math.inf)
    with pytest.raises(ValueError, match="t must be >= 1"):
        diffusion_spectral_entropy(z, t=0)
    with pytest.raises(TypeError, match="t must be an integer"):
        diffusion_spectral_entropy(z, t=1.5)
    with pytest.raises(ValueError, match="max_n"):
        diffusion_spectral_entropy(z, max_n=1)
    with pytest.raises(ValueError, match="same number of rows"):
        diffusion_spectral_mutual_information(z, np.arange(19))
    with pytest.raises(ValueError, match="repetitions"):
        diffusion_spectral_mutual_information(z, np.arange(20), repetitions=0)
    with pytest.raises(ValueError, match="z contains NaN"):
        diffusion_spectral_entropy(np.full((5, 2), np.nan))
