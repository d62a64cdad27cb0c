"""Product and residual quantization against brute force, scikit-learn and invariants."""

import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans

from qtoolkit.codebooks import ProductQuantizer, ResidualQuantizer
from qtoolkit.codebooks._pq import encode_nearest
from qtoolkit.codebooks._rq import beam_encode


def nearest_reference(X, books):
    """Nearest codeword per subspace by explicit distances (slow, obvious)."""
    M, _K, ds = books.shape
    out = np.empty((X.shape[0], M), dtype=np.int64)
    for m in range(M):
        d = (X[:, None, m * ds : (m + 1) * ds].astype(float) - books[m][None].astype(float)) ** 2
        out[:, m] = d.sum(axis=2).argmin(axis=1)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M, K, ds", [(1, 5, 3), (3, 17, 1), (4, 64, 7)])
def test_encode_kernel_matches_reference(dtype, M, K, ds):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(301, M * ds)).astype(dtype)
    books = rng.normal(size=(M, K, ds)).astype(dtype)
    got = encode_nearest(X, books, 1)
    ref = nearest_reference(X, books)
    # float32 rounding can flip exact near-ties; check the distance instead of the index
    for m in range(M):
        sub = X[:, m * ds : (m + 1) * ds].astype(float)
        d_got = ((sub - books[m][got[:, m]].astype(float)) ** 2).sum(axis=1)
        d_ref = ((sub - books[m][ref[:, m]].astype(float)) ** 2).sum(axis=1)
        np.testing.assert_allclose(
            d_got,
            d_ref,
            rtol=1e-5 if dtype == np.float32 else 1e-12,
            atol=1e-5 if dtype == np.float32 else 1e-12,
        )
    np.testing.assert_array_equal(got, encode_nearest(X, books, 2))


def test_encode_kernel_is_identical_at_every_level(simd_levels):
    # every implementation (generic, AVX2, AVX-512) computes the same distances bit for bit
    from qtoolkit import _dispatch
    from qtoolkit.bitops import simd_level

    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        X = rng.normal(size=(257, 4 * 9)).astype(dtype)
        books = rng.normal(size=(4, 33, 9)).astype(dtype)
        got = encode_nearest(X, books, 2)
        with simd_level("generic"):
            assert _dispatch.kernel_level("codebooks.pq_search")[0] == "generic"
            ref = encode_nearest(X, books, 1)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, nearest_reference(X, books))


def test_one_subspace_equals_kmeans_from_same_start():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6))
    init = X[rng.choice(400, 8, replace=False)]
    pq = ProductQuantizer(n_subspaces=1, n_clusters=8, init=init[None], max_iter=50).fit(X)
    km = KMeans(n_clusters=8, init=init, n_init=1, max_iter=50, tol=0.0).fit(X)
    np.testing.assert_allclose(pq.codebook_[0], km.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert pq.inertia_ == pytest.approx(km.inertia_, rel=1e-9)


def test_roundtrip_inertia_and_weights():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 8))
    init = rng.normal(size=(4, 6, 2))
    pq = ProductQuantizer(n_subspaces=4, n_clusters=6, init=init).fit(X)
    codes = pq.transform(X)
    assert codes.shape == (300, 4) and codes.dtype == np.uint8
    rec = pq.inverse_transform(codes)
    assert pq.inertia_ == pytest.approx(((X - rec) ** 2).sum(), rel=1e-10)
    # integer weights equal repeated rows (same explicit start)
    reps = rng.integers(0, 3, size=300)
    a = ProductQuantizer(n_subspaces=4, n_clusters=6, init=init).fit(X, sample_weight=reps)
    b = ProductQuantizer(n_subspaces=4, n_clusters=6, init=init).fit(np.repeat(X, reps, axis=0))
    np.testing.assert_allclose(a.codebook_, b.codebook_, rtol=1e-9, atol=1e-12)


def test_adc_tables_and_search():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 12)).astype(np.float32)
    pq = ProductQuantizer(n_subspaces=3, n_clusters=16, random_state=0).fit(X)
    codes = pq.transform(X)
    Q = rng.normal(size=(7, 12)).astype(np.float32)
    rec = pq.inverse_transform(codes).astype(float)
    exact = ((Q[:, None, :].astype(float) - rec[None]) ** 2).sum(axis=2)  # (7, 500)
    tables = pq.adc_tables(Q)
    assert tables.shape == (7, 3, 16)
    np.testing.assert_allclose(tables.sum(axis=1).min(axis=1).shape, (7,))
    dist, idx = pq.search(Q, codes, n_neighbors=5)
    np.testing.assert_allclose(dist, np.sort(exact, axis=1)[:, :5], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.take_along_axis(exact, idx, axis=1), dist, rtol=1e-4, atol=1e-4)
    pq.set_params(n_threads=1)
    d1, i1 = pq.search(Q, codes, n_neighbors=5)
    pq.set_params(n_threads=2)
    d2, i2 = pq.search(Q, codes, n_neighbors=5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)


def test_pq_bad_input():
    X = np.random.default_rng(4).normal(size=(50, 6))
    with pytest.raises(ValueError, match="n_features=6 must be a multiple of n_subspaces=4"):
        ProductQuantizer(n_subspaces=4, n_clusters=4).fit(X)
    with pytest.raises(ValueError, match="n_samples=50 must be at least n_clusters=64"):
        ProductQuantizer(n_subspaces=2, n_clusters=64).fit(X)
    with pytest.raises(ValueError, match=r"init must be .* shape \(2, 4, 3\)"):
        ProductQuantizer(n_subspaces=2, n_clusters=4, init=np.zeros((2, 4, 2))).fit(X)
    with pytest.raises(ValueError, match="init must be"):
        ProductQuantizer(n_subspaces=2, n_clusters=4, init="forgy").fit(X)
    with pytest.raises(ValueError, match="contains NaN"):
        ProductQuantizer(n_subspaces=2, n_clusters=4).fit(np.where(X > 2, np.nan, X))
    pq = ProductQuantizer(n_subspaces=2, n_clusters=4, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"X must lie in \[0, 3\]"):
        pq.inverse_transform(np.full((3, 2), 4))
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 2\)"):
        pq.inverse_transform(np.zeros((3, 3), dtype=int))
    with pytest.raises(ValueError, match=r"n_neighbors must be in \[1, 50\]"):
        pq.search(X[:2], pq.transform(X), n_neighbors=51)
    with pytest.raises(TypeError, match="n_clusters must be an integer"):
        ProductQuantizer(n_subspaces=2, n_clusters=4.0).fit(X)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_residual_error_never_grows(beam_size):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    rq = ResidualQuantizer(n_stages=4, n_clusters=8, beam_size=beam_size, random_state=0).fit(X)
    assert np.all(np.diff(rq.stage_inertia_) <= 1e-9 * rq.stage_inertia_[0])
    assert rq.stage_inertia_[0] < ((X - X.mean(axis=0)) ** 2).sum()
    codes = rq.transform(X)
    rec = rq.inverse_transform(codes)
    assert ((X - rec) ** 2).sum() == pytest.approx(rq.inertia_, rel=1e-9)


def test_full_beam_is_exhaustive_search():
    rng = np.random.default_rng(6)
    books = rng.normal(size=(2, 4, 3))
    X = rng.normal(size=(50, 3))
    _codes, err = beam_encode(X, books, beam_size=4)
    for i in range(50):
        best = min(
            ((X[i] - books[0][a] - books[1][b]) ** 2).sum()
            for a, b in itertools.product(range(4), repeat=2)
        )
        assert err[i] == pytest.approx(best, rel=1e-12)
    greedy_codes, greedy_err = beam_encode(X, books, beam_size=1)
    assert np.all(err <= greedy_err + 1e-12)
    ref = np.empty(50, dtype=int)
    ref[:] = ((X[:, None] - books[0][None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(greedy_codes[:, 0], ref)


def test_rq_bad_input():
    X = np.random.default_rng(7).normal(size=(20, 3))
    with pytest.raises(ValueError, match=r"beam_size must be in \[1, 65536\]"):
        ResidualQuantizer(n_clusters=2, beam_size=0).fit(X)
    with pytest.raises(ValueError, match=r"n_stages must be in \[1, 65536\]"):
        ResidualQuantizer(n_stages=0, n_clusters=2).fit(X)
    with pytest.raises(ValueError, match="n_samples=20 must be at least n_clusters=32"):
        ResidualQuantizer(n_clusters=32).fit(X)
    with pytest.raises(ValueError, match="init must be"):
        ResidualQuantizer(n_clusters=2, init="linear").fit(X)


def beam_reference(X, books, beam_size):
    """Beam search one vector at a time with Python lists (slow, obvious).

    Candidate error ``(e - 2 <r, c_k>) + ||c_k||^2``; the ``beam_size``
    smallest are kept, ties to the lower (beam, codeword) pair; the result is
    the kept code of smallest recomputed error ``||r - c_k||^2`` (first on ties).
    """
    S, K, _d = books.shape
    codes = np.empty((X.shape[0], S), dtype=np.int64)
    errors = np.empty(X.shape[0])
    for i, x in enumerate(X):
        beams = [((), x, float(x @ x))]  # (code, residual, error)
        for s in range(S):
            cands = []
            for j, (_code, r, e) in enumerate(beams):
                for k in range(K):
                    c = books[s, k]
                    cands.append(((e - 2 * float(r @ c)) + float(c @ c), j * K + k, j, k))
            cands.sort(key=lambda t: (t[0], t[1]))
            beams = [
                (beams[j][0] + (k,), beams[j][1] - books[s, k], 0.0)
                for _v, _f, j, k in cands[:beam_size]
            ]
            beams = [(code, r, float(r @ r)) for code, r, _ in beams]
        best = min(range(len(beams)), key=lambda t: (beams[t][2], t))
        codes[i] = beams[best][0]
        errors[i] = beams[best][2]
    return codes, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n, d, S, K, B",
    [(70, 5, 3, 7, 4), (45, 3, 2, 2, 5), (81, 9, 4, 33, 1), (30, 17, 2, 40, 65), (25, 1, 3, 3, 30)],
)
def test_compiled_beam_search_equals_reference(simd_levels, dtype, n, d, S, K, B):
    # small integers: every dot product is exact in any order, so the codes must be
    # equal, and the many exact ties exercise the tie rule
    rng = np.random.default_rng(n * d + K)
    X = rng.integers(-3, 4, size=(n, d)).astype(dtype)
    books = rng.integers(-2, 3, size=(S, K, d)).astype(dtype)
    ref_codes, ref_err = beam_reference(X.astype(float), books.astype(float), B)
    for n_threads in (1, 2):
        codes, err = beam_encode(X, books, B, n_threads)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(err, ref_err)


def test_compiled_beam_search_on_real_data(simd_levels):
    # float data: same errors as the reference up to rounding; bit-identical to the
    # generic level and across thread counts; more vectors than one block of points
    from qtoolkit.bitops import simd_level

    rng = np.random.default_rng(11)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-11)):
        X = rng.normal(size=(600, 12)).astype(dtype)
        books = (rng.normal(size=(3, 19, 12)) * [[[1.0]], [[0.5]], [[0.25]]]).astype(dtype)
        codes, err = beam_encode(X, books, 6, 2)
        sub = slice(0, 600, 7)
        _ref_codes, ref_err = beam_reference(X[sub].astype(float), books.astype(float), 6)
        np.testing.assert_allclose(err[sub], ref_err, rtol=tol)
        rec = books[0][codes[:, 0]] + books[1][codes[:, 1]] + books[2][codes[:, 2]]
        np.testing.assert_allclose(((X - rec).astype(float) ** 2).sum(axis=1), err, rtol=tol)
        with simd_level("generic"):
            g_codes, g_err = beam_encode(X, books, 6, 1)
        np.testing.assert_array_equal(codes, g_codes)
        np.testing.assert_array_equal(err, g_err)


def test_rq_stage_subsample():
    rng = np.random.default_rng(12)
    X = rng.normal(size=(3000, 6)) * np.array([3.0, 2.0, 1.0, 1.0, 0.5, 0.2])
    kw = {"n_stages": 2, "n_clusters": 8, "beam_size": 2, "random_state": 3}
    full = ResidualQuantizer(max_points_per_centroid=None, **kw).fit(X)
    # 3000 <= 400 * 8: no subsample, the same fit as training on everything
    same = ResidualQuantizer(max_points_per_centroid=400, **kw).fit(X)
    np.testing.assert_array_equal(full.codebook_, same.codebook_)
    # 16 points per centroid: each stage sees 128 residuals, reproducibly
    a = ResidualQuantizer(max_points_per_centroid=16, **kw).fit(X)
    b = ResidualQuantizer(max_points_per_centroid=16, **kw).fit(X)
    np.testing.assert_array_equal(a.codebook_, b.codebook_)
    assert not np.array_equal(a.codebook_, full.codebook_)
    # the stage errors are those of encoding every training vector
    rec = a.inverse_transform(a.transform(X))
    assert ((X - rec) ** 2).sum() == pytest.approx(a.inertia_, rel=1e-9)
    assert full.inertia_ <= a.inertia_ < 1.3 * full.inertia_
    # every stage codeword is a mean of training residuals: inside their hull's box
    assert np.all(np.abs(a.codebook_[0]) <= np.abs(X).max(axis=0))
    # the encoder's thread count changes nothing
    c = ResidualQuantizer(max_points_per_centroid=16, n_threads=1, **kw).fit(X)
    np.testing.assert_array_equal(a.codebook_, c.codebook_)
    np.testing.assert_array_equal(a.transform(X), c.set_params(n_threads=2).transform(X))
    with pytest.raises(ValueError, match=r"max_points_per_centroid must be in \[1, "):
        ResidualQuantizer(max_points_per_centroid=0, **kw).fit(X)
    with pytest.raises(TypeError, match="max_points_per_centroid must be an integer"):
        ResidualQuantizer(max_points_per_centroid=2.5, **kw).fit(X)


def test_kmeans_plusplus_seeding():
    from qtoolkit.codebooks._rq import _kmeans_plusplus

    rng = np.random.default_rng(13)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0], [50.0, 300.0]])
    X = np.concatenate([c + rng.normal(size=(40, 2)) for c in centres])
    for seed in range(5):
        got = _kmeans_plusplus(X, 5, np.random.default_rng(seed))
        # the seeds are data points, one in each well-separated cluster
        assert all(any(np.array_equal(g, x) for x in X) for g in got)
        nearest = np.argmin(((got[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
        assert sorted(nearest) == [0, 1, 2, 3, 4]
    # zero weights: those points are never drawn
    w = np.zeros(len(X))
    w[:40] = 1.0
    w[80:120] = 2.0
    got = _kmeans_plusplus(X, 2, np.random.default_rng(0), w)
    nearest = np.argmin(((got[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert sorted(nearest) == [0, 2]
    # fewer distinct points than centres: the seeding still returns k points of X
    got = _kmeans_plusplus(np.repeat(X[:2], 5, axis=0), 4, np.random.default_rng(0))
    assert got.shape == (4, 2) and all(any(np.array_equal(g, x) for x in X[:2]) for g in got)
