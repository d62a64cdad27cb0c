"""GGUF export: read back with the gguf package's reader and dequantizer, bit for bit."""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGUFReader, quants  # noqa: E402

from qtoolkit.network import load, quantize  # noqa: E402

TYPES = ["q8_0", "q4_0", "q4_1", "tq1_0", "tq2_0"]


def tensors_of(path):
    return {t.name: t for t in GGUFReader(str(path)).tensors}


@pytest.mark.parametrize("method", TYPES)
def test_gguf_round_trip_bit_for_bit(method, rng, tmp_path):
    w = rng.normal(size=(6, 512)).astype(np.float32)
    w[0, :32] = 0.0  # an all-zero block (d = 0)
    w[1, :256] *= 1e-3  # a tiny block
    w[2, 5] = 40.0  # an outlier
    state = {
        "a.weight": w,
        "a.bias": rng.normal(size=6).astype(np.float32),
        "c.weight": w[:2].copy(),
    }
    qtype = getattr(gguf.GGMLQuantizationType, method.upper())
    net = quantize(state, [{"match": "*.weight", "method": method}])
    path = net.save(tmp_path / "m.gguf", format="gguf")
    t = tensors_of(path)
    for name in ("a.weight", "c.weight"):
        g = t[name]
        assert g.tensor_type == qtype
        theirs = quants.dequantize(np.asarray(g.data), g.tensor_type).reshape(state[name].shape)
        ours = net[name]
        assert ours.dtype == np.float32
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
        # our codes and scales are llama.cpp's reference quantization, byte for byte
        ref = quants.quantize(state[name], qtype)
        assert np.array_equal(np.asarray(g.data).reshape(ref.shape), ref)
        # the gguf reader reports the logical shape, fastest axis first
        assert list(g.shape) == list(reversed(state[name].shape))
    assert np.array_equal(np.asarray(t["a.bias"].data), state["a.bias"])
    # and the same network through our own packed format
    back = load(net.save(tmp_path / "m.safetensors"))
    assert np.array_equal(back["a.weight"], net["a.weight"])


def test_gguf_of_a_3d_tensor_and_float16(rng, tmp_path):
    w = rng.normal(size=(2, 3, 64)).astype(np.float16)
    net = quantize({"conv.weight": w}, [{"match": "*", "method": "q8_0"}])
    t = tensors_of(net.save(tmp_path / "m.gguf", format="gguf"))["conv.weight"]
    theirs = quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(w.shape)
    assert np.array_equal(net["conv.weight"], theirs.astype(np.float16))


def test_gguf_refuses_schemes_without_a_gguf_type(rng, tmp_path):
    net = quantize(
        {"a.weight": rng.normal(size=(4, 64))},
        [{"match": "*", "method": "uniform", "params": {"bits": 4, "axis": 0}}],
    )
    with pytest.raises(ValueError, match=r"GGUF export needs.*\['a.weight'\]"):
        net.save(tmp_path / "m.gguf", format="gguf")
    assert not (tmp_path / "m.gguf").exists()
    assert list(tmp_path.iterdir()) == []
