"""Monte Carlo experiments against the theory, with tolerances derived from the sample size.

Convention: a sample mean of n iid draws with standard deviation s has standard error
s / sqrt(n); we accept |mean - theory| <= Z * s / sqrt(n) + (deterministic error bound of the
theory), with Z = 4.5 (two-sided normal tail 7e-6 per comparison, so a few dozen comparisons
fail by chance with probability below 1e-3; the seeds are fixed, so the tests are also
deterministic).
"""

import math

import numpy as np
import pytest

from qtoolkit.analysis import (
    angle_experiment,
    arcsine_experiment,
    dot_product_experiment,
    expected_angle,
    rotation_experiment,
)

Z = 4.5


def xnor_reference(w):
    """sign(w) (sign(0) = +1) times the XNOR-Net scale E|w|."""
    return np.where(w >= 0, 1.0, -1.0) * np.mean(np.abs(w))


def test_angle_concentrates_at_37_degrees_with_1_over_sqrt_d_spread(seed):
    n = 1500
    res = angle_experiment(xnor_reference, "gaussian", dims=[64, 1024], n_trials=n, rng=seed)
    for k, d in enumerate(res.dims):
        # Mean: standard error std/sqrt(n); the theory is the delta method to second order,
        # whose remaining error is O(d^-2) (below 1e-3 rad at d = 64, checked against the
        # next term's size: the O(1/d) term itself is 6e-3 rad at d = 64).
        se = res.std[k] / math.sqrt(n)
        assert abs(res.mean[k] - res.theory_mean[k]) <= Z * se + 1.0 / d**2
        # Standard deviation: for a near-normal sample sd(s) = s / sqrt(2 (n - 1)); the delta
        # method's own error is O(1/d) relative.
        se_sd = res.std[k] / math.sqrt(2 * (n - 1))
        assert abs(res.std[k] - res.theory_std[k]) <= Z * se_sd + res.theory_std[k] * 2.0 / d
    # The experiment's theory uses a 2^18-node grid: the cosine is within a few cells (4e-6)
    # of sqrt(2/pi), i.e. the angle within 4e-6 / sin(37 deg) < 1e-5.
    assert res.theory_limit == pytest.approx(math.acos(math.sqrt(2 / math.pi)), abs=1e-5)
    # 1/sqrt(d): 16 times the dimension, a quarter of the spread.
    assert res.std[0] / res.std[1] == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize("dist", ["laplace", "uniform", "student-t"])
def test_angle_for_other_distributions(dist, seed):
    n = 400
    res = angle_experiment(np.sign, dist, dims=[512], n_trials=n, vectorized=True, rng=seed)
    se = res.std[0] / math.sqrt(n)
    assert abs(res.mean[0] - res.theory_mean[0]) <= Z * se + 1.0 / 512**2


def test_angle_experiment_with_user_samples(seed):
    samples = np.random.default_rng(1).exponential(size=5000) - 1.0
    res = angle_experiment(np.sign, samples, dims=[256], n_trials=300, vectorized=True, rng=seed)
    assert abs(res.mean[0] - res.theory_mean[0]) <= Z * res.std[0] / math.sqrt(300) + 1.0 / 256**2


def test_angle_experiment_with_library_binarize(seed):
    from qtoolkit import rounding

    a = angle_experiment(
        lambda x: rounding.binarize(x, scale="mean"), dims=[100], n_trials=50, rng=seed
    )
    b = angle_experiment(xnor_reference, dims=[100], n_trials=50, rng=seed)
    np.testing.assert_allclose(a.angles, b.angles, rtol=1e-12)


def test_vectorized_equals_per_row_and_seed_reproducible(seed):
    a = angle_experiment(np.sign, dims=[8, 32], n_trials=20, rng=seed)
    b = angle_experiment(np.sign, dims=[8, 32], n_trials=20, vectorized=True, rng=seed)
    np.testing.assert_array_equal(a.angles, b.angles)
    c = angle_experiment(np.sign, dims=[8, 32], n_trials=20, rng=seed + 1)
    assert not np.array_equal(a.angles, c.angles)


def test_dot_product_correlation_equals_cosine_for_isotropic_activations(seed):
    # Sample Pearson r of n pairs with population correlation rho: sd ~ (1 - rho^2)/sqrt(n).
    n = 3000
    res = dot_product_experiment(
        xnor_reference, "gaussian", d=256, n_outputs=12, n_samples=n, rng=seed
    )
    tol = Z * (1 - res.cosine**2) / math.sqrt(n)
    assert np.all(np.abs(res.r - res.cosine) <= tol)
    # Population slope for a fixed w is w.q / |w|^2; the least-squares slope has standard error
    # sqrt((1 - r^2) / (n - 2)) * sd(v) / sd(u).
    # The r of every output is near the d -> infinity limit sqrt(2/pi): per-output cosine sd is
    # sqrt(1 - 3/pi)/sqrt(d) (delta method), plus the sampling sd above.
    sd = math.sqrt((1 - 3 / math.pi) / 256) + (1 - 2 / math.pi) / math.sqrt(n)
    assert np.all(np.abs(res.r - res.theory.r) <= Z * sd)
    assert res.u.shape == (n,) and res.v.shape == (n,)


def test_dot_product_slope_matches_exact_value(seed):
    n = 4000
    rng = np.random.default_rng(seed)
    acts = rng.standard_normal((n, 128))
    res = dot_product_experiment(np.sign, "uniform", d=128, n_outputs=3, activations=acts, rng=seed)
    # Recover W's first row from u = A w by least squares (A has full column rank).
    w0 = np.linalg.lstsq(acts, res.u, rcond=None)[0]
    q0 = np.sign(w0)
    exact = w0 @ q0 / (w0 @ w0)
    ratio = np.std(res.v) / np.std(res.u)
    se = math.sqrt((1 - res.r[0] ** 2) / (n - 2)) * ratio
    assert abs(res.slope[0] - exact) <= Z * se
    assert abs(res.intercept[0]) <= Z * np.std(res.v - res.slope[0] * res.u) / math.sqrt(n)


def test_arcsine_law_monte_carlo(seed):
    # For the sign, cos(sign x, sign y) = mean of +-1 products: unbiased for (2/pi) arcsin rho at
    # every d, with sd over trials cos_after_std; standard error cos_after_std / sqrt(n).
    n = 100
    rho = np.array([-0.9, -0.3, 0.0, 0.5, 0.95])
    res = arcsine_experiment(np.sign, rho, d=2048, n_trials=n, vectorized=True, rng=seed)
    assert np.all(
        np.abs(res.cos_after - res.theory) <= Z * res.cos_after_std / math.sqrt(n) + 1e-12
    )
    # Before quantization: cos(x, y) of Gaussian vectors is near rho (sd about (1 - rho^2)/sqrt(d)).
    assert np.all(np.abs(res.cos_before - rho) <= Z * (1 - rho**2) / math.sqrt(2048 * n) + 1e-3)


def test_rotation_restores_the_isotropic_angle(seed):
    d = 128
    res = rotation_experiment(
        np.sign,
        d,
        [4.0, 32.0],
        covariance="exponential-spectrum",
        n_trials=120,
        n_rotations=12,
        rng=seed,
    )
    iso = expected_angle(np.sign, "gaussian", d).mean
    # se_rotated comes from the spread of the 12 per-rotation means (t with 11 dof: 4.5 is
    # beyond its 0.999 quantile of 4.4).
    assert np.all(np.abs(res.mean_rotated - iso) <= Z * res.se_rotated)
    # Without the rotation the anisotropic spectrum binarizes far worse than 37 degrees: with
    # independent coordinates of sd s_i, cos ~ sqrt(2/pi) sum(s_i) / sqrt(d sum(s_i^2)) (law of
    # large numbers over coordinates, rough at these effective dimensions): 74 and 44 degrees here.
    assert res.mean[0] > iso + np.radians(25)
    assert res.mean[1] > iso + np.radians(4)
    res = rotation_experiment(np.sign, d, [2.0], covariance="exponential", n_trials=60, rng=seed)
    assert abs(res.mean_rotated[0] - iso) <= Z * res.se_rotated[0]


def test_experiment_errors():
    with pytest.raises(TypeError, match="quantizer must be a callable"):
        angle_experiment(3)
    with pytest.raises(ValueError, match="dims must be in"):
        angle_experiment(np.sign, dims=[0, 4])
    with pytest.raises(ValueError, match="dims must hold at least one"):
        angle_experiment(np.sign, dims=[])
    with pytest.raises(ValueError, match="n_trials must be in"):
        angle_experiment(np.sign, n_trials=1)
    with pytest.raises(ValueError, match="quantizer must return an array of its input's shape"):
        angle_experiment(lambda x: x[:1], dims=[4], n_trials=2)
    with pytest.raises(ValueError, match="d must be in"):
        dot_product_experiment(np.sign, d=0)
    with pytest.raises(ValueError, match=r"activations must have shape \(n_samples, 8\)"):
        dot_product_experiment(np.sign, d=8, activations=np.ones((10, 9)))
    with pytest.raises(ValueError, match=r"rho must lie in \[-1, 1\]"):
        arcsine_experiment(np.sign, rho=[0.5, 2.0])
    with pytest.raises(ValueError, match="covariance must be"):
        rotation_experiment(np.sign, covariance="banded")
    with pytest.raises(ValueError, match="length_scales must be positive"):
        rotation_experiment(np.sign, length_scales=[0.0])
    with pytest.raises(ValueError, match="n_rotations must be in"):
        rotation_experiment(np.sign, n_trials=5, n_rotations=6)
    with pytest.raises(TypeError, match="rng must be"):
        angle_experiment(np.sign, rng="seed")


@pytest.mark.parametrize("family", ["ternary-optimal", "uniform-4", "logquant-2"])
def test_rounding_families_match_their_theory(family, seed):
    from qtoolkit import rounding
    from qtoolkit.analysis import cosine, expected_cosine

    q, nodes = {
        "ternary-optimal": (lambda x: rounding.ternarize(x, method="optimal"), 2**18),
        # The MSE range search starts from max|x|, which grows with d: predict a d-vector.
        "uniform-4": (lambda x: rounding.uniform(x, bits=4, range="mse"), 2048),
        "logquant-2": (lambda x: rounding.power_of_two(x, bits=2, fsr=1), 2**18),
    }[family]
    n, d = 60, 2048
    X = np.random.default_rng(seed).standard_normal((n, d))
    c = np.asarray(cosine(X, np.stack([q(x) for x in X])))
    # Standard error sd/sqrt(n); the finite-d bias of the cosine is O(1/d) (second-order delta
    # term, below 1/d for these bounded quantizers).
    assert (
        abs(c.mean() - expected_cosine(q, n_nodes=nodes))
        <= Z * c.std(ddof=1) / math.sqrt(n) + 1.0 / d
    )


def test_kmeans_codebook_converges_to_lloyd_max(seed):
    from qtoolkit.analysis import lloyd_max
    from qtoolkit.codebooks import KMeansQuantizer

    # Optimal 1-D k-means on n Gaussian samples estimates the Lloyd-Max levels; each level is a
    # cell mean with standard error about sd_cell / sqrt(n p_cell) <= 1 / sqrt(n * 0.1) here.
    n = 200_000
    x = np.random.default_rng(seed).standard_normal(n)
    km = KMeansQuantizer(n_clusters=4, n_threads=1).fit(x)
    lm = lloyd_max(4)
    np.testing.assert_allclose(km.codebook_, lm.levels, atol=Z / math.sqrt(n * 0.1))


def test_angle_histogram_counts_every_trial(seed):
    res = angle_experiment(np.sign, dims=[8, 128], n_trials=50, vectorized=True, rng=seed)
    counts, edges = res.histogram(12)
    assert counts.shape == (2, 12) and edges.shape == (13,)
    np.testing.assert_array_equal(counts.sum(axis=1), [50, 50])
    np.testing.assert_array_equal(counts[1], np.histogram(np.degrees(res.angles[1]), bins=edges)[0])
    _counts_rad, edges_rad = res.histogram(12, degrees=False)
    np.testing.assert_allclose(edges_rad, np.radians(edges), rtol=1e-12)
    with pytest.raises(ValueError, match="bins must be in"):
        res.histogram(0)
