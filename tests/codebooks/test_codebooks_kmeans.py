"""Scalar weight sharing: exact DP and 1-D Lloyd against brute force, peers and invariants."""

import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans

from qtoolkit.codebooks import (
    KMeansQuantizer,
    hessian_importance,
    hessian_weighted_kmeans,
    kmeans_1d,
)
from qtoolkit.codebooks._kmeans import _distinct_weighted, _optimal_starts, _prefix


def brute_force(x, w, k):
    """Smallest weighted SSE over every assignment of the values to k non-empty clusters."""
    best = np.inf
    for labels in itertools.product(range(k), repeat=x.size):
        labels = np.array(labels)
        if np.unique(labels).size != k:
            continue
        sse = 0.0
        for c in range(k):
            m = labels == c
            mu = np.dot(w[m], x[m]) / w[m].sum()
            sse += np.dot(w[m], (x[m] - mu) ** 2)
        best = min(best, sse)
    return best


def weighted_sse(x, w, codebook):
    """Weighted squared error of every value against its nearest codeword (slow, obvious)."""
    d = (x[:, None] - codebook[None, :]) ** 2
    return float(np.dot(w, d.min(axis=1)))


@pytest.mark.parametrize("trial", range(12))
def test_optimal_equals_brute_force(trial):
    rng = np.random.default_rng(trial)
    n = int(rng.integers(3, 8))
    # small integer grid: duplicates and ties are common
    x = rng.integers(-3, 4, size=n).astype(float) * 0.5
    w = rng.integers(1, 4, size=n).astype(float) if trial % 2 else np.ones(n)
    n_distinct = np.unique(x).size
    for k in range(1, min(3, n_distinct) + 1):
        codebook, inertia, _ = kmeans_1d(x, k, sample_weight=w)
        ref = brute_force(x, w, k)
        assert inertia == pytest.approx(ref, rel=1e-9, abs=1e-12)
        assert weighted_sse(x, w, codebook) == pytest.approx(ref, rel=1e-9, abs=1e-12)
        assert np.all(np.diff(codebook) > 0)


def test_duplicates_are_exact():
    x = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    codebook, inertia, _ = kmeans_1d(x, 3)
    np.testing.assert_array_equal(codebook, [1.0, 2.0, 3.0])
    assert inertia == 0.0
    q = KMeansQuantizer(n_clusters=3).fit(x.reshape(2, 3))
    np.testing.assert_array_equal(q.transform(x.reshape(2, 3)), [[0, 0, 0], [1, 1, 2]])
    np.testing.assert_array_equal(q.quantize(x), x)
    with pytest.raises(ValueError, match="Expected 2D array"):
        q.transform(x)  # a 2-D fit fixes the number of columns


@pytest.mark.parametrize("dist", ["normal", "laplace"])
def test_optimal_never_worse_than_lloyd_and_sklearn(dist):
    rng = np.random.default_rng(1)
    x = getattr(rng, dist)(size=3000)
    for k in (2, 5, 17):
        _, opt, _ = kmeans_1d(x, k)
        for init in ("histogram", "linear", "density", "k-means++", "random"):
            _, lloyd, _ = kmeans_1d(x, k, algorithm="lloyd", init=init, rng=0)
            assert opt <= lloyd * (1 + 1e-12)
        km = KMeans(n_clusters=k, n_init=1, random_state=0).fit(x[:, None])
        assert opt <= km.inertia_ * (1 + 1e-9)


def test_lloyd_max_gaussian_levels():
    # Lloyd-Max quantizer of N(0, 1) with 4 levels: +-0.4528, +-1.5104 (Max 1960).
    # 4e5 samples: the sample centroids' standard error is below 3e-3.
    x = np.random.default_rng(0).standard_normal(400_000)
    for algorithm in ("optimal", "lloyd"):
        codebook, inertia, _ = kmeans_1d(x, 4, algorithm=algorithm)
        np.testing.assert_allclose(codebook, [-1.5104, -0.4528, 0.4528, 1.5104], atol=0.015)
        # distortion of the 4-level Lloyd-Max quantizer is 0.1175 per sample
        assert inertia / x.size == pytest.approx(0.1175, abs=2e-3)


def test_lloyd_matches_reference_iterations():
    rng = np.random.default_rng(3)
    x = rng.normal(size=500)
    w = rng.uniform(0.5, 2.0, size=500)
    c = np.linspace(x.min(), x.max(), 6)
    for it in (1, 2, 7):
        ref = c.copy()
        for _ in range(it):
            a = np.searchsorted(0.5 * (ref[1:] + ref[:-1]), x, side="left")
            s = np.bincount(a, w * x, 6)
            n = np.bincount(a, w, 6)
            assert np.all(n > 0)
            ref = s / n
        got, _, n_iter = kmeans_1d(
            x, 6, sample_weight=w, algorithm="lloyd", init=c, max_iter=it, tol=0.0
        )
        assert n_iter == it
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_lloyd_fixed_point_and_empty_clusters():
    # linear seeds over a gap leave clusters empty: they are relocated, none stays empty
    u = np.random.default_rng(13).uniform(size=(2, 50))
    x = np.concatenate([u[0], 100 + u[1]])
    codebook, inertia, _ = kmeans_1d(x, 6, algorithm="lloyd", init="linear", tol=0.0)
    codes = np.searchsorted(0.5 * (codebook[1:] + codebook[:-1]), x)
    counts = np.bincount(codes, minlength=6)
    assert np.all(counts > 0)
    np.testing.assert_allclose(codebook, np.bincount(codes, x) / counts, rtol=1e-12)


def test_integer_weights_equal_repetition():
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    reps = rng.integers(0, 4, size=300)
    for algorithm in ("optimal", "lloyd"):
        a = kmeans_1d(x, 7, sample_weight=reps.astype(float), algorithm=algorithm)
        b = kmeans_1d(np.repeat(x, reps), 7, algorithm=algorithm)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-12)
        assert a[1] == pytest.approx(b[1], rel=1e-10)


def test_unit_weights_equal_no_weights():
    x = np.random.default_rng(6).laplace(size=1000)
    for algorithm in ("optimal", "lloyd"):
        a = kmeans_1d(x, 9, algorithm=algorithm)
        b = kmeans_1d(x, 9, sample_weight=np.ones_like(x), algorithm=algorithm)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]


def test_threads_and_memory_budget_do_not_change_the_result():
    # layers of >= 2 * 65536 rows run threaded (smaller ones use one thread)
    big = np.random.default_rng(11).laplace(size=140_000)
    a = kmeans_1d(big, 5, n_threads=1)
    b = kmeans_1d(big, 5, n_threads=2)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    x = np.random.default_rng(7).normal(size=20_000)
    ux, uw = _distinct_weighted(x, np.ones_like(x))
    _, pw, p1, p2 = _prefix(ux, uw)
    full = _optimal_starts(pw, p1, p2, ux.size, 33, 2)
    for budget in (0, 4 * ux.size * 5):  # one layer per segment, then five
        np.testing.assert_array_equal(_optimal_starts(pw, p1, p2, ux.size, 33, 1, budget), full)


def test_k_equals_number_of_distinct_values():
    x = np.array([3.0, 1.0, 2.0, 1.0])
    codebook, inertia, _ = kmeans_1d(x, 3)
    np.testing.assert_array_equal(codebook, [1.0, 2.0, 3.0])
    assert inertia == 0.0


def test_matches_kmeans1d_peer():
    kmeans1d = pytest.importorskip("kmeans1d")
    x = np.random.default_rng(8).normal(size=2000)
    for k in (3, 40):
        clusters, centroids = kmeans1d.cluster(x, k)
        ref = float(np.sum((x - np.asarray(centroids)[clusters]) ** 2))
        assert kmeans_1d(x, k)[1] == pytest.approx(ref, rel=1e-9)


def test_estimator_shapes_and_dtypes(float_dtype):
    rng = np.random.default_rng(9)
    w = rng.normal(size=(4, 3, 5)).astype(float_dtype)
    q = KMeansQuantizer(n_clusters=5).fit(w)
    codes = q.transform(w)
    assert codes.shape == w.shape and codes.dtype == np.uint8
    assert q.inverse_transform(codes).shape == w.shape
    quantized = q.quantize(w)
    assert quantized.dtype == (np.float32 if float_dtype == np.float32 else np.float64)
    # every entry goes to its nearest codeword
    ref = np.abs(w.astype(float)[..., None] - q.codebook_).argmin(axis=-1)
    np.testing.assert_array_equal(codes, ref)
    big = KMeansQuantizer(n_clusters=300, algorithm="lloyd").fit(rng.normal(size=1000))
    assert big.transform([0.0]).dtype == np.uint16


def test_hessian_weighted_centroids_are_weighted_means():
    rng = np.random.default_rng(10)
    w = rng.normal(size=200)
    h = rng.uniform(0.0, 3.0, size=200)
    q = hessian_weighted_kmeans(w, 4, hessian=h)
    codes = q.transform(w)
    np.testing.assert_allclose(
        q.codebook_, np.bincount(codes, h * w) / np.bincount(codes, h), rtol=1e-10
    )
    v = rng.uniform(0.0, 1.0, size=200)
    q2 = hessian_weighted_kmeans(w, 4, second_moment=v, eps=1e-3)
    q3 = KMeansQuantizer(n_clusters=4).fit(w, sample_weight=np.sqrt(v) + 1e-3)
    np.testing.assert_array_equal(q2.codebook_, q3.codebook_)
    np.testing.assert_array_equal(hessian_importance(hessian=h), h)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([1.0, np.nan]), "contains NaN"),
        (np.array([1.0, np.inf]), "contains infinity"),
        (np.array([]), r"0 sample\(s\)"),
    ],
)
def test_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        kmeans_1d(bad, 1)
    with pytest.raises(ValueError, match=match):
        KMeansQuantizer(n_clusters=1).fit(bad)


def test_bad_parameters():
    x = np.array([0.0, 1.0, 1.0, 2.0])
    with pytest.raises(
        ValueError, match=r"n_clusters=4 exceeds the number of distinct values .*\(3\)"
    ):
        kmeans_1d(x, 4)
    with pytest.raises(ValueError, match=r"distinct values with positive weight \(2\)"):
        kmeans_1d(x, 3, sample_weight=[1.0, 0.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="n_clusters must be an integer"):
        kmeans_1d(x, 2.5)
    with pytest.raises(ValueError, match=r"n_clusters must be in \[1, 65536\]"):
        kmeans_1d(x, 0)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        kmeans_1d(x, 2, algorithm="elkan")
    with pytest.raises(ValueError, match="init must be one of"):
        kmeans_1d(x, 2, algorithm="lloyd", init="forgy")
    with pytest.raises(ValueError, match=r"init must be .* of shape \(2,\)"):
        kmeans_1d(x, 2, algorithm="lloyd", init=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        kmeans_1d(x, 2, sample_weight=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4,\)"):
        kmeans_1d(x, 2, sample_weight=[1.0, 1.0])
    with pytest.raises(ValueError, match="positive sum"):
        kmeans_1d(x, 1, sample_weight=np.zeros(4))
    with pytest.raises(ValueError, match="tol must be"):
        kmeans_1d(x, 2, tol=-1.0)
    with pytest.raises(ValueError, match="max_iter must be in"):
        kmeans_1d(x, 2, max_iter=0)
    with pytest.raises(ValueError, match="could not convert string to float"):
        kmeans_1d(np.array(["a", "b"]), 1)
    with pytest.raises(ValueError, match="Complex data not supported"):
        kmeans_1d(np.array([1j, 2.0]), 1)
    q = KMeansQuantizer(n_clusters=2).fit(x)
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\]"):
        q.inverse_transform([0, 2])
    with pytest.raises(ValueError, match="exactly one of hessian and second_moment"):
        hessian_importance()
    with pytest.raises(ValueError, match="second_moment must be non-negative"):
        hessian_importance(second_moment=[-1.0])
    with pytest.raises(ValueError, match="importance must have the shape of w"):
        hessian_weighted_kmeans(x, 2, hessian=[1.0, 2.0])


def test_largest_codebook():
    # k = 65536 (16-bit codes) on 65536 distinct values: every value is its own codeword
    x = np.random.default_rng(12).permutation(65536).astype(np.float64) / 7.0
    q = KMeansQuantizer(n_clusters=65536).fit(x)
    np.testing.assert_array_equal(q.codebook_, np.sort(x))
    assert q.inertia_ == 0.0
    codes = q.transform(x)
    assert codes.dtype == np.uint16
    np.testing.assert_array_equal(q.inverse_transform(codes), x)
    with pytest.raises(ValueError, match=r"n_clusters must be in \[1, 65536\]"):
        KMeansQuantizer(n_clusters=65537).fit(x)
