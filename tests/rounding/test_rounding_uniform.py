"""Uniform grids: uniform/encode/decode, fixed point, DoReFa and power-of-two."""

import itertools
import math

import numpy as np
import pytest

from qtoolkit.rounding import (
    decode,
    dorefa_activations,
    dorefa_gradients,
    dorefa_weights,
    encode,
    fixed_point,
    inq_codebook,
    power_of_two,
    uniform,
)


def _ref_uniform(w, bits, mode="symmetric", narrow=False, rounding="half_even"):
    """Per-tensor min-max reference, one element at a time."""
    w = np.asarray(w, dtype=np.float64).ravel()
    if mode == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax if narrow else -qmax - 1
        s = max(abs(w).max() / qmax, 0) or 1.0
        z = 0
    else:
        qmin, qmax = (1 if narrow else 0), 2**bits - 1
        lo, hi = min(w.min(), 0.0), max(w.max(), 0.0)
        if mode == "unsigned":
            lo = 0.0
        s = (hi - lo) / (qmax - qmin) if mode == "asymmetric" else hi / qmax
        s = s or 1.0
        z = 0 if mode == "unsigned" else min(max(round(qmin - lo / s), qmin), qmax)
    out = []
    for x in w:
        y = x / s
        if rounding == "half_even":
            r = round(y)
        else:
            r = math.floor(abs(y) + 0.5) * (1 if y >= 0 else -1)
        out.append((min(max(r + z, qmin), qmax) - z) * s)
    return np.array(out)


def test_uniform_hand_solved():
    w = np.array([-1.0, -0.3, 0.2, 0.7])
    # bits=3: s = 1/3, codes -3, -1 (-0.9), 1 (0.6), 2 (2.1)
    np.testing.assert_allclose(uniform(w, bits=3), np.array([-3, -1, 1, 2]) / 3)
    # ties: 0.5 / 1 -> 0 (even) or 1 (away)
    w = np.array([0.5, 1.5, -0.5, 3.0])
    np.testing.assert_allclose(uniform(w, bits=3), [0, 2, 0, 3])
    np.testing.assert_allclose(uniform(w, bits=3, rounding="half_away"), [1, 2, -1, 3])


@pytest.mark.parametrize(
    ("mode", "bits"),
    [
        (m, b)
        for m in ("symmetric", "asymmetric", "unsigned")
        for b in (1, 2, 3, 4, 8)
        if not (m == "symmetric" and b == 1)
    ],
)
@pytest.mark.parametrize("rounding", ["half_even", "half_away"])
def test_uniform_matches_reference(rng, mode, bits, rounding):
    w = rng.standard_normal(257) + (0.7 if mode != "symmetric" else 0.0)
    np.testing.assert_allclose(
        uniform(w, bits, mode=mode, rounding=rounding),
        _ref_uniform(w, bits, mode, rounding=rounding),
        atol=1e-12,
    )


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_uniform_narrow_range(rng, mode):
    w = rng.standard_normal(100)
    np.testing.assert_allclose(
        uniform(w, 4, mode=mode, narrow_range=True),
        _ref_uniform(w, 4, mode, narrow=True),
        atol=1e-12,
    )
    q = encode(w, 4, mode=mode, narrow_range=True)
    assert int(q.codes.min()) >= (-7 if mode == "symmetric" else 1)


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric", "unsigned"])
def test_uniform_idempotent_and_error_bound(rng, mode):
    w = rng.standard_normal((6, 40)).astype(np.float32)
    q = uniform(w, 5, mode=mode, axis=0)
    np.testing.assert_allclose(uniform(q, 5, mode=mode, axis=0), q, rtol=1e-6, atol=1e-6)
    enc = encode(w, 5, mode=mode, axis=0)
    inside = w >= 0 if mode == "unsigned" else np.ones_like(w, dtype=bool)
    err = np.abs(q - w)
    bound = np.broadcast_to(enc.scale / 2 * (1 + 1e-5), w.shape)
    assert np.all(err[inside] <= bound[inside])


@pytest.mark.parametrize("axis", [0, 2, (0, 1)])
@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_uniform_per_axis_equals_loop(rng, axis, mode):
    w = rng.standard_normal((3, 4, 5))
    out = uniform(w, 4, mode=mode, axis=axis)
    axes = axis if isinstance(axis, tuple) else (axis,)
    for idx in itertools.product(*(range(w.shape[a]) for a in axes)):
        sl = [slice(None)] * w.ndim
        for a, i in zip(axes, idx):
            sl[a] = i
        np.testing.assert_allclose(out[tuple(sl)], uniform(w[tuple(sl)], 4, mode=mode))


@pytest.mark.parametrize("shape", [(5, 12), (2, 3, 12), (12,)])
@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_uniform_group_size_equals_per_row_per_block_loop(rng, shape, mode):
    # group_size: blocks of the last axis within each row of the leading axes
    w = rng.standard_normal(shape)
    g = 4
    out = uniform(w, 3, mode=mode, group_size=g)
    q = encode(w, 3, mode=mode, group_size=g)
    ref = np.empty_like(w)
    for row in itertools.product(*(range(n) for n in shape[:-1])):
        for b in range(shape[-1] // g):
            sl = (*row, slice(b * g, (b + 1) * g))
            ref[sl] = uniform(w[sl], 3, mode=mode)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(decode(q), ref)
    # one scale per row and block
    assert q.scale.size == w.size // g
    assert q.axis == tuple(range(w.ndim - 1))


def test_uniform_group_size_explicit_axis_shares_scales(rng):
    w = rng.standard_normal((3, 12))
    # axis=() : one scale per block of columns, shared by every row
    out = uniform(w, 3, axis=(), group_size=6)
    for b in range(2):
        sl = (slice(None), slice(6 * b, 6 * b + 6))
        np.testing.assert_allclose(out[sl], uniform(w[sl], 3))
    # axis=0 on a 2-D tensor is the default
    np.testing.assert_array_equal(uniform(w, 3, axis=0, group_size=4), uniform(w, 3, group_size=4))
    # 3-D: axis=0 keeps the first axis, the second is shared within a block
    w3 = rng.standard_normal((2, 3, 8))
    out3 = uniform(w3, 4, axis=0, group_size=4)
    for i in range(2):
        for b in range(2):
            sl = (i, slice(None), slice(4 * b, 4 * b + 4))
            np.testing.assert_allclose(out3[sl], uniform(w3[sl], 4))


def test_uniform_group_size_beats_per_tensor_on_rows_of_different_scale(rng):
    # rows of very different magnitude: a per-row block scale must help, never hurt
    w = rng.standard_normal((96, 64)) * np.exp(rng.standard_normal((96, 1)))
    err = {
        k: np.linalg.norm(uniform(w, 4, **kw) - w) / np.linalg.norm(w)
        for k, kw in {"tensor": {}, "group": {"group_size": 16}}.items()
    }
    assert err["group"] < err["tensor"] / 3


def test_uniform_percentile_reference(rng):
    w = rng.standard_normal(1000)
    r = np.percentile(np.abs(w), 99.0)
    s = r / 7
    ref = np.clip(np.round(w / s), -8, 7) * s
    np.testing.assert_allclose(uniform(w, 4, range="percentile", percentile=99.0), ref)
    lo, hi = np.percentile(w, 1.0), np.percentile(w, 99.0)
    s = (hi - lo) / 15
    z = np.clip(np.round(-lo / s), 0, 15)
    ref = (np.clip(np.round(w / s) + z, 0, 15) - z) * s
    np.testing.assert_allclose(
        uniform(w, 4, mode="asymmetric", range="percentile", percentile=99.0), ref
    )


def test_uniform_mse_beats_minmax_and_percentile(rng):
    w = rng.standard_t(3, size=4000)  # heavy tails: clipping pays
    err = {
        r: np.sum((uniform(w, 3, range=r, percentile=99.0) - w) ** 2)
        for r in ("minmax", "percentile", "mse")
    }
    assert err["mse"] <= err["minmax"]
    # the grid search's best is no worse than any candidate ratio, checked by brute force
    m = np.abs(w).max()
    brute = min(
        np.sum((np.clip(np.round(w / (m * r / 3)), -4, 3) * (m * r / 3) - w) ** 2)
        for r in np.linspace(0.01, 1, 100)
    )
    assert err["mse"] <= brute * (1 + 1e-9)


def test_encode_decode_roundtrip(rng):
    w = rng.standard_normal((4, 8)).astype(np.float32)
    for kw in (
        {},
        {"mode": "asymmetric", "axis": 0},
        {"mode": "unsigned"},
        {"group_size": 4, "axis": 0, "bits": 3},
    ):
        q = encode(w, **kw)
        assert q.codes.dtype.kind == "i"
        out = decode(q)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, uniform(w, **kw), rtol=1e-6, atol=1e-7)
    q = encode(w, bits=4)
    assert q.codes.min() >= -8 and q.codes.max() <= 7


def test_uniform_all_zero_tensor():
    np.testing.assert_array_equal(uniform(np.zeros(5), 4), np.zeros(5))
    np.testing.assert_array_equal(uniform(np.zeros(5), 4, mode="asymmetric"), np.zeros(5))


def test_fixed_point_hand_solved():
    w = np.array([0.3, -1.7, 5.0, -5.0, 0.125, 0.375])
    # Q1.2: step 0.25, range [-2, 1.75]
    np.testing.assert_allclose(fixed_point(w, 1, 2), [0.25, -1.75, 1.75, -2.0, 0.0, 0.5])
    np.testing.assert_allclose(
        fixed_point(w, 1, 2, rounding="half_away"), [0.25, -1.75, 1.75, -2.0, 0.25, 0.5]
    )
    np.testing.assert_allclose(
        fixed_point(w, 1, 2, rounding="floor"), [0.25, -1.75, 1.75, -2.0, 0.0, 0.25]
    )
    # wrap: 2.25 -> code 9 -> 9 - 16 = -7 -> -1.75
    np.testing.assert_allclose(
        fixed_point(np.array([2.25, -2.25]), 1, 2, saturate=False), [-1.75, 1.75]
    )


def test_fixed_point_stochastic_is_unbiased():
    # Var of one draw <= step^2 / 4; n = 40000 -> std of the mean <= 0.125 / 200.
    x = np.full(40000, 0.3)
    out = fixed_point(x, 2, 2, rounding="stochastic", rng=0)
    assert set(np.unique(out)) == {0.25, 0.5}
    assert abs(out.mean() - 0.3) <= 5 * 0.125 / 200


def test_dorefa_hand_solved():
    w = np.array([-2.0, 0.0, 0.3, 2.0])
    t = np.tanh(w)
    r = t / (2 * np.abs(t).max()) + 0.5
    ref = 2 * np.round(r * 3) / 3 - 1
    np.testing.assert_allclose(dorefa_weights(w, 2), ref)
    np.testing.assert_allclose(dorefa_weights(w, 1), np.sign(w + (w == 0)) * np.abs(w).mean())
    np.testing.assert_allclose(
        dorefa_activations(np.array([-1.0, 0.2, 0.5, 0.9, 3.0]), 2), [0, 1 / 3, 2 / 3, 1, 1]
    )


def test_dorefa_weights_per_axis_equals_loop(rng):
    w = rng.standard_normal((3, 7))
    out = dorefa_weights(w, 3, axis=0)
    for i in range(3):
        np.testing.assert_allclose(out[i], dorefa_weights(w[i], 3))


def test_dorefa_gradients_unbiased(rng):
    # Inside the range the noise makes the rounding unbiased: E[g_q] = g.
    g = np.tile(np.array([-1.0, -0.37, 0.11, 0.5, 1.0]), 20000)
    out = dorefa_gradients(g, 2, rng=rng).reshape(-1, 5).mean(axis=0)
    # step 2/3, draw variance <= 1/9: std of a mean of 20000 <= 0.0024
    np.testing.assert_allclose(out, [-1.0, -0.37, 0.11, 0.5, 1.0], atol=5 * 0.0024)


def test_logquant_hand_solved():
    w = np.array([-0.7, 0.0, 0.05, 0.3, 1.0, 0.001])
    # fsr = round(log2 1) = 0; exponents clipped to [-4, 0]
    np.testing.assert_allclose(power_of_two(w, 2), [-0.5, 0, 0.0625, 0.25, 1.0, 0.0625])
    # fsr = -1: exponents in [-5, -1]; log2(0.05) = -4.32 rounds to -4
    np.testing.assert_allclose(power_of_two(w, 2, fsr=-1), [-0.5, 0, 0.0625, 0.25, 0.5, 0.03125])


def test_inq_matches_nearest_in_codebook(rng):
    w = rng.standard_normal(2000) * 0.3
    for bits in (2, 3, 5):
        cb = inq_codebook(w, bits)
        assert len(cb) == 2 ** (bits - 1) + 1
        s = np.abs(w).max()
        n1 = math.floor(math.log2(4 * s / 3))
        assert cb.max() == 2.0**n1
        ref = cb[np.argmin(np.abs(w[:, None] - cb[None, :]), axis=1)]
        np.testing.assert_allclose(power_of_two(w, bits, method="inq"), ref)


@pytest.mark.parametrize("method", ["logquant", "inq"])
def test_power_of_two_idempotent_and_per_axis(rng, method):
    w = rng.standard_normal((3, 9))
    q = power_of_two(w, 3, method=method, axis=0)
    np.testing.assert_allclose(power_of_two(q, 3, method=method, axis=0), q)
    for i in range(3):
        np.testing.assert_allclose(q[i], power_of_two(w[i], 3, method=method))
