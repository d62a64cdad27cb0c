"""Measurements: angle, cosine, MSE, SQNR, angle preservation, dot products, pairs."""

import math
import warnings

import numpy as np
import pytest

from qtoolkit.analysis import (
    angle,
    angle_preservation,
    cosine,
    dot_product_proportionality,
    mse,
    pairwise_angle_preservation,
    sqnr,
)


def xnor_reference(w):
    """sign(w) (sign(0) = +1) times the XNOR-Net scale E|w|: the obvious slow reference."""
    w = np.asarray(w, dtype=np.float64)
    return np.where(w >= 0, 1.0, -1.0) * np.mean(np.abs(w))


def angle_reference(x, y):
    """arccos of the cosine, in extended precision (fine away from 0 and pi)."""
    x = np.asarray(x, dtype=np.longdouble)
    y = np.asarray(y, dtype=np.longdouble)
    c = np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.arccos(np.clip(c, -1, 1)))


# -- angle ------------------------------------------------------------------


def test_angle_hand_cases():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    y = np.array([[0.0, 3.0], [5.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(
        angle(x, y), [math.pi / 2, 0.0, math.pi, math.pi / 4], rtol=1e-15, atol=0
    )
    np.testing.assert_allclose(angle(x, y, degrees=True), [90.0, 0.0, 180.0, 45.0], rtol=1e-14)


@pytest.mark.parametrize("eps", [1e-6, 1e-9, 1e-12, 1e-15])
def test_angle_accurate_near_zero(eps):
    # The exact angle is atan(eps) = eps - eps^3/3 + ...; arccos(cos) would return 0 for eps < 1e-8.
    theta = float(angle(np.array([1.0, 0.0]), np.array([1.0, eps])))
    assert theta == pytest.approx(math.atan(eps), rel=1e-12)


@pytest.mark.parametrize("eps", [1e-4, 1e-6, 1e-7])
def test_angle_accurate_near_180(eps):
    # pi - theta = atan(eps); the subtraction from pi costs up to 4.4e-16 absolute.
    theta = float(angle(np.array([1.0, 0.0]), np.array([-1.0, eps])))
    assert math.pi - theta == pytest.approx(math.atan(eps), rel=1e-8)


def test_angle_batched_axes_match_loop(rng):
    w = rng.standard_normal((4, 3, 5, 2))
    v = rng.standard_normal((4, 3, 5, 2))
    got = angle(w, v, axis=(1, 2, 3))
    assert got.shape == (4,)
    np.testing.assert_allclose(got, [angle_reference(w[i], v[i]) for i in range(4)], rtol=1e-12)
    got = angle(w, v, axis=1)
    assert got.shape == (4, 5, 2)
    ref = np.array(
        [
            [[angle_reference(w[i, :, j, k], v[i, :, j, k]) for k in range(2)] for j in range(5)]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert float(angle(w, v, axis=None)) == pytest.approx(angle_reference(w, v), rel=1e-12)


def test_angle_broadcasts_rows_against_one_vector(rng):
    X = rng.standard_normal((6, 9))
    y = rng.standard_normal(9)
    np.testing.assert_allclose(angle(X, y), [angle_reference(x, y) for x in X], rtol=1e-12)


def test_angle_invariances(rng):
    x, y = rng.standard_normal((2, 50))
    base = angle(x, y)
    assert angle(y, x) == pytest.approx(base, rel=1e-14)
    assert angle(3.5 * x, 0.01 * y) == pytest.approx(base, rel=1e-13)
    assert angle(-x, y) == pytest.approx(math.pi - base, rel=1e-13)
    # Huge entries do not overflow.
    assert angle(1e300 * x, 1e300 * y) == pytest.approx(base, rel=1e-13)


def test_angle_and_cosine_of_zero_vector_are_nan_without_warnings():
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = angle(x, y)
        c = cosine(x, y)
    assert np.all(np.isnan(a)) and np.all(np.isnan(c))


def test_cosine_matches_cos_of_angle(rng):
    X = rng.standard_normal((10, 33))
    Y = X + 0.3 * rng.standard_normal((10, 33))
    np.testing.assert_allclose(cosine(X, Y), np.cos(angle(X, Y)), rtol=1e-12)
    ref = np.sum(X * Y, axis=1) / np.linalg.norm(X, axis=1) / np.linalg.norm(Y, axis=1)
    np.testing.assert_allclose(cosine(X, Y), ref, rtol=1e-12)
    assert float(cosine(X[0], X[0])) == 1.0  # clipped, never above 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_measures_keep_the_floating_dtype(rng, dtype):
    x = rng.standard_normal((3, 8)).astype(dtype)
    y = np.sign(x)
    for out in (angle(x, y), cosine(x, y), mse(x, y), sqnr(x, y)):
        assert out.dtype == dtype


def test_measures_on_array_api_strict():
    xps = pytest.importorskip("array_api_strict")
    x = xps.asarray([[1.0, -2.0, 0.5], [0.1, 0.2, -0.3]])
    y = xps.sign(x)
    for out in (
        angle(x, y),
        cosine(x, y),
        mse(x, y),
        sqnr(x, y, axis=1),
        angle_preservation(x, xps.sign),
    ):
        assert type(out) is type(x)
    ref = [
        angle_reference([1.0, -2.0, 0.5], [1, -1, 1]),
        angle_reference([0.1, 0.2, -0.3], [1, 1, -1]),
    ]
    np.testing.assert_allclose(np.asarray(angle(x, y)), ref, rtol=1e-12)


def test_measures_on_torch():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = angle_preservation(x, torch.sign)
    assert isinstance(a, torch.Tensor)
    np.testing.assert_allclose(a.numpy(), angle(x.numpy(), np.sign(x.numpy())), rtol=1e-12)
    fit = dot_product_proportionality(x, torch.sign, torch.randn(30, 64, dtype=torch.float64))
    assert isinstance(fit.r, torch.Tensor) and fit.r.shape == (4,)


def test_measure_errors():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="broadcastable shapes"):
        angle(x, np.ones((2, 4)))
    with pytest.raises(TypeError, match="x must be a real floating array"):
        angle(np.ones(3, dtype=int), np.ones(3))
    with pytest.raises(TypeError, match="y must be a real floating array"):
        cosine(np.ones(3), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="out of bounds"):
        angle(x, x, axis=2)
    with pytest.raises(ValueError, match="at least one dimension"):
        angle(np.float64(1.0) * np.ones(()), np.ones(()))


# -- MSE and SQNR -------------------------------------------------------------


def test_mse_and_sqnr_hand_cases():
    x = np.array([3.0, 4.0])
    y = np.array([3.0, 3.0])
    assert float(mse(x, y)) == 0.5
    assert float(sqnr(x, y)) == pytest.approx(10 * math.log10(25.0), rel=1e-15)
    X = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    Y = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sqnr(X, Y, axis=1)
    assert s[0] == np.inf and s[1] == -np.inf and np.isnan(s[2])
    assert s[3] == pytest.approx(10 * math.log10(4.0))
    np.testing.assert_allclose(mse(X, Y, axis=1), [0.0, 0.5, 0.0, 0.5])


def test_sqnr_six_db_per_bit(rng):
    # Mid-rise uniform quantizer of step 2^-b on U(0, 1): noise power Delta^2/12 and signal
    # power 1/3, so SQNR = 10 log10(4^(b+1)) = 6.02 (b + 1) dB; with n = 200000 samples the
    # relative sampling error of each power is below 1% (sd ~ 1/sqrt(n) relative), i.e. < 0.05 dB.
    x = rng.random(200_000)
    for b in (4, 6, 8):
        q = (np.floor(x * 2**b) + 0.5) / 2**b
        assert float(sqnr(x, q)) == pytest.approx(10 * math.log10(4.0 ** (b + 1)), abs=0.05)


# -- angle preservation, dot products, pairs ----------------------------------


def test_angle_preservation_rows_and_filters(rng):
    w = rng.standard_normal((5, 40))
    got = angle_preservation(w, xnor_reference)
    q = xnor_reference(w)
    np.testing.assert_allclose(got, [angle_reference(w[i], q[i]) for i in range(5)], rtol=1e-12)
    f = rng.standard_normal((4, 3, 3, 3))
    got = angle_preservation(f, np.sign, axis=(1, 2, 3), degrees=True)
    ref = [math.degrees(angle_reference(f[i], np.sign(f[i]))) for i in range(4)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_angle_preservation_with_the_library_binarize(rng):
    from qtoolkit import rounding

    w = rng.standard_normal((3, 256))
    np.testing.assert_allclose(
        angle_preservation(w, lambda v: rounding.binarize(v, scale="mean", axis=0)),
        angle_preservation(w, xnor_reference),
        rtol=1e-12,
    )


def test_angle_preservation_errors():
    w = np.ones((2, 3))
    with pytest.raises(TypeError, match="quantizer must be a callable"):
        angle_preservation(w, "sign")
    with pytest.raises(ValueError, match="quantizer must return an array of the input's shape"):
        angle_preservation(w, lambda v: v[:, :2])
    with pytest.raises(TypeError, match="w must be a real floating array"):
        angle_preservation(np.ones((2, 3), dtype=np.int64), np.sign)


def test_dot_product_proportionality_matches_reference(rng):
    w = rng.standard_normal((3, 20))
    a = rng.standard_normal((50, 20)) + 0.5
    fit = dot_product_proportionality(w, xnor_reference, a)
    q = xnor_reference(w)
    for j in range(3):
        u, v = a @ w[j], a @ q[j]
        slope, intercept = np.polyfit(u, v, 1)
        assert fit.r[j] == pytest.approx(np.corrcoef(u, v)[0, 1], rel=1e-12)
        assert fit.slope[j] == pytest.approx(slope, rel=1e-10)
        assert fit.intercept[j] == pytest.approx(intercept, rel=1e-8, abs=1e-12)
    one = dot_product_proportionality(w[0], np.sign, a)
    assert np.ndim(one.r) == 0
    assert float(one.r) == pytest.approx(np.corrcoef(a @ w[0], a @ np.sign(w[0]))[0, 1], rel=1e-12)


def test_dot_product_identity_and_degenerate_cases(rng):
    w = rng.standard_normal((2, 10))
    a = rng.standard_normal((30, 10))
    fit = dot_product_proportionality(w, lambda v: 2.0 * v, a)
    np.testing.assert_allclose(fit.r, 1.0, rtol=1e-14)
    np.testing.assert_allclose(fit.slope, 2.0, rtol=1e-12)
    np.testing.assert_allclose(fit.intercept, 0.0, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        const = dot_product_proportionality(w, np.sign, np.ones((5, 10)))
    assert np.all(np.isnan(const.r)) and np.all(np.isnan(const.slope))


def test_dot_product_errors():
    w = np.ones((2, 4))
    with pytest.raises(ValueError, match="n_in=4 columns"):
        dot_product_proportionality(w, np.sign, np.ones((6, 5)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        dot_product_proportionality(w, np.sign, np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"activations must have shape \(n_samples, n_in\)"):
        dot_product_proportionality(w, np.sign, np.ones(4))
    with pytest.raises(ValueError, match=r"w must have shape \(n_out, n_in\)"):
        dot_product_proportionality(np.ones((2, 2, 4)), np.sign, np.ones((6, 4)))


def test_pairwise_angles_match_brute_force(rng):
    from scipy.spatial.distance import pdist

    X = rng.standard_normal((7, 12))
    res = pairwise_angle_preservation(X, np.sign)
    before = [angle_reference(X[i], X[j]) for i in range(7) for j in range(i + 1, 7)]
    after = [
        angle_reference(np.sign(X[i]), np.sign(X[j])) for i in range(7) for j in range(i + 1, 7)
    ]
    np.testing.assert_allclose(res.before, before, rtol=1e-12)
    np.testing.assert_allclose(res.after, after, rtol=1e-12)
    # Same pair order as scipy's pdist (cosine distance = 1 - cos).
    np.testing.assert_allclose(np.cos(res.before), 1 - pdist(X, "cosine"), rtol=1e-12)
    with pytest.raises(ValueError, match="n >= 2"):
        pairwise_angle_preservation(X[:1], np.sign)


def test_measures_on_dask_stay_lazy(rng):
    da = pytest.importorskip("dask.array")
    x = rng.standard_normal((4, 100))
    dx = da.from_array(x, chunks=(2, 50))
    out = angle_preservation(dx, da.sign)
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(np.asarray(out.compute()), angle(x, np.sign(x)), rtol=1e-12)
    s = sqnr(dx, da.sign(dx), axis=1)
    assert isinstance(s, da.Array)
    np.testing.assert_allclose(np.asarray(s.compute()), sqnr(x, np.sign(x), axis=1), rtol=1e-12)
