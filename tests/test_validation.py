"""One rule per fault: the same bad argument gives the same exception type in every subpackage.

A wrong *type* (not numbers, not an integer, not a real number, not a bool, not a seed) is a
``TypeError``; a right type with a wrong *value* (NaN or Inf, out of range, an unknown option)
a ``ValueError``. Each fault is tried on public functions of every subpackage.
"""

import numpy as np
import pytest

from qtoolkit import analysis, bitops, codebooks, gradients, optimize, rounding
from qtoolkit._validation import (
    check_array,
    check_bool,
    check_choice,
    check_finite,
    check_no_nan,
    check_real,
    check_tol,
)

RNG = np.random.default_rng(0)
W2 = RNG.standard_normal((4, 8))
X2 = RNG.standard_normal((16, 8))
V1 = RNG.standard_normal(32)


def _with(value, shape=(4, 8)):
    a = RNG.standard_normal(shape)
    a.flat[3] = value
    return a


STRINGS = np.array([["a"] * 8] * 4)

# (subpackage.function, call with the faulty data)
NON_NUMERIC_DATA = {
    "rounding.uniform": lambda d: rounding.uniform(d, 4),
    "rounding.binarize": lambda d: rounding.binarize(d),
    "rounding.binarize(scale)": lambda d: rounding.binarize(d, scale="mean"),
    "rounding.ternarize": lambda d: rounding.ternarize(d),
    "rounding.round_to_codebook": lambda d: rounding.round_to_codebook(d, [0.0, 1.0]),
    "rounding.encode": lambda d: rounding.encode(d, bits=4),
    "gradients.qsgd": lambda d: gradients.qsgd(d, 4),
    "gradients.terngrad": lambda d: gradients.terngrad(d),
    "gradients.scaled_sign": lambda d: gradients.scaled_sign(d),
    "optimize.rtn": lambda d: optimize.rtn(d, bits=4),
    "optimize.gptq": lambda d: optimize.gptq(d, X2, 4),
    "optimize.loss_aware_binarize": lambda d: optimize.loss_aware_binarize(d, np.ones((4, 8))),
    "optimize.loss_aware_ternarize": lambda d: optimize.loss_aware_ternarize(d, np.ones((4, 8))),
    "codebooks.kmeans_1d": lambda d: codebooks.kmeans_1d(d, 2),
    "codebooks.KMeansQuantizer.fit": lambda d: codebooks.KMeansQuantizer(2).fit(d),
    "bitops.pack_bits": lambda d: bitops.pack_bits(d),
    "bitops.binary_matmul": lambda d: bitops.binary_matmul(d, W2),
    "analysis.sqnr": lambda d: analysis.sqnr(d, W2),
    "analysis.cosine": lambda d: analysis.cosine(d, W2),
}


@pytest.mark.parametrize("fn", NON_NUMERIC_DATA.values(), ids=NON_NUMERIC_DATA.keys())
def test_non_numeric_data_is_a_type_error(fn):
    with pytest.raises(TypeError, match=r"^(w|x|g|W|X|values|a) must be"):
        fn(STRINGS)


NAN_DATA = {k: v for k, v in NON_NUMERIC_DATA.items() if not k.startswith("bitops.binary")}
NAN_DATA["bitops.binary_matmul"] = lambda d: bitops.binary_matmul(d, W2)


@pytest.mark.parametrize("fn", NAN_DATA.values(), ids=NAN_DATA.keys())
def test_nan_data_is_a_value_error(fn):
    with pytest.raises(ValueError, match="NaN"):
        fn(_with(np.nan))


# Inf is rejected wherever a scale or a statistic is computed from the data ...
SIGNS = ("bitops.", "rounding.binarize")
INF_DATA = {k: v for k, v in NAN_DATA.items() if not k.startswith(SIGNS) or "(" in k}


@pytest.mark.parametrize("fn", INF_DATA.values(), ids=INF_DATA.keys())
def test_inf_data_is_a_value_error(fn):
    with pytest.raises(ValueError, match=r"(?i)inf"):
        fn(_with(np.inf))


# ... while a sign exists for an infinity: the sign maps take it, and refuse only NaN.
@pytest.mark.parametrize(
    "fn",
    [bitops.pack_bits, bitops.pack_ternary_bits, rounding.binarize],
    ids=["pack_bits", "pack_ternary_bits", "binarize"],
)
def test_signs_of_infinities_pack_and_nan_does_not(fn):
    x = np.array([[np.inf, -np.inf, 1.0, -1.0]])
    ref = fn(np.array([[1.0, -1.0, 1.0, -1.0]]))
    got = fn(x)
    if isinstance(ref, np.ndarray):
        np.testing.assert_array_equal(got, ref)
    for attr in ("words", "sign", "nonzero"):
        if not isinstance(ref, np.ndarray) and hasattr(ref, attr):
            np.testing.assert_array_equal(
                np.asarray(getattr(got, attr)), np.asarray(getattr(ref, attr))
            )
    with pytest.raises(ValueError, match="NaN"):
        fn(np.array([[np.nan, 1.0]]))


NON_INTEGER_BITS = {
    "rounding.uniform": lambda b: rounding.uniform(W2, b),
    "rounding.dorefa_weights": lambda b: rounding.dorefa_weights(W2, b),
    "rounding.power_of_two": lambda b: rounding.power_of_two(W2, b),
    "optimize.rtn": lambda b: optimize.rtn(W2, bits=b),
    "optimize.gptq": lambda b: optimize.gptq(W2, X2, b),
    "optimize.hqq": lambda b: optimize.hqq(W2, bits=b, group_size=8),
    "bitops.pack_codes": lambda b: bitops.pack_codes(np.zeros((2, 8), np.int8), b),
    "codebooks.bits_per_weight": lambda b: codebooks.bits_per_weight(16, 4, codeword_bits=b),
}


@pytest.mark.parametrize("fn", NON_INTEGER_BITS.values(), ids=NON_INTEGER_BITS.keys())
def test_bits_type_and_range(fn):
    with pytest.raises(TypeError):
        fn(4.0)
    with pytest.raises(TypeError):
        fn("4")
    with pytest.raises(ValueError):
        fn(0)


TOLS = {
    "analysis.lloyd_max": lambda t: analysis.lloyd_max(4, tol=t),
    "codebooks.kmeans_1d": lambda t: codebooks.kmeans_1d(V1, 2, algorithm="lloyd", tol=t),
    "codebooks.KMeansQuantizer": lambda t: codebooks.KMeansQuantizer(2, tol=t).fit(V1),
    "codebooks.ProductQuantizer": lambda t: codebooks.ProductQuantizer(2, 2, tol=t).fit(X2),
    "codebooks.EntropyConstrainedQuantizer": (
        lambda t: codebooks.EntropyConstrainedQuantizer(2, tol=t).fit(V1)
    ),
}


@pytest.mark.parametrize("fn", TOLS.values(), ids=TOLS.keys())
def test_one_tol_rule(fn):
    for bad in ("1e-4", None, True):
        with pytest.raises(TypeError, match="tol must be a real number"):
            fn(bad)
    for bad in (-1e-6, np.inf, np.nan):
        with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
            fn(bad)
    fn(0.0)  # zero: run to max_iter or to an exact fixed point


NON_BOOL_FLAGS = {
    "rounding.uniform(narrow_range)": lambda v: rounding.uniform(W2, 4, narrow_range=v),
    "rounding.fixed_point(saturate)": lambda v: rounding.fixed_point(W2, 1, 2, saturate=v),
    "rounding.lsq(signed)": lambda v: rounding.lsq(W2, 0.1, signed=v),
    "optimize.rtn(rotate)": lambda v: optimize.rtn(W2, bits=4, rotate=v),
    "optimize.gptq(act_order)": lambda v: optimize.gptq(W2, X2, 4, act_order=v),
    "optimize.hqq(rotate)": lambda v: optimize.hqq(W2, bits=4, group_size=8, rotate=v),
}


@pytest.mark.parametrize("fn", NON_BOOL_FLAGS.values(), ids=NON_BOOL_FLAGS.keys())
def test_non_bool_flag_is_a_type_error(fn):
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="must be a bool"):
            fn(bad)


UNKNOWN_OPTIONS = {
    "rounding.uniform(mode)": lambda v: rounding.uniform(W2, 4, mode=v),
    "rounding.ternarize(method)": lambda v: rounding.ternarize(W2, method=v),
    "rounding.binarize(scale)": lambda v: rounding.binarize(W2, scale=v),
    "optimize.rtn(mode)": lambda v: optimize.rtn(W2, bits=4, mode=v),
    "optimize.gptq(grid)": lambda v: optimize.gptq(W2, X2, 4, grid=v),
    "codebooks.kmeans_1d(algorithm)": lambda v: codebooks.kmeans_1d(V1, 2, algorithm=v),
    "bitops.binary_matmul(scale)": lambda v: bitops.binary_matmul(W2, W2, scale=v),
    "gradients.QSGDCompressor(coding)": lambda v: gradients.QSGDCompressor(coding=v),
}


@pytest.mark.parametrize("fn", UNKNOWN_OPTIONS.values(), ids=UNKNOWN_OPTIONS.keys())
def test_unknown_option_is_a_value_error(fn):
    for bad in ("no-such-option", 3, ("a",)):
        with pytest.raises(ValueError, match="must be"):
            fn(bad)


BAD_SEEDS = {
    "rounding.stochastic_binarize": lambda r: rounding.stochastic_binarize(W2, rng=r),
    "rounding.stochastic_round": lambda r: rounding.stochastic_round(W2, step=0.5, rng=r),
    "gradients.qsgd": lambda r: gradients.qsgd(V1, 4, rng=r),
    "gradients.terngrad": lambda r: gradients.terngrad(V1, rng=r),
    "optimize.incoherence_transform": lambda r: optimize.incoherence_transform(8, rng=r),
    "codebooks.KMeansQuantizer": lambda r: codebooks.KMeansQuantizer(
        2, algorithm="lloyd", random_state=r
    ).fit(V1),
}


@pytest.mark.parametrize("fn", BAD_SEEDS.values(), ids=BAD_SEEDS.keys())
def test_bad_seed(fn):
    with pytest.raises(TypeError):
        fn("seed")
    with pytest.raises(TypeError):
        fn(1.5)
    with pytest.raises(ValueError):
        fn(-1)


NON_NUMBER_REALS = {
    "rounding.ternarize(delta)": lambda v: rounding.ternarize(W2, delta=v),
    "rounding.stochastic_round(step)": lambda v: rounding.stochastic_round(W2, step=v),
    "optimize.gptq(damp)": lambda v: optimize.gptq(W2, X2, 4, damp=v),
    "optimize.hqq(beta)": lambda v: optimize.hqq(W2, bits=4, group_size=8, beta=v),
    "optimize.adaround(lr)": lambda v: optimize.adaround(W2, X2, 4, max_iter=1, lr=v),
    "codebooks.EntropyConstrainedQuantizer(lam)": (
        lambda v: codebooks.EntropyConstrainedQuantizer(2, lam=v).fit(V1)
    ),
}


@pytest.mark.parametrize("fn", NON_NUMBER_REALS.values(), ids=NON_NUMBER_REALS.keys())
def test_real_parameter_type_and_value(fn):
    for bad in ("0.1", True, [0.1]):
        with pytest.raises(TypeError, match="must be a real number"):
            fn(bad)
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="must be a finite number"):
            fn(bad)


# ------------------------------------------------------------------ the helpers themselves


def test_check_real_bounds_and_messages():
    assert check_real(0.5, "a", low=0, low_inclusive=False) == 0.5
    assert check_real(np.float32(2.0), "a", low=0, high=2) == 2.0
    assert check_real(None, "a", allow_none=True) is None
    with pytest.raises(ValueError, match=r"a must be a finite number > 0, got 0.0"):
        check_real(0, "a", low=0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"a must be a finite number in \[0, 1\), got 1.0"):
        check_real(1.0, "a", low=0, high=1, high_inclusive=False)
    with pytest.raises(ValueError, match=r"a must be a finite number <= 3, got 4.0"):
        check_real(4, "a", high=3)
    with pytest.raises(TypeError, match="a must be a real number"):
        check_real(np.bool_(True), "a")
    with pytest.raises(TypeError, match="a must be a real number"):
        check_real(1j, "a")
    assert check_tol(0) == 0.0


def test_check_bool_choice_array():
    assert check_bool(np.bool_(False), "f") is False
    with pytest.raises(TypeError, match="f must be a bool, got 0"):
        check_bool(0, "f")
    assert check_choice(None, "s", (None, "mean")) is None
    assert check_choice(np.str_("mean"), "s", (None, "mean")) == "mean"
    with pytest.raises(ValueError, match=r"s must be one of \(None, 'mean'\), got 'max'"):
        check_choice("max", "s", (None, "mean"))
    with pytest.raises(ValueError, match="s must be one of"):
        check_choice(np.array(["mean"]), "s", (None, "mean"))
    _, xp = check_array(np.zeros((2, 3)), "x", ndim=2)
    assert xp.__name__.endswith("numpy")
    with pytest.raises(ValueError, match="x must be 1-D or 3-D"):
        check_array(np.zeros((2, 3)), "x", ndim=(1, 3))
    with pytest.raises(ValueError, match="x must not be empty"):
        check_array(np.zeros((0, 3)), "x")
    check_array(np.zeros((0, 3)), "x", allow_empty=True)
    for bad in ([1.0], 1.0, "x", b"x"):
        with pytest.raises(TypeError, match="x must be an Array API array"):
            check_array(bad, "x")
    with pytest.raises(TypeError, match="x must be a real floating array"):
        check_array(np.zeros(3, dtype=np.int32), "x")


def test_finite_and_nan_checks_are_separate():
    inf = np.array([1.0, np.inf])
    nan = np.array([1.0, np.nan])
    check_no_nan(inf, "x")  # an infinity is not a NaN
    with pytest.raises(ValueError, match=r"x contains NaN$"):
        check_no_nan(nan, "x")
    for bad in (inf, nan):
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            check_finite(bad, "x")


# ------------------------------------------------------------------ validated once


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args[1] if len(args) > 1 else kwargs.get("name"))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def _forbidden(monkeypatch, module, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} (public, validating) called from a validated path")

    monkeypatch.setattr(module, name, fail)


def test_kmeans_quantizer_fit_validates_once(monkeypatch):
    from qtoolkit.codebooks import _kmeans

    calls = _counting(monkeypatch, _kmeans, "check_tensor")
    _forbidden(monkeypatch, _kmeans, "kmeans_1d")
    q = codebooks.KMeansQuantizer(3, random_state=0).fit(V1)
    assert calls == ["X"]
    monkeypatch.undo()
    ref = codebooks.kmeans_1d(V1, 3, rng=0)
    np.testing.assert_array_equal(q.codebook_, ref.codebook)


def test_loss_aware_binarize_validates_once(monkeypatch):
    from qtoolkit.optimize import _loss_aware
    from qtoolkit.rounding import _binary

    inner = _counting(monkeypatch, _binary, "check_array")
    outer = _counting(monkeypatch, _loss_aware, "check_array")
    d = np.abs(W2) + 0.1
    out = optimize.loss_aware_binarize(W2, d, axis=0)
    assert sorted(inner + outer) == ["d", "w"]
    alpha = (d * np.abs(W2)).sum(axis=1, keepdims=True) / d.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, np.where(W2 >= 0, alpha, -alpha), rtol=1e-12)


def test_binary_matmul_validates_once(monkeypatch):
    from qtoolkit.bitops import _gemm, _packing

    expected = bitops.xnor_gemm(bitops.pack_bits(W2), bitops.pack_bits(X2))
    _forbidden(monkeypatch, _packing, "pack_bits")
    _forbidden(monkeypatch, _gemm, "xnor_gemm")
    np.testing.assert_array_equal(bitops.binary_matmul(W2, X2), expected)
    np.testing.assert_array_equal(expected, np.where(W2 >= 0, 1, -1) @ np.where(X2 >= 0, 1, -1).T)
