"""Linear: every weight / activation mode against a float reference written here, exact integer
paths, codes from rounding, batch-norm folding, the size report and the error messages."""

import numpy as np
import pytest

from qtoolkit.nn import LayerSize, Linear
from qtoolkit.rounding import QuantizedArray, decode, encode, get, uniform

WEIGHTS = ["binary", "ternary", 2, 3, 4, 8]
ACTS = [None, "binary", "ternary", 8]
COMBOS = [
    (w, a, g)
    for w in WEIGHTS
    for a in ACTS
    for g in (None, 32)
    if not (isinstance(w, int) and a in ("binary", "ternary"))
    and not (g is not None and a in ("binary", "ternary"))
]


def reference_weight(w, weights, group_size):
    """The quantized weight by the documented rule, computed independently."""
    n, k = w.shape
    gs = k if group_size is None else group_size
    v = w.astype(np.float64).reshape(n, k // gs, gs)
    if weights == "binary":
        alpha = np.float32(np.abs(v).mean(axis=2, keepdims=True))
        return (np.where(v >= 0, 1.0, -1.0) * alpha).reshape(n, k)
    if weights == "ternary":
        gamma = np.abs(v).mean(axis=2, keepdims=True).astype(np.float32)
        t = np.clip(np.rint(v / gamma), -1, 1)
        return (t * gamma).reshape(n, k)
    return uniform(w, bits=weights, axis=0, group_size=group_size).astype(np.float64)


@pytest.mark.parametrize(("weights", "activations", "group_size"), COMBOS)
@pytest.mark.parametrize("shape", [(7, 5, 96), (1, 3, 64), (4, 9, 224)], ids=str)
def test_forward_matches_float_reference(rng, ref, weights, activations, group_size, shape):
    m, n, k = shape
    if group_size is not None and k % group_size:
        pytest.skip("group must divide K")
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    layer = Linear.from_float(w, b, weights=weights, activations=activations, group_size=group_size)
    w_ref = reference_weight(w, weights, group_size)
    np.testing.assert_allclose(layer.weight, w_ref, rtol=1e-6, atol=1e-6)
    xa = ref.quantize_rows(x, activations)
    expected = xa @ w_ref.T + b
    y = layer.forward(x)
    assert y.dtype == np.float32 and y.shape == (m, n)
    tol = 1e-5 * (np.abs(xa) @ np.abs(w_ref).T + 1)
    assert np.all(np.abs(y - expected) <= tol)
    # the float reference layer computes the same thing in float32
    np.testing.assert_allclose(layer.dequantized().forward(x), y, rtol=1e-5, atol=1e-4)
    assert layer.dequantized().weights == "float"


@pytest.mark.parametrize("k", [1, 63, 64, 65, 200])
def test_binary_binary_is_exact_xnor_product(rng, ref, k):
    w = rng.standard_normal((5, k)).astype(np.float32)
    x = rng.standard_normal((3, k)).astype(np.float32)
    layer = Linear.from_float(w, weights="binary", activations="binary")
    alpha = np.abs(w).mean(axis=1, dtype=np.float64).astype(np.float32)
    ints = (ref.binary_acts(x) @ ref.binary_acts(w).T).astype(np.int64)
    expected = ints.astype(np.float32) * alpha
    np.testing.assert_array_equal(layer.forward(x), expected)


@pytest.mark.parametrize("activations", ["binary", "ternary"])
def test_ternary_weights_exact_products(rng, ref, activations):
    w = rng.standard_normal((6, 130)).astype(np.float32)
    x = rng.standard_normal((4, 130)).astype(np.float32)
    layer = Linear.from_float(w, weights="ternary", activations=activations)
    gamma = np.abs(w).mean(axis=1, dtype=np.float64).astype(np.float32)
    t = np.clip(np.rint(w / gamma[:, None]), -1, 1)
    xa = ref.quantize_rows(x, activations)
    if activations == "binary":
        ints = xa @ t.T
        expected = ints.astype(np.float32) * gamma
    else:
        beta = np.abs(xa).max(axis=1)
        ints = np.rint(xa / np.where(beta > 0, beta, 1)[:, None]) @ t.T
        expected = (ints.astype(np.float32) * gamma) * beta.astype(np.float32)[:, None]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-6)


def test_threads_and_batch_of_one(rng):
    w = rng.standard_normal((33, 256)).astype(np.float32)
    x = rng.standard_normal((9, 256)).astype(np.float32)
    for weights, acts in [("binary", "binary"), ("ternary", 8), (4, 8), ("ternary", "ternary")]:
        one = Linear.from_float(w, weights=weights, activations=acts, n_threads=1)
        two = Linear.from_float(w, weights=weights, activations=acts, n_threads=2)
        np.testing.assert_array_equal(one.forward(x), two.forward(x))
        np.testing.assert_allclose(one.forward(x[:1]), one.forward(x)[:1], rtol=1e-6, atol=1e-6)


def test_from_codes_of_rounding(rng, ref):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    cases = [
        encode(w, bits=4, axis=0),
        encode(w, bits=4, axis=0, group_size=32),
        encode(w, bits=3, mode="asymmetric", axis=0),
        encode(w, bits=8, mode="asymmetric", axis=0, group_size=32),
        encode(w, bits=2),  # one scale for the tensor
        get("binary", scale="mean", axis=0).encode(w),
        get("ternary", method="optimal", axis=0).encode(w),
    ]
    x = rng.standard_normal((5, 64)).astype(np.float32)
    for q in cases:
        layer = Linear(q, activations=8)
        np.testing.assert_allclose(layer.weight, decode(q), rtol=1e-6, atol=1e-7)
        expected = ref.quantize_rows(x, 8) @ np.asarray(decode(q), np.float64).T
        np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activations", [None, 8])
def test_codebook_weights(rng, ref, activations):
    # k-means style weight sharing: 4-bit indices into a 6-entry codebook, per-row scales
    w = rng.standard_normal((5, 96)).astype(np.float32)
    book = np.array([-1.3, -0.6, -0.1, 0.2, 0.7, 1.5])
    idx = np.abs(w[:, :, None] - book).argmin(axis=2).astype(np.int8)
    scale = rng.uniform(0.5, 2, (5, 1)).astype(np.float32)
    q = QuantizedArray(codes=idx, scale=scale, codebook=book, bits=4, axis=(0,))
    x = rng.standard_normal((3, 96)).astype(np.float32)
    layer = Linear(q, activations=activations)
    assert layer.weights == "codebook"
    # the kernel's codebook: rounded to int8 steps of max|c| / 127
    step = np.abs(book).max() / 127
    w_ref = scale.astype(np.float64) * (np.rint(book / step) * step)[idx]
    np.testing.assert_allclose(layer.weight, w_ref, rtol=1e-6)
    expected = ref.quantize_rows(x, activations) @ w_ref.T
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-4)
    report = layer.size_report()
    mean, var = rng.standard_normal(5), rng.uniform(0.5, 2, 5)
    folded = layer.fold_batch_norm(mean, var)
    np.testing.assert_allclose(
        folded.forward(x), (layer.forward(x) - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4
    )
    # 4-bit indices, a scale and a zero point per row, the codebook (float32 and int8)
    assert 5 * 96 // 2 <= report.weight_bytes <= 5 * 96 // 2 + 5 * 8 + 16 * 5


def test_quantizer_argument(rng):
    w = rng.standard_normal((4, 96)).astype(np.float32)
    quantizer = get("ternary", method="twn", axis=0)
    layer = Linear.from_float(w, weights="ternary", quantizer=quantizer)
    np.testing.assert_allclose(layer.weight, quantizer(w), rtol=1e-6)
    with pytest.raises(ValueError, match="quantizer produced 'ternary' weights but weights=4"):
        Linear.from_float(w, weights=4, quantizer=quantizer)
    with pytest.raises(TypeError, match=r"quantizer must be a qtoolkit.rounding.Quantizer"):
        Linear.from_float(w, weights=4, quantizer="twn")


@pytest.mark.parametrize(
    ("weights", "activations"), [("binary", "binary"), ("ternary", 8), (4, None)]
)
def test_fold_batch_norm(rng, weights, activations):
    w = rng.standard_normal((6, 128)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((5, 128)).astype(np.float32)
    mean, var = rng.standard_normal(6), rng.uniform(0.5, 2, 6)
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    layer = Linear.from_float(w, b, weights=weights, activations=activations)
    folded = layer.fold_batch_norm(mean, var, gamma, beta, eps=1e-3)
    expected = (layer.forward(x) - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(folded.forward(x), expected, rtol=1e-4, atol=1e-4)
    assert folded.weights == layer.weights
    assert folded.size_report().weight_bytes == layer.size_report().weight_bytes
    with pytest.raises(ValueError, match=r"var must have shape \(6,\)"):
        layer.fold_batch_norm(mean, var[:3])
    with pytest.raises(ValueError, match="var \\+ eps must be > 0"):
        layer.fold_batch_norm(mean, -np.ones(6))


def test_size_report(rng):
    n, k = 64, 1024
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = np.zeros(n, np.float32)
    floats = Linear(w, b).size_report()
    assert floats == LayerSize(n * k * 4, n * 4, n * k * 4 + n * 4, n * k, 32.0)
    bpw = {}
    for weights, acts in [("binary", "binary"), ("ternary", 8), (2, 8), (4, 8), (8, 8)]:
        layer = Linear.from_float(w, b, weights=weights, activations=acts)
        report = layer.size_report()
        assert report.nbytes == layer.nbytes == report.weight_bytes + n * 4
        assert report.bits_per_weight == 8 * report.weight_bytes / (n * k)
        bpw[weights] = report.bits_per_weight
    # codes plus one float scale (and zero point) per row of 1024 weights
    assert 1 <= bpw["binary"] < 1.1
    assert 2 <= bpw["ternary"] < 2.1
    assert 4 <= bpw[4] < 4.1
    assert 8 <= bpw[8] < 8.1


def test_zero_batch(rng):
    w = rng.standard_normal((3, 64)).astype(np.float32)
    for weights, acts in [("binary", "binary"), (4, 8), ("ternary", None), ("ternary", "ternary")]:
        layer = Linear.from_float(w, np.ones(3), weights=weights, activations=acts)
        y = layer.forward(np.zeros((0, 64), np.float32))
        assert y.shape == (0, 3) and y.dtype == np.float32


def test_errors(rng):
    w = rng.standard_normal((4, 64)).astype(np.float32)
    with pytest.raises(ValueError, match=r"weights must be one of .* got 5"):
        Linear.from_float(w, weights=5)
    with pytest.raises(ValueError, match=r"weights must be one of .* got True"):
        Linear.from_float(w, weights=True)
    with pytest.raises(ValueError, match=r"activations must be one of .* got 4"):
        Linear.from_float(w, weights=4, activations=4)
    with pytest.raises(ValueError, match="4-bit weights need activations None or 8"):
        Linear.from_float(w, weights=4, activations="binary")
    with pytest.raises(ValueError, match="group_size needs activations None or 8"):
        Linear.from_float(w, weights="binary", activations="binary", group_size=32)
    with pytest.raises(ValueError, match="group_size must be a positive multiple of 32, got 16"):
        Linear.from_float(w, weights=4, group_size=16)
    with pytest.raises(ValueError, match="group_size=96 must divide in_features=64"):
        Linear.from_float(w, weights=4, group_size=96)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        Linear.from_float(w[0], weights=4)
    with pytest.raises(TypeError, match="weight must be a real array"):
        Linear.from_float(w.astype(complex), weights=4)
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        Linear.from_float(np.full((2, 64), np.nan), weights=4)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        Linear.from_float(w, np.ones(3), weights=4)
    with pytest.raises(ValueError, match="n_threads must be in"):
        Linear.from_float(w, weights=4, n_threads=0)
    layer = Linear.from_float(w, weights="binary", activations="binary")
    with pytest.raises(ValueError, match="x has 63 features but the layer has in_features=64"):
        layer.forward(np.ones((2, 63)))
    with pytest.raises(ValueError, match=r"x must be 2-D \(batch, in_features\)"):
        layer.forward(np.ones(64))
    with pytest.raises(TypeError, match="x must be a real array"):
        layer.forward(np.ones((2, 64), complex))
    with pytest.raises(ValueError, match="NaN"):
        layer.forward(np.full((2, 64), np.nan))
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        Linear.from_float(w, weights=4, activations=8).forward(np.full((2, 64), np.inf))


def test_errors_from_codes(rng):
    w = rng.standard_normal((4, 64)).astype(np.float32)
    with pytest.raises(TypeError, match="weight must be a QuantizedArray or a real array"):
        Linear([[object()]])
    q = get("ternary", method="ttq", axis=0).encode(w)
    with pytest.raises(ValueError, match="separate positive and negative scales"):
        Linear(q)
    q = get("codebook", codebook=np.linspace(-1, 1, 17)).encode(w)
    with pytest.raises(ValueError, match="finite codebooks of at most 16 entries, got a codebook"):
        Linear(q)
    q = get("codebook", codebook=np.array([-1.0, -0.5, 0.5, 1.0])).encode(w)
    with pytest.raises(ValueError, match="codebook weights need activations None or 8"):
        Linear(q, activations="binary")
    q = encode(w, bits=4, axis=1)  # one scale per input column
    with pytest.raises(
        ValueError, match=r"weight.scale of shape .* is not one value per output row"
    ):
        Linear(q)
    q = encode(w, bits=16, axis=0)
    with pytest.raises(ValueError, match=r"weight.bits must be one of"):
        Linear(q)
    q = encode(w[None], bits=4)
    with pytest.raises(ValueError, match=r"weight.codes must be 2-D"):
        Linear(q)
