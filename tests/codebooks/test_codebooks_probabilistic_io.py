"""LR-net probabilistic weights, compression accounting, save/load and the public API."""

import io
import math

import numpy as np
import pytest

import qtoolkit.codebooks as cb
from qtoolkit.codebooks import (
    EntropyConstrainedQuantizer,
    KMeansQuantizer,
    ProbabilisticWeights,
    ProductQuantizer,
    ResidualQuantizer,
    SoftQuantizer,
    bits_per_weight,
    deep_compression_ratio,
    entropy_bits,
    entropy_coded_bits,
    huffman_code_lengths,
    load_quantizer,
    pq_compression_ratio,
    rq_compression_ratio,
    save_quantizer,
)


def test_public_api_is_pinned():
    assert sorted(cb.__all__) == sorted(
        [
            "EntropyConstrainedQuantizer",
            "KMeans1DResult",
            "KMeans1DRows",
            "KMeansQuantizer",
            "PQSearchResult",
            "PreactivationMoments",
            "ProbabilisticWeights",
            "ProductQuantizer",
            "QuantizerFileError",
            "ResidualQuantizer",
            "SoftQuantizer",
            "bits_per_weight",
            "deep_compression_ratio",
            "entropy_bits",
            "entropy_coded_bits",
            "hessian_importance",
            "hessian_weighted_kmeans",
            "huffman_code_lengths",
            "kmeans_1d",
            "kmeans_1d_rows",
            "load_quantizer",
            "pq_compression_ratio",
            "rq_compression_ratio",
            "save_quantizer",
        ]
    )
    for name in cb.__all__:
        assert getattr(cb, name).__module__.startswith("qtoolkit.codebooks")


@pytest.mark.parametrize("kind", ["binary", "ternary"])
def test_probabilities_and_closed_form_moments(kind):
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.1, size=(6, 4))
    pw = ProbabilisticWeights(kind=kind).fit(w)
    p = pw.probabilities()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    c = pw.codebook_
    np.testing.assert_allclose(pw.mean(), (p * c).sum(axis=-1), rtol=1e-12)
    np.testing.assert_allclose(pw.var(), (p * c**2).sum(axis=-1) - pw.mean() ** 2, atol=1e-12)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    if kind == "binary":
        np.testing.assert_allclose(p[..., 1], sig(pw.theta_[..., 0]), rtol=1e-12)
    else:
        a, cc = pw.theta_[..., 0], pw.theta_[..., 1]
        np.testing.assert_allclose(p[..., 1], sig(cc), rtol=1e-12)
        np.testing.assert_allclose(p[..., 2], sig(a) * (1 - sig(cc)), rtol=1e-12)
        np.testing.assert_allclose(p[..., 0], (1 - sig(a)) * (1 - sig(cc)), rtol=1e-12)
    # the initialisation keeps the sign of every weight in the mean
    assert np.all(np.sign(pw.mean()) == np.sign(w))
    np.testing.assert_array_equal(pw.mode(), c[p.argmax(axis=-1)])


def test_initial_mean_tracks_weights():
    # the LR-net initialisation reproduces w where no probability is clipped
    w = np.linspace(-0.2, 0.2, 9)
    pw = ProbabilisticWeights(kind="ternary", scale=1.0).fit(w)
    np.testing.assert_allclose(pw.mean(), w, atol=1e-12)
    w = np.linspace(-0.8, 0.8, 9)
    pb = ProbabilisticWeights(kind="binary", scale=1.0).fit(w)
    np.testing.assert_allclose(pb.mean(), w, atol=1e-12)
    # clipped: p(+1 | nonzero) = 0.05 for w = -0.8, so the mean shrinks to -0.77 * 0.9
    pt = ProbabilisticWeights(kind="ternary", scale=1.0).fit(np.array([-0.8]))
    np.testing.assert_allclose(pt.mean(), [-(1 - (0.95 - 0.9 * 0.8)) * 0.9], atol=1e-12)


def test_sampling_and_preactivation_moments_match_monte_carlo():
    rng = np.random.default_rng(1)
    W = rng.normal(scale=0.5, size=(20, 3))
    h = rng.normal(size=(4, 20))
    pw = ProbabilisticWeights(kind="ternary").fit(W)
    mean, var = pw.preactivation_moments(h)
    n = 20_000
    draws = np.stack([h @ pw.sample(rng) for _ in range(n)])  # (n, 4, 3)
    # standard error of the mean: sqrt(var / n); of the variance: ~ var * sqrt(2 / n)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=5 * np.sqrt(var.max() / n))
    np.testing.assert_allclose(draws.var(axis=0), var, rtol=5 * np.sqrt(2 / n) + 0.02)
    s = np.stack([pw.sample(rng) for _ in range(4000)])
    np.testing.assert_allclose(s.mean(axis=0), pw.mean(), atol=5 * np.sqrt(pw.var().max() / 4000))
    np.testing.assert_array_equal(pw.sample(7), pw.sample(7))


def test_probabilistic_bad_input():
    with pytest.raises(ValueError, match="kind must be"):
        ProbabilisticWeights(kind="quaternary").fit([0.1])
    with pytest.raises(ValueError, match=r"p_min must be a real number in \(0, 1\)"):
        ProbabilisticWeights(p_min=0.0).fit([0.1])
    with pytest.raises(ValueError, match="p_min must be below p_max"):
        ProbabilisticWeights(p_min=0.9, p_max=0.1).fit([0.1])
    with pytest.raises(ValueError, match="scale must be None or a positive"):
        ProbabilisticWeights(scale=-1.0).fit([0.1])
    pw = ProbabilisticWeights().fit(np.zeros((3, 2)) + 0.1)
    with pytest.raises(ValueError, match=r"h must have shape \(n_samples, 3\)"):
        pw.preactivation_moments(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="needs weights of shape"):
        ProbabilisticWeights().fit([0.1, 0.2]).preactivation_moments(np.zeros((1, 2)))


def test_accounting_closed_forms():
    # Deep Compression's worked example: 16 weights, 4 shared 32-bit values -> 3.2x
    assert deep_compression_ratio(16, 4) == pytest.approx(16 * 32 / (16 * 2 + 4 * 32))
    assert bits_per_weight(1000, 256, codeword_bits=32) == pytest.approx(8 + 256 * 32 / 1000)
    assert bits_per_weight(10, 1) == pytest.approx(3.2)
    m, n, s, k = 4096, 9216, 2304, 16
    assert pq_compression_ratio((m, n), s, k) == pytest.approx(
        32 * m * n / (32 * k * n + 4 * m * s)
    )
    assert rq_compression_ratio((m, n), 2, k) == pytest.approx(
        32 * m * n / (32 * 2 * k * n + 2 * 4 * m)
    )
    with pytest.raises(ValueError, match="n_subspaces=5 must divide"):
        pq_compression_ratio((4, 8), 5, 2)
    with pytest.raises(ValueError, match="shape must be a pair of positive integers"):
        rq_compression_ratio((4,), 1, 2)


def test_entropy_and_huffman():
    rng = np.random.default_rng(2)
    for _ in range(10):
        counts = rng.integers(0, 50, size=12)
        counts[0] += 1
        lengths = huffman_code_lengths(counts)
        used = counts > 0
        # Kraft equality for a full binary tree, H <= L < H + 1
        assert np.sum(2.0 ** -lengths[used]) == pytest.approx(1.0) or used.sum() == 1
        codes = np.repeat(np.arange(12), counts)
        h = entropy_bits(codes, 12)
        p = counts[used] / counts.sum()
        assert h == pytest.approx(-(p * np.log2(p)).sum())
        avg = np.dot(counts, lengths) / counts.sum()
        assert h <= avg + 1e-12 < h + 1
        assert entropy_coded_bits(codes, 12, codeword_bits=16) == pytest.approx(
            np.dot(counts, lengths) + 12 * 16
        )
    np.testing.assert_array_equal(huffman_code_lengths([1, 1, 2, 4]), [3, 3, 2, 1])
    np.testing.assert_array_equal(huffman_code_lengths([0, 5]), [0, 1])
    assert entropy_bits([3, 3, 3]) == 0.0
    assert entropy_bits([0, 1], sample_weight=[3.0, 1.0]) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    )
    with pytest.raises(ValueError, match="codes is empty"):
        entropy_bits(np.array([], dtype=int))
    with pytest.raises(TypeError, match="integer codes"):
        entropy_bits([0.5])
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1\]"):
        entropy_bits([0, 2], n_clusters=2)
    with pytest.raises(ValueError, match="counts must be a non-empty 1-D array"):
        huffman_code_lengths([0, 0])


def _fitted_learners():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4)).astype(np.float32)
    return [
        KMeansQuantizer(n_clusters=5).fit(X),
        KMeansQuantizer(n_clusters=5, algorithm="lloyd", init=np.linspace(-1, 1, 5)).fit(X[:, 0]),
        ProductQuantizer(n_subspaces=2, n_clusters=8, random_state=0).fit(X),
        ResidualQuantizer(n_stages=2, n_clusters=4, beam_size=2, random_state=0).fit(X),
        SoftQuantizer(n_clusters=3, random_state=0).fit(X),
        EntropyConstrainedQuantizer(n_clusters=6, lam=0.05).fit(X),
        ProbabilisticWeights(kind="ternary").fit(X),
    ], X


def test_save_load_round_trip_is_bit_exact(tmp_path):
    learners, X = _fitted_learners()
    for i, est in enumerate(learners):
        path = tmp_path / f"q{i}.npz"
        save_quantizer(path, est)
        with np.load(path, allow_pickle=False) as data:  # readable without pickle
            assert "__class__" in data.files
        back = load_quantizer(path)
        assert type(back) is type(est)
        p0, p1 = est.get_params(), back.get_params()
        assert p0.keys() == p1.keys()
        for key in p0:
            if isinstance(p0[key], np.ndarray):
                np.testing.assert_array_equal(p0[key], p1[key])
            else:
                assert p0[key] == p1[key]
        for key, value in vars(est).items():
            if key.endswith("_") and not key.startswith("_"):
                got = getattr(back, key)
                if isinstance(value, np.ndarray):
                    assert got.dtype == value.dtype and got.shape == value.shape
                    assert got.tobytes() == value.tobytes()
                else:
                    assert got == value and type(got) is type(value)
        if hasattr(est, "transform"):
            Xin = (
                X[:, 0]
                if est.get_params().get("init") is not None
                and isinstance(est.get_params()["init"], np.ndarray)
                else X
            )
            np.testing.assert_array_equal(back.transform(Xin), est.transform(Xin))


def test_save_quantizer_old_argument_order_warns(tmp_path):
    q = KMeansQuantizer(n_clusters=2, random_state=0).fit([0.0, 0.1, 1.0])
    with pytest.warns(DeprecationWarning, match=r"save_quantizer\(quantizer, file\)"):
        save_quantizer(q, tmp_path / "old.npz")
    save_quantizer(tmp_path / "new.npz", q)
    for name in ("old.npz", "new.npz"):
        np.testing.assert_array_equal(load_quantizer(tmp_path / name).codebook_, q.codebook_)


def test_save_load_errors(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save_quantizer(tmp_path / "a.npz", KMeansQuantizer())
    with pytest.raises(TypeError, match="quantizer must be one of"):
        save_quantizer(tmp_path / "a.npz", object())
    q = KMeansQuantizer(n_clusters=2, random_state=np.random.default_rng(0)).fit([0.0, 1.0])
    with pytest.raises(TypeError, match="cannot be saved without pickle"):
        save_quantizer(tmp_path / "a.npz", q)
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros(2))
    buf.seek(0)
    with pytest.raises(ValueError, match="not written by save_quantizer"):
        load_quantizer(buf)
