"""Theory: the limiting cosine of an entrywise quantizer, its spread, arcsine law, Lloyd-Max."""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from qtoolkit.analysis import (
    arcsine_law,
    cosine,
    expected_angle,
    expected_cosine,
    expected_dot_product_fit,
    lloyd_max,
    sign_cosine_gaussian,
)


def xnor_reference(w):
    """sign(w) (sign(0) = +1) times the XNOR-Net scale E|w|."""
    return np.where(w >= 0, 1.0, -1.0) * np.mean(np.abs(w))


# Quadrature accuracy: the grid is the midpoint rule in probability space with n = 2^20 cells;
# for a bounded quantizer each jump costs at most one cell (1e-6 of probability) and the
# smooth part converges faster, so 2e-6 absolute on the cosine is a safe bound (the sign of a
# Gaussian is off by 4e-7).
QUAD_TOL = 2e-6


def test_sign_gaussian_closed_form():
    assert sign_cosine_gaussian() == pytest.approx(math.sqrt(2 / math.pi), rel=1e-15)
    assert expected_cosine(np.sign) == pytest.approx(math.sqrt(2 / math.pi), abs=QUAD_TOL)
    assert math.degrees(math.acos(sign_cosine_gaussian())) == pytest.approx(37.0714, abs=1e-4)


def tail_tolerance(frozen, n=2**20):
    """Bound on the grid's error for cos = E|x|/sqrt(E x^2) with unbounded x.

    The grid's end cells stand for the tails beyond x_max = F^{-1}(1 - 1/n); at worst they
    lose all of E[x^2; |x| > x_max] (relative error t on E x^2, so t/2 on the cosine) plus one
    cell of the bounded part; both are added, with a factor 2 of margin.
    """
    x_max = frozen.ppf(1 - 1 / n)
    tail = 2 * integrate.quad(lambda x: x * x * frozen.pdf(x), x_max, np.inf)[0]
    return 2 * (tail / frozen.var() / 2 + 1 / n)


def test_sign_closed_forms_for_other_distributions():
    # cos = E|x| / sqrt(E x^2): uniform sqrt(3)/2, Laplace 1/sqrt(2),
    # Student t_nu: E|T| = 2 sqrt(nu) Gamma((nu+1)/2) / (sqrt(pi) (nu-1) Gamma(nu/2)),
    # Var = nu/(nu-2).
    assert expected_cosine(np.sign, "uniform") == pytest.approx(math.sqrt(3) / 2, abs=QUAD_TOL)
    lap = stats.laplace(scale=1 / math.sqrt(2))
    assert expected_cosine(np.sign, "laplace") == pytest.approx(
        1 / math.sqrt(2), abs=tail_tolerance(lap)
    )

    def t_cos(nu):
        e_abs = (
            2
            * math.sqrt(nu)
            * math.gamma((nu + 1) / 2)
            / (math.sqrt(math.pi) * (nu - 1) * math.gamma(nu / 2))
        )
        return e_abs / math.sqrt(nu / (nu - 2))

    t5 = stats.t(df=5, scale=math.sqrt(3 / 5))
    assert expected_cosine(np.sign, "student-t") == pytest.approx(t_cos(5), abs=tail_tolerance(t5))
    assert expected_cosine(np.sign, stats.t(df=7)) == pytest.approx(
        t_cos(7), abs=tail_tolerance(stats.t(7))
    )


def test_stein_identity_for_fixed_threshold_ternary():
    # q = sign(x) 1{|x| > t}: E[x q] = E[q'] = 2 phi(t) (Stein), E[q^2] = 2 (1 - Phi(t)).
    for t in (0.3, 0.6, 1.2):
        q = lambda x, t=t: np.sign(x) * (np.abs(x) > t)  # noqa: E731
        ref = 2 * stats.norm.pdf(t) / math.sqrt(2 * stats.norm.sf(t))
        assert expected_cosine(q) == pytest.approx(ref, abs=QUAD_TOL)


def test_data_dependent_scale_does_not_change_the_cosine():
    assert expected_cosine(xnor_reference) == pytest.approx(expected_cosine(np.sign), rel=1e-14)


def test_library_quantizers_have_their_limits():
    from qtoolkit import rounding

    assert expected_cosine(lambda x: rounding.binarize(x, scale="mean")) == pytest.approx(
        math.sqrt(2 / math.pi), abs=QUAD_TOL
    )
    # TWN: threshold 0.7 E|x| = 0.7 sqrt(2/pi) in the limit; then the Stein formula above.
    t = 0.7 * math.sqrt(2 / math.pi)
    ref = 2 * stats.norm.pdf(t) / math.sqrt(2 * stats.norm.sf(t))
    assert expected_cosine(lambda x: rounding.ternarize(x, method="twn")) == pytest.approx(
        ref, abs=1e-5
    )


def test_samples_give_the_empirical_cosine(rng):
    s = rng.laplace(size=1001)
    assert expected_cosine(np.sign, s) == pytest.approx(float(cosine(s, np.sign(s))), rel=1e-13)


def test_lloyd_max_cosine_is_sqrt_one_minus_distortion():
    # For a centroid quantizer E[x q] = E[q^2] so cos^2 = E[q^2]/E[x^2] = 1 - D / E[x^2].
    for k in (2, 4, 8):
        q = lloyd_max(k)
        assert expected_cosine(q) ** 2 == pytest.approx(1 - q.mse, abs=2 * QUAD_TOL)


def test_sign_spread_closed_form():
    # Delta method for the sign of a Gaussian: sd(theta) sqrt(d) = sqrt((pi - 3) / (pi - 2)).
    for d in (10, 1000):
        m = expected_angle(np.sign, "gaussian", d=d)
        assert m.std * math.sqrt(d) == pytest.approx(
            math.sqrt((math.pi - 3) / (math.pi - 2)), rel=1e-4
        )
        assert m.mean < math.acos(math.sqrt(2 / math.pi))  # the O(1/d) bias is negative
    lim = expected_angle(np.sign, degrees=True)
    assert lim.mean == pytest.approx(math.degrees(math.acos(math.sqrt(2 / math.pi))), abs=1e-4)
    assert math.isnan(lim.std)


def test_identity_has_zero_angle():
    m = expected_angle(lambda x: 3.0 * x, "laplace", d=100)
    assert m.mean == 0.0 and m.std == 0.0


def test_expected_dot_product_fit():
    fit = expected_dot_product_fit(np.sign)
    assert fit.r == pytest.approx(math.sqrt(2 / math.pi), abs=QUAD_TOL)
    assert fit.slope == pytest.approx(math.sqrt(2 / math.pi), abs=QUAD_TOL)  # E|x| / E x^2
    assert fit.intercept == 0.0
    fit = expected_dot_product_fit(lambda x: 2 * np.sign(x), "uniform")
    assert fit.slope == pytest.approx(2 * (math.sqrt(3) / 2) / 1.0, abs=QUAD_TOL)  # 2 E|x| / E x^2


def test_arcsine_law_values_and_bivariate_normal():
    assert arcsine_law(0.5) == pytest.approx(1 / 3, rel=1e-14)
    assert arcsine_law(1 / math.sqrt(2)) == pytest.approx(0.5, rel=1e-14)
    np.testing.assert_array_equal(arcsine_law([-1.0, 0.0, 1.0]), [-1.0, 0.0, 1.0])
    # Independent check: E[sign X sign Y] = 4 P(X > 0, Y > 0) - 1 from the bivariate normal CDF.
    for rho in (-0.8, -0.2, 0.35, 0.9):
        p = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([0, 0])
        assert arcsine_law(rho) == pytest.approx(4 * p - 1, abs=1e-6)


def test_theory_errors():
    with pytest.raises(TypeError, match="quantizer must be a callable"):
        expected_cosine(None)
    with pytest.raises(ValueError, match="maps the whole distribution to 0"):
        expected_cosine(np.zeros_like)
    with pytest.raises(ValueError, match="shape"):
        expected_cosine(lambda x: x[:-1])
    with pytest.raises(ValueError, match="NaN or Inf"):
        expected_cosine(lambda x: np.full_like(x, np.inf))
    with pytest.raises(ValueError, match="distribution must be one of"):
        expected_cosine(np.sign, "cauchy-ish")
    with pytest.raises(ValueError, match="finite, positive variance"):
        expected_cosine(np.sign, stats.cauchy())
    with pytest.raises(ValueError, match="1-D array of at least 2 values"):
        expected_cosine(np.sign, np.ones((3, 3)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        expected_cosine(np.sign, np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="d must be in"):
        expected_angle(np.sign, d=0)
    with pytest.raises(TypeError, match="d must be an integer"):
        expected_angle(np.sign, d=2.5)
    with pytest.raises(ValueError, match=r"rho must lie in \[-1, 1\]"):
        arcsine_law(1.5)
    with pytest.raises(ValueError, match=r"rho must lie in \[-1, 1\]"):
        arcsine_law(float("nan"))


# -- Lloyd-Max -----------------------------------------------------------------

# J. Max, "Quantizing for minimum distortion", IRE Trans. Inf. Theory 6(1), 1960, Table I
# (N(0, 1)): positive thresholds, positive levels and the mean squared error. The table gives
# 4 significant digits; the tolerance is one unit in the last digit printed.
MAX_1960 = {
    2: {"thresholds": [0.0], "levels": [0.7979], "mse": 0.3634, "tol": (1e-4, 1e-4)},
    4: {"thresholds": [0.0, 0.9816], "levels": [0.4528, 1.510], "mse": 0.1175, "tol": (1e-3, 1e-4)},
    8: {
        "thresholds": [0.0, 0.5006, 1.050, 1.748],
        "levels": [0.2451, 0.7560, 1.344, 2.152],
        "mse": 0.03454,
        "tol": (1e-3, 1e-5),
    },
}


@pytest.mark.parametrize("k", sorted(MAX_1960))
def test_lloyd_max_gaussian_matches_max_1960(k):
    ref = MAX_1960[k]
    q = lloyd_max(k)
    assert q.converged and q.n_levels == k
    pos_t = q.thresholds[q.thresholds >= -1e-12]
    pos_l = q.levels[q.levels > 0]
    np.testing.assert_allclose(pos_t, ref["thresholds"], atol=ref["tol"][0])
    np.testing.assert_allclose(pos_l, ref["levels"], atol=ref["tol"][0])
    assert q.mse == pytest.approx(ref["mse"], abs=ref["tol"][1])
    np.testing.assert_allclose(q.levels, -q.levels[::-1], atol=1e-12)  # symmetric


def test_lloyd_max_two_levels_closed_form():
    q = lloyd_max(2)
    # levels +-E|X| = +-sqrt(2/pi), D = 1 - 2/pi.
    np.testing.assert_allclose(
        q.levels, [-math.sqrt(2 / math.pi), math.sqrt(2 / math.pi)], rtol=1e-10
    )
    assert q.mse == pytest.approx(1 - 2 / math.pi, rel=1e-10)
    assert lloyd_max(1).mse == pytest.approx(1.0, rel=1e-12)


def test_lloyd_max_uniform_is_the_uniform_quantizer():
    # On U(-sqrt3, sqrt3) the optimum is uniform with step 2 sqrt3 / k and D = step^2 / 12.
    for k in (3, 4, 7):
        q = lloyd_max(k, "uniform")
        step = 2 * math.sqrt(3) / k
        np.testing.assert_allclose(q.levels, -math.sqrt(3) + step * (np.arange(k) + 0.5), atol=1e-9)
        assert q.mse == pytest.approx(step**2 / 12, rel=1e-9)


@pytest.mark.parametrize("dist", ["laplace", "student-t", stats.logistic(scale=0.5)])
def test_lloyd_max_satisfies_optimality_conditions(dist):
    # Independent quadrature: each level is the centroid of its cell, each threshold the
    # midpoint of its levels, and the MSE integral matches.
    q = lloyd_max(4, dist, tol=1e-12)
    frozen = (
        {
            "laplace": stats.laplace(scale=1 / math.sqrt(2)),
            "student-t": stats.t(df=5, scale=math.sqrt(3 / 5)),
        }.get(dist, dist)
        if isinstance(dist, str)
        else dist
    )
    edges = np.concatenate(([-np.inf], q.thresholds, [np.inf]))
    total = 0.0
    for j in range(4):
        a, b = edges[j], edges[j + 1]
        p = integrate.quad(frozen.pdf, a, b)[0]
        m = integrate.quad(lambda x: x * frozen.pdf(x), a, b)[0]
        assert q.levels[j] == pytest.approx(m / p, abs=1e-8)
        level = q.levels[j]
        total += integrate.quad(lambda x, c=level: (x - c) ** 2 * frozen.pdf(x), a, b)[0]
    np.testing.assert_allclose(q.thresholds, (q.levels[:-1] + q.levels[1:]) / 2, rtol=1e-14)
    assert q.mse == pytest.approx(total, rel=1e-7)


def test_lloyd_max_on_samples_is_kmeans(rng):
    s = rng.standard_normal(500)
    q = lloyd_max(3, s)
    err = float(np.mean((s - q(s)) ** 2))
    assert q.mse == pytest.approx(err, rel=1e-10)
    # Centroid condition on the samples.
    codes = np.searchsorted(q.thresholds, s)
    for j in range(3):
        assert q.levels[j] == pytest.approx(np.mean(s[codes == j]), rel=1e-10)


def test_lloyd_max_quantizer_call(rng):
    q = lloyd_max(8)
    x = rng.standard_normal((4, 25))
    ref = q.levels[np.argmin(np.abs(x[..., None] - q.levels), axis=-1)]
    np.testing.assert_array_equal(q(x), ref)
    assert q(x.astype(np.float32)).dtype == np.float32
    xps = pytest.importorskip("array_api_strict")
    xs = xps.asarray(x)
    out = q(xs)
    assert type(out) is type(xs)
    np.testing.assert_array_equal(np.asarray(out), ref)
    assert "LloydMaxQuantizer(n_levels=8" in repr(q)


def test_lloyd_max_errors():
    with pytest.raises(ValueError, match="n_levels must be in"):
        lloyd_max(0)
    with pytest.raises(TypeError, match="n_levels must be an integer"):
        lloyd_max(2.0)
    with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
        lloyd_max(4, tol=-1e-3)
    with pytest.raises(TypeError, match="tol must be a real number"):
        lloyd_max(4, tol="1e-9")
    with pytest.raises(ValueError, match="distribution must be one of"):
        lloyd_max(4, "gamma")
    with pytest.raises(TypeError, match="x must be a real floating array"):
        lloyd_max(2)(np.array([1, 2]))


def test_special_functions_sanity():
    # The Gaussian fast path uses scipy.special.ndtr; it must agree with scipy.stats.
    z = np.array([-3.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(special.ndtr(z), stats.norm.cdf(z), rtol=1e-15)


def test_per_channel_quantizer_is_rejected_by_the_theory():
    """A per-channel scale sees each point of the 1-D quadrature grid as its own channel and
    returns it unchanged; the theory must refuse rather than report cos = 1."""
    from qtoolkit.analysis import expected_cosine, expected_dot_product_fit
    from qtoolkit.rounding import binarize

    per_row = lambda w: binarize(w, scale="mean", axis=0)  # noqa: E731
    with pytest.raises(ValueError, match="per tensor"):
        expected_cosine(per_row)
    with pytest.raises(ValueError, match="per tensor"):
        expected_dot_product_fit(per_row)
    # the per-tensor version is fine and gives sqrt(2/pi)
    assert abs(expected_cosine(lambda w: binarize(w, scale="mean")) - np.sqrt(2 / np.pi)) < 1e-4
