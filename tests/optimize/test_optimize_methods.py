"""Loss-aware prox steps, ADMM with the exact projection, LQ-Nets: brute force and invariants."""

import itertools

import numpy as np
import pytest

import qtoolkit.optimize as qo
from qtoolkit.optimize import (
    admm_quantize,
    loss_aware_binarize,
    loss_aware_ternarize,
    lq_fit,
    lq_quantize,
    output_error,
    project_scaled_codebook,
)
from qtoolkit.rounding import ternarize


def test_public_api_pinned():
    assert qo.__all__ == [
        "ADMMResult",
        "IncoherenceTransform",
        "QuantizedLayer",
        "ScaledCodebook",
        "adaround",
        "admm_quantize",
        "awq",
        "gptq",
        "hadamard_transform",
        "hqq",
        "incoherence_transform",
        "loss_aware_binarize",
        "loss_aware_ternarize",
        "lq_fit",
        "lq_quantize",
        "output_error",
        "project_scaled_codebook",
        "rtn",
    ]
    for name in qo.__all__:
        assert getattr(qo, name).__module__.startswith("qtoolkit.optimize")


# ---------------------------------------------------------------- loss-aware


def _weighted_obj(w, d, v):
    return float(np.sum(d * (w - v) ** 2))


def test_loss_aware_binarize_closed_form(rng):
    w = rng.normal(size=(4, 6))
    d = rng.uniform(0.1, 2.0, size=(4, 6))
    out = loss_aware_binarize(w, d)
    b = np.where(w >= 0, 1.0, -1.0)
    alpha = np.sum(d * np.abs(w)) / np.sum(d)
    np.testing.assert_allclose(out, alpha * b)
    # alpha is the weighted least-squares optimum: nudging it only raises the objective
    for eps in (-1e-3, 1e-3):
        assert _weighted_obj(w, d, out) < _weighted_obj(w, d, (alpha + eps) * b)
    # d = 1 is XNOR-Net's mean |w|
    np.testing.assert_allclose(loss_aware_binarize(w, np.ones_like(w)), np.abs(w).mean() * b)
    per_row = loss_aware_binarize(w, d, axis=0)
    for i in range(4):
        np.testing.assert_allclose(per_row[i], loss_aware_binarize(w[i], d[i]))


def _brute_ternary(w, d):
    best = np.inf
    for t in itertools.product((-1.0, 0.0, 1.0), repeat=w.size):
        t = np.array(t)
        den = np.sum(d * t * t)
        alpha = np.sum(d * t * w) / den if den > 0 else 0.0
        alpha = max(alpha, 0.0)
        best = min(best, _weighted_obj(w, d, alpha * t))
    return best


def test_loss_aware_ternarize_is_the_exact_optimum(rng):
    for _trial in range(6):
        w = rng.normal(size=7)
        d = rng.uniform(0.0, 3.0, size=7)
        out = loss_aware_ternarize(w, d)
        assert len(np.unique(np.abs(out))) <= 2
        assert _weighted_obj(w, d, out) == pytest.approx(_brute_ternary(w, d), abs=1e-12)


def test_loss_aware_ternarize_unit_d_matches_exact_twn(rng):
    w = rng.normal(size=50)
    ours = loss_aware_ternarize(w, np.ones_like(w))
    ref = ternarize(w, method="optimal")
    assert np.sum((w - ours) ** 2) == pytest.approx(np.sum((w - ref) ** 2), rel=1e-12)


def test_loss_aware_ternarize_axis_and_namespaces(rng):
    w = rng.normal(size=(3, 9)).astype(np.float32)
    d = rng.uniform(0.5, 1.5, size=(3, 9)).astype(np.float32)
    per_row = loss_aware_ternarize(w, d, axis=0)
    assert per_row.dtype == np.float32
    for i in range(3):
        np.testing.assert_allclose(per_row[i], loss_aware_ternarize(w[i], d[i]), rtol=1e-6)
    xp = pytest.importorskip("array_api_strict")
    ws, ds = xp.asarray(w), xp.asarray(d)
    out = loss_aware_ternarize(ws, ds, axis=0)
    assert type(out) is type(ws) and out.dtype == xp.float32
    np.testing.assert_allclose(np.from_dlpack(out), per_row, rtol=1e-6)
    outb = loss_aware_binarize(ws, ds)
    assert type(outb) is type(ws)


def test_loss_aware_bad_inputs(rng):
    w = rng.normal(size=5)
    with pytest.raises(ValueError, match="d must have the shape of w"):
        loss_aware_binarize(w, np.ones(4))
    with pytest.raises(ValueError, match="d must be non-negative"):
        loss_aware_ternarize(w, -np.ones(5))
    with pytest.raises(ValueError, match="w contains NaN or Inf"):
        loss_aware_ternarize(np.array([np.nan, 1.0]), np.ones(2))
    for fn in (loss_aware_binarize, loss_aware_ternarize):
        with pytest.raises(TypeError, match="d must be an Array API array"):
            fn(w, [1.0] * 5)
        with pytest.raises(TypeError, match="d must be a real floating array"):
            fn(w, np.ones(5, dtype=np.int64))
    with pytest.raises(ValueError, match="out of bounds"):
        loss_aware_ternarize(w, np.ones(5), axis=2)


def _train(prox, X, Y, W, b, m, v, Wq):
    """300 steps of the loss-aware loop; returns the quantized weights and the bias."""
    for t in range(1, 301):
        Z = X @ Wq.T + b
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        G = (P - Y).T @ X / len(X)  # gradient with respect to the quantized weights
        b = b - 0.1 * (P - Y).mean(0)
        m = 0.9 * m + 0.1 * G
        v = 0.999 * v + 0.001 * G**2
        d = np.sqrt(v / (1 - 0.999**t)) + 1e-8
        W = W - 0.01 * (m / (1 - 0.9**t)) / d
        Wq = prox(W, d, axis=0)
    return Wq, b


@pytest.mark.parametrize("prox", [loss_aware_binarize, loss_aware_ternarize])
def test_loss_aware_steps_in_an_adam_training_loop(prox):
    """Hou et al.'s loop: Adam step on the full-precision weights preconditioned by
    d = sqrt(v_hat) + eps, then the closed-form prox gives the quantized weights used in the
    forward pass. Softmax regression on digits, 1-bit / ternary weights, one scale per class."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Y = np.eye(10)[y]
    W = np.random.default_rng(0).normal(scale=0.1, size=(10, 64))
    b = np.zeros(10)
    m, v = np.zeros_like(W), np.zeros_like(W)
    Wq = prox(W, np.ones_like(W), axis=0)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1):  # small products: one BLAS thread is fastest
        Wq, b = _train(prox, X, Y, W, b, m, v, Wq)
    n_levels = max(len(np.unique(np.abs(row))) for row in Wq)  # magnitudes per class
    assert n_levels <= (1 if prox is loss_aware_binarize else 2)
    assert ((X @ Wq.T + b).argmax(1) == y).mean() > 0.85  # chance is 0.1


# ---------------------------------------------------------------- ADMM


def _brute_projection(v, mags):
    levels = np.concatenate([-mags[:0:-1], mags])
    best = np.inf
    for Q in itertools.product(levels, repeat=v.size):
        Q = np.array(Q)
        qq = Q @ Q
        if qq == 0:
            continue
        best = min(best, v @ v - (v @ Q) ** 2 / qq)
    return best


@pytest.mark.parametrize(
    "codebook, mags", [("uniform", np.array([0.0, 1, 2, 3])), ("pow2", np.array([0.0, 1, 2, 4]))]
)
def test_projection_is_globally_optimal(rng, codebook, mags):
    for _trial in range(4):
        v = rng.standard_t(2, size=5)
        alpha, Q = project_scaled_codebook(v, 3, codebook=codebook)
        assert set(np.abs(Q).tolist()) <= set(mags.tolist())
        err = np.sum((v - alpha * Q) ** 2)
        assert err == pytest.approx(_brute_projection(v, mags), rel=1e-10, abs=1e-14)


def test_projection_never_worse_than_alternating(rng):
    from qtoolkit.rounding import round_to_codebook

    levels = np.arange(-3.0, 4.0)
    for _trial in range(5):
        v = rng.standard_t(2, size=200)
        alpha = np.abs(v).mean()  # alternating alpha / Q from a mean-|v| start
        for _ in range(30):
            Q = round_to_codebook(v / alpha, levels)
            alpha = (v @ Q) / (Q @ Q)
        a, Qx = project_scaled_codebook(v, 3)
        assert np.sum((v - a * Qx) ** 2) <= np.sum((v - alpha * Q) ** 2) + 1e-12
    w = rng.normal(size=(4, 6))
    a, Q = project_scaled_codebook(w, 3, axis=0)
    assert a.shape == (4, 1)
    for i in range(4):
        ai, Qi = project_scaled_codebook(w[i], 3)
        np.testing.assert_allclose(a[i] * Q[i], ai * Qi)


def test_admm_layer_reconstruction_on_digits():
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    rng = np.random.default_rng(3)
    W = rng.normal(size=(16, 64)) * (X.std(0) > 0)  # weights of live inputs only
    for codebook in ("uniform", "pow2"):
        res = admm_quantize(W, X=X, bits=3, codebook=codebook, axis=0, max_iter=30)
        a, Q = project_scaled_codebook(W, 3, codebook=codebook, axis=0)
        assert output_error(W, res.weight, X) < output_error(W, a * Q, X)
        np.testing.assert_allclose(res.weight, res.alpha * res.Q)
        allowed = {0.0, 1.0, 2.0, 3.0} if codebook == "uniform" else {0.0, 1.0, 2.0, 4.0}
        assert set(np.abs(res.Q).ravel().tolist()) <= allowed
        assert res.history.shape == (30, 2)


def test_admm_gradient_callback(rng):
    target = rng.normal(size=(3, 8))
    c = rng.uniform(0.5, 2.0, size=(3, 8))

    def grad(W):
        return 2 * c * (W - target)

    res = admm_quantize(target, grad=grad, bits=2, max_iter=40, lr=0.05, rho=0.1)
    assert set(np.abs(res.Q).ravel().tolist()) <= {0.0, 1.0}
    assert res.history[-1, 1] < 0.05 * res.history[0, 1] + 1e-9  # W is driven onto G
    assert np.all(np.isnan(res.history[:, 0]))


def test_admm_bad_inputs(rng):
    W = rng.normal(size=(2, 3))
    X = rng.normal(size=(4, 3))
    with pytest.raises(ValueError, match="give exactly one of X"):
        admm_quantize(W)
    with pytest.raises(ValueError, match="give exactly one of X"):
        admm_quantize(W, X=X, grad=lambda w: w)
    with pytest.raises(TypeError, match="grad must be callable"):
        admm_quantize(W, grad=3)
    with pytest.raises(ValueError, match="codebook must be one of"):
        admm_quantize(W, X=X, codebook="log")
    with pytest.raises(ValueError, match=r"bits must be in \[2, 8\]"):
        project_scaled_codebook(W, 1)
    with pytest.raises(ValueError, match="grad\\(W\\) must return an array of shape"):
        admm_quantize(W, grad=lambda w: w[0])
    with pytest.raises(ValueError, match="rho_growth must be >= 1"):
        admm_quantize(W, X=X, rho_growth=0.5)
    with pytest.raises(TypeError, match="w must be a real floating NumPy array"):
        project_scaled_codebook([1.0, 2.0])
    with pytest.raises(ValueError, match="X must have one column per input of w"):
        admm_quantize(W, X=X[:, :2])


# ---------------------------------------------------------------- LQ-Nets


def test_lq_one_bit_signed_closed_form(rng):
    x = rng.normal(size=500)
    v = lq_fit(x, 1)
    # levels +-v with e = sign(x): the least-squares v is mean |x|
    assert abs(v[0]) == pytest.approx(np.abs(x).mean())


def test_lq_qem_error_never_increases(rng):
    x = rng.standard_t(4, size=2000)
    errors = []
    v = None
    for _ in range(8):
        v = lq_fit(x, 3, max_iter=1, basis=v)
        errors.append(np.sum((x - lq_quantize(x, v)) ** 2))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(errors))
    # the start is the uniform grid with its top level at max |x|: QEM improves on it
    k = 3
    v0 = np.max(np.abs(x)) / (2**k - 1) * 2.0 ** np.arange(k)
    assert errors[-1] < np.sum((x - lq_quantize(x, v0)) ** 2)


def test_lq_codes_and_activations(rng):
    a = np.maximum(rng.normal(size=(6, 40)), 0)  # post-ReLU activations
    v = lq_fit(a, 2, signed=False)
    q, codes = lq_quantize(a, v, signed=False, return_codes=True)
    bits = (codes[..., None] >> np.arange(2)) & 1
    np.testing.assert_allclose(q, bits @ v)
    assert len(np.unique(q)) <= 4
    w = rng.normal(size=(5, 30))
    vb = lq_fit(w, 2, axis=0)
    assert vb.shape == (5, 2)
    qw = lq_quantize(w, vb, axis=0)
    for i in range(5):
        np.testing.assert_allclose(qw[i], lq_quantize(w[i], lq_fit(w[i], 2)))


def test_lq_delta_keeps_the_previous_basis(rng):
    x = np.abs(rng.normal(size=300))
    v_old = lq_fit(x[:150], 2, signed=False)
    v_free = lq_fit(x[150:] * 3, 2, signed=False, basis=v_old)
    v_prox = lq_fit(x[150:] * 3, 2, signed=False, basis=v_old, delta=1e9)
    # a huge proximal weight keeps the basis where it was; none lets the new batch move it
    np.testing.assert_allclose(v_prox, v_old, rtol=1e-4)
    assert np.abs(v_free - v_old).max() > 0.1


def test_lq_bad_inputs(rng):
    x = rng.normal(size=10)
    with pytest.raises(ValueError, match=r"bits must be in \[1, 8\]"):
        lq_fit(x, 9)
    with pytest.raises(TypeError, match="signed must be a bool"):
        lq_fit(x, 2, signed="yes")
    with pytest.raises(ValueError, match="basis must hold 2 coefficients per slice"):
        lq_fit(x, 2, basis=np.ones(3))
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        lq_quantize(np.array([np.inf]), np.ones(2))
    with pytest.raises(ValueError, match="basis must have shape"):
        lq_quantize(x, np.ones((2, 2, 2)))


def test_renamed_n_iter_warns_and_means_max_iter():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 6))
    X = rng.standard_normal((20, 6))
    with pytest.warns(DeprecationWarning, match=r"admm_quantize\(n_iter=...\)"):
        old = admm_quantize(W, X=X, n_iter=4)
    np.testing.assert_array_equal(old.weight, admm_quantize(W, X=X, max_iter=4).weight)
    with pytest.warns(DeprecationWarning, match=r"lq_fit\(n_iter=...\)"):
        old = lq_fit(W, 2, n_iter=2)
    np.testing.assert_array_equal(old, lq_fit(W, 2, max_iter=2))
    with pytest.raises(TypeError, match="both 'n_iter'"):
        lq_fit(W, 2, n_iter=2, max_iter=2)
