"""ECSQ and soft-to-hard quantization: closed forms, references and limits."""

import numpy as np
import pytest

from qtoolkit.codebooks import (
    EntropyConstrainedQuantizer,
    KMeansQuantizer,
    SoftQuantizer,
    huffman_code_lengths,
)
from qtoolkit.codebooks._ecsq import lower_envelope


def test_lower_envelope_matches_dense_argmin():
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = np.sort(rng.normal(size=9))
        a = rng.uniform(0, 2, size=9)
        active, cuts = lower_envelope(c, a)
        x = np.linspace(-4, 4, 2001)
        dense = ((x[:, None] - c[None]) ** 2 + a[None]).argmin(axis=1)
        got = active[np.searchsorted(cuts, x, side="left")]

        def cost(idx, x=x, c=c, a=a):
            return (x - c[idx]) ** 2 + a[idx]

        np.testing.assert_allclose(cost(got), cost(dense), rtol=1e-12, atol=1e-12)


def test_uniform_matches_gish_pierce():
    # high-rate theory: H = h(X) - log2(step), D = step^2 / 12 for N(0, 1).
    # 2e5 samples: the plug-in entropy is within ~1e-2 of its limit at this step.
    x = np.random.default_rng(1).standard_normal(200_000)
    q = EntropyConstrainedQuantizer(method="uniform", step=0.1).fit(x)
    assert q.entropy_ == pytest.approx(0.5 * np.log2(2 * np.pi * np.e) - np.log2(0.1), abs=0.01)
    assert q.distortion_ == pytest.approx(0.01 / 12, rel=0.02)
    codes = q.transform(x)
    # codes follow the uniform cells round(x / step), renumbered in order
    cells = np.round(x / 0.1)
    np.testing.assert_array_equal(np.unique(cells, return_inverse=True)[1], codes)
    assert q.entropy_ <= q.huffman_bits_ < q.entropy_ + 1


def test_ecsq_lambda_zero_is_kmeans_and_rate_falls_with_lambda():
    x = np.random.default_rng(2).laplace(size=20_000)
    q0 = EntropyConstrainedQuantizer(n_clusters=8, lam=0.0, max_iter=1000, tol=0.0).fit(x)
    km = KMeansQuantizer(n_clusters=8, algorithm="lloyd", max_iter=1000, tol=0.0).fit(x)
    # lambda = 0: the ECSQ iterations are Lloyd's, from the same start, to the same fixed point
    np.testing.assert_allclose(q0.codebook_, km.codebook_, rtol=1e-6, atol=1e-8)
    prev_h, prev_d = np.inf, 0.0
    for lam in (0.0, 0.02, 0.1, 0.5):
        q = EntropyConstrainedQuantizer(n_clusters=8, lam=lam).fit(x)
        assert q.entropy_ <= prev_h + 1e-9
        assert q.distortion_ >= prev_d - 1e-12
        prev_h, prev_d = q.entropy_, q.distortion_
        np.testing.assert_array_equal(q.code_lengths_, huffman_code_lengths(q.probabilities_))
        codes = q.transform(x)
        np.testing.assert_allclose(np.bincount(codes) / x.size, q.probabilities_, rtol=1e-12)
        assert q.inertia_ == pytest.approx(((x - q.inverse_transform(codes)) ** 2).sum(), rel=1e-9)


def test_ecsq_objective_never_increases():
    x = np.random.default_rng(3).normal(size=5000)
    objectives = [
        EntropyConstrainedQuantizer(n_clusters=12, lam=0.1, max_iter=it, tol=0.0).fit(x).objective_
        for it in range(1, 9)
    ]
    assert np.all(np.diff(objectives) <= 1e-12)


def test_ecsq_hessian_weights_only_weigh_distortion():
    rng = np.random.default_rng(4)
    x = rng.normal(size=3000)
    h = rng.uniform(0.5, 2.0, size=3000)
    q = EntropyConstrainedQuantizer(n_clusters=6, lam=0.05).fit(x, sample_weight=h)
    codes = q.transform(x)
    np.testing.assert_allclose(
        q.codebook_, np.bincount(codes, h * x) / np.bincount(codes, h), rtol=1e-9
    )
    np.testing.assert_allclose(q.probabilities_, np.bincount(codes) / x.size, rtol=1e-12)


def test_ecsq_bad_input():
    x = np.arange(5.0)
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        EntropyConstrainedQuantizer(lam=-1.0).fit(x)
    with pytest.raises(ValueError, match="method must be"):
        EntropyConstrainedQuantizer(method="huffman").fit(x)
    with pytest.raises(ValueError, match="step must be None or a positive"):
        EntropyConstrainedQuantizer(method="uniform", step=0.0).fit(x)
    with pytest.raises(ValueError, match=r"n_clusters=8 exceeds the number of distinct values"):
        EntropyConstrainedQuantizer(n_clusters=8).fit(x)
    with pytest.raises(ValueError, match="contains NaN"):
        EntropyConstrainedQuantizer(n_clusters=2).fit(np.array([0.0, np.nan, 1.0]))


def test_soft_to_hard_limit():
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(-3, 0.3, size=(100, 2)), rng.normal(3, 0.3, size=(100, 2))])
    sq = SoftQuantizer(n_clusters=4, random_state=0).fit(X)
    hard = sq.inverse_transform(sq.transform(X))
    np.testing.assert_allclose(sq.expected_value(X, sigma=1e9), hard, atol=1e-9)
    phi_inf = sq.transform_soft(X, sigma=np.inf)
    np.testing.assert_array_equal(phi_inf.argmax(axis=1), sq.transform(X))
    # responsibilities are softmax(-sigma d^2), rows sum to one
    d = ((X[:, None, :] - sq.codebook_[None]) ** 2).sum(axis=2)
    ref = np.exp(-0.7 * (d - d.min(axis=1, keepdims=True)))
    ref /= ref.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sq.transform_soft(X, sigma=0.7), ref, rtol=1e-10, atol=1e-14)
    # the error of the soft quantization falls to the hard one as sigma grows
    errs = [((X - sq.expected_value(X, sigma=s)) ** 2).sum() for s in (0.01, 0.1, 1.0, 1e6)]
    assert errs[0] >= errs[-1]
    assert errs[-1] == pytest.approx(((X - hard) ** 2).sum(), rel=1e-6)


def test_soft_annealing_reaches_kmeans_fixed_point():
    # with a long schedule the codewords end as the means of their hard clusters
    x = np.random.default_rng(6).normal(size=(600, 1))
    sq = SoftQuantizer(n_clusters=3, max_iter=60, random_state=1).fit(x)
    codes = sq.transform(x)
    means = np.array([x[codes == j, 0].mean() for j in range(3)])
    np.testing.assert_allclose(sq.codebook_[:, 0], means, atol=1e-6)
    assert sq.inertia_ == pytest.approx(((x - sq.inverse_transform(codes)) ** 2).sum())


def test_soft_bad_input():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="sigma_growth must be a real number >= 1"):
        SoftQuantizer(n_clusters=2, sigma_growth=0.5).fit(X)
    with pytest.raises(ValueError, match="sigma must be None or a positive"):
        SoftQuantizer(n_clusters=2, sigma=-1.0).fit(X)
    with pytest.raises(ValueError, match="n_samples=10 must be at least n_clusters=20"):
        SoftQuantizer(n_clusters=20).fit(X)
    sq = SoftQuantizer(n_clusters=2, random_state=0).fit(np.arange(20.0).reshape(10, 2))
    with pytest.raises(ValueError, match="sigma must be None or a positive"):
        sq.transform_soft(X, sigma=0.0)
