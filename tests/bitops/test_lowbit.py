"""Low-bit kernels: k-bit x int8 (lowbit_gemm_int / lowbit_matmul), ternary popcount products,
dynamic activation quantization, weight packing and the .npz format.

Integer results are compared exactly with NumPy int64 references, at every SIMD level this CPU
runs and with 1 and 2 threads; float results within the float32 rounding of the scales.
"""

import io

import numpy as np
import pytest

from qtoolkit.bitops import (
    LOWBIT_BITS,
    LowBitFormatError,
    LowBitWeights,
    QuantizedActivations,
    available_simd_levels,
    load_lowbit_weights,
    lowbit_gemm_int,
    lowbit_matmul,
    pack_binary,
    pack_bits,
    pack_codebook,
    pack_quantized,
    pack_ternary,
    pack_ternary_bits,
    pack_weights,
    quantize_activations,
    save_lowbit_weights,
    show_runtime,
    simd_level,
    ternary_gemm,
)

LEVELS = available_simd_levels()
GROUPS = [None, 32, 64, 128]
SHAPES = [
    (1, 1, 1),
    (1, 33, 100),
    (3, 5, 31),
    (7, 40, 64),
    (13, 65, 200),
    (2, 31, 257),
    (6, 7, 129),
]


# ----------------------------------------------------------------------------- references
def ref_values(w):
    """Signed integer weight values v (N, K) int64, independent of the kernel layout."""
    u = w.codes().astype(np.int64)
    if w.kind == "binary":
        return 2 * u - 1
    if w.kind == "codebook":
        lut = w._lut.astype(np.int64) - 128
        return lut[u]
    k = w.shape[1]
    gsz = w.group_size or max(k, 1)
    return u - w.zero_points.astype(np.int64)[:, np.arange(k) // gsz]


def ref_gemm_int(codes, zps, w):
    """G[i, n, g] = sum_{k in g} (q - z)(v) in int64."""
    m, k = codes.shape
    n = w.shape[0]
    v = ref_values(w)
    a = codes.astype(np.int64) - np.asarray(zps, dtype=np.int64)[:, None]
    gsz = w.group_size or max(k, 1)
    g = w.n_groups
    out = np.zeros((m, n, g), dtype=np.int64)
    for j in range(g):
        sl = slice(j * gsz, min((j + 1) * gsz, k))
        out[:, :, j] = a[:, sl] @ v[:, sl].T
    return out


def ref_quantize(x, symmetric):
    """The documented float32 formulas."""
    x = np.asarray(x, dtype=np.float32)
    m, k = x.shape
    codes = np.zeros((m, k), np.int8)
    scales = np.ones(m, np.float32)
    zps = np.zeros(m, np.int32)
    for i in range(m):
        row = x[i]
        lo = min(np.float32(row.min()) if k else np.float32(0), np.float32(0))
        hi = max(np.float32(row.max()) if k else np.float32(0), np.float32(0))
        if symmetric:
            amax = max(-lo, hi)
            if amax > 0:
                inv = np.float32(127) / np.float32(amax)
                codes[i] = np.clip(np.rint(row * inv), -127, 127)
                scales[i] = np.float32(amax) / np.float32(127)
        elif hi > lo:
            rng = np.float32(hi - lo)
            inv = np.float32(255) / rng
            z = -128 - int(np.rint(np.float32(lo * inv)))
            codes[i] = np.clip(np.rint(row * inv) + np.float32(z), -128, 127)
            scales[i] = rng / np.float32(255)
            zps[i] = z
    return codes, scales, zps


def random_codes(rng, n, k, bits, signed):
    if signed:
        return rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(n, k))
    return rng.integers(0, 2**bits, size=(n, k))


def make_weights(kind, rng, n, k, bits, group_size, asym_w=True):
    g = 1 if group_size is None else max(1, -(-k // group_size))
    scales = rng.uniform(0.5, 2.0, size=(n, g))
    if kind == "uniform":
        codes = random_codes(rng, n, k, bits, signed=not asym_w)
        zps = rng.integers(0, 2**bits, size=(n, g)) if asym_w else None
        return pack_weights(codes, bits, scales=scales, zero_points=zps, group_size=group_size)
    if kind == "ternary":
        return pack_ternary(rng.integers(-1, 2, size=(n, k)), scales=scales, group_size=group_size)
    if kind == "binary":
        return pack_binary(rng.standard_normal((n, k)), scales=scales, group_size=group_size)
    cb = rng.standard_normal(16)
    return pack_codebook(rng.integers(0, 16, size=(n, k)), cb, scales=scales, group_size=group_size)


def random_acts(rng, m, k, asym):
    codes = rng.integers(-128, 128, size=(m, k)).astype(np.int8)
    zps = rng.integers(-128, 128, size=m).astype(np.int32) if asym else np.zeros(m, np.int32)
    return QuantizedActivations(codes, np.ones(m, np.float32), zps)


# ----------------------------------------------------------------------------- exact integer forms
@pytest.mark.parametrize("group_size", GROUPS, ids=lambda g: f"g{g}")
@pytest.mark.parametrize("bits", LOWBIT_BITS)
def test_uniform_int_exact_every_level(bits, group_size):
    rng = np.random.default_rng(bits * 1000 + (group_size or 0))
    for m, n, k in SHAPES:
        for asym_w in (False, True):
            w = make_weights("uniform", rng, n, k, bits, group_size, asym_w)
            for asym in (False, True):
                a = random_acts(rng, m, k, asym)
                ref = ref_gemm_int(a.codes, a.zero_points, w)
                for level in LEVELS:
                    for threads in (1, 2):
                        with simd_level(level):
                            got = lowbit_gemm_int(a, w, n_threads=threads)
                        assert got.dtype == np.int32 and got.shape == ref.shape
                        np.testing.assert_array_equal(got, ref, err_msg=f"{level} t={threads}")


@pytest.mark.parametrize("group_size", GROUPS, ids=lambda g: f"g{g}")
@pytest.mark.parametrize("kind", ["ternary", "binary", "codebook"])
def test_other_kinds_int_exact_every_level(kind, group_size):
    rng = np.random.default_rng(len(kind) * 7 + (group_size or 1))
    for m, n, k in SHAPES:
        w = make_weights(kind, rng, n, k, None, group_size)
        for asym in (False, True):
            a = random_acts(rng, m, k, asym)
            ref = ref_gemm_int(a.codes, a.zero_points, w)
            for level in LEVELS:
                for threads in (1, 2):
                    with simd_level(level):
                        got = lowbit_gemm_int(a, w, n_threads=threads)
                    np.testing.assert_array_equal(got, ref, err_msg=f"{kind} {level} t={threads}")


@pytest.mark.parametrize("k", [32736, 32768, 32800])
def test_float_zero_point_correction_long_rows(k):
    # one scale per row: the zero-point term zz * sum(a) of the float epilogue at the largest
    # row sums (all codes -128 or -127), for groups on either side of 32768 values
    rng = np.random.default_rng(k)
    w = make_weights("uniform", rng, 37, k, 4, None, asym_w=True)
    x = rng.standard_normal((7, k)).astype(np.float32)
    x[0] = -1.0  # symmetric codes -127; asymmetric codes -128
    x[1] = 1.0
    x[2, : k // 2] = -1.0
    for symmetric in (True, False):
        ref, mag = float_reference(x, w, symmetric)
        for level in LEVELS:
            for threads in (1, 2):
                with simd_level(level):
                    y = lowbit_matmul(x, w, symmetric=symmetric, n_threads=threads)
                tol = 4e-7 * (w.n_groups + 2) * mag + 1e-30
                assert np.all(np.abs(y - ref) <= tol), (level, threads, symmetric)


def test_extreme_codes_do_not_overflow_or_saturate():
    # 8-bit codes 255 against -128 activations: the vpmaddubsw pair sum would saturate int16
    n, k = 33, 4096
    w = pack_weights(np.full((n, k), 255), 8, zero_points=0)
    a = np.full((3, k), -128, dtype=np.int8)
    for level in LEVELS:
        with simd_level(level):
            got = lowbit_gemm_int(a, w)
        np.testing.assert_array_equal(got[..., 0], np.full((3, n), -128 * 255 * k))


def test_int_form_plain_codes_and_zero_sizes():
    rng = np.random.default_rng(5)
    w = make_weights("uniform", rng, 9, 70, 4, 32)
    codes = rng.integers(-128, 128, size=(4, 70)).astype(np.int8)
    np.testing.assert_array_equal(lowbit_gemm_int(codes, w), ref_gemm_int(codes, np.zeros(4), w))
    assert lowbit_gemm_int(np.zeros((0, 70), np.int8), w).shape == (0, 9, 3)
    w0 = make_weights("uniform", rng, 0, 70, 4, 32)
    assert lowbit_gemm_int(codes, w0).shape == (4, 0, 3)
    wk = pack_weights(np.zeros((5, 0), np.int64), 2)
    np.testing.assert_array_equal(lowbit_gemm_int(np.zeros((2, 0), np.int8), wk), 0)


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_activations_matches_formula(symmetric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 77)).astype(np.float32) * 3
    x[1] = 0.0  # a row of zeros
    x[2] = np.abs(x[2])  # one-signed rows
    x[3] = -np.abs(x[3])
    x[4, :5] = [0.5, -0.5, 1.5, 2.5, -2.5]  # ties
    x[4] *= 1.0 / np.float32(127)
    qa = quantize_activations(x, symmetric=symmetric, n_threads=2)
    codes, scales, zps = ref_quantize(x, symmetric)
    np.testing.assert_array_equal(qa.codes, codes)
    np.testing.assert_array_equal(qa.scales, scales)
    np.testing.assert_array_equal(qa.zero_points, zps)
    # reconstruction within half a step
    rec = qa.scales[:, None] * (qa.codes.astype(np.float32) - qa.zero_points[:, None])
    assert np.all(np.abs(rec - x) <= 0.5 * qa.scales[:, None] * (1 + 1e-5) + 1e-12)
    if symmetric:
        assert qa.codes.min() >= -127 and not qa.zero_points.any()


@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_rows_every_level_tails_and_group_sums(symmetric):
    # the fused quantization of lowbit_matmul (padded rows and group sums), at every level,
    # for K around the 8- and 32-value steps of the vector loops and every group layout
    from qtoolkit.bitops import _lowbit
    from qtoolkit.bitops._dispatch import LOWBIT, _level_id

    rng = np.random.default_rng(5)
    for k in (1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 255, 257, 1000):
        x = rng.standard_normal((5, k)).astype(np.float32) * 2
        x[1] = 0.0
        x[2] = np.abs(x[2])
        x[3] = -np.abs(x[3])
        codes, scales, zps = ref_quantize(x, symmetric)
        lda = -(-k // 32) * 32
        for gs in sorted({32, 64, 128, lda}):
            g = -(-k // gs)
            padded = np.zeros((5, lda), np.int64)
            padded[:, :k] = codes
            ref_sums = np.add.reduceat(padded, np.arange(0, lda, gs), axis=1)[:, :g]
            for level in LEVELS:
                for threads in (1, 2):
                    q = np.full((5, lda), 99, np.int8)
                    sums = np.full((5, g), 7, np.int32)
                    za = np.full(5, 7, np.int32)
                    sa = np.full(5, 7, np.float32)
                    with simd_level(level):
                        bad = _lowbit.quantize_rows(
                            x, int(not symmetric), q, gs, sums, za, sa, _level_id(LOWBIT), threads
                        )
                    msg = f"{level} k={k} gs={gs} t={threads}"
                    assert bad == 0
                    np.testing.assert_array_equal(q, padded, err_msg=msg)
                    np.testing.assert_array_equal(sums, ref_sums, err_msg=msg)
                    np.testing.assert_array_equal(za, zps, err_msg=msg)
                    np.testing.assert_array_equal(sa, scales, err_msg=msg)
        # a non-finite value anywhere is counted, at every level
        for level in LEVELS:
            y = x.copy()
            y[0, k - 1] = np.inf
            y[4, 0] = np.nan
            with simd_level(level), pytest.raises(ValueError, match="2 values"):
                quantize_activations(y, symmetric=symmetric)


def test_quantize_activations_errors():
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_activations(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_activations(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="2-D"):
        quantize_activations(np.ones(3))
    with pytest.raises(TypeError, match="real"):
        quantize_activations(np.array([["a"]]))
    with pytest.raises(TypeError, match="symmetric"):
        quantize_activations(np.ones((1, 2)), symmetric="yes")
    qa = quantize_activations(np.ones((2, 0)))
    assert qa.codes.shape == (2, 0)


# ----------------------------------------------------------------------------- float product
def value_scales(w):
    """Scales of the integer values of ref_values (codebook: times the int8 codebook step)."""
    s = w.scales.astype(np.float64)
    if w.kind == "codebook":
        cq = w._lut.astype(np.int64) - 128
        nz = cq != 0
        s = s * (w.codebook[nz][0] / cq[nz][0] if nz.any() else 1.0)
    return s


def float_reference(x, w, symmetric):
    codes, sa, za = ref_quantize(x, symmetric)
    gint = ref_gemm_int(codes, za, w).astype(np.float64)
    ref = np.einsum("ing,ng->in", gint, value_scales(w)) * sa[:, None]
    mag = np.einsum("ing,ng->in", np.abs(gint), value_scales(w)) * sa[:, None]
    return ref, mag


@pytest.mark.parametrize(
    "kind,bits",
    [("uniform", b) for b in LOWBIT_BITS] + [("ternary", 2), ("binary", 1), ("codebook", 4)],
)
@pytest.mark.parametrize("group_size", [None, 32, 128], ids=lambda g: f"g{g}")
def test_lowbit_matmul_float_every_level(kind, bits, group_size):
    rng = np.random.default_rng(11)
    for m, n, k in [(1, 70, 300), (5, 33, 129), (8, 64, 256)]:
        w = make_weights(kind, rng, n, k, bits, group_size)
        x = rng.standard_normal((m, k)).astype(np.float32)
        for symmetric in (True, False):
            ref, mag = float_reference(x, w, symmetric)
            results = []
            for level in LEVELS:
                for threads in (1, 2):
                    with simd_level(level):
                        y = lowbit_matmul(x, w, symmetric=symmetric, n_threads=threads)
                    assert y.dtype == np.float32 and y.shape == (m, n)
                    tol = 4e-7 * (w.n_groups + 2) * mag + 1e-30
                    assert np.all(np.abs(y - ref) <= tol), (level, threads)
                    results.append(y)
            # the thread count never changes the result
            for y in results[1:2]:
                np.testing.assert_array_equal(y, results[0])
            # close to the float product with the dequantized weights (activation rounding only)
            _, sa, _ = ref_quantize(x, symmetric)
            bound = 0.5 * sa[:, None] * np.abs(w.dequantize()).sum(axis=1)[None, :] * 1.001
            assert np.all(np.abs(results[0] - x @ w.dequantize().T) <= bound + 1e-4)


# ----------------------------------------------------------------------------- 16 rows and more
# (at the avx512 level these run the AMX driver where the CPU has AMX-INT8: 32-row tiles,
# partial tiles, odd superblock counts; each is also run with AMX switched off)
TALL_SHAPES = [(16, 33, 100), (33, 40, 200), (47, 32, 64), (64, 65, 257)]


def _tall_variants():
    from qtoolkit.bitops import _lowbit

    for level in LEVELS:
        yield level, True
        if level == "avx512" and _lowbit.amx_available():
            yield level, False


def _run(level, amx, fn, *args, **kwargs):
    from qtoolkit.bitops import _lowbit

    _lowbit.set_amx(amx)
    try:
        with simd_level(level):
            return fn(*args, **kwargs)
    finally:
        _lowbit.set_amx(True)


@pytest.mark.parametrize("group_size", GROUPS, ids=lambda g: f"g{g}")
@pytest.mark.parametrize(
    "kind,bits",
    [("uniform", b) for b in LOWBIT_BITS] + [("ternary", 2), ("binary", 1), ("codebook", 4)],
)
def test_tall_products_int_exact_every_level_and_amx(kind, bits, group_size):
    rng = np.random.default_rng(bits * 31 + (group_size or 3) + len(kind))
    for m, n, k in TALL_SHAPES:
        w = make_weights(kind, rng, n, k, bits, group_size)
        for asym in (False, True):
            a = random_acts(rng, m, k, asym)
            ref = ref_gemm_int(a.codes, a.zero_points, w)
            for level, amx in _tall_variants():
                for threads in (1, 2):
                    got = _run(level, amx, lowbit_gemm_int, a, w, n_threads=threads)
                    np.testing.assert_array_equal(
                        got, ref, err_msg=f"{kind} {level} amx={amx} t={threads} {m, n, k}"
                    )


@pytest.mark.parametrize("group_size", [None, 32, 64, 128], ids=lambda g: f"g{g}")
@pytest.mark.parametrize(
    "kind,bits",
    [("uniform", b) for b in LOWBIT_BITS] + [("ternary", 2), ("binary", 1), ("codebook", 4)],
)
def test_tall_products_float_amx_equals_vnni(kind, bits, group_size):
    from qtoolkit.bitops import _lowbit

    if not _lowbit.amx_available():
        pytest.skip("this CPU (or OS) gives no AMX-INT8 tiles")
    rng = np.random.default_rng(19)
    for m, n, k in TALL_SHAPES:
        w = make_weights(kind, rng, n, k, bits, group_size)
        x = rng.standard_normal((m, k)).astype(np.float32)
        for symmetric in (True, False):
            ref, mag = float_reference(x, w, symmetric)
            ys = [
                _run("avx512", amx, lowbit_matmul, x, w, symmetric=symmetric, n_threads=t)
                for amx in (True, False)
                for t in (1, 2)
            ]
            assert np.all(np.abs(ys[0] - ref) <= 4e-7 * (w.n_groups + 2) * mag + 1e-30)
            for y in ys[1:]:  # the same epilogue: bit for bit the VNNI kernel's result
                np.testing.assert_array_equal(y, ys[0])


@pytest.mark.parametrize("edge", ["all128", "one127", "one129"])
def test_amx_signed_tiles_only_where_every_value_fits(edge):
    # the AMX float path multiplies signed tiles mul q - zz when every such value fits int8:
    # 8-bit codes in [0, 255] fit only with zero point 128; one zero point of 127 (q - zz up
    # to 128) or 129 (down to -129) must send the whole product to the unsigned tiles
    from qtoolkit.bitops import _lowbit

    if not _lowbit.amx_available():
        pytest.skip("this CPU (or OS) gives no AMX-INT8 tiles")
    rng = np.random.default_rng(29)
    m, n, k = 48, 70, 300
    codes = rng.integers(0, 256, size=(n, k))
    codes[:, [0, 1, 128, 129, 256, 257]] = [0, 255] * 3  # both extremes in every group
    zps = np.full((n, 3), 128)
    if edge != "all128":
        zps[n // 2, 1] = 127 if edge == "one127" else 129
    w = pack_weights(codes, 8, scales=rng.uniform(0.5, 2.0, size=(n, 3)), zero_points=zps,
                     group_size=128)  # fmt: skip
    x = rng.standard_normal((m, k)).astype(np.float32)
    ref, mag = float_reference(x, w, True)
    ys = [_run("avx512", amx, lowbit_matmul, x, w, n_threads=1) for amx in (True, False)]
    assert np.all(np.abs(ys[1] - ref) <= 4e-7 * (w.n_groups + 2) * mag + 1e-30)
    np.testing.assert_array_equal(ys[0], ys[1])


def test_lowbit_matmul_gemv_large_and_out():
    rng = np.random.default_rng(3)
    w = make_weights("uniform", rng, 1000, 3000, 2, 128)
    x = rng.standard_normal((1, 3000)).astype(np.float32)
    ref, mag = float_reference(x, w, True)
    out = np.full((1, 1000), np.nan, dtype=np.float32)
    for level in LEVELS:
        with simd_level(level):
            y = lowbit_matmul(x, w, out=out, n_threads=2)
        assert y is out
        assert np.all(np.abs(y - ref) <= 4e-7 * (w.n_groups + 2) * mag + 1e-30)


def test_lowbit_matmul_zero_sizes_and_dtypes():
    rng = np.random.default_rng(4)
    w = make_weights("ternary", rng, 6, 40, None, None)
    assert lowbit_matmul(np.zeros((0, 40)), w).shape == (0, 6)
    np.testing.assert_array_equal(lowbit_matmul(np.zeros((3, 40)), w), 0)
    x64 = rng.standard_normal((2, 40))
    np.testing.assert_array_equal(lowbit_matmul(x64, w), lowbit_matmul(x64.astype(np.float32), w))
    wk = pack_ternary(np.zeros((4, 0)))
    np.testing.assert_array_equal(lowbit_matmul(np.zeros((2, 0)), wk), np.zeros((2, 4)))


def test_lowbit_matmul_bad_input():
    rng = np.random.default_rng(6)
    w = make_weights("uniform", rng, 5, 64, 4, 32)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    with pytest.raises(ValueError, match="K=63"):
        lowbit_matmul(x[:, :63], w)
    with pytest.raises(TypeError, match="LowBitWeights"):
        lowbit_matmul(x, np.ones((5, 64)))
    with pytest.raises(TypeError, match="float32"):
        lowbit_matmul(x, w, out=np.empty((2, 5)))
    with pytest.raises(ValueError, match="shape"):
        lowbit_matmul(x, w, out=np.empty((2, 6), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        lowbit_matmul(x, w, out=np.empty((5, 2), np.float32).T)
    with pytest.raises(ValueError, match="NaN"):
        lowbit_matmul(np.full((1, 64), np.nan), w)
    with pytest.raises(ValueError, match="n_threads"):
        lowbit_matmul(x, w, n_threads=0)
    with pytest.raises(TypeError, match="int8"):
        lowbit_gemm_int(np.zeros((2, 64), np.int16), w)
    with pytest.raises(ValueError, match="zero points"):
        lowbit_gemm_int(
            QuantizedActivations(np.zeros((1, 64), np.int8), np.ones(1), np.array([200])), w
        )


# ----------------------------------------------------------------------------- packing
def test_pack_weights_values_and_errors():
    rng = np.random.default_rng(7)
    for bits in LOWBIT_BITS:
        for group_size in GROUPS:
            n, k = 37, 150
            q = random_codes(rng, n, k, bits, signed=True)
            g = 1 if group_size is None else -(-k // group_size)
            s = rng.uniform(0.1, 1, (n, g))
            w = pack_weights(q, bits, scales=s, group_size=group_size)
            idx = np.arange(k) // (group_size or k)
            np.testing.assert_allclose(
                w.dequantize(), (q * s[:, idx]).astype(np.float32), rtol=1e-6
            )
            assert w.codes().max() < 2**bits
            assert w.bits_per_weight < bits + 1 + 40 / (group_size or k)
    with pytest.raises(ValueError, match="bits must be one of"):
        pack_weights(np.zeros((2, 2), int), 5)
    with pytest.raises(TypeError, match="bits"):
        pack_weights(np.zeros((2, 2), int), 2.0)
    with pytest.raises(ValueError, match="signed codes"):
        pack_weights(np.array([[-3, 0]]), 2)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        pack_weights(np.array([[4, 0]]), 2)
    with pytest.raises(TypeError, match="integer array"):
        pack_weights(np.zeros((2, 2)), 2)
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_weights(np.zeros((2, 64), int), 2, group_size=48)
    with pytest.raises(ValueError, match="scales"):
        pack_weights(np.zeros((2, 64), int), 2, scales=np.ones(3))
    with pytest.raises(ValueError, match="zero_points"):
        pack_weights(np.zeros((2, 64), int), 2, zero_points=300)
    with pytest.raises(ValueError, match="2-D"):
        pack_weights(np.zeros(4, int), 2)
    with pytest.raises(ValueError, match="overflow"):
        pack_weights(np.zeros((1, 40000), int), 8)
    with pytest.raises(TypeError, match="pack_weights"):
        LowBitWeights()


def test_ternary_binary_codebook_packing():
    from qtoolkit.rounding import ternarize

    rng = np.random.default_rng(8)
    w = rng.standard_normal((10, 96)).astype(np.float32)
    t = ternarize(w, axis=0)
    pt = pack_ternary(t)
    np.testing.assert_allclose(pt.dequantize(), t, rtol=1e-6)
    assert pt.kind == "ternary" and pt.bits == 2
    pb = pack_binary(w)
    alpha = np.abs(w).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(pb.dequantize(), np.where(w >= 0, alpha, -alpha), rtol=1e-6)
    cb = np.sort(rng.standard_normal(16))
    idx = rng.integers(0, 16, (10, 96))
    pc = pack_codebook(idx, cb)
    step = np.abs(cb).max() / 127
    assert np.all(np.abs(pc.dequantize() - cb[idx]) <= step / 2 + 1e-6)
    with pytest.raises(ValueError, match="16 entries"):
        pack_codebook(idx, np.zeros(17))
    with pytest.raises(ValueError, match="indices"):
        pack_codebook(idx, np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        pack_ternary(np.array([[np.nan, 1.0]]))


def test_pack_quantized_matches_decode():
    from qtoolkit.rounding import decode, encode

    rng = np.random.default_rng(9)
    w = rng.standard_normal((12, 256)).astype(np.float32)
    for kwargs in (
        {"bits": 4, "axis": 0},
        {"bits": 2, "axis": 0, "group_size": 64},
        {"bits": 8},
        {"bits": 3, "axis": 0, "mode": "asymmetric"},
        {"bits": 4, "axis": 0, "group_size": 32, "mode": "asymmetric"},
    ):
        q = encode(w, **kwargs)
        p = pack_quantized(q)
        np.testing.assert_allclose(p.dequantize(), decode(q), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="QuantizedArray"):
        pack_quantized(np.ones((2, 2)))


# ----------------------------------------------------------------------------- storage
@pytest.mark.parametrize(
    "kind,bits", [("uniform", 3), ("uniform", 8), ("ternary", 2), ("binary", 1), ("codebook", 4)]
)
def test_save_load_round_trip(kind, bits, tmp_path):
    rng = np.random.default_rng(10)
    w = make_weights(kind, rng, 7, 100, bits, 32)
    path = tmp_path / "w.npz"
    save_lowbit_weights(path, w)
    v = load_lowbit_weights(path)
    assert (v.kind, v.bits, v.shape, v.group_size) == (w.kind, w.bits, w.shape, w.group_size)
    np.testing.assert_array_equal(v.codes(), w.codes())
    np.testing.assert_array_equal(v.dequantize(), w.dequantize())
    x = rng.standard_normal((3, 100)).astype(np.float32)
    np.testing.assert_array_equal(lowbit_matmul(x, v), lowbit_matmul(x, w))


def _resave(fields, **changes):
    fields = dict(fields)
    for key, value in changes.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    buf = io.BytesIO()
    np.savez(buf, **fields)
    buf.seek(0)
    return buf


def test_load_rejects_bad_files():
    rng = np.random.default_rng(12)
    w = make_weights("uniform", rng, 5, 64, 4, 32)
    buf = io.BytesIO()
    save_lowbit_weights(buf, w)
    buf.seek(0)
    with np.load(buf) as data:
        fields = {key: data[key] for key in data.files}
    bad = [
        {"format": np.array("other")},
        {"version": np.array(2)},
        {"kind": np.array("magic")},
        {"bits": np.array(5)},
        {"shape": np.array([5, 64, 1])},
        {"shape": np.array([10**9, 10**9])},
        {"group_size": np.array(48)},
        {"codes": fields["codes"][:-1]},
        {"scales": fields["scales"][:, :1]},
        {"scales": np.full_like(fields["scales"], np.nan)},
        {"zero_points": fields["zero_points"].astype(np.int64)},
        {"zero_points": np.full_like(fields["zero_points"], 999)},
        {"codes": None},
        {"extra": np.zeros(3)},
        {"codes": np.zeros(10**6, np.uint8)},
        {"kind": np.array("ternary")},
    ]
    for change in bad:
        with pytest.raises(LowBitFormatError):
            load_lowbit_weights(_resave(fields, **change))
    with pytest.raises(LowBitFormatError):
        load_lowbit_weights(io.BytesIO(b"not a zip file"))
    with pytest.raises(TypeError, match="LowBitWeights"):
        save_lowbit_weights(io.BytesIO(), np.ones(3))


# ----------------------------------------------------------------------------- ternary popcounts
def ref_ternary(a, b):
    return np.sign(a).astype(np.int64) @ np.sign(b).astype(np.int64).T


@pytest.mark.parametrize(
    "m,n,k",
    [(1, 1, 1), (3, 5, 63), (9, 17, 64), (17, 9, 130), (8, 8, 4097), (20, 35, 1000), (1, 40, 65)],
)
def test_ternary_gemm_exact_every_level(m, n, k):
    rng = np.random.default_rng(m * n + k)
    a = rng.integers(-1, 2, size=(m, k))
    b = rng.integers(-1, 2, size=(n, k)) * rng.uniform(0.1, 2, (n, k))
    s = np.where(rng.random((n, k)) < 0.5, -1.0, 1.0)
    pa, pb, ps = pack_ternary_bits(a), pack_ternary_bits(b), pack_bits(s)
    for level in LEVELS:
        for threads in (1, 2):
            with simd_level(level):
                np.testing.assert_array_equal(
                    ternary_gemm(pa, pb, n_threads=threads), ref_ternary(a, b)
                )
                np.testing.assert_array_equal(
                    ternary_gemm(pa, ps, n_threads=threads), ref_ternary(a, s)
                )


@pytest.mark.parametrize("m,n,k", [(5, 7, 64 * 31 + 5), (4, 4, 64 * 15), (6, 9, 64 * 16 + 1)])
def test_ternary_gemm_extreme_counts_every_level(m, n, k):
    # all-agreeing and all-disagreeing rows drive every per-byte counter of the
    # nibble-table kernel to its extremes around each flush of the byte counters
    rng = np.random.default_rng(k)
    a = np.ones((m, k), dtype=np.int64)
    a[1::2] = -1
    b = np.ones((n, k), dtype=np.int64)
    b[::3] = -1
    b[2] = rng.integers(-1, 2, size=k)
    pa, pb = pack_ternary_bits(a), pack_ternary_bits(b)
    for level in LEVELS:
        for threads in (1, 2):
            with simd_level(level):
                np.testing.assert_array_equal(
                    ternary_gemm(pa, pb, n_threads=threads), ref_ternary(a, b)
                )


def test_lowbit_kernel_families_are_registered():
    from qtoolkit import _dispatch
    from qtoolkit.bitops import _lowbit

    families = _dispatch.kernel_families()
    lowbit, tern = families["bitops.lowbit"][0], families["bitops.ternary"][0]
    # the ternary kernel of each level, by the name its C selector reports
    expected = {
        "generic": "generic",
        "sse41": "generic",
        "popcnt": "popcnt",
        "avx2": "avx2-nibble-lut",
        "avx512": "avx512-vpopcntdq",
        "neon": "neon",
    }
    for level in LEVELS:
        assert (level in tern) == (level != "sse41")
        assert (level in lowbit) == (level in ("generic", "avx2", "avx512", "neon"))
        with simd_level(level):
            used, lid = _dispatch.kernel_level("bitops.ternary")
            assert used == ("generic" if level == "sse41" else level)
            assert _lowbit.kernel_names(lid)[1] == expected[level]
            used, lid = _dispatch.kernel_level("bitops.lowbit")
            assert used == (level if level in lowbit else "generic")
            assert _lowbit.kernel_names(lid)[0] is not None
    buf = io.StringIO()
    show_runtime(file=buf)
    assert "bitops.lowbit" in buf.getvalue() and "bitops.ternary" in buf.getvalue()


def test_ternary_gemm_errors_and_zero_sizes():
    a = pack_ternary_bits(np.ones((2, 10)))
    with pytest.raises(ValueError, match="same K"):
        ternary_gemm(a, pack_ternary_bits(np.ones((2, 11))))
    with pytest.raises(TypeError, match="TernaryBits"):
        ternary_gemm(np.ones((2, 10)), a)
    with pytest.raises(TypeError, match="TernaryBits or a PackedBits"):
        ternary_gemm(a, np.ones((2, 10)))
    with pytest.raises(ValueError, match="NaN"):
        pack_ternary_bits(np.array([[np.nan]]))
    with pytest.raises(TypeError, match="int32"):
        ternary_gemm(a, a, out=np.empty((2, 2)))
    assert ternary_gemm(pack_ternary_bits(np.ones((0, 10))), a).shape == (0, 2)
    e = pack_ternary_bits(np.ones((3, 0)))
    np.testing.assert_array_equal(ternary_gemm(e, e), np.zeros((3, 3)))
    out = np.empty((2, 2), np.int32)
    assert ternary_gemm(a, a, out=out) is out
    np.testing.assert_array_equal(out, 10)


def test_large_amx_output_streamed_and_unaligned():
    # outputs of 4 MiB or more are written with streaming stores where a row segment is
    # aligned; an output buffer that starts off a cache line takes the ordinary stores
    from qtoolkit.bitops import _lowbit

    if not _lowbit.amx_available():
        pytest.skip("this CPU (or OS) gives no AMX-INT8 tiles")
    rng = np.random.default_rng(23)
    m, n, k = 1040, 1030, 96
    w = make_weights("uniform", rng, n, k, 4, 32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    want = _run("avx512", False, lowbit_matmul, x, w, n_threads=2)
    for offset in (0, 1):
        raw = np.full(m * n + 16, np.nan, dtype=np.float32)
        start = (-raw.ctypes.data // 4) % 16 + offset  # 64-byte aligned, then one float off
        out = raw[start : start + m * n].reshape(m, n)
        for t in (1, 2):
            got = _run("avx512", True, lowbit_matmul, x, w, out=out, n_threads=t)
            assert got is out
            np.testing.assert_array_equal(got, want, err_msg=f"offset {offset} t={t}")


def test_amx_ukernel_repeat_counts_macs():
    from qtoolkit.bitops import _lowbit

    if not _lowbit.amx_available():
        with pytest.raises(RuntimeError, match="no AMX"):
            _lowbit.amx_ukernel_repeat(2, 4, 1)
        return
    assert _lowbit.amx_ukernel_repeat(2, 4, 3) == 3 * 32 * 32 * 4 * 32
    assert _lowbit.amx_ukernel_repeat(4, 8, 2) == 2 * 32 * 32 * 8 * 32


def test_new_buffers_start_on_a_cache_line():
    # activation codes and outputs of 256 KiB or more start on a 64-byte line (the AMX tile
    # rows and the streamed output stores need it); smaller ones are plain arrays
    from qtoolkit.bitops._buffers import _aligned_empty

    for shape, dtype in [((300, 300), np.float32), ((1024, 257), np.int8), ((0, 5), np.float32),
                         ((3,), np.int32), ((512, 512), np.int8)]:  # fmt: skip
        a = _aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        if a.nbytes >= 1 << 18:
            assert a.ctypes.data % 64 == 0
    z = _aligned_empty((700, 700), np.int8, zero=True)
    assert z.ctypes.data % 64 == 0 and not z.any()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 320)).astype(np.float32)
    w = pack_ternary(rng.integers(-1, 2, size=(300, 320)))
    y = lowbit_matmul(x, w)
    assert y.ctypes.data % 64 == 0
    np.testing.assert_array_equal(y, lowbit_matmul(x, w, out=np.empty((256, 300), np.float32)))


@pytest.mark.parametrize("where", ["none", "last_row", "last_group", "first"])
def test_one_zero_point_shortcut_only_when_every_zero_point_agrees(where):
    # weights whose zero points all agree let the one-row kernel skip reading them; one
    # differing zero point anywhere must turn that off (exact integer results either way)
    rng = np.random.default_rng(11)
    n, k, gs = 45, 200, 32
    g = -(-k // gs)
    zps = np.full((n, g), 5)
    if where == "last_row":
        zps[-1, 3] = 6
    elif where == "last_group":
        zps[7, -1] = 0
    elif where == "first":
        zps[0, 0] = 15
    w = pack_weights(rng.integers(0, 16, size=(n, k)), 4, zero_points=zps, group_size=gs)
    assert w._zz_uniform == (where == "none")
    for m in (1, 3):
        codes = rng.integers(-128, 128, size=(m, k)).astype(np.int8)
        for level in LEVELS:
            with simd_level(level):
                got = lowbit_gemm_int(codes, w)
                y = lowbit_matmul(codes.astype(np.float32), w)
            np.testing.assert_array_equal(got, ref_gemm_int(codes, np.zeros(m), w), err_msg=level)
            # float path: symmetric codes of x = codes (scale max|x| / 127), exact per group
            q, s, _ = ref_quantize(codes.astype(np.float32), True)
            gsum = ref_gemm_int(q, np.zeros(m), w)
            ref = (gsum * w.scales[None, :, :]).sum(axis=2) * s[:, None]
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-3, err_msg=level)


# ----------------------------------------------------------------------------- the C fast path
FAST_CASES = [("uniform", 4, 32), ("ternary", 2, None), ("binary", 1, 64), ("uniform", 8, None)]


@pytest.mark.parametrize("kind,bits,group_size", FAST_CASES)
def test_fast_path_equals_the_python_path(kind, bits, group_size):
    # lowbit_matmul runs the common case in C (_lowbit.matmul_fast) and anything else in
    # Python; both call the same kernel, so the results agree bit for bit
    from qtoolkit.bitops import _lowbit

    rng = np.random.default_rng(41)
    for m, n, k in [(1, 70, 300), (3, 33, 64), (40, 50, 129)]:
        w = make_weights(kind, rng, n, k, bits, group_size)
        x = rng.standard_normal((m, k)).astype(np.float32)
        for symmetric in (True, False):
            for n_threads in (None, 1, 2):
                slow = lowbit_matmul(x.tolist(), w, symmetric=symmetric, n_threads=n_threads)
                fast = _lowbit.matmul_fast(x, w, symmetric, None, n_threads)
                assert fast is not None  # the Python path has built the weights' C view
                np.testing.assert_array_equal(fast, slow)
                out = np.full((m, n), np.nan, np.float32)
                assert lowbit_matmul(x, w, symmetric=symmetric, out=out, n_threads=n_threads) is out
                np.testing.assert_array_equal(out, slow)


def test_fast_path_declines_what_it_does_not_handle():
    from qtoolkit.bitops import _lowbit
    from qtoolkit.bitops._dispatch import LOWBIT

    rng = np.random.default_rng(42)
    w = make_weights("uniform", rng, 20, 64, 4, 32)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    fresh = make_weights("uniform", rng, 20, 64, 4, 32)
    assert _lowbit.matmul_fast(x, fresh, True, None, 1) is None  # no C view built yet
    lowbit_matmul(x, w)
    assert _lowbit.matmul_fast(x, w, True, None, 1) is not None
    declined = [
        (x.astype(np.float64), w, True, None, 1),
        (np.ones((2, 128), np.float32)[:, ::2], w, True, None, 1),  # not contiguous
        (np.asfortranarray(np.ones((3, 64), np.float32)), w, True, None, 1),
        (x.byteswap().view(x.dtype.newbyteorder()), w, True, None, 1),
        (x[:, :63], w, True, None, 1),
        (x[:0], w, True, None, 1),
        (x, w, 1, None, 1),
        (x, w, True, None, True),
        (x, w, True, None, 0),
        (x, w, True, None, 2.0),
        (x, w, True, np.empty((2, 20), np.float64), 1),
        (x, w, True, np.empty((2, 21), np.float32), 1),
        (x, w, True, np.empty((20, 2), np.float32).T, 1),
        (x, "w", True, None, 1),
    ]
    ro = np.empty((2, 20), np.float32)
    ro.flags.writeable = False
    declined.append((x, w, True, ro, 1))
    for args in declined:
        assert _lowbit.matmul_fast(*args) is None
    # the level is this thread's: one the dispatch has not answered yet is left to Python
    from qtoolkit._dispatch import _KERNEL_LEVELS

    saved = dict(_KERNEL_LEVELS)
    try:
        _KERNEL_LEVELS.clear()
        with simd_level("generic"):
            assert _lowbit.matmul_fast(x, w, True, None, 1) is None
            y = lowbit_matmul(x, w)  # the Python path answers and remembers generic
            np.testing.assert_array_equal(_lowbit.matmul_fast(x, w, True, None, 1), y)
        assert (LOWBIT, "generic") in _KERNEL_LEVELS
    finally:
        _KERNEL_LEVELS.clear()
        _KERNEL_LEVELS.update(saved)


def test_fast_path_refuses_nan_like_the_python_path():
    rng = np.random.default_rng(43)
    w = make_weights("ternary", rng, 10, 40, 2, None)
    x = rng.standard_normal((2, 40)).astype(np.float32)
    lowbit_matmul(x, w)
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(1 values\)"):
        lowbit_matmul(x, w)
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(1 values\)"):
        lowbit_matmul(x.tolist(), w)


def test_weights_with_their_c_view_pickle_and_copy():
    import copy
    import pickle

    rng = np.random.default_rng(44)
    w = make_weights("uniform", rng, 30, 100, 3, None)
    x = rng.standard_normal((1, 100)).astype(np.float32)
    y = lowbit_matmul(x, w)  # builds the C view
    for w2 in (pickle.loads(pickle.dumps(w)), copy.deepcopy(w), copy.copy(w)):
        np.testing.assert_array_equal(lowbit_matmul(x, w2), y)
