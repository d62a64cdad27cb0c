"""GPTQ and AdaRound on a real layer (an MLP trained on scikit-learn's digits) and on toy cases."""

import warnings

import numpy as np
import pytest

from qtoolkit.optimize import QuantizedLayer, adaround, gptq, output_error
from qtoolkit.rounding import uniform


@pytest.fixture(scope="module")
def digits_layer():
    """First layer (32 x 64) of a small MLP trained on digits, and its inputs (1797 x 64).

    Three pixels are zero in every image: dead inputs, a singular Hessian.
    """
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=150, random_state=0).fit(X, y)
    assert mlp.score(X, y) > 0.95
    return np.ascontiguousarray(mlp.coefs_[0].T), X


def _rtn(W, bits, mode="asymmetric"):
    return uniform(W, bits=bits, mode=mode, axis=0)


def _slow_obq(W, X, bits, damp):
    """Reference: quantize columns left to right; after each, the OBS update of the rest with
    the inverse of the remaining Hessian, recomputed from scratch (no Cholesky, no blocks)."""
    H = X.T @ X / X.shape[0]
    H = H + damp * np.mean(np.diag(H)) * np.eye(H.shape[0])
    W = W.astype(np.float64).copy()
    qmax = 2**bits - 1
    hi = np.maximum(W.max(1), 0)
    lo = np.minimum(W.min(1), 0)
    s = (hi - lo) / qmax
    z = np.clip(np.round(-lo / s), 0, qmax)
    Q = np.zeros_like(W)
    n = W.shape[1]
    for j in range(n):
        rem = np.arange(j, n)
        Hinv = np.linalg.inv(H[np.ix_(rem, rem)])
        q = (np.clip(np.round(W[:, j] / s) + z, 0, qmax) - z) * s
        Q[:, j] = q
        W[:, rem] -= np.outer((W[:, j] - q) / Hinv[0, 0], Hinv[0])
    return Q


# ---------------------------------------------------------------- GPTQ


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("mode", ["asymmetric", "symmetric"])
def test_gptq_identity_or_diagonal_hessian_is_round_to_nearest(rng, bits, mode):
    W = rng.normal(size=(9, 21))
    for X in (np.eye(21), np.diag(rng.uniform(0.5, 3.0, size=21))):
        res = gptq(W, X, bits, mode=mode)
        np.testing.assert_array_equal(res.weight, _rtn(W, bits, mode))


def test_gptq_matches_slow_obq_reference(rng):
    X = rng.normal(size=(120, 13)) @ rng.normal(size=(13, 13))
    W = rng.normal(size=(5, 13))
    ref = _slow_obq(W, X, 3, 0.01)
    for block in (1, 4, 128):
        res = gptq(W, X, 3, block_size=block)
        np.testing.assert_allclose(res.weight, ref, atol=1e-9)


def test_gptq_block_size_and_groups_consistent(rng):
    X = rng.normal(size=(80, 30)) @ rng.normal(size=(30, 30))
    W = rng.normal(size=(6, 30))
    a = gptq(W, X, 3, group_size=7, block_size=128)
    for block in (1, 5, 8):
        b = gptq(W, X, 3, group_size=7, block_size=block)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_allclose(a.weight, b.weight, atol=1e-12)
    assert a.scale.shape == (6, 5) and a.zero_point.shape == (6, 5)
    np.testing.assert_array_equal(a.groups, np.arange(30) // 7)
    rows = np.arange(6)[:, None]
    np.testing.assert_allclose(
        a.weight, a.scale[rows, a.groups] * (a.codes - a.zero_point[rows, a.groups])
    )
    assert a.codes.min() >= 0 and a.codes.max() <= 7


def test_gptq_act_order_is_permutation_equivariant(rng):
    X = rng.normal(size=(60, 12)) * rng.uniform(0.2, 3, size=12)
    W = rng.normal(size=(4, 12))
    p = rng.permutation(12)
    a = gptq(W, X, 3, act_order=True)
    b = gptq(W[:, p], X[:, p], 3, act_order=True)
    np.testing.assert_allclose(a.weight[:, p], b.weight, atol=1e-12)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_gptq_beats_round_to_nearest_on_digits(digits_layer, bits):
    W, X = digits_layer
    e_rtn = output_error(W, _rtn(W, bits), X)
    for kw in ({}, {"act_order": True}, {"group_size": 16}, {"group_size": 16, "act_order": True}):
        res = gptq(W, X, bits, **kw)
        assert output_error(W, res.weight, X) < e_rtn, kw
    assert res.dead_inputs.sum() == 3
    np.testing.assert_array_equal(res.weight[:, res.dead_inputs], 0)
    assert isinstance(res, QuantizedLayer) and res.weight.dtype == W.dtype


def test_gptq_singular_hessians_never_crash(rng):
    W = rng.normal(size=(4, 10))
    # all inputs dead: every weight goes to zero
    res = gptq(W, np.zeros((5, 10)), 3)
    np.testing.assert_array_equal(res.weight, 0)
    assert res.dead_inputs.all()
    # fewer samples than inputs and exactly collinear inputs, with no dampening asked
    X = rng.normal(size=(3, 10))
    X[:, 5] = X[:, 4]
    res = gptq(W, X, 3, damp=0.0)
    assert res.damp > 0 and np.all(np.isfinite(res.weight))
    assert output_error(W, res.weight, X) <= output_error(W, _rtn(W, 3), X) + 1e-12


def test_gptq_float32_and_codes(rng):
    X = rng.normal(size=(50, 8)).astype(np.float32)
    W = rng.normal(size=(3, 8)).astype(np.float32)
    res = gptq(W, X, 4)
    assert res.weight.dtype == np.float32 and res.codes.dtype == np.int32
    np.testing.assert_allclose(res.weight, res.scale * (res.codes - res.zero_point), rtol=1e-6)


# ---------------------------------------------------------------- AdaRound


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_adaround_beats_round_to_nearest_on_digits(digits_layer, bits):
    W, X = digits_layer
    e_rtn = output_error(W, _rtn(W, bits), X)
    res = adaround(W, X, bits, max_iter=400)
    assert output_error(W, res.weight, X) < e_rtn
    # only up or down: codes are floor or floor + 1 of W / s on the same grid as RTN
    live = ~res.dead_inputs
    ws = W[:, live] / res.scale
    base = np.floor(ws) + res.zero_point
    c = res.codes[:, live]
    assert np.all((c == np.clip(base, 0, 2**bits - 1)) | (c == np.clip(base + 1, 0, 2**bits - 1)))
    assert res.n_iter == 400


def test_adaround_without_iterations_is_round_to_nearest(rng):
    W = rng.normal(size=(5, 11))
    X = rng.normal(size=(40, 11))
    res = adaround(W, X, 3, max_iter=0)
    np.testing.assert_array_equal(res.weight, _rtn(W, 3))


def test_output_error_closed_form(rng):
    W = rng.normal(size=(3, 4))
    Wh = W + rng.normal(size=(3, 4)) * 0.1
    X = rng.normal(size=(7, 4))
    E = W - Wh
    assert output_error(W, Wh, X) == pytest.approx(np.trace(E @ X.T @ X @ E.T))
    assert output_error(W, Wh, X, relative=True) == pytest.approx(
        np.trace(E @ X.T @ X @ E.T) / np.sum((X @ W.T) ** 2)
    )


# ---------------------------------------------------------------- bad input


def test_layer_bad_inputs(rng):
    W = rng.normal(size=(3, 4))
    X = rng.normal(size=(5, 4))
    with pytest.raises(ValueError, match="X must have one column per input of W"):
        gptq(W, rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="W must be 2-D"):
        gptq(W.ravel(), X)
    with pytest.raises(TypeError, match="X must be a real floating array"):
        adaround(W, np.ones((5, 4), dtype=int))
    with pytest.raises(TypeError, match="W must be a 2-D NumPy array"):
        gptq([[1.0]], X)
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        gptq(W, np.full((5, 4), np.nan))
    with pytest.raises(ValueError, match=r"bits must be in \[1, 16\]"):
        gptq(W, X, 0)
    with pytest.raises(ValueError, match="mode must be one of"):
        gptq(W, X, mode="log")
    with pytest.raises(ValueError, match=r"group_size must be in \[1, 4\]"):
        gptq(W, X, group_size=5)
    with pytest.raises(ValueError, match="damp must be a finite number >= 0"):
        gptq(W, X, damp=-1)
    with pytest.raises(TypeError, match="act_order must be a bool"):
        gptq(W, X, act_order="yes")
    with pytest.raises(ValueError, match="block_size must be in"):
        gptq(W, X, block_size=0)
    with pytest.raises(ValueError, match="beta must be a tuple"):
        adaround(W, X, beta=(20,))
    with pytest.raises(ValueError, match="warmup must be a fraction"):
        adaround(W, X, warmup=2.0)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        adaround(W, X, max_iter=1.5)
    with pytest.raises(ValueError, match="W_hat must have the shape of W"):
        output_error(W, W[:, :3], X)


def test_quantized_layer_goes_to_decode_and_save_quantized(tmp_path):
    from qtoolkit.optimize import gptq
    from qtoolkit.rounding import decode, load_quantized, save_quantized

    rng = np.random.default_rng(7)
    W = rng.standard_normal((6, 16))
    X = rng.standard_normal((64, 16))
    for kw in ({}, {"group_size": 8}, {"group_size": 8, "act_order": True}):
        res = gptq(W, X, bits=3, **kw)
        np.testing.assert_allclose(decode(res), res.weight, rtol=1e-12, atol=1e-12)
        save_quantized(tmp_path / "layer.npz", res)
        np.testing.assert_allclose(
            decode(load_quantized(tmp_path / "layer.npz")), res.weight, rtol=1e-12, atol=1e-12
        )
