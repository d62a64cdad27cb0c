"""Registry round trips, encode/decode of every scheme, the .npz format and the public API."""

import io
import json
import re

import numpy as np
import pytest

import qtoolkit.rounding as qr
from qtoolkit.rounding import (
    QuantizedArray,
    Quantizer,
    decode,
    encode,
    get,
    load_quantized,
    save_quantized,
    uniform,
)

PUBLIC = [
    "CodedValues",
    "QuantizedArray",
    "QuantizedFileError",
    "Quantizer",
    "approx_sign_gradient",
    "available_quantizers",
    "binarize",
    "clipped_straight_through",
    "decode",
    "dorefa_activations",
    "dorefa_gradients",
    "dorefa_weights",
    "encode",
    "fixed_point",
    "get",
    "inq_codebook",
    "load_quantized",
    "lsq",
    "power_of_two",
    "round_to_codebook",
    "save_quantized",
    "ste",
    "stochastic_binarize",
    "stochastic_round",
    "straight_through",
    "swish_sign_gradient",
    "ternarize",
    "uniform",
]

CONFIGS = [
    ("binary", {}),
    ("binary", {"scale": "mean", "axis": 0}),
    ("stochastic_binary", {"rng": 3}),
    ("ternary", {}),
    ("ternary", {"method": "optimal", "axis": 1}),
    ("ternary", {"method": "ttq", "threshold": 0.1}),
    ("uniform", {"bits": 4, "mode": "asymmetric", "axis": 0}),
    ("uniform", {"bits": 3, "group_size": 4, "axis": 0}),
    ("uniform", {"bits": 3, "group_size": 4}),
    ("dorefa", {"bits": 1}),
    ("dorefa", {"bits": 3}),
    ("dorefa_activation", {"bits": 2}),
    ("lsq", {"step_size": 0.3, "bits": 3}),
    ("lsq", {"step_size": 0.05, "bits": 4, "signed": False}),
    ("power_of_two", {"bits": 2}),
    ("power_of_two", {"bits": 4, "method": "inq", "axis": 0}),
    ("fixed_point", {"int_bits": 1, "frac_bits": 3}),
    ("fixed_point", {"int_bits": 1, "frac_bits": 2, "rounding": "stochastic", "rng": 1}),
    ("codebook", {"codebook": [-1.0, -0.2, 0.0, 0.7]}),
    ("stochastic", {"codebook": [-1.0, 0.0, 0.5, 1.0], "rng": 2}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]


def test_public_api_pinned():
    assert sorted(qr.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(qr, name)


@pytest.fixture
def w(rng):
    return (rng.standard_normal((3, 8)) * 0.6).astype(np.float32)


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_config_json_round_trip(name, params, w):
    q = get(name, **params)
    text = json.dumps(q.get_config())
    q2 = Quantizer.from_config(json.loads(text))
    assert q2 == q and q2.get_config() == q.get_config()
    assert get(q.get_config()) == q
    np.testing.assert_array_equal(q2(w), get(name, **params)(w))


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_encode_decode_equals_call(name, params, w):
    # A fresh quantizer per call, so stochastic schemes use the same stream.
    q = get(name, **params)
    enc = get(name, **params).encode(w)
    assert isinstance(enc, QuantizedArray)
    assert enc.codes.shape == w.shape
    assert int(enc.codes.min()) >= -(2 ** (q.bits - 1))
    assert int(enc.codes.max()) < 2**q.bits
    out = q.decode(enc)
    assert out.dtype == w.dtype
    np.testing.assert_allclose(out, q(w), rtol=1e-6, atol=1e-7)


def test_n_bits():
    assert get("binary").bits == 1
    assert get("ternary").bits == 2
    assert get("uniform", bits=5).bits == 5
    assert get("fixed_point", int_bits=2, frac_bits=5).bits == 8
    assert get("codebook", codebook=[0.0, 1.0, 2.0]).bits == 2
    assert get("power_of_two", bits=3, method="inq").bits == 3
    assert get("power_of_two", bits=2).bits == 4  # 2 * (4 + 1) + 1 = 11 codewords


def test_stochastic_quantizer_seeded_sequence(w):
    a, b = get("stochastic_binary", rng=5), get("stochastic_binary", rng=5)
    first = a(w)
    np.testing.assert_array_equal(first, b(w))
    assert not np.array_equal(first, a(w))


def test_loss_aware_binary_passes_curvature(w):
    d = np.abs(w) + 1
    np.testing.assert_allclose(
        get("binary", scale="loss_aware")(w, d=d), qr.binarize(w, scale="loss_aware", d=d)
    )


def test_registry_errors():
    with pytest.raises(ValueError, match="name must be one of"):
        get("quinary")
    with pytest.raises(TypeError, match="'bitz' is not a parameter of quantizer 'uniform'"):
        get("uniform", bitz=3)
    with pytest.raises(ValueError, match="needs the parameter 'codebook'"):
        get("codebook")
    with pytest.raises(TypeError, match="identifier must be"):
        get(3)
    with pytest.raises(ValueError, match="config version"):
        Quantizer.from_config({"name": "binary", "params": {}, "version": 99})
    with pytest.raises(ValueError, match="config must be a dict"):
        Quantizer.from_config({"params": {}})
    with pytest.raises(TypeError, match="parameter 'codebook' must be"):
        get("codebook", codebook=[object()])
    with pytest.raises(TypeError, match="cannot be combined"):
        get(get("binary"), scale="mean")


@pytest.mark.parametrize(
    ("mode", "bits"),
    [
        (m, b)
        for m in ("symmetric", "asymmetric")
        for b in (1, 2, 3, 4, 5, 8, 12)
        if not (m == "symmetric" and b == 1)
    ],
)
def test_npz_round_trip_exact(tmp_path, rng, bits, mode):
    w = rng.standard_normal((5, 7)).astype(np.float32)
    q = encode(w, bits=bits, mode=mode, axis=0)
    path = tmp_path / "w.npz"
    save_quantized(path, q)
    back = load_quantized(path)
    np.testing.assert_array_equal(back.codes, q.codes)
    assert back.codes.dtype == q.codes.dtype
    assert (back.axis, back.group_size, back.bits, back.dtype, back.shape) == (
        q.axis,
        q.group_size,
        q.bits,
        q.dtype,
        q.shape,
    )
    np.testing.assert_array_equal(decode(back), decode(q))
    with np.load(path, allow_pickle=False) as data:
        if bits <= 8:
            width = min(b for b in (1, 2, 4, 8) if b >= bits)
            assert data["codes"].dtype == np.uint8
            assert data["codes"].size == -(-w.size * width // 8)


@pytest.mark.parametrize(("name", "params"), CONFIGS, ids=IDS)
def test_npz_round_trip_every_scheme(name, params, w):
    enc = get(name, **params).encode(w)
    buf = io.BytesIO()
    save_quantized(buf, enc)
    buf.seek(0)
    back = load_quantized(buf)
    np.testing.assert_array_equal(decode(back), decode(enc))


def test_npz_group_size_and_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    w = torch.asarray(rng.standard_normal((2, 8)).astype(np.float32))
    q = encode(w, bits=4, axis=0, group_size=4)
    assert type(q.codes) is type(w)
    save_quantized(tmp_path / "t.npz", q)
    back = load_quantized(tmp_path / "t.npz")
    assert back.group_size == 4
    np.testing.assert_allclose(decode(back), decode(q).numpy())


def test_npz_group_size_keeps_per_row_block_scales(tmp_path, rng):
    w = rng.standard_normal((3, 8))
    q = get("uniform", bits=4, group_size=4).encode(w)
    assert q.scale.shape == (3, 2, 1)
    save_quantized(tmp_path / "g.npz", q)
    back = load_quantized(tmp_path / "g.npz")
    assert back.axis == (0,) and back.group_size == 4
    ref = np.concatenate(
        [uniform(w[i, 4 * b : 4 * b + 4], bits=4) for i in range(3) for b in range(2)]
    )
    np.testing.assert_array_equal(decode(back).ravel(), ref)


def test_npz_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="field 'format' is missing"):
        load_quantized(tmp_path / "other.npz")
    q = encode(np.array([0.0, 1.0]), bits=4)
    save_quantized(tmp_path / "q.npz", q)
    with np.load(tmp_path / "q.npz") as data:
        fields = dict(data)
    fields["version"] = np.array(7)
    np.savez(tmp_path / "future.npz", **fields)
    with pytest.raises(ValueError, match="format version 7; this qtoolkit reads version 1"):
        load_quantized(tmp_path / "future.npz")
    fields["version"] = np.array(1)
    fields["format"] = np.array("something.else")
    np.savez(tmp_path / "wrong.npz", **fields)
    with pytest.raises(ValueError, match=re.escape("has format 'something.else'")):
        load_quantized(tmp_path / "wrong.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=re.escape("not a readable .npz file")):
        load_quantized(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.arange(3))
    with pytest.raises(ValueError, match="single array"):
        load_quantized(tmp_path / "single.npy")
    with pytest.raises(TypeError, match="q must be a QuantizedArray"):
        save_quantized(tmp_path / "x.npz", np.arange(3))
    with pytest.raises(TypeError, match="q must be a QuantizedArray"):
        decode(np.arange(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_dorefa_decode_is_bit_exact(dtype, bits):
    """decode(encode(w)) must give the forward map's values bit for bit (no 1-ulp drift from a
    codebook computed in another precision or order of operations)."""
    from qtoolkit.rounding import decode, get

    r = np.random.default_rng(bits)
    w = r.standard_normal(50_000).astype(dtype)
    x = r.random(50_000).astype(dtype)
    q = get("dorefa", bits=bits)
    a = get("dorefa_activation", bits=bits)
    np.testing.assert_array_equal(decode(q.encode(w)), q(w))
    np.testing.assert_array_equal(decode(a.encode(x)), a(x))


def test_renamed_registry_names_warn():
    with pytest.warns(DeprecationWarning, match=r"Quantizer\(seed=...\)"):
        q = get("stochastic_binary", seed=4)
    assert q.params == {"rng": 4}
    with pytest.warns(DeprecationWarning, match="Quantizer.n_bits"):
        assert get("uniform", bits=5).n_bits == 5
    with pytest.raises(TypeError, match="parameter 'rng' must be a number"):
        get("stochastic_binary", rng=np.random.default_rng(0))
