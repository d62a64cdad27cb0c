"""Conv2d against a direct-loop convolution written in the tests: every mode, stride, padding,
dilation, groups, channel counts off the 64-bit word, NHWC = NCHW, padding semantics, errors."""

import numpy as np
import pytest

from qtoolkit.bitops import available_simd_levels, pack_bits, simd_level
from qtoolkit.nn import Conv2d
from qtoolkit.rounding import decode, encode, get

MODES = [
    (w, a)
    for w in ["binary", "ternary", 2, 4, 8]
    for a in [None, "binary", "ternary", 8]
    if not (isinstance(w, int) and a in ("binary", "ternary"))
]
# (in, out, groups, kernel, stride, padding, dilation, H, W)
GEOMETRIES = [
    (6, 4, 2, 3, 1, 1, 1, 7, 8),
    (70, 5, 1, 3, 2, 2, 2, 9, 7),
    (4, 8, 4, (2, 3), (1, 2), (1, 0), 1, 6, 7),
    (130, 3, 1, 1, 1, 0, 1, 4, 5),
    (64, 4, 1, 3, 1, (0, 2), (2, 1), 7, 6),
    (3, 2, 1, 5, 3, 4, 1, 5, 5),  # padding wider than half the kernel: taps wholly outside
]


def quantized_weight(w, weights):
    """Per-output-channel rule of each weight mode, computed independently."""
    o = w.shape[0]
    flat = w.reshape(o, -1).astype(np.float64)
    if weights == "binary":
        alpha = np.abs(flat).mean(axis=1, keepdims=True).astype(np.float32)
        return (np.where(flat >= 0, 1.0, -1.0) * alpha).reshape(w.shape)
    if weights == "ternary":
        gamma = np.abs(flat).mean(axis=1, keepdims=True).astype(np.float32)
        return (np.clip(np.rint(flat / gamma), -1, 1) * gamma).reshape(w.shape)
    return decode(encode(w, bits=weights, axis=0)).astype(np.float64)


@pytest.mark.parametrize(("weights", "activations"), MODES)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_conv_matches_direct_loop(rng, ref, weights, activations, geometry):
    c, o, groups, k, stride, padding, dilation, h, wd = geometry
    kernel = (k, k) if isinstance(k, int) else k
    w = rng.standard_normal((o, c // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    x = rng.standard_normal((2, c, h, wd)).astype(np.float32)
    conv = Conv2d.from_float(
        w,
        b,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        weights=weights,
        activations=activations,
    )
    w_ref = quantized_weight(w, weights)
    np.testing.assert_allclose(conv.weight, w_ref, rtol=1e-6, atol=1e-7)
    xa = ref.per_sample(x, activations)
    expected = ref.conv2d_direct(xa, w_ref, b, conv.stride, conv.padding, conv.dilation, groups)
    y = conv.forward(x)
    assert y.shape == expected.shape == conv.output_shape(x.shape) and y.dtype == np.float32
    tol = 1e-5 * (
        ref.conv2d_direct(
            np.abs(xa), np.abs(w_ref), None, conv.stride, conv.padding, conv.dilation, groups
        )
        + 1
    )
    assert np.all(np.abs(y - expected) <= tol)
    np.testing.assert_allclose(conv.dequantized().forward(x), y, rtol=1e-5, atol=1e-4)
    # NHWC gives the same numbers, bit for bit
    nhwc = Conv2d.from_float(
        w,
        b,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        weights=weights,
        activations=activations,
        data_format="NHWC",
    )
    y_nhwc = nhwc.forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(y_nhwc.transpose(0, 3, 1, 2), y)


def test_binary_padding_counts_zero_on_toy_case():
    # one channel of +1 inputs, a 3x3 filter of +1: every valid tap adds alpha = 1, padded taps 0
    conv = Conv2d.from_float(
        np.ones((1, 1, 3, 3), np.float32), padding=1, weights="binary", activations="binary"
    )
    y = conv.forward(np.full((1, 1, 3, 4), 0.5, np.float32))[0, 0]
    np.testing.assert_array_equal(y, [[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]])
    # negative inputs: sign -1 everywhere inside, still 0 from the padding
    y = conv.forward(np.full((1, 1, 3, 4), -2.0, np.float32))[0, 0]
    np.testing.assert_array_equal(y, -np.array([[4, 6, 6, 4], [6, 9, 9, 6], [4, 6, 6, 4]]))


@pytest.mark.parametrize("weights", ["binary", "ternary"])
def test_binary_conv_at_every_simd_level_and_thread_count(rng, weights):
    w = rng.standard_normal((16, 96, 3, 3)).astype(np.float32)
    x = rng.standard_normal((2, 96, 6, 6)).astype(np.float32)
    results = []
    for level in available_simd_levels():
        with simd_level(level):
            for n_threads in (1, 2):
                conv = Conv2d.from_float(
                    w, padding=1, weights=weights, activations="binary", n_threads=n_threads
                )
                results.append(conv.forward(x))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_from_codes_and_quantizer(rng, ref):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    for q in [
        encode(w, bits=4, axis=0),
        encode(w, bits=3, mode="asymmetric", axis=0),
        get("binary", scale="mean", axis=0).encode(w),
    ]:
        conv = Conv2d(q, padding=1)
        np.testing.assert_allclose(conv.weight, decode(q), rtol=1e-6, atol=1e-7)
    q = get("codebook", codebook=np.array([-1.5, -0.4, 0.3, 1.2])).encode(w)
    conv = Conv2d(q, padding=1, activations=8)
    assert conv.weights == "codebook"
    expected = ref.conv2d_direct(ref.per_sample(x, 8), conv.weight, None, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-5, atol=1e-4)
    # with channel groups every group shares the one codebook
    wg = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    qg = get("codebook", codebook=np.array([-1.5, -0.4, 0.3, 1.2])).encode(wg)
    for act in (None, 8):
        conv = Conv2d(qg, padding=1, groups=2, activations=act)
        book = np.rint(qg.codebook / (1.5 / 127)) * (1.5 / 127)  # the int8-rounded codebook
        np.testing.assert_allclose(conv.weight, book[np.asarray(qg.codes)], rtol=1e-6)
        xg = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
        inp = xg if act is None else ref.per_sample(xg, 8)
        expected = ref.conv2d_direct(inp, conv.weight, None, (1, 1), (1, 1), (1, 1), 2)
        np.testing.assert_allclose(conv.forward(xg), expected, rtol=1e-5, atol=1e-4)
    quantizer = get("ternary", method="optimal", axis=0)
    conv = Conv2d.from_float(w, weights="ternary", activations="ternary", quantizer=quantizer)
    np.testing.assert_allclose(conv.weight, quantizer(w), rtol=1e-6)
    assert conv.forward(x).shape == (1, 4, 3, 3)


@pytest.mark.parametrize(("weights", "activations"), [("binary", "binary"), (4, 8)])
def test_fold_batch_norm(rng, weights, activations):
    w = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
    x = rng.standard_normal((2, 16, 5, 5)).astype(np.float32)
    mean, var = rng.standard_normal(6), rng.uniform(0.5, 2, 6)
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    conv = Conv2d.from_float(w, padding=1, groups=2, weights=weights, activations=activations)
    folded = conv.fold_batch_norm(mean, var, gamma, beta)
    s = (gamma / np.sqrt(var + 1e-5))[None, :, None, None]
    expected = (conv.forward(x) - mean[None, :, None, None]) * s + beta[None, :, None, None]
    np.testing.assert_allclose(folded.forward(x), expected, rtol=1e-4, atol=1e-4)
    assert folded.weights == conv.weights and folded.nbytes == conv.nbytes + 6 * 4


def test_size_report(rng):
    w = rng.standard_normal((32, 64, 3, 3)).astype(np.float32)
    floats = Conv2d(w).size_report()
    assert floats.bits_per_weight == 32.0 and floats.n_weights == w.size
    binary = Conv2d.from_float(w, weights="binary", activations="binary").size_report()
    # one bit per weight (64 channels fill a word; rows in bitops' padded word layout) plus one
    # float32 scale per filter
    rows = pack_bits(np.ones((32, 9 * 64)))
    assert binary.weight_bytes == rows.words.nbytes + 32 * 4
    assert binary.bits_per_weight == 8 * binary.weight_bytes / w.size


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_empty_batch(rng, data_format):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    shape = (0, 3, 5, 5) if data_format == "NCHW" else (0, 5, 5, 3)
    for weights, acts in [("binary", "binary"), ("ternary", "ternary"), (4, 8), ("binary", None)]:
        conv = Conv2d.from_float(
            w, np.ones(4), padding=1, weights=weights, activations=acts, data_format=data_format
        )
        y = conv.forward(np.zeros(shape, np.float32))
        assert y.shape == conv.output_shape(shape) and y.shape[0] == 0 and y.dtype == np.float32


def test_errors(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="weight must be 4-D"):
        Conv2d.from_float(w[0], weights="binary")
    with pytest.raises(ValueError, match="data_format must be 'NCHW' or 'NHWC', got 'CHWN'"):
        Conv2d.from_float(w, weights="binary", data_format="CHWN")
    with pytest.raises(ValueError, match="stride must be >= 1"):
        Conv2d.from_float(w, weights="binary", stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        Conv2d.from_float(w, weights="binary", padding=(1, -1))
    with pytest.raises(TypeError, match="dilation must be an int or a pair of ints"):
        Conv2d.from_float(w, weights="binary", dilation=1.5)
    with pytest.raises(ValueError, match="dilation must be an int or a pair of ints"):
        Conv2d.from_float(w, weights="binary", dilation=(1, 1, 1))
    with pytest.raises(ValueError, match="groups=3 must divide the 4 output channels"):
        Conv2d.from_float(w, weights="binary", groups=3)
    with pytest.raises(ValueError, match="groups must be >= 1"):
        Conv2d.from_float(w, weights="binary", groups=0)
    with pytest.raises(ValueError, match="4-bit weights need activations None or 8"):
        Conv2d.from_float(w, weights=4, activations="ternary")
    with pytest.raises(ValueError, match="per-group scales are supported for Linear only"):
        Conv2d(encode(rng.standard_normal((4, 3, 3, 32)).astype(np.float32), bits=4, group_size=32))
    conv = Conv2d.from_float(w, weights="binary", activations="binary")
    with pytest.raises(ValueError, match="x has 4 channels but the layer has in_channels=3"):
        conv.forward(np.ones((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        conv.forward(np.ones((1, 3, 2, 5)))
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\)"):
        conv.forward(np.ones((3, 5, 5)))
    with pytest.raises(ValueError, match="NaN"):
        conv.forward(np.full((1, 3, 5, 5), np.nan))
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        Conv2d(w, activations=8).forward(np.full((1, 3, 5, 5), np.inf))


# binary x binary geometries of the packed path: channel counts off the 8-, 32- and 64-channel
# blocks of the packing, pixel counts off its 8-pixel blocks, groups, dilation with padding,
# stride, batch 1; (in, out, groups, kernel, stride, padding, dilation, H, W, batch)
BINARY_GEOMETRIES = [
    (200, 8, 1, 3, 1, 1, 1, 5, 7, 1),
    (160, 8, 4, 3, 2, 2, 2, 9, 6, 2),
    (33, 6, 3, 3, 1, (2, 1), (2, 3), 7, 9, 3),
    (96, 4, 1, (1, 3), (2, 1), (0, 1), 1, 3, 11, 1),
    (7, 5, 1, 2, 1, 0, 1, 3, 3, 2),
    (64, 16, 2, 3, 1, 1, 1, 8, 8, 2),
]


@pytest.mark.parametrize("weights", ["binary", "ternary"])
@pytest.mark.parametrize("geometry", BINARY_GEOMETRIES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_binary_activations_match_direct_loop(rng, ref, weights, geometry, bias):
    c, o, groups, k, stride, padding, dilation, h, wd, n = geometry
    kernel = (k, k) if isinstance(k, int) else k
    w = rng.standard_normal((o, c // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    x[x.shape[0] // 2, :, 0, 0] = 0.0  # sign(0) = +1
    x[0, 0, -1, -1] = -0.0
    x[-1, -1, 0, -1] = -np.inf  # an infinity has a sign
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    conv = Conv2d.from_float(w, b, weights=weights, activations="binary", **kwargs)
    w_ref = quantized_weight(w, weights)
    xa = ref.binary_acts(x)
    expected = ref.conv2d_direct(xa, w_ref, b, conv.stride, conv.padding, conv.dilation, groups)
    tol = 1e-5 * (
        ref.conv2d_direct(
            np.ones_like(xa), np.abs(w_ref), None, conv.stride, conv.padding, conv.dilation, groups
        )
        + 1
    )
    results = []
    for level in available_simd_levels():
        with simd_level(level):
            for n_threads in (1, 2):
                for data_format in ("NCHW", "NHWC"):
                    layer = Conv2d.from_float(
                        w,
                        b,
                        weights=weights,
                        activations="binary",
                        data_format=data_format,
                        n_threads=n_threads,
                        **kwargs,
                    )
                    if data_format == "NCHW":
                        y = layer.forward(x)
                    else:
                        y = layer.forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
                        y = y.transpose(0, 3, 1, 2)
                    assert y.shape == expected.shape and y.dtype == np.float32
                    assert np.all(np.abs(y - expected) <= tol)
                    results.append(y)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    # integer part exact: with unit scales the output is the integer sum of the signs' products
    if weights == "binary":
        unit = Conv2d(
            get("binary", axis=0).encode(np.where(w >= 0, 1.0, -1.0).astype(np.float32)),
            activations="binary",
            **kwargs,
        )
        exact = ref.conv2d_direct(
            xa, np.where(w >= 0, 1.0, -1.0), None, conv.stride, conv.padding, conv.dilation, groups
        )
        np.testing.assert_array_equal(unit.forward(x), exact)


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_binary_activations_refuse_nan_at_every_level(rng, data_format):
    w = rng.standard_normal((4, 70, 3, 3)).astype(np.float32)
    conv = Conv2d.from_float(
        w, padding=1, weights="binary", activations="binary", data_format=data_format
    )
    for where in [(0, 0, 0, 0), (1, 69, 8, 8), (1, 33, 4, 2)]:  # SIMD blocks and the tails
        x = rng.standard_normal((2, 70, 9, 9)).astype(np.float32)
        x[where] = np.nan
        if data_format == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        for level in available_simd_levels():
            with simd_level(level), pytest.raises(ValueError, match="NaN, which has no sign"):
                conv.forward(x)


def test_binary_layer_after_fold_and_new_input_size(rng, ref):
    # the border term is cached per input size: a second size, and a folded copy, recompute it
    w = rng.standard_normal((6, 20, 3, 3)).astype(np.float32)
    conv = Conv2d.from_float(w, padding=1, weights="binary", activations="binary")
    w_ref = quantized_weight(w, "binary")
    for h, wd in [(5, 5), (4, 7), (5, 5)]:
        x = rng.standard_normal((1, 20, h, wd)).astype(np.float32)
        expected = ref.conv2d_direct(ref.binary_acts(x), w_ref, None, (1, 1), (1, 1), (1, 1), 1)
        np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-5, atol=1e-4)
    gamma = -np.ones(6)  # negative factors flip the scales' signs
    folded = conv.fold_batch_norm(np.zeros(6), np.full(6, 1 - 1e-5), gamma, np.zeros(6))
    np.testing.assert_allclose(folded.forward(x), -conv.forward(x), rtol=1e-5, atol=1e-5)
