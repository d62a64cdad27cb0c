"""QuantizedNetwork -> qtoolkit.nn layers: same weights, outputs of dequantize-then-matmul."""

import numpy as np
import pytest

from qtoolkit.bitops import quantize_activations
from qtoolkit.network import load, quantize
from qtoolkit.nn import Conv2d, Linear

from .conftest import relu

# (method, params, tolerance of the layer weight against network[name]: "exact", "rounding"
# (one float32 rounding) or "codebook" (half an int8 step of the codebook))
METHODS = [
    ("uniform", {"bits": 4, "axis": 0}, "rounding"),
    ("uniform", {"bits": 4, "axis": 0, "mode": "asymmetric", "group_size": 32}, "rounding"),
    ("uniform", {"bits": 5, "axis": 0, "mode": "asymmetric"}, "rounding"),
    ("uniform", {"bits": 8, "axis": None}, "rounding"),
    ("binary", {"axis": 0}, "rounding"),
    ("ternary", {"axis": 0}, "rounding"),
    ("rtn", {"bits": 3, "group_size": 32}, "rounding"),
    ("gptq", {"bits": 4, "group_size": 32}, "rounding"),
    ("gptq", {"bits": 4, "group_size": 32, "act_order": True, "static_groups": True}, "rounding"),
    ("q8_0", {}, "exact"),
    ("q4_0", {}, "exact"),
    ("kmeans", {"bits": 4, "rng": 0}, "codebook"),
    ("codebook", {"codebook": [-0.3, -0.1, 0.0, 0.1, 0.3]}, "codebook"),
]


def _recipe(method, params):
    return [{"match": "*.weight", "method": method, "params": params}]


def _check_weight(layer, ref, tol):
    got = layer.weight.astype(np.float64)
    ref = np.asarray(ref, dtype=np.float64).reshape(got.shape)
    if tol == "exact":
        assert np.array_equal(got, ref)
    elif tol == "rounding":
        np.testing.assert_allclose(got, ref, rtol=2**-23, atol=0)
    else:  # the kernel's codebook is the stored one rounded to steps of max|c| / 127
        step = np.abs(ref).max() / 127
        assert np.abs(got - ref).max() <= 0.5 * step * (1 + 1e-6)


def _mlp(layers, x):
    h = relu(layers["fc1"](x))
    h = relu(layers["fc2"](h))
    return layers["fc3"](h)


@pytest.mark.parametrize(("method", "params", "tol"), METHODS)
def test_mlp_layers_compute_the_dequantized_network(method, params, tol, digits_mlp, mlp_forward):
    state, Xtr, Xte, _ = digits_mlp
    inputs, _ = mlp_forward(state, Xtr[:256])
    net = quantize(state, _recipe(method, params), calibration=inputs)
    layers = net.to_nn()
    assert list(layers) == ["fc1", "fc2", "fc3"]
    w = net.dequantize()
    for i in (1, 2, 3):
        layer = layers[f"fc{i}"]
        assert isinstance(layer, Linear) and layer.weights != "float"
        assert np.array_equal(layer.bias, w[f"fc{i}.bias"])
        _check_weight(layer, w[f"fc{i}.weight"], tol)
    x = Xte.astype(np.float32)
    # float activations: the layer's float32 product with its weight, and (up to the
    # weight's rounding) the float network built from dequantize()
    ref_layers = {k: v.dequantized() for k, v in layers.items()}
    y = _mlp(layers, x)
    scale = np.abs(y).max()  # float32 sums: errors relative to the largest logit
    np.testing.assert_allclose(y, _mlp(ref_layers, x), rtol=1e-5, atol=1e-6 * scale)
    if tol != "codebook":
        _, logits = mlp_forward(w, x)
        np.testing.assert_allclose(y, logits, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(("method", "params", "tol"), [m for m in METHODS if m[0] != "gptq"])
def test_int8_activations_are_the_exact_integer_product_times_the_scales(method, params, tol, rng):
    W = rng.normal(size=(24, 96)).astype(np.float32)
    net = quantize({"l.weight": W}, _recipe(method, params))
    layer = net.layer("l.weight", activations=8)
    x = rng.normal(size=(7, 96)).astype(np.float32)
    a = quantize_activations(x)
    q = np.asarray(a.codes).astype(np.float64)
    ref = (q @ layer.weight.astype(np.float64).T) * np.asarray(a.scales, np.float64)[:, None]
    np.testing.assert_allclose(layer(x), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("mode", ["binary", "ternary"])
def test_binary_and_ternary_activations_are_exact(mode, rng):
    """sign / TWN codes of x times the weight codes, summed in integers, times the scales."""
    W = rng.normal(size=(16, 200)).astype(np.float32)
    b = rng.normal(size=16).astype(np.float32)
    net = quantize({"l.weight": W, "l.bias": b}, _recipe(mode, {"axis": 0}))
    layer = net.layer("l.weight", activations=mode)
    x = rng.normal(size=(5, 200)).astype(np.float32)
    w = net["l.weight"].astype(np.float64)
    alpha = np.abs(w).max(axis=1)  # the row's scale: every code is +-1 (or 0) times it
    codes = np.rint(w / alpha[:, None]).astype(np.int64)
    if mode == "binary":
        t, beta = np.where(x >= 0, 1, -1), None
    else:  # TWN: keep |x| > 0.7 mean |x|, scale = mean of the kept |x|
        ax = np.abs(x)
        keep = ax > (0.7 * ax.mean(axis=1, dtype=np.float64)).astype(np.float32)[:, None]
        t = (np.sign(x) * keep).astype(np.int64)
        beta = (np.where(keep, ax, 0).sum(1, dtype=np.float64) / keep.sum(1)).astype(np.float32)
    acc = t.astype(np.int64) @ codes.T
    ref = np.float32(acc) * alpha.astype(np.float32)
    if beta is not None:
        ref = ref * beta[:, None]
    ref = ref + b
    assert np.array_equal(layer(x), ref)


def test_gguf_ternary_blocks_run_as_ternary_layers(rng):
    W = rng.normal(size=(8, 512)).astype(np.float32)
    for method in ("tq1_0", "tq2_0"):
        net = quantize({"l.weight": W}, _recipe(method, {}))
        layer = net.layer("l.weight", activations=8)
        assert layer.weights == "ternary" and layer.group_size == 256
        assert np.array_equal(layer.weight, net["l.weight"])
        x = rng.normal(size=(3, 512)).astype(np.float32)
        y_float = net.layer("l.weight")(x)
        np.testing.assert_allclose(y_float, x @ net["l.weight"].T, rtol=1e-5, atol=1e-4)


def test_loaded_network_converts_to_the_same_layers(digits_mlp, tmp_path):
    state, _, Xte, _ = digits_mlp
    net = quantize(state, _recipe("uniform", {"bits": 4, "axis": 0, "group_size": 32}))
    back = load(net.save(tmp_path / "net.safetensors"))
    x = Xte[:50].astype(np.float32)
    for act in (None, 8):
        a, b = net.to_nn(activations=act), back.to_nn(activations=act)
        assert np.array_equal(_mlp(a, x), _mlp(b, x))


def _conv_ref(x, w, b, stride, padding, groups):
    """Direct convolution in float64 (NCHW), zero padding."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg : (g + 1) * cg, i * stride : i * stride + kh]
                patch = patch[..., j * stride : j * stride + kw]
                out[:, g * og : (g + 1) * og, i, j] = np.einsum(
                    "nchw,ochw->no", patch, w[g * og : (g + 1) * og]
                )
    return out + (0 if b is None else b[None, :, None, None])


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("uniform", {"bits": 4, "axis": 0}),
        ("uniform", {"bits": 8, "axis": 0, "mode": "asymmetric"}),
        ("rtn", {"bits": 4}),
        ("binary", {"axis": 0}),
        ("ternary", {"axis": 0}),
        ("kmeans", {"bits": 3, "rng": 0}),
    ],
)
def test_conv_net_layers_compute_the_dequantized_network(method, params, rng):
    state = {
        "conv1.weight": rng.normal(size=(8, 3, 3, 3)).astype(np.float32),
        "conv1.bias": rng.normal(size=8).astype(np.float32),
        "conv2.weight": rng.normal(size=(16, 4, 3, 3)).astype(np.float32) / 3,
        "fc.weight": rng.normal(size=(10, 256)).astype(np.float32) / 16,
        "fc.bias": rng.normal(size=10).astype(np.float32),
    }
    rules = [{"match": "conv*.weight", "method": method, "params": params}]
    rules.append({"match": "fc.weight", "method": "q8_0"})
    net = quantize(state, rules)
    conv = {
        "conv1.weight": {"padding": 1},
        "conv2.weight": {"stride": 2, "padding": 1, "groups": 2},
    }
    layers = net.to_nn(conv=conv)
    assert isinstance(layers["conv1"], Conv2d) and isinstance(layers["fc"], Linear)
    assert layers["conv2"].groups == 2 and layers["conv2"].stride == (2, 2)
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)

    def run(ls):
        h = relu(ls["conv1"](x))
        h = relu(ls["conv2"](h))
        return ls["fc"](h.reshape(len(h), -1))

    w = {k: v.astype(np.float64) for k, v in net.dequantize().items()}
    if method == "kmeans":  # the kernel computes with the int8-rounded codebook
        w["conv1.weight"] = layers["conv1"].weight.astype(np.float64)
        w["conv2.weight"] = layers["conv2"].weight.astype(np.float64)
    h = relu(_conv_ref(x, w["conv1.weight"], w["conv1.bias"], 1, 1, 1))
    h = relu(_conv_ref(h, w["conv2.weight"], None, 2, 1, 2))
    ref = h.reshape(2, -1) @ w["fc.weight"].T + w["fc.bias"]
    np.testing.assert_allclose(run(layers), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # NHWC gives the same numbers
    nhwc = net.layer("conv1.weight", padding=1, data_format="NHWC")
    y = nhwc(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert np.array_equal(y.transpose(0, 3, 1, 2), layers["conv1"](x))


def test_binary_conv_with_binary_activations_is_exact(rng):
    W = rng.normal(size=(4, 64, 3, 3)).astype(np.float32)
    net = quantize({"c.weight": W}, _recipe("binary", {"axis": 0}))
    layer = net.layer("c.weight", padding=1, activations="binary")
    x = rng.normal(size=(2, 64, 5, 5)).astype(np.float32)
    w = net["c.weight"].astype(np.float64)
    alpha = np.abs(w).reshape(4, -1).max(axis=1)
    codes = np.rint(w / alpha[:, None, None, None])
    acc = _conv_ref(np.where(x >= 0, 1.0, -1.0), codes, None, 1, 1, 1)  # integers, exact
    ref = np.float32(acc) * alpha.astype(np.float32)[None, :, None, None]
    assert np.array_equal(layer(x), ref)


def test_default_names_bias_and_float_layers(rng):
    state = {
        "embed.weight": rng.normal(size=(20, 32)).astype(np.float32),
        "fc.weight": rng.normal(size=(8, 32)).astype(np.float32),
        "fc.bias": rng.normal(size=8).astype(np.float32),
        "head": rng.normal(size=(4, 8)).astype(np.float32),
        "head_bias": rng.normal(size=4).astype(np.float32),
    }
    rules = [
        {"match": "fc.weight", "method": "q8_0"},
        {"match": "head", "method": "uniform", "params": {"bits": 8, "axis": 0}},
    ]
    net = quantize(state, rules)
    assert list(net.to_nn()) == ["fc", "head"]  # embed.weight is kept in floating point
    layers = net.to_nn(["fc.weight", "embed.weight"])
    assert layers["embed"].weights == "float" and layers["embed"].bias is None
    assert np.array_equal(layers["embed"].weight, state["embed.weight"])
    assert np.array_equal(layers["fc"].bias, state["fc.bias"])
    assert net.layer("fc.weight", bias=False).bias is None
    assert np.array_equal(net.layer("head", bias="head_bias").bias, state["head_bias"])


def _net(rng, method, params, shape=(8, 64), calibration=False):
    W = rng.normal(size=shape).astype(np.float32)
    cal = {"w": rng.normal(size=(200, int(np.prod(shape[1:]))))} if calibration else None
    return quantize({"w": W}, [{"match": "w", "method": method, "params": params}], calibration=cal)


@pytest.mark.parametrize(
    ("method", "params", "shape", "kwargs", "match"),
    [
        ("pq", {"n_subspaces": 4, "n_clusters": 4, "random_state": 0}, (8, 64), {}, "product"),
        ("hqq", {"bits": 4, "group_size": 32}, (8, 64), {}, "real numbers"),
        ("q4_1", {}, (8, 64), {}, "Q4_1"),
        ("uniform", {"bits": 4, "axis": 0}, (4, 8, 16), {}, "2-D"),
        ("uniform", {"bits": 12, "axis": 0}, (8, 64), {}, "wider than the 8 bits"),
        ("power_of_two", {"bits": 3, "axis": 0}, (8, 64), {}, "at most 16 entries"),
        ("uniform", {"bits": 4, "axis": 0}, (8, 64), {"activations": "binary"}, "4-bit weights"),
        ("uniform", {"bits": 4, "axis": 0}, (8, 64), {"stride": 2}, "Conv2d options"),
        ("rtn", {"bits": 4, "group_size": 16}, (8, 2, 4, 4), {}, "one scale per output"),
        ("rtn", {"bits": 4, "group_size": 32}, (8, 80), {}, "does not divide"),
        ("rtn", {"bits": 4, "group_size": 48}, (8, 96), {}, "multiple of 32"),
        ("q8_0", {}, (8, 2, 2, 32), {}, "Linear layer only"),
        ("uniform", {"bits": 4, "axis": 1}, (8, 64), {}, "one value per output row"),
    ],
)
def test_unsupported_tensors_raise_naming_the_tensor(rng, method, params, shape, kwargs, match):
    net = _net(rng, method, params, shape)
    with pytest.raises(ValueError, match=match) as info:
        net.layer("w", **kwargs)
    assert "'w'" in str(info.value)


@pytest.mark.parametrize(
    ("method", "params", "match"),
    [
        ("gptq", {"bits": 4, "group_size": 32, "act_order": True}, "not contiguous"),
        ("rtn", {"bits": 4, "rotate": True, "rng": 0}, "input rotation"),
        ("gptq", {"bits": 3, "grid": "optimal"}, "per-row codebooks"),
        ("awq", {"bits": 4}, "AWQ's input scales"),
    ],
)
def test_calibrated_layouts_without_a_kernel_are_refused(rng, method, params, match):
    net = _net(rng, method, params, calibration=True)
    with pytest.raises(ValueError, match=match):
        net.layer("w")
    with pytest.raises(ValueError, match=match):
        net.to_nn()


def test_bad_arguments(rng):
    net = _net(rng, "uniform", {"bits": 4, "axis": 0})
    conv = _net(rng, "uniform", {"bits": 4, "axis": 0}, shape=(8, 2, 3, 3))
    with pytest.raises(KeyError, match="nope"):
        net.layer("nope")
    with pytest.raises(ValueError, match="not a tensor"):
        net.to_nn(["nope"])
    with pytest.raises(TypeError, match="names"):
        net.to_nn("w")
    with pytest.raises(TypeError, match="bias"):
        net.layer("w", bias=3)
    with pytest.raises(ValueError, match="not a tensor"):
        net.layer("w", bias="w.bias")
    with pytest.raises(ValueError, match="bias"):
        net.layer("w", bias="w")  # a (8, 64) tensor is not a bias
    with pytest.raises(ValueError, match="4-D weights"):
        net.to_nn(conv={"w": {"padding": 1}})
    with pytest.raises(TypeError, match="unknown options"):
        conv.to_nn(conv={"w": {"pad": 1}})
    with pytest.raises(TypeError, match="dict"):
        conv.to_nn(conv=[("w", {})])
    with pytest.raises(ValueError, match="activations"):
        net.layer("w", activations=4)
    with pytest.raises(ValueError, match="groups"):
        conv.layer("w", groups=3)
