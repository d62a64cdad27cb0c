"""Nearest-codeword and stochastic rounding: references, unbiasedness, variance, seeds."""

import numpy as np
import pytest

from qtoolkit.rounding import round_to_codebook, stochastic_round

CODEBOOK = np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0])


def test_round_to_codebook_matches_argmin(rng):
    w = rng.uniform(-4, 5, size=3000)
    out, codes = round_to_codebook(w, CODEBOOK, return_codes=True)
    ref = np.argmin(np.abs(w[:, None] - CODEBOOK[None, :]), axis=1)
    np.testing.assert_array_equal(codes, ref)
    np.testing.assert_array_equal(out, CODEBOOK[ref])
    np.testing.assert_array_equal(round_to_codebook(out, CODEBOOK), out)


def test_round_to_codebook_ties_go_to_the_lower_codeword_and_single_codeword():
    # the library's one tie rule: a value on a midpoint goes to the lower codeword,
    # the first index argmin returns (as KMeansQuantizer.transform and the PQ search)
    w = np.array([-1.25, 0.625])
    np.testing.assert_array_equal(round_to_codebook(w, CODEBOOK), [-2.0, 0.25])
    ref = np.argmin(np.abs(w[:, None] - CODEBOOK[None, :]), axis=1)
    np.testing.assert_array_equal(round_to_codebook(w, CODEBOOK, return_codes=True).codes, ref)
    np.testing.assert_array_equal(round_to_codebook(np.array([-3.0, 7.0]), [0.5]), [0.5, 0.5])


def test_round_to_codebook_keeps_shape_and_dtype(rng, float_dtype):
    w = rng.standard_normal((3, 4, 2)).astype(float_dtype)
    out = round_to_codebook(w, CODEBOOK)
    assert out.shape == w.shape and out.dtype == float_dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_round_grid_unbiased_and_variance(dtype):
    # For x = k eps + f: E[q] = x and Var[q] = f (eps - f). With n = 40000
    # draws the sample mean has std sqrt(Var / n) <= eps / (2 sqrt(n)); allow
    # 5 standard errors. The sample variance of a two-point law has relative
    # std about sqrt(2 / n) (plus the kurtosis term), so 5% is > 5 standard errors.
    n, eps = 40000, 0.25
    for x in (0.0, 0.1, -0.3, 1.2, 0.125):
        out = stochastic_round(np.full(n, x, dtype=dtype), step=eps, rng=11)
        assert out.dtype == dtype
        lo = np.floor(x / eps) * eps
        assert set(np.unique(out)) <= {lo, lo + eps}
        f = x - lo
        assert abs(out.mean() - x) <= 5 * eps / (2 * np.sqrt(n))
        if f > 0:
            np.testing.assert_allclose(out.var(), f * (eps - f), rtol=0.05)


def test_stochastic_round_codebook_unbiased_and_variance():
    n = 40000
    for x in (-1.9, -0.2, 0.1, 0.7, 2.5):
        out, codes = stochastic_round(np.full(n, x), codebook=CODEBOOK, rng=5, return_codes=True)
        k = np.searchsorted(CODEBOOK, x) - 1
        lo, hi = CODEBOOK[k], CODEBOOK[k + 1]
        assert set(np.unique(out)) <= {lo, hi}
        np.testing.assert_array_equal(CODEBOOK[codes], out)
        # std of the mean <= (hi - lo) / (2 sqrt(n))
        assert abs(out.mean() - x) <= 5 * (hi - lo) / (2 * np.sqrt(n))
        np.testing.assert_allclose(out.var(), (x - lo) * (hi - x), rtol=0.05)


def test_stochastic_round_codewords_are_fixed_points_and_outside_clips():
    out = stochastic_round(np.concatenate([CODEBOOK, [-9.0, 9.0]]), codebook=CODEBOOK, rng=0)
    np.testing.assert_array_equal(out, np.concatenate([CODEBOOK, [-2.0, 3.0]]))
    grid = np.arange(-8, 8) * 0.5
    np.testing.assert_array_equal(stochastic_round(grid, step=0.5, rng=1), grid)


def test_stochastic_round_seed_reproducible(rng):
    w = rng.standard_normal(1000).astype(np.float32)
    a = stochastic_round(w, step=0.1, rng=3)
    np.testing.assert_array_equal(a, stochastic_round(w, step=0.1, rng=3))
    assert not np.array_equal(a, stochastic_round(w, step=0.1, rng=4))
    g = np.random.default_rng(9)
    first, second = stochastic_round(w, step=0.1, rng=g), stochastic_round(w, step=0.1, rng=g)
    assert not np.array_equal(first, second)


def test_stochastic_round_float16_and_any_shape(rng):
    w = rng.standard_normal((5, 3)).astype(np.float16)
    out = stochastic_round(w, step=0.5, rng=0)
    assert out.dtype == np.float16 and out.shape == w.shape
    np.testing.assert_array_equal(np.abs(out * 2 - np.round(out * 2)), 0)


def test_stochastic_round_compiled_path_equals_generic_formula(rng):
    # The NumPy kernel and the generic path share the counter-based noise:
    # floor(w / eps + u) * eps with the same u.
    xs = pytest.importorskip("array_api_strict")
    for dtype in (np.float32, np.float64):
        w = rng.standard_normal((7, 11)).astype(dtype)
        a = stochastic_round(w, step=0.3, rng=21)
        b = np.asarray(stochastic_round(xs.asarray(w), step=0.3, rng=21))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 64, 1001])
def test_stochastic_grid_kernel_levels_agree_with_numpy_formula(n, rng):
    # Every loop of the compiled kernel (generic, and SSE4.1 where the CPU has
    # it) against the NumPy formula with the same counter-based noise;
    # odd sizes hit the float32 tail that uses half of a 64-bit draw.
    from qtoolkit import _dispatch
    from qtoolkit.rounding._common import _counter_uniform
    from qtoolkit.rounding._rounding_kernels import (
        stochastic_grid_f32,
        stochastic_grid_f64,
    )

    key = np.uint64(123456789123)
    for dtype, kernel in ((np.float32, stochastic_grid_f32), (np.float64, stochastic_grid_f64)):
        w = (rng.standard_normal(n) * 3).astype(dtype)
        u = _counter_uniform(key, np.arange(n, dtype=np.uint64), dtype)
        step = dtype(0.3)
        ref = np.floor(w / step + u) * step
        for level in _dispatch.available_simd_levels():
            _, lid = _dispatch.kernel_level("rounding.stochastic_grid", level)
            out = np.empty_like(w)
            kernel(w, out, 0.3, key, lid)
            np.testing.assert_array_equal(out, ref)


def test_counter_noise_is_uniform():
    # Kolmogorov-Smirnov distance of 200000 draws from U[0, 1): the 1e-3
    # critical value is about 1.95 / sqrt(n) = 0.0044.
    from qtoolkit.rounding._common import _counter_uniform

    n = 200000
    for dtype in (np.float32, np.float64):
        u = np.sort(_counter_uniform(np.uint64(99), np.arange(n, dtype=np.uint64), dtype))
        assert u.min() >= 0 and u.max() < 1
        ks = np.max(np.abs(u - np.arange(1, n + 1) / n))
        assert ks < 1.95 / np.sqrt(n)


def test_stochastic_round_public_path_at_every_level(simd_levels):
    # the public function at each level (simd_levels runs the body inside simd_level())
    from qtoolkit.rounding import stochastic_round

    w = np.linspace(-3, 3, 1001).astype(np.float32)
    ref = stochastic_round(w.astype(np.float64), step=0.25, rng=5)
    with np.errstate(all="ignore"):
        out = stochastic_round(w, step=0.25, rng=5)
    # float32 and float64 draw different noise bits; both stay on the grid next to w
    assert np.all(np.abs(out - w) < 0.25) and np.all(np.abs(ref - w) < 0.25)
    np.testing.assert_array_equal(out, stochastic_round(w, step=0.25, rng=5))
