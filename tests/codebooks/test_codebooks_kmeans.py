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
    kmeans_1d_rows,
)
from qtoolkit.codebooks._kmeans import (
    _cluster_means,
    _distinct_weighted,
    _inertia_sorted,
    _lagrangian_starts,
    _optimal_starts,
    _prefix,
)


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
    codebook, _, _ = kmeans_1d(x, 6, algorithm="lloyd", init="linear", tol=0.0)
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
    with pytest.raises(TypeError, match="values must be an array of real numbers"):
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


def _layered_error(ux, uw, k):
    """Error of the partition of the layered programme (the k-layer reference solver)."""
    _, pw, p1, p2 = _prefix(ux, uw)
    starts = _optimal_starts(pw, p1, p2, ux.size, k, 1)
    return _inertia_sorted(ux, uw, _cluster_means(ux, uw, starts, None))


def _reference_data(kind, n, rng):
    if kind == "gaussian":
        return rng.standard_normal(n)
    if kind == "duplicates":  # few distinct values, each many times
        return rng.integers(0, max(2, n // 6), size=n).astype(float)
    if kind == "grid":  # equally spaced, equal counts: long straight pieces of the hull
        return (np.arange(n) % int(rng.integers(2, 40))).astype(float) * 0.25
    return np.round(rng.laplace(size=n), 1)  # "rounded": skewed duplicates


@pytest.mark.parametrize("kind", ["gaussian", "duplicates", "grid", "rounded"])
@pytest.mark.parametrize("weighted", [False, True])
def test_lagrangian_search_matches_layered_programme(kind, weighted):
    # every k near the number of distinct values, where several counts share a penalty
    rng = np.random.default_rng(hash((kind, weighted)) % 2**32)
    for _ in range(12):
        n = int(rng.integers(2, 300))
        x = _reference_data(kind, n, rng)
        w = rng.exponential(size=n) * (rng.random(n) > 0.1) if weighted else np.ones(n)
        if not w.sum() > 0:
            continue
        ux, uw = _distinct_weighted(x, w)
        m = ux.size
        total = _layered_error(ux, uw, 1)
        ks = {1, 2, m, m - 1, m - 2, m - 3, m // 2, m // 3, int(rng.integers(1, m + 1))}
        for k in sorted(k for k in ks if 1 <= k <= m):
            starts = _lagrangian_starts(ux, uw, k)
            assert starts.shape == (k + 1,) and starts[0] == 0 and starts[-1] == m
            assert np.all(np.diff(starts) > 0)
            mine = _inertia_sorted(ux, uw, _cluster_means(ux, uw, starts, None))
            ref = _layered_error(ux, uw, k)
            # 1e-12 relative, above the rounding floor of the prefix sums
            assert abs(mine - ref) <= 1e-12 * ref + 64 * np.finfo(float).eps * total


def test_weights_below_the_rounding_of_their_prefix_sums():
    # exponential**6 weights span ~20 decades: a cluster of the tail can weigh less
    # than the rounding of the weight prefix sums, so its weight as a difference of
    # prefix sums is garbage (zero or negative). The layered programme once divided by
    # it unclamped and lost by up to 100x; both solvers clamp every cost at zero
    rng = np.random.default_rng(21)
    for _ in range(6):
        n = int(rng.integers(1500, 2500))
        x = rng.standard_normal(n).astype(np.float32).astype(float)
        w = rng.exponential(size=n) ** 6
        ux, uw = _distinct_weighted(x, w)
        _, pw, _, _ = _prefix(ux, uw)
        for k in (60, 150):
            starts = _lagrangian_starts(ux, uw, k)
            mine = _inertia_sorted(ux, uw, _cluster_means(ux, uw, starts, None))
            ref = _layered_error(ux, uw, k)
            total = _layered_error(ux, uw, 1)
            assert abs(mine - ref) <= 1e-12 * ref + 64 * np.finfo(float).eps * total
        # the case arises: some candidate cluster (one value) has a prefix-sum weight
        # off by more than 1%
        assert np.max(np.abs(np.diff(pw) - uw) / uw) > 0.01


def test_ties_on_a_straight_piece_of_the_hull():
    # 0, 1, ..., 19, three times each: for k >= 10 every merge of two neighbours
    # costs the same, so D(k) = 1.5 (20 - k) and every such k ties at one penalty
    x = np.repeat(np.arange(20.0), 3)
    for k in range(10, 21):
        codebook, inertia, _ = kmeans_1d(x, k)
        assert inertia == pytest.approx(1.5 * (20 - k), abs=1e-12)
        assert codebook.shape == (k,)
        assert weighted_sse(x, np.ones_like(x), codebook) == pytest.approx(inertia, abs=1e-12)
    # weights make the pieces uneven: still the layered optimum for every k
    w = np.tile([1.0, 2.0], 30)
    ux, uw = _distinct_weighted(x, w)
    for k in range(1, 21):
        assert kmeans_1d(x, k, sample_weight=w)[1] == pytest.approx(
            _layered_error(ux, uw, k), rel=1e-12, abs=1e-12
        )


def test_lagrangian_search_large_codebooks():
    x = np.random.default_rng(13).standard_normal(20_000)
    ux, uw = _distinct_weighted(x, np.ones_like(x))
    total = _layered_error(ux, uw, 1)
    for k in (300, 1500):
        starts = _lagrangian_starts(ux, uw, k)
        mine = _inertia_sorted(ux, uw, _cluster_means(ux, uw, starts, None))
        ref = _layered_error(ux, uw, k)
        assert abs(mine - ref) <= 1e-12 * ref + 64 * np.finfo(float).eps * total


def test_rows_match_one_problem_at_a_time():
    rng = np.random.default_rng(14)
    X = rng.standard_normal((40, 300)).astype(np.float32)
    X[3, :150] = X[3, 150:]  # duplicates in one row
    for k in (1, 2, 16, 100):
        res = kmeans_1d_rows(X, k)
        assert res.codebooks.shape == (40, k) and res.inertia.shape == (40,)
        for i in range(40):
            c, e, _ = kmeans_1d(X[i], k)
            np.testing.assert_allclose(res.codebooks[i], c, rtol=1e-12, atol=1e-15)
            assert res.inertia[i] == pytest.approx(e, rel=1e-12)
    # one weight per column shared by the rows, or one per entry; zero weights drop values
    h = rng.exponential(size=300)
    h[:20] = 0.0
    res = kmeans_1d_rows(X, 8, sample_weight=h)
    full = kmeans_1d_rows(X, 8, sample_weight=np.tile(h, (40, 1)))
    np.testing.assert_array_equal(res.codebooks, full.codebooks)
    for i in (0, 17):
        c, e, _ = kmeans_1d(X[i], 8, sample_weight=h)
        np.testing.assert_allclose(res.codebooks[i], c, rtol=1e-12, atol=1e-15)
        assert res.inertia[i] == pytest.approx(weighted_sse(X[i].astype(float), h, c), rel=1e-9)


def test_rows_do_not_depend_on_threads():
    rng = np.random.default_rng(15)
    X = rng.laplace(size=(64, 700))
    for w in (None, rng.exponential(size=700), rng.exponential(size=(64, 700))):
        a = kmeans_1d_rows(X, 12, n_threads=1, sample_weight=w)
        b = kmeans_1d_rows(X, 12, n_threads=2, sample_weight=w)
        c = kmeans_1d_rows(X, 12, sample_weight=w)
        for r in (b, c):
            np.testing.assert_array_equal(a.codebooks, r.codebooks)
            np.testing.assert_array_equal(a.inertia, r.inertia)


def _rows_off_optimum(X, k, res, sample_weight=None):
    """Rows whose error is not the layered programme's optimum (1e-12 relative)."""
    X = np.asarray(X, dtype=np.float64)
    if sample_weight is None:
        W = np.ones_like(X)
    else:
        W = np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), X.shape)
    bad = []
    for i in range(X.shape[0]):
        ux, uw = _distinct_weighted(X[i], W[i])
        ref = _layered_error(ux, uw, k)
        total = _layered_error(ux, uw, 1)
        tol = 1e-12 * ref + 64 * np.finfo(float).eps * total
        direct = weighted_sse(X[i], W[i], res.codebooks[i])
        if abs(res.inertia[i] - ref) > tol or abs(direct - ref) > 1e-9 * ref + tol:
            bad.append(i)
    return bad


def _rows_matrix(kind, r, n, rng):
    """Rows alike in distribution (as the rows of a weight matrix) of one kind."""
    if kind == "gaussian":
        return rng.standard_normal((r, n)) * rng.uniform(0.5, 2.0, size=(r, 1))
    if kind == "duplicates":  # few distinct values, each many times
        return rng.integers(0, 24, size=(r, n)).astype(float)
    if kind == "grid":  # equal counts on a grid: ties between partitions
        return np.tile(np.repeat(np.arange(30.0) * 0.5, n // 30 + 1)[:n], (r, 1))
    return np.round(rng.laplace(size=(r, n)), 1)  # "rounded": skewed duplicates


@pytest.mark.parametrize("kind", ["gaussian", "duplicates", "grid", "rounded"])
def test_rows_match_the_layered_programme(kind):
    # 40 rows: blocks of rows solved in order (a row's penalty search starts from the
    # earlier rows' penalties above 8 clusters)
    rng = np.random.default_rng(["gaussian", "duplicates", "grid", "rounded"].index(kind))
    X = _rows_matrix(kind, 40, 360, rng)
    m = min(np.unique(row).size for row in X)
    for k in sorted({2, 4, 9, 16, m - 1, m} & set(range(1, m + 1))):
        for dtype in (np.float64, np.float32):
            Xd = X.astype(dtype)
            res = kmeans_1d_rows(Xd, k, n_threads=2)
            assert _rows_off_optimum(Xd, k, res) == []
            one = kmeans_1d_rows(Xd, k, n_threads=1)
            np.testing.assert_array_equal(res.codebooks, one.codebooks)
            np.testing.assert_array_equal(res.inertia, one.inertia)
        # per-entry weights (zeros drop values) and one weight per column
        w = rng.exponential(size=X.shape) * (rng.random(X.shape) > 0.05)
        h = rng.exponential(size=X.shape[1])
        for sw in (w, h):
            mw = min(np.unique(X[i][np.broadcast_to(sw, X.shape)[i] > 0]).size for i in range(40))
            if k <= mw:
                res = kmeans_1d_rows(X, k, sample_weight=sw, n_threads=2)
                assert _rows_off_optimum(X, k, res, sw) == []
                one = kmeans_1d_rows(X, k, sample_weight=sw, n_threads=1)
                np.testing.assert_array_equal(res.codebooks, one.codebooks)


def test_rows_off_optimum_detects_a_worse_codebook():
    # the check above fails on a codebook that is not optimal
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 200))
    res = kmeans_1d_rows(X, 12)
    assert _rows_off_optimum(X, 12, res) == []
    cb = res.codebooks.copy()
    cb[7, 5] += 1e-3 * (cb[7, 6] - cb[7, 5])  # one codeword moved off its cluster's mean
    inertia = res.inertia.copy()
    inertia[7] = weighted_sse(X[7], np.ones(200), cb[7])
    assert _rows_off_optimum(X, 12, type(res)(cb, inertia)) == [7]


def test_rows_small_and_degenerate():
    # n = 1, constant rows, k = number of distinct values, rows of duplicates only
    res = kmeans_1d_rows(np.array([[3.0], [-1.0]], dtype=np.float32), 1)
    np.testing.assert_array_equal(res.codebooks, [[3.0], [-1.0]])
    np.testing.assert_array_equal(res.inertia, [0.0, 0.0])
    X = np.full((18, 50), 2.5)
    X[5] = -7.0
    for dtype in (np.float64, np.float32):
        res = kmeans_1d_rows(X.astype(dtype), 1)
        np.testing.assert_array_equal(res.codebooks[:, 0], X[:, 0])
        np.testing.assert_array_equal(res.inertia, np.zeros(18))
    X = np.tile(np.repeat([-2.0, -0.0, 0.0, 1.0, 4.0], 7), (20, 1))
    for dtype in (np.float64, np.float32):
        # -0 and +0 are one value: four distinct values, each cluster a single value
        res = kmeans_1d_rows(X.astype(dtype), 4)
        np.testing.assert_array_equal(res.codebooks, np.tile([-2.0, 0.0, 1.0, 4.0], (20, 1)))
        np.testing.assert_array_equal(res.inertia, np.zeros(20))
        with pytest.raises(ValueError, match=r"in row 0 \(4\)"):
            kmeans_1d_rows(X.astype(dtype), 5)


def test_float32_rows_equal_float64_rows():
    # the same values in either dtype: the same distinct values, the same codebooks
    rng = np.random.default_rng(8)
    X = rng.laplace(scale=30.0, size=(34, 900)).astype(np.float32)
    X[:, ::7] = np.round(X[:, ::7])  # duplicates
    X[:, 1::11] = -0.0
    X[:, 2::13] = 0.0
    f32 = np.finfo(np.float32)
    X[:, 3::17] = np.resize(np.array([f32.max, -f32.max, f32.smallest_subnormal, -1e-40]), 53)
    for k in (3, 8, 20):
        a = kmeans_1d_rows(X, k)
        b = kmeans_1d_rows(X.astype(np.float64), k)
        np.testing.assert_array_equal(a.codebooks, b.codebooks)
        np.testing.assert_array_equal(a.inertia, b.inertia)


@pytest.mark.parametrize("n", [1, 7, 5000, 70000])
def test_pair_radix_sort_merges_like_unique(n):
    # the (value, weight) radix sort of the weighted path against np.unique + bincount
    from qtoolkit.codebooks import _kmeans1d

    rng = np.random.default_rng(n)
    x = np.round(rng.laplace(scale=50.0, size=n), 1)  # negative, positive, many duplicates
    x[: n // 3] = rng.standard_normal(n // 3).astype(np.float32)  # float32-sized mantissas
    x[n // 2 :: 11] = -0.0
    x[n // 2 + 5 :: 13] = 0.0
    extremes = np.array([-np.finfo(float).max, np.finfo(float).max, 5e-324, -5e-324])
    x[::17] = np.resize(extremes, x[::17].shape)
    w = rng.exponential(size=n)
    w[::5] = 0.0
    ux, uw = np.empty(n), np.empty(n)
    m = _kmeans1d.distinct_weighted(x, w, ux, uw)
    keep = w > 0
    ref_x, inv = np.unique(x[keep], return_inverse=True)
    ref_w = np.bincount(inv, weights=w[keep])
    np.testing.assert_array_equal(ux[:m], ref_x)
    np.testing.assert_allclose(uw[:m], ref_w, rtol=1e-13)


def _merged_in_input_order(x, w):
    """Sorted distinct values of x with positive weight, each weight summed in input order."""
    sums = {}
    for v, wi in zip(x.astype(np.float64).tolist(), w.tolist()):
        if wi > 0:
            sums[v] = sums.get(v, 0.0) + wi  # -0.0 and 0.0 are one key
    ux = np.array(sorted(sums))
    return ux + 0.0, np.array([sums[v] for v in sorted(sums)])  # + 0.0: -0.0 becomes 0.0


def _pair_data(n, dtype, rng):
    """Values with duplicates, signed zeros, extremes and subnormals of ``dtype``; weights."""
    info = np.finfo(dtype)
    x = np.round(rng.laplace(scale=50.0, size=n), 1).astype(dtype)
    x[: n // 3] = rng.standard_normal(n // 3).astype(dtype)
    x[n // 2 :: 11] = -0.0
    x[n // 2 + 5 :: 13] = 0.0
    extremes = np.array([-info.max, info.max, info.smallest_subnormal, -info.smallest_subnormal])
    x[::17] = np.resize(extremes.astype(dtype), x[::17].shape)
    w = rng.exponential(size=n) ** 2
    w[::5] = 0.0
    w[1::7] = 0.1  # some repeated weights: not all equal
    return x, w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 3000, 70000])
def test_distinct_pairs_sum_weights_in_input_order(dtype, n):
    # every kernel of the weighted path, bit for bit against a slow obvious merge
    from qtoolkit.codebooks import _kmeans1d

    rng = np.random.default_rng(n + (0 if dtype is np.float32 else 1))
    x, w = _pair_data(n, dtype, rng)
    if not np.any(w > 0):
        w[0] = 2.5
    ref_x, ref_w = _merged_in_input_order(x, w) if n <= 3000 else (None, None)
    if ref_x is None:  # large: sums compared to np.unique + bincount, order-free checks
        keep = w > 0
        ref_x, inv = np.unique(x[keep].astype(np.float64), return_inverse=True)
        ref_w = np.bincount(inv, weights=w[keep])
    results = [_distinct_weighted(x, w)]
    out = np.empty(2 * n)
    m = _kmeans1d.distinct_pairs(x, w, out)  # the radix sort in the input dtype
    results.append((out[:m], out[n : n + m]))
    if dtype is np.float32:  # the (value bits, index) keys sorted as integers
        keys = np.empty(n, dtype=np.uint64)
        c = _kmeans1d.pair_keys(x, w, keys)
        keys[:c].sort()
        uw = np.empty(max(c, 1))
        m = _kmeans1d.merge_keys(keys[:c], w, uw)
        results.append((keys[:m].view(np.float64), uw[:m]))
    for i, (ux, uw) in enumerate(results):
        assert ux.dtype == np.float64 and uw.dtype == np.float64
        np.testing.assert_array_equal(ux, ref_x)
        if i > 0:  # the pair kernels merge -0.0 into +0.0
            assert not np.any(np.signbit(ux) & (ux == 0))
        if n <= 3000:
            np.testing.assert_array_equal(uw, ref_w)
        else:
            np.testing.assert_allclose(uw, ref_w, rtol=1e-13)
    for ux, uw in results[1:]:  # all paths sum in the same order
        np.testing.assert_array_equal(ux, results[0][0])
        np.testing.assert_array_equal(uw, results[0][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distinct_pairs_degenerate_keys(dtype):
    # one value only (no digit to sort), values differing only in high bits (low digits
    # skipped), zero weights in between
    from qtoolkit.codebooks import _kmeans1d

    rng = np.random.default_rng(3)
    cases = [
        np.full(50, 1.5, dtype=dtype),
        np.array([-0.0, 0.0] * 20, dtype=dtype),
        rng.integers(-3, 4, 500).astype(dtype),
        (2.0 ** rng.integers(-20, 20, 500)).astype(dtype),
    ]
    for x in cases:
        w = rng.exponential(size=x.size)
        w[::3] = 0.0
        ref_x, ref_w = _merged_in_input_order(x, w)
        out = np.empty(2 * x.size)
        m = _kmeans1d.distinct_pairs(x, w, out)
        np.testing.assert_array_equal(out[:m], ref_x)
        np.testing.assert_array_equal(out[x.size : x.size + m], ref_w)
        ux, uw = _distinct_weighted(x, w)
        np.testing.assert_array_equal(ux, ref_x)
        np.testing.assert_array_equal(uw, ref_w)


@pytest.mark.parametrize("weight", [1.0, 0.1, 3.0])
def test_distinct_equal_weights_are_counts(weight):
    # equal positive weights (zeros aside): a plain sort, ``count * weight`` per value
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal(4000), 2).astype(np.float32)
    w = np.full(x.size, weight)
    w[::9] = 0.0
    ux, uw = _distinct_weighted(x, w)
    ref_x, counts = np.unique(x[w > 0].astype(np.float64), return_counts=True)
    np.testing.assert_array_equal(ux, ref_x)
    np.testing.assert_array_equal(uw, counts * weight)
    from qtoolkit.codebooks import _kmeans1d

    assert _kmeans1d.equal_weights(w) == (True, weight)
    w[5] = np.nextafter(weight, 2 * weight)
    assert _kmeans1d.equal_weights(w) == (False, weight)
    assert _kmeans1d.equal_weights(np.zeros(3)) == (True, 0.0)


def test_float32_and_float64_values_give_the_same_result():
    # the float32 path (keys sorted in float32) and the float64 path (radix sort of the
    # widened values) see the same pairs in the same order, so results are bit-identical
    rng = np.random.default_rng(5)
    x32 = np.concatenate([rng.standard_normal(20000), np.round(rng.laplace(size=5000), 1)])
    x32 = x32.astype(np.float32)
    x32[::13] = -0.0
    w = rng.exponential(size=x32.size) ** 2
    w[::7] = 0.0
    for k in (1, 3, 16, 200):
        a = kmeans_1d(x32, k, sample_weight=w)
        b = kmeans_1d(x32.astype(np.float64), k, sample_weight=w)
        np.testing.assert_array_equal(a.codebook, b.codebook)
        assert a.inertia == b.inertia
        # against the layered programme on the same distinct values
        ux, uw = _distinct_weighted(x32, w)
        _, pw, p1, p2 = _prefix(ux, uw)
        ref = _cluster_means(ux, uw, _optimal_starts(pw, p1, p2, ux.size, k, 1), None)
        ref_err = weighted_sse(ux, uw, ref)
        assert abs(a.inertia - ref_err) <= 1e-12 * ref_err


def test_large_problem_work_space_gives_the_same_partition():
    # above _NUMPY_WORK_BYTES the Lagrangian search runs on NumPy buffers instead of
    # malloc'd ones: the same arithmetic, so the same starts as the layered programme's
    from qtoolkit.codebooks import _kmeans1d

    rng = np.random.default_rng(6)
    x = rng.standard_normal(150_000).astype(np.float32)
    x[::10] = x[1::10]  # some duplicates
    w = rng.exponential(size=x.size)
    ux, uw = _distinct_weighted(x, w)
    assert ux.size * 68 > _kmeans1d._NUMPY_WORK_BYTES  # the NumPy-buffer path
    _, pw, p1, p2 = _prefix(ux, uw)
    for k in (2, 5):
        starts = _lagrangian_starts(ux, uw, k)
        ref = _optimal_starts(pw, p1, p2, ux.size, k, 1)
        mine = _inertia_sorted(ux, uw, _cluster_means(ux, uw, starts, None))
        best = _inertia_sorted(ux, uw, _cluster_means(ux, uw, ref, None))
        assert abs(mine - best) <= 1e-12 * best
    small_x = np.ascontiguousarray(ux[:: ux.size // 2000])
    small_w = np.ascontiguousarray(uw[:: ux.size // 2000])
    assert small_x.size * 68 < _kmeans1d._NUMPY_WORK_BYTES  # the malloc path
    _, pw, p1, p2 = _prefix(small_x, small_w)
    starts = _lagrangian_starts(small_x, small_w, 5)
    ref = _optimal_starts(pw, p1, p2, small_x.size, 5, 1)
    a = _inertia_sorted(small_x, small_w, _cluster_means(small_x, small_w, starts, None))
    b = _inertia_sorted(small_x, small_w, _cluster_means(small_x, small_w, ref, None))
    assert abs(a - b) <= 1e-12 * b


def test_rows_bad_input():
    X = np.zeros((3, 5))
    X[1] = [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"in row 0 \(1\)"):
        kmeans_1d_rows(X, 2)
    with pytest.raises(ValueError, match="X must be 2-D"):
        kmeans_1d_rows(np.arange(5.0), 2)
    with pytest.raises(ValueError, match="NaN"):
        kmeans_1d_rows([[0.0, np.nan]], 1)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(2, 3\) or \(3,\)"):
        kmeans_1d_rows(np.ones((2, 3)), 1, sample_weight=np.ones(2))
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        kmeans_1d_rows(np.ones((2, 3)), 1, sample_weight=-np.ones(3))
    with pytest.raises(TypeError, match="n_clusters must be an integer"):
        kmeans_1d_rows(np.ones((2, 3)), 1.5)
    with pytest.raises(ValueError, match="n_threads must be in"):
        kmeans_1d_rows(np.ones((2, 3)), 1, n_threads=0)
    with pytest.raises(ValueError, match="0 sample"):
        kmeans_1d_rows(np.ones((0, 3)), 1)


def test_kmeans_quantizer_and_round_to_codebook_share_the_tie_rule():
    from qtoolkit.codebooks import KMeansQuantizer
    from qtoolkit.rounding import round_to_codebook

    q = KMeansQuantizer(n_clusters=2, random_state=0).fit(np.array([0.0, 0.0, 1.0, 1.0]))
    mid = np.array([0.5, 0.25, 0.75])
    codes = q.transform(mid)
    np.testing.assert_array_equal(
        np.asarray(codes).ravel(), round_to_codebook(mid, q.codebook_, return_codes=True).codes
    )
    assert int(np.asarray(codes).ravel()[0]) == 0  # the tie at 0.5 goes to the lower codeword


def test_kmeans_1d_returns_a_named_tuple():
    from qtoolkit.codebooks import KMeans1DResult, kmeans_1d

    res = kmeans_1d([0.0, 0.1, 0.9, 1.0, 5.0], 2)
    assert isinstance(res, KMeans1DResult)
    codebook, inertia, n_iter = res
    np.testing.assert_array_equal(res.codebook, codebook)
    assert res.inertia == inertia and res.n_iter == n_iter == 1
