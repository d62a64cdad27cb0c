"""Binary and ternary schemes: hand-solved cases, brute-force optima, invariants."""

import itertools

import numpy as np
import pytest

from qtoolkit.rounding import binarize, stochastic_binarize, ternarize


def test_binarize_hand_solved():
    w = np.array([-0.5, 0.0, 1.5, -2.0])
    np.testing.assert_array_equal(binarize(w), [-1, 1, 1, -1])
    np.testing.assert_allclose(binarize(w, scale="mean"), np.array([-1, 1, 1, -1]) * 1.0)
    d = np.array([1.0, 0.0, 1.0, 2.0])
    # ||d w||_1 / ||d||_1 = (0.5 + 0 + 1.5 + 4) / 4 = 1.5
    np.testing.assert_allclose(binarize(w, scale="loss_aware", d=d), np.array([-1, 1, 1, -1]) * 1.5)


def test_xnor_scale_is_least_squares_optimum(rng):
    w = rng.standard_normal(200)
    b = binarize(w) * 1.0
    alphas = np.linspace(0, 2, 4001)
    errs = [np.sum((w - a * b) ** 2) for a in alphas]
    best = alphas[int(np.argmin(errs))]
    assert abs(binarize(w, scale="mean")[0] / b[0] - best) <= 1e-3


def test_loss_aware_with_unit_curvature_is_xnor(rng):
    w = rng.standard_normal((5, 7))
    np.testing.assert_allclose(
        binarize(w, scale="loss_aware", d=np.ones_like(w), axis=0),
        binarize(w, scale="mean", axis=0),
    )


@pytest.mark.parametrize("axis", [0, 1, (0, 2)])
def test_binarize_per_axis_equals_loop(rng, axis):
    w = rng.standard_normal((3, 4, 5))
    out = binarize(w, scale="mean", axis=axis)
    axes = axis if isinstance(axis, tuple) else (axis,)
    for idx in itertools.product(*(range(w.shape[a]) for a in axes)):
        sl = [slice(None)] * w.ndim
        for a, i in zip(axes, idx):
            sl[a] = i
        np.testing.assert_allclose(out[tuple(sl)], binarize(w[tuple(sl)], scale="mean"))


def test_binarize_idempotent(rng):
    w = rng.standard_normal(50)
    q = binarize(w, scale="mean")
    np.testing.assert_allclose(binarize(q, scale="mean"), q)


def test_stochastic_binarize_probability(rng):
    # P(+1) = clip((w + 1) / 2, 0, 1); with n = 20000 draws the standard error
    # of a frequency is at most 0.5 / sqrt(n) = 0.0035; allow 5 standard errors.
    n = 20000
    for value in (-1.5, -0.6, 0.0, 0.3, 2.0):
        out = stochastic_binarize(np.full(n, value), rng=rng)
        assert set(np.unique(out)) <= {-1.0, 1.0}
        p = np.clip((value + 1) / 2, 0, 1)
        assert abs(np.mean(out == 1) - p) <= 5 * 0.5 / np.sqrt(n)


def test_stochastic_binarize_seed(rng):
    w = rng.standard_normal(100)
    np.testing.assert_array_equal(stochastic_binarize(w, rng=3), stochastic_binarize(w, rng=3))
    assert not np.array_equal(stochastic_binarize(w, rng=3), stochastic_binarize(w, rng=4))


def test_twn_hand_solved():
    w = np.array([-1.0, -0.1, 0.05, 0.6, 1.0])
    # E|w| = 0.55, Delta = 0.385; above it: 1.0, 0.6, 1.0 -> alpha = 2.6 / 3
    np.testing.assert_allclose(ternarize(w), np.array([-1, 0, 0, 1, 1]) * 2.6 / 3)
    # delta = 0.1: Delta = 0.055 keeps 1.0, 0.1, 0.6, 1.0 -> alpha = 2.7 / 4
    np.testing.assert_allclose(ternarize(w, delta=0.1), np.array([-1, -1, 0, 1, 1]) * 2.7 / 4)
    # delta = 0.05: Delta = 0.0275 keeps all five -> alpha = 2.75 / 5
    np.testing.assert_allclose(ternarize(w, delta=0.05), np.array([-1, -1, 1, 1, 1]) * 2.75 / 5)


def test_ttq_hand_solved():
    w = np.array([-1.0, -0.1, 0.04, 0.6, 1.0])
    # threshold 0.05 * 1.0; positives 0.6, 1.0 -> 0.8; negatives 1.0, 0.1 -> 0.55
    np.testing.assert_allclose(ternarize(w, method="ttq"), [-0.55, -0.55, 0, 0.8, 0.8])
    np.testing.assert_allclose(
        ternarize(w, method="ttq", scales=(2.0, 3.0)), [-3.0, -3.0, 0, 2.0, 2.0]
    )


def _brute_force_ternary(w):
    """Minimise ||w - alpha t||^2 over every threshold (each distinct |w| and 0)."""
    a = np.abs(w)
    best = (np.sum(w**2), 0.0, np.zeros_like(w))
    for thr in np.concatenate([[0.0], np.unique(a)]):
        t = np.sign(w) * (a > thr)
        if not np.any(t):
            continue
        alpha = np.sum(a * (a > thr)) / np.sum(a > thr)
        err = np.sum((w - alpha * t) ** 2)
        if err < best[0] - 1e-12:
            best = (err, alpha, alpha * t)
    return best


@pytest.mark.parametrize("n", [1, 2, 5, 9, 16])
def test_optimal_ternary_equals_brute_force(n, seed):
    rng = np.random.default_rng(seed + n)
    for _ in range(20):
        w = rng.standard_normal(n)
        if n > 3:
            w[rng.integers(0, n, 2)] = 0.0  # zeros and ties
            w[0] = -w[1]
        err, _, ref = _brute_force_ternary(w)
        out = ternarize(w, method="optimal")
        assert np.sum((w - out) ** 2) <= err + 1e-12
        np.testing.assert_allclose(out, ref, atol=1e-12)


def test_optimal_ternary_is_no_worse_than_twn(rng):
    w = rng.standard_normal(1001) * np.linspace(0.1, 3, 1001)
    e_opt = np.sum((w - ternarize(w, method="optimal")) ** 2)
    e_twn = np.sum((w - ternarize(w)) ** 2)
    assert e_opt <= e_twn


def test_optimal_ternary_all_zero():
    np.testing.assert_array_equal(ternarize(np.zeros(4), method="optimal"), np.zeros(4))


@pytest.mark.parametrize("method", ["twn", "optimal", "ttq"])
@pytest.mark.parametrize("axis", [0, 1, (0, 1)])
def test_ternary_per_axis_equals_loop(rng, method, axis):
    w = rng.standard_normal((3, 5, 4))
    out = ternarize(w, method=method, axis=axis)
    axes = axis if isinstance(axis, tuple) else (axis,)
    for idx in itertools.product(*(range(w.shape[a]) for a in axes)):
        sl = [slice(None)] * w.ndim
        for a, i in zip(axes, idx):
            sl[a] = i
        np.testing.assert_allclose(
            out[tuple(sl)], ternarize(w[tuple(sl)], method=method), rtol=1e-12
        )


@pytest.mark.parametrize("method", ["twn", "optimal"])
def test_ternary_idempotent_and_levels(rng, method):
    w = rng.standard_normal(300)
    q = ternarize(w, method=method)
    assert len(np.unique(q)) == 3
    np.testing.assert_allclose(ternarize(q, method=method), q)


def test_ternary_float32_matches_float64_levels(rng):
    w = rng.standard_normal(500)
    q64 = ternarize(w, method="optimal")
    q32 = ternarize(w.astype(np.float32), method="optimal")
    assert q32.dtype == np.float32
    np.testing.assert_array_equal(np.sign(q32), np.sign(q64))


@pytest.mark.parametrize("module", ["array_api_strict", "torch"])
def test_optimal_ternary_in_other_namespaces_equals_brute_force(module, seed):
    # Namespaces other than NumPy and Dask sort and scan in their own namespace.
    xp = pytest.importorskip(module)
    rng = np.random.default_rng(seed)
    for n in (1, 4, 9):
        for _ in range(10):
            w = rng.standard_normal(n)
            if n > 3:
                w[rng.integers(0, n, 2)] = 0.0
                w[0] = -w[1]
            _, _, ref = _brute_force_ternary(w)
            out = ternarize(xp.asarray(w), method="optimal")
            np.testing.assert_allclose(np.asarray(out), ref, atol=1e-12)
    w = rng.standard_normal((3, 6))
    out = ternarize(xp.asarray(w), method="optimal", axis=0)
    np.testing.assert_allclose(np.asarray(out), ternarize(w, method="optimal", axis=0), atol=1e-12)
    assert np.all(np.asarray(ternarize(xp.asarray(np.zeros(3)), method="optimal")) == 0)
