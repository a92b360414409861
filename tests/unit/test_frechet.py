"""The Frechet distance and its running Gaussian statistics (``memo_zoo.eval.frechet``; spec §8), which
FID, FVD, E-FID and talking_world's ``world_fd`` share: checked against an eigendecomposition-based
float64 formula, the closed form in one dimension, a large feature mean, and the .npz round trip.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memo_zoo.errors import MemoZooError, MissingWeightsError
from memo_zoo.eval.frechet import GaussianStats, frechet_distance


def slow_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) by symmetric eigendecompositions, in float64."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root @ sigma2 @ root
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


@settings(max_examples=40)
@given(dim=st.integers(1, 9), n1=st.integers(2, 30), n2=st.integers(2, 30), seed=st.integers(0, 2**16),
       chunks=st.integers(1, 4))
def test_frechet_distance_matches_a_slow_float64_reference(dim, n1, n2, seed, chunks):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n1, dim)) * rng.uniform(0.1, 5) + rng.uniform(-2, 2, dim)
    b = rng.standard_normal((n2, dim)) @ rng.standard_normal((dim, dim)) + rng.uniform(-2, 2, dim)
    stats_a, stats_b = GaussianStats(), GaussianStats()
    for part in np.array_split(a, chunks):  # running accumulation over batches, some maybe empty
        stats_a.update(part)
    stats_b.update(b)
    mu1, s1 = a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))
    mu2, s2 = b.mean(0), np.atleast_2d(np.cov(b, rowvar=False))
    np.testing.assert_allclose(stats_a.mean, mu1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats_a.cov, s1, rtol=1e-9, atol=1e-10)
    expected = slow_frechet(mu1, s1, mu2, s2)
    scale = np.trace(s1) + np.trace(s2) + float((mu1 - mu2) @ (mu1 - mu2))
    assert abs(stats_a.distance(stats_b) - expected) <= 1e-6 * scale + 1e-9
    assert abs(frechet_distance(mu1, s1, mu1, s1)) <= 1e-6 * np.trace(s1) + 1e-9  # same Gaussian: 0


def test_frechet_distance_in_one_dimension_is_the_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) \
        == pytest.approx(9.0 + 1.0)


def test_running_covariance_survives_a_large_mean():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3)) + 1e7  # sum(x x^T) - n mu mu^T would lose every digit here
    stats = GaussianStats()
    for part in np.array_split(x, 40):
        stats.update(part)
    np.testing.assert_allclose(stats.cov, np.cov(x - 1e7, rowvar=False), rtol=1e-7, atol=1e-9)


def test_reference_statistics_round_trip_and_errors(tmp_path):
    stats = GaussianStats().update(np.random.default_rng(0).standard_normal((20, 4)))
    path = stats.save(tmp_path / "ref.npz")
    loaded = GaussianStats.load(str(path), "test statistics")
    np.testing.assert_allclose(loaded.mean, stats.mean)
    np.testing.assert_allclose(loaded.cov, stats.cov)
    with pytest.raises(MissingWeightsError, match="missing.npz"):
        GaussianStats.load(str(tmp_path / "missing.npz"), "test statistics")
    assert loaded.count == 20 and loaded.count_known
    np.savez(tmp_path / "pytorch_fid.npz", mu=stats.mean, sigma=stats.cov)  # other tools write no count
    other = GaussianStats.load(str(tmp_path / "pytorch_fid.npz"), "test statistics")
    assert not other.count_known and other.distance(stats) == pytest.approx(0.0, abs=1e-9)
    np.savez(tmp_path / "bad.npz", m=np.zeros(3))
    with pytest.raises(MemoZooError, match="'mu' and 'sigma'"):
        GaussianStats.load(str(tmp_path / "bad.npz"), "test statistics")
