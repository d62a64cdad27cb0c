"""Silent wrong results, NaN from finite input, unbounded iteration counts and odd limits.

Each test is a case that returned a wrong value, NaN or Inf, ran for hours,
or raised an undocumented exception before; the expected values are exact
(computed in the input's own precision, or closed form).
"""

import inspect

import numpy as np
import pytest

from qtoolkit.analysis import lloyd_max
from qtoolkit.bitops import pack_bits, unpack_bits
from qtoolkit.codebooks import (
    EntropyConstrainedQuantizer,
    KMeansQuantizer,
    ProductQuantizer,
    ResidualQuantizer,
    SoftQuantizer,
    entropy_bits,
    kmeans_1d,
)
from qtoolkit.gradients import qsgd, scaled_sign
from qtoolkit.optimize import admm_quantize, lq_fit
from qtoolkit.rounding import decode, encode, fixed_point, stochastic_round, uniform

# ------------------------------------------------------------------ 9. pack_bits precision


@pytest.mark.parametrize("dtype", [">f8", "<f8", ">f4", "<f4", "f2", np.longdouble])
def test_pack_bits_compares_in_the_input_precision(dtype):
    dt = np.dtype(dtype)
    tiny = float(np.finfo(dt).smallest_subnormal)
    x = np.array([-tiny, -1e-300, -0.0, 0.0, tiny, 1e-300, -3.0, 2.5], dtype=np.float64)
    with np.errstate(under="ignore"):
        x = x.astype(dt)
    if dt == np.longdouble:
        x[1] = -np.longdouble("1e-4000")  # below float64's range: -0.0 if narrowed
    expected = np.where(x >= 0, 1.0, -1.0)  # in the input's own precision
    np.testing.assert_array_equal(unpack_bits(pack_bits(x)), expected)
    np.testing.assert_array_equal(unpack_bits(pack_bits(x[None, :])), expected[None, :])


def test_pack_bits_longdouble_nan_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        pack_bits(np.array([1.0, np.nan], dtype=np.longdouble))


def test_unpack_bits_beyond_32_axes():
    x = np.random.default_rng(0).normal(size=(1,) * 38 + (2, 70))
    np.testing.assert_array_equal(unpack_bits(pack_bits(x)), np.where(x >= 0, 1.0, -1.0))


# ---------------------------------------------------------- 10. NaN / Inf from finite input


def test_uniform_grid_that_overflows_is_refused():
    w = np.array([3.4e38, -3.4e38, 1.0], np.float32)
    with pytest.raises(ValueError, match="overflows float32"):
        uniform(w, mode="asymmetric")
    q = encode(w, mode="asymmetric")
    assert np.all(np.isfinite(q.scale))
    # the scale is the range over the levels, computed without overflowing
    np.testing.assert_allclose(q.scale, 6.8e38 / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="overflows float32"):
        decode(q)


def test_uniform_float16_extreme_range_is_finite_and_accurate():
    w = np.array([6e4, -6e4, 1.0], np.float16)
    out = uniform(w, mode="asymmetric")
    scale = float(encode(w, mode="asymmetric").scale[0])
    assert np.all(np.isfinite(out))
    assert np.all(np.abs(out.astype(np.float64) - w.astype(np.float64)) <= scale)


def test_qsgd_norm_overflow_is_refused():
    with pytest.raises(ValueError, match="norm of g overflows float32"):
        qsgd(np.array([3e38, 3e38], np.float32), 4)


@pytest.mark.parametrize("scale", ["mean", "two_level"])
def test_scaled_sign_mean_of_huge_values(scale):
    g = np.array([3.4e38, 3.4e38, -3.0e38], np.float32)
    out = scaled_sign(g, scale=scale)
    assert np.all(np.isfinite(out))
    a = np.abs(g.astype(np.float64))
    if scale == "mean":
        ref = np.where(g >= 0, a.mean(), -a.mean())
    else:
        ref = np.where(g >= 0, a[g >= 0].mean(), -a[g < 0].mean())
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_stochastic_round_steps_outside_the_dtype():
    ones = np.ones(3, np.float32)
    # a grid finer than float32: every value is (to float32 precision) on it
    np.testing.assert_array_equal(stochastic_round(ones, step=1e-300, rng=0), ones)
    # a grid coarser than float32's range: 1 rounds to 0 (with probability 1 - 1e-300)
    np.testing.assert_array_equal(stochastic_round(ones, step=1e300, rng=0), np.zeros(3))
    with pytest.raises(ValueError, match="overflows float64"):
        stochastic_round(np.full(3, 1e300), step=1e-300, rng=0)


def test_fixed_point_float16_wide_word():
    x = np.full(3, 0.5, np.float16)
    out = fixed_point(x, 8, 8, saturate=False)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(fixed_point(x, 8, 8), x)


# --------------------------------------------------------------- 11. iteration counts


def _iter_name(fn):
    params = inspect.signature(fn).parameters
    return "max_iter" if "max_iter" in params else "n_iter"


@pytest.mark.parametrize("count", [10**9, 2**31])
def test_iteration_counts_have_a_documented_maximum(count):
    with pytest.raises(ValueError, match=r"10{6}|1000000"):
        lq_fit(np.ones(8), **{_iter_name(lq_fit): count})
    with pytest.raises(ValueError, match="1000000"):
        SoftQuantizer(n_clusters=2, max_iter=count).fit(np.ones((4, 1)))
    with pytest.raises(ValueError, match="1000000"):
        admm_quantize(np.ones((2, 4)), X=np.ones((3, 4)), inner_steps=count)
    with pytest.raises(ValueError, match="1000000"):
        kmeans_1d(np.arange(8.0), 2, algorithm="lloyd", max_iter=count)
    with pytest.raises(ValueError, match="1000000"):
        lloyd_max(4, max_iter=count)


# -------------------------------------------------------------------- 13. odd limits


def test_entropy_of_huge_codes_is_refused_without_allocating():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        entropy_bits(np.array([2**40]))
    assert entropy_bits(np.array([0, 1, 1, 0])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda k: KMeansQuantizer(n_clusters=k),
        lambda k: ProductQuantizer(n_subspaces=1, n_clusters=k),
        lambda k: ResidualQuantizer(n_clusters=k),
        lambda k: SoftQuantizer(n_clusters=k),
        lambda k: EntropyConstrainedQuantizer(n_clusters=k),
    ],
)
def test_n_clusters_2_63_is_a_value_error(make):
    with pytest.raises(ValueError, match="n_clusters"):
        make(2**63).fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_empty_tensor_is_refused_by_tensor_learners():
    with pytest.raises(ValueError, match="empty"):
        EntropyConstrainedQuantizer(n_clusters=3).fit(np.zeros((2, 0, 4)))


def test_lloyd_max_level_count_is_bounded():
    with pytest.raises(ValueError, match="n_levels"):
        lloyd_max(2**31)
