"""QSGD, TernGrad and sign/error-feedback: statistics, invariants, wire round trips, errors."""

import math

import numpy as np
import pytest

import qtoolkit.gradients as qg
from qtoolkit.gradients import (
    QSGDCompressor,
    SignErrorFeedback,
    TernGradCompressor,
    _wire,
    qsgd,
    scaled_sign,
    terngrad,
)


def test_public_api_pinned():
    assert qg.__all__ == [
        "DDPCommHook",
        "QSGDCompressor",
        "SignErrorFeedback",
        "TernGradCompressor",
        "ddp_comm_hook",
        "qsgd",
        "scaled_sign",
        "terngrad",
    ]
    for name in qg.__all__:
        assert getattr(qg, name).__module__.startswith("qtoolkit.gradients")


# ---------------------------------------------------------------- QSGD


def _qsgd_exact_var(g, s):
    """Per-element variance of QSGD (a two-point distribution), from the definition."""
    norm = np.linalg.norm(g)
    r = s * np.abs(g) / norm
    f = r - np.floor(r)
    return (norm / s) ** 2 * f * (1 - f)


def test_qsgd_levels_and_signs(rng):
    g = rng.normal(size=50)
    s = 5
    q = qsgd(g, s, rng=1)
    lev = np.abs(q) * s / np.linalg.norm(g)
    np.testing.assert_allclose(lev, np.round(lev), atol=1e-9)
    r = s * np.abs(g) / np.linalg.norm(g)
    # each level is floor(r) or floor(r) + 1
    assert np.all((np.round(lev) == np.floor(r)) | (np.round(lev) == np.floor(r) + 1))
    nz = q != 0
    assert np.all(np.sign(q[nz]) == np.sign(g[nz]))
    assert np.all(np.round(lev) <= s)


def test_qsgd_unbiased_and_variance(rng):
    g = rng.normal(size=12)
    s, T = 3, 4000
    gen = np.random.default_rng(7)
    draws = np.stack([qsgd(g, s, rng=gen) for _ in range(T)])
    var = _qsgd_exact_var(g, s)
    # mean of T iid draws: standard error sqrt(var / T); 5 standard errors (+tiny for var = 0)
    assert np.all(np.abs(draws.mean(0) - g) <= 5 * np.sqrt(var / T) + 1e-12)
    total = ((draws - g) ** 2).sum(1)
    # E||Q-g||^2 = sum(var); its per-draw std is below (||g||/s)^2 * n / 2, so 5 s.e. suffice
    se = (np.linalg.norm(g) / s) ** 2 * g.size / 2 / math.sqrt(T)
    assert abs(total.mean() - var.sum()) <= 5 * se
    bound = QSGDCompressor(n_levels=s).variance_bound(g)
    n = g.size
    assert bound == pytest.approx(min(n / s**2, math.sqrt(n) / s) * np.sum(g**2))
    assert var.sum() <= bound


def test_qsgd_zero_gradient_and_dtypes(float_dtype):
    z = np.zeros((3, 4), dtype=float_dtype)
    q = qsgd(z, 4, rng=0)
    assert q.dtype == float_dtype and np.all(q == 0)
    g = np.linspace(-1, 1, 9).astype(float_dtype)
    q = qsgd(g, 4, rng=0)
    assert q.dtype == float_dtype and q.shape == g.shape
    comp = QSGDCompressor(n_levels=4, rng=3)
    out = comp.decode(comp.encode(g))
    assert out.dtype == float_dtype
    np.testing.assert_array_equal(out, QSGDCompressor(n_levels=4, rng=3).compress(g))


@pytest.mark.parametrize("coding", ["elias", "packed"])
@pytest.mark.parametrize("shape", [(0,), (1,), (13,), (4, 7), (2, 3, 65)])
@pytest.mark.parametrize("levels", [1, 2, 9, 1000])
def test_qsgd_wire_roundtrip_exact(coding, shape, levels):
    g = np.random.default_rng(sum(shape) + levels).standard_t(3, size=shape)
    enc = QSGDCompressor(n_levels=levels, coding=coding, rng=11)
    ref = QSGDCompressor(n_levels=levels, coding=coding, rng=11)
    for _ in range(2):  # the generator advances identically
        out = enc.decode(enc.encode(g))
        want = ref.compress(g)
        assert out.shape == g.shape and out.dtype == g.dtype
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("bucket", [1, 5, 13, 64])
@pytest.mark.parametrize("coding", ["elias", "packed"])
def test_qsgd_buckets_roundtrip_and_levels(rng, bucket, coding):
    g = rng.normal(size=(3, 13))
    enc = QSGDCompressor(n_levels=4, coding=coding, bucket_size=bucket, rng=2)
    ref = QSGDCompressor(n_levels=4, coding=coding, bucket_size=bucket, rng=2)
    q = enc.decode(enc.encode(g))
    np.testing.assert_array_equal(q, ref.compress(g))
    # each bucket has its own norm: |q| * s / ||g_bucket|| is an integer in [0, s]
    flat, qf = g.ravel(), q.ravel()
    for start in range(0, flat.size, bucket):
        sl = slice(start, start + bucket)
        lev = np.abs(qf[sl]) * 4 / np.linalg.norm(flat[sl])
        np.testing.assert_allclose(lev, np.round(lev), atol=1e-9)
        assert lev.max() <= 4 + 1e-9


def test_qsgd_buckets_unbiased_variance_and_bound(rng):
    g = rng.normal(size=12)
    s, d, T = 2, 4, 4000
    gen = np.random.default_rng(9)
    draws = np.stack([qsgd(g, s, bucket_size=d, rng=gen) for _ in range(T)])
    var = np.concatenate([_qsgd_exact_var(g[i : i + d], s) for i in range(0, 12, d)])
    assert np.all(np.abs(draws.mean(0) - g) <= 5 * np.sqrt(var / T) + 1e-12)
    bound = QSGDCompressor(n_levels=s, bucket_size=d).variance_bound(g)
    assert bound == pytest.approx(min(d / s**2, math.sqrt(d) / s) * np.sum(g**2))
    assert var.sum() <= bound
    # one bucket covering the array is the unbucketed quantizer
    np.testing.assert_array_equal(qsgd(g, s, bucket_size=12, rng=1), qsgd(g, s, rng=1))
    np.testing.assert_array_equal(qsgd(g, s, bucket_size=100, rng=1), qsgd(g, s, rng=1))


def _elias_len(v):
    return sum(2 * (int(x).bit_length() - 1) + 1 for x in v)


def test_qsgd_elias_message_size_matches_code_lengths(rng):
    n = 4096
    g = rng.normal(size=n)
    s = int(math.sqrt(n))
    comp = QSGDCompressor(n_levels=s, coding="elias", rng=0)
    data = comp.encode(g)
    q = comp.decode(data)
    lev = np.round(np.abs(q) * s / np.linalg.norm(g)).astype(int)
    nz = np.flatnonzero(lev)
    gaps = np.diff(np.concatenate([[-1], nz]))
    payload = _elias_len(gaps) + _elias_len(lev[nz]) + nz.size
    header = 2 + 3 + 8 + 13 + 8 + 8  # magic, codes, shape, s+coding+bucket, norm, nnz
    assert len(data) == header + math.ceil(payload / 8)
    assert comp.bits_per_element_ == 8 * len(data) / n
    # far below 64-bit floats; the paper quotes about 2.8 bits per element at s = sqrt(n)
    assert comp.bits_per_element_ < 4


def test_qsgd_packed_message_size(rng):
    g = rng.normal(size=1001)
    comp = QSGDCompressor(n_levels=7, coding="packed", rng=0)
    data = comp.encode(g)
    assert len(data) == 2 + 3 + 8 + 13 + 8 + math.ceil(1001 * 4 / 8)  # 3 level bits + sign


def test_elias_gamma_against_string_reference():
    values = np.array([1, 2, 3, 4, 5, 7, 8, 1, 100, 1023, 1024, 2**40 + 3], dtype=np.uint64)
    prefix, suffix = "", ""
    for v in values.tolist():
        b = bin(v)[2:]
        prefix += "0" * (len(b) - 1) + "1"
        suffix += b[1:]
    bits = _wire.elias_gamma_bits(values)
    assert "".join(map(str, bits.tolist())) == prefix + suffix
    back, used = _wire.elias_gamma_decode(np.concatenate([bits, [1, 0, 1]]), values.size)
    np.testing.assert_array_equal(back, values)
    assert used == bits.size


def test_qsgd_array_api_strict():
    xp = pytest.importorskip("array_api_strict")
    g = xp.asarray([0.5, -1.5, 2.0, 0.0], dtype=xp.float32)
    q = qsgd(g, 4, rng=2)
    assert type(q) is type(g) and q.dtype == xp.float32
    want = qsgd(np.asarray([0.5, -1.5, 2.0, 0.0], dtype=np.float32), 4, rng=2)
    np.testing.assert_allclose(np.from_dlpack(q), want, rtol=1e-6)


def test_qsgd_torch():
    torch = pytest.importorskip("torch")
    g = torch.linspace(-1, 1, 17, dtype=torch.float64)
    q = qsgd(g, 3, rng=5)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float64
    np.testing.assert_array_equal(q.numpy(), qsgd(g.numpy(), 3, rng=5))
    comp = QSGDCompressor(n_levels=3, rng=5)
    np.testing.assert_array_equal(comp.decode(comp.encode(g)), q.numpy())
    qb = qsgd(g, 3, bucket_size=5, rng=5)
    np.testing.assert_array_equal(qb.numpy(), qsgd(g.numpy(), 3, bucket_size=5, rng=5))
    t = terngrad(g, clip=2.5, rng=5)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), terngrad(g.numpy(), clip=2.5, rng=5))
    e = SignErrorFeedback(scale="two_level")
    np.testing.assert_array_equal(e.compress(g).numpy(), scaled_sign(g.numpy(), scale="two_level"))


# ---------------------------------------------------------------- TernGrad


def test_terngrad_values_unbiased_variance(rng):
    g = rng.normal(size=10)
    s = np.abs(g).max()
    T = 4000
    gen = np.random.default_rng(3)
    draws = np.stack([terngrad(g, rng=gen) for _ in range(T)])
    assert set(np.unique(np.abs(draws))) <= {0.0, s}
    assert np.all(draws * np.sign(g) >= 0)
    var = s * np.abs(g) - g**2  # Bernoulli(|g|/s) scaled by s
    assert np.all(np.abs(draws.mean(0) - g) <= 5 * np.sqrt(var / T) + 1e-12)
    exact = TernGradCompressor().variance_bound(g)
    assert exact == pytest.approx(var.sum())
    se = np.sqrt(((s * np.abs(g)) ** 2).sum() / T) * 2
    assert abs(((draws - g) ** 2).sum(1).mean() - exact) <= 5 * se


def test_terngrad_clipping_constant_gradient_is_kept():
    g = np.full(6, -0.5)  # std 0: clipping must not zero the gradient
    np.testing.assert_array_equal(terngrad(g, clip=2.5, rng=0), g)


def test_terngrad_clipping(rng):
    g = rng.normal(size=500)
    g[3] = 40.0  # an outlier
    c = 2.5 * g.std()
    q = terngrad(g, clip=2.5, rng=0)
    assert np.abs(q).max() == pytest.approx(c)
    comp = TernGradCompressor(clip=2.5)
    gc = np.clip(g, -c, c)
    assert comp.variance_bound(g) == pytest.approx(c * np.abs(gc).sum() - (gc**2).sum())


@pytest.mark.parametrize("shape", [(0,), (1,), (5,), (6,), (3, 11)])
def test_terngrad_wire_roundtrip(shape, float_dtype):
    g = np.random.default_rng(len(shape)).normal(size=shape).astype(float_dtype)
    enc, ref = TernGradCompressor(clip=2.5, rng=4), TernGradCompressor(clip=2.5, rng=4)
    data = enc.encode(g)
    out = enc.decode(data)
    assert out.dtype == float_dtype and out.shape == g.shape
    np.testing.assert_array_equal(out, ref.compress(g))
    wd = 4 if float_dtype == np.float16 else np.dtype(float_dtype).itemsize
    assert len(data) == 2 + 3 + 8 * len(shape) + wd + math.ceil(g.size / 5)


# ---------------------------------------------------------------- sign + error feedback


def test_scaled_sign_closed_forms(rng):
    g = rng.normal(size=101)
    q = scaled_sign(g)
    np.testing.assert_allclose(q, np.abs(g).mean() * np.where(g >= 0, 1, -1))
    err = ((g - q) ** 2).sum()
    assert err == pytest.approx((g**2).sum() - np.abs(g).sum() ** 2 / g.size)
    q2 = scaled_sign(g, scale="two_level")
    assert np.allclose(q2[g >= 0], g[g >= 0].mean())
    assert np.allclose(q2[g < 0], g[g < 0].mean())
    assert ((g - q2) ** 2).sum() <= err
    np.testing.assert_array_equal(scaled_sign(np.array([0.0, -2.0]), scale=None), [1.0, -1.0])


@pytest.mark.parametrize("scale, steps", [(None, 30), ("mean", 6)])
def test_error_feedback_accounting_exact_on_dyadics(scale, steps):
    # integer gradients, 8 elements: means divide by 8, so every value stays a dyadic
    # rational with few bits and every sum below is exact in float64
    gen = np.random.default_rng(0)
    ef = SignErrorFeedback(scale=scale)
    sent = np.zeros(8)
    total = np.zeros(8)
    for _ in range(steps):
        g = gen.integers(-8, 9, size=8).astype(np.float64)
        total += g
        sent += ef.compress(g)
    assert np.all(sent + ef.error_ == total)


@pytest.mark.parametrize("scale", ["mean", "two_level", None])
def test_error_feedback_accounting_float(rng, scale):
    ef = SignErrorFeedback(scale=scale)
    total = np.zeros(257, dtype=np.float32)
    sent = np.zeros(257, dtype=np.float64)
    total64 = np.zeros(257)
    for _ in range(50):
        g = rng.normal(size=257).astype(np.float32)
        total64 += g
        sent += ef.compress(g)
    # one float32 rounding of g + e per step: 50 * eps * max|g + e| bounds the drift
    np.testing.assert_allclose(sent + ef.error_, total64, atol=50 * 6e-8 * 10)
    assert total.dtype == ef.error_.dtype


def test_error_feedback_wire_and_state(rng):
    a, b = SignErrorFeedback(scale="two_level"), SignErrorFeedback(scale="two_level")
    for _ in range(3):
        g = rng.normal(size=(5, 9))
        out = a.decode(a.encode(g))
        np.testing.assert_array_equal(out, b.compress(g))
        assert out.shape == (5, 9)
    np.testing.assert_array_equal(a.error_, b.error_)
    assert a.bits_per_element_ == 8 * (2 + 3 + 16 + 16 + math.ceil(45 / 8)) / 45
    with pytest.raises(ValueError, match="shape and dtype"):
        a.compress(np.zeros(3))
    assert a.reset().error_ is None
    p = rng.normal(size=30)
    ef = SignErrorFeedback()
    bound = ef.variance_bound(p)
    assert bound == pytest.approx((p**2).sum() - np.abs(p).sum() ** 2 / 30)
    assert bound <= (1 - 1 / 30) * (p**2).sum()


def test_scaled_sign_array_api_strict():
    xp = pytest.importorskip("array_api_strict")
    g = xp.asarray([1.0, -3.0, 0.0, 4.0])
    q = scaled_sign(g)
    assert type(q) is type(g)
    np.testing.assert_array_equal(np.from_dlpack(q), [2.0, -2.0, 2.0, 2.0])
    ef = SignErrorFeedback()
    ef.compress(g)
    assert type(ef.error_) is type(g)


# ---------------------------------------------------------------- bad input


def test_bad_inputs():
    g = np.ones(4)
    with pytest.raises(ValueError, match="g contains NaN or Inf"):
        qsgd(np.array([1.0, np.nan]), 4)
    with pytest.raises(TypeError, match="g must be a real floating array"):
        qsgd(np.arange(4), 4)
    with pytest.raises(TypeError, match="g must be an Array API array"):
        terngrad([1.0, 2.0])
    with pytest.raises(ValueError, match=r"levels must be in \[1, "):
        qsgd(g, 0)
    with pytest.raises(TypeError, match="levels must be an integer"):
        QSGDCompressor(n_levels=2.5)
    with pytest.raises(ValueError, match=r"bucket_size must be in \[1, "):
        qsgd(g, 4, bucket_size=0)
    with pytest.raises(ValueError, match="coding must be one of"):
        QSGDCompressor(coding="huffman")
    with pytest.raises(ValueError, match="clip must be None or a positive"):
        terngrad(g, clip=-1)
    with pytest.raises(ValueError, match="scale must be one of"):
        scaled_sign(g, scale="max")
    with pytest.raises(ValueError, match="g contains NaN or Inf"):
        SignErrorFeedback().compress(np.array([np.inf]))
    data = QSGDCompressor(rng=0).encode(g)
    with pytest.raises(ValueError, match="holds a QSGD message, expected TernGrad"):
        TernGradCompressor().decode(data)
    with pytest.raises(ValueError, match="truncated"):
        QSGDCompressor().decode(data[:22])
    with pytest.raises(ValueError, match="not a qtoolkit gradient message"):
        SignErrorFeedback().decode(b"xx12345")
    with pytest.raises(TypeError, match="data must be bytes"):
        QSGDCompressor().decode("QG")
    tdata = TernGradCompressor(rng=0).encode(np.ones(10))
    with pytest.raises(ValueError, match="truncated"):
        TernGradCompressor().decode(tdata[:-1])


def test_quantizers_dask_match_numpy():
    da = pytest.importorskip("dask.array")
    x = np.linspace(-1, 1, 10)
    g = da.from_array(x, chunks=5)
    np.testing.assert_allclose(np.asarray(qsgd(g, 4, rng=0)), qsgd(x, 4, rng=0), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(terngrad(g, clip=2.5, rng=1)), terngrad(x, clip=2.5, rng=1), rtol=1e-12
    )
    np.testing.assert_allclose(
        np.asarray(scaled_sign(g, scale="two_level")), scaled_sign(x, scale="two_level"), rtol=1e-12
    )


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    g=arrays(np.float32, st.integers(0, 40), elements=_finite),
    levels=st.integers(1, 300),
    coding=st.sampled_from(["elias", "packed"]),
    bucket=st.one_of(st.none(), st.integers(1, 50)),
    seed=st.integers(0, 2**16),
)
def test_wire_roundtrip_property(g, levels, coding, bucket, seed):
    enc = QSGDCompressor(levels, coding, bucket_size=bucket, rng=seed)
    ref = QSGDCompressor(levels, coding, bucket_size=bucket, rng=seed)
    np.testing.assert_array_equal(enc.decode(enc.encode(g)), ref.compress(g))
    t_enc, t_ref = TernGradCompressor(rng=seed), TernGradCompressor(rng=seed)
    np.testing.assert_array_equal(t_enc.decode(t_enc.encode(g)), t_ref.compress(g))
    s_enc, s_ref = SignErrorFeedback(), SignErrorFeedback()
    np.testing.assert_array_equal(s_enc.decode(s_enc.encode(g)), s_ref.compress(g))


@pytest.mark.parametrize("width", [1, 3, 8, 13, 25, 26, 40])
def test_fixed_width_fields_roundtrip(width):
    v = np.random.default_rng(width).integers(0, 2**width, size=77, dtype=np.uint64)
    bits = _wire.uint_bits(v, width)
    ref = "".join(format(int(x), f"0{width}b") for x in v)
    assert "".join(map(str, bits.tolist())) == ref
    data = b"xy" + np.packbits(bits).tobytes()
    np.testing.assert_array_equal(_wire.read_fields(data, 2, width, 77), v)
    np.testing.assert_array_equal(_wire.bits_uint(bits, width, 77), v)


@pytest.mark.parametrize(
    "make",
    [
        lambda: QSGDCompressor(n_levels=5, rng=3),
        lambda: QSGDCompressor(n_levels=5, coding="packed", bucket_size=16, rng=3),
        lambda: TernGradCompressor(clip=2.5, rng=3),
        lambda: SignErrorFeedback(),
    ],
)
def test_compressor_wire_contract(make, rng):
    # one contract (qtoolkit.gradients._wire.WireCompressor) for every compressor
    g = rng.normal(size=(7, 9))
    a, b = make(), make()
    data = a.encode(g)
    assert isinstance(data, bytes)
    np.testing.assert_array_equal(a.decode(data), b.compress(g))  # same step, bit for bit
    assert a.bits_per_element_ == 8 * len(data) / g.size
    for bad in (data[:-1], data + b"\0"):
        with pytest.raises(ValueError, match="data"):
            a.decode(bad)
    with pytest.raises(ValueError, match="max_elements"):
        a.decode(data, max_elements=g.size - 1)
    with pytest.raises(TypeError, match="data"):
        a.decode(list(data))
    assert isinstance(a.variance_bound(g), float)
