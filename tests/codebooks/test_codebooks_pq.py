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
