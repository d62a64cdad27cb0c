"""Pseudo-gradients against numerical derivatives of their surrogate functions."""

import numpy as np

from qtoolkit.rounding import (
    approx_sign_gradient,
    clipped_straight_through,
    straight_through,
    swish_sign_gradient,
)


def _num_deriv(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_straight_through_identity(rng):
    w, g = rng.standard_normal(10), rng.standard_normal(10)
    np.testing.assert_array_equal(straight_through(w, g), g)


def test_clipped_straight_through_is_hardtanh_derivative(rng):
    w = rng.uniform(-3, 3, 200)
    g = rng.standard_normal(200)
    ref = g * _num_deriv(lambda x: np.clip(x, -1, 1), w)
    keep = np.abs(np.abs(w) - 1) > 1e-4  # away from the kinks
    np.testing.assert_allclose(clipped_straight_through(w, g)[keep], ref[keep], atol=1e-6)
    np.testing.assert_array_equal(
        clipped_straight_through(np.array([2.0, -0.5]), np.ones(2), clip_value=2.5), [1, 1]
    )


def test_approx_sign_is_derivative_of_piecewise_quadratic(rng):
    def f(x):
        y = np.where(x < 0, 2 * x + x * x, 2 * x - x * x)
        return np.clip(np.where(np.abs(x) > 1, np.sign(x), y), -1, 1)

    w = rng.uniform(-2, 2, 300)
    keep = (np.abs(np.abs(w) - 1) > 1e-4) & (np.abs(w) > 1e-4)
    g = rng.standard_normal(300)
    np.testing.assert_allclose(
        approx_sign_gradient(w, g)[keep], (g * _num_deriv(f, w))[keep], atol=1e-5
    )


def test_swish_sign_is_derivative_of_swish_sign(rng):
    beta = 3.0

    def ss(x):
        s = 1 / (1 + np.exp(-beta * x))
        return 2 * s * (1 + beta * x * (1 - s)) - 1

    w = rng.uniform(-4, 4, 300)
    g = rng.standard_normal(300)
    np.testing.assert_allclose(
        swish_sign_gradient(w, g, beta=beta), g * _num_deriv(ss, w), atol=1e-6
    )
    # far tails: zero, no overflow warning
    np.testing.assert_array_equal(swish_sign_gradient(np.array([1e4, -1e4]), np.ones(2)), 0)


def test_gradients_keep_dtype(float_dtype):
    w = np.linspace(-2, 2, 9).astype(float_dtype)
    for fn in (
        straight_through,
        clipped_straight_through,
        approx_sign_gradient,
        swish_sign_gradient,
    ):
        assert fn(w, w).dtype == float_dtype
