"""Each scheme module owns its encoder, and decode(encode(w)) is the forward map bit for bit."""

import ast
import pathlib

import numpy as np
import pytest

import qtoolkit.rounding as qr
from qtoolkit.rounding import QuantizedArray, available_quantizers, decode, get
from qtoolkit.rounding._registry import _REGISTRY

# At least one configuration of every registry scheme (checked below), with the edge cases
# of each: wide codes, per-axis and per-group scales, trained scales, curvature.
SCHEME_CONFIGS = [
    ("binary", {}),
    ("binary", {"scale": "mean", "axis": 0}),
    ("binary", {"scale": "mean", "axis": (0, 1)}),
    ("stochastic_binary", {"rng": 3}),
    ("ternary", {}),
    ("ternary", {"axis": 0}),
    ("ternary", {"method": "optimal"}),
    ("ternary", {"method": "optimal", "axis": 1}),
    ("ternary", {"method": "ttq", "threshold": 0.1}),
    ("ternary", {"method": "ttq", "scales": (0.4, 0.7), "axis": 0}),
    ("uniform", {"bits": 4}),
    ("uniform", {"bits": 4, "mode": "asymmetric", "axis": 0}),
    ("uniform", {"bits": 3, "mode": "unsigned"}),
    ("uniform", {"bits": 3, "group_size": 4}),
    ("uniform", {"bits": 5, "range": "mse", "axis": 0}),
    ("uniform", {"bits": 6, "range": "percentile", "percentile": 99.0, "rounding": "half_away"}),
    ("dorefa", {"bits": 1}),
    ("dorefa", {"bits": 1, "axis": 0}),
    ("dorefa", {"bits": 3}),
    ("dorefa", {"bits": 8, "axis": 1}),
    ("dorefa", {"bits": 8}),
    ("dorefa_activation", {"bits": 2}),
    ("dorefa_activation", {"bits": 8}),
    ("power_of_two", {"bits": 2}),
    ("power_of_two", {"bits": 3, "fsr": 0}),
    ("power_of_two", {"bits": 4, "method": "inq", "axis": 0}),
    ("fixed_point", {"int_bits": 1, "frac_bits": 3}),
    ("fixed_point", {"int_bits": 2, "frac_bits": 5, "saturate": False}),
    ("fixed_point", {"int_bits": 3, "frac_bits": 12, "rounding": "floor"}),
    ("fixed_point", {"int_bits": 2, "frac_bits": 26}),
    ("fixed_point", {"int_bits": 1, "frac_bits": 2, "rounding": "stochastic", "rng": 1}),
    ("lsq", {"step_size": 0.3, "bits": 3}),
    ("lsq", {"step_size": 0.05, "bits": 4, "signed": False}),
    ("lsq", {"step_size": 1e-3, "bits": 16}),
    ("codebook", {"codebook": [-1.0, -0.2, 0.0, 0.7]}),
    ("codebook", {"codebook": [0.25]}),
    ("stochastic", {"codebook": [-1.0, 0.0, 0.5, 1.0], "rng": 2}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(SCHEME_CONFIGS)]


def test_every_registry_scheme_is_checked():
    assert {name for name, _ in SCHEME_CONFIGS} == set(available_quantizers())


def _weights(rng, dtype, scale):
    w = rng.standard_normal((6, 16)) * scale
    w[0, :3] = 0.0  # exact zeros (sign(0), ternary dead zone, log2(0))
    w[1, 0] = -w[1, 1]  # a +-pair
    return w.astype(dtype)


@pytest.mark.parametrize(("name", "params"), SCHEME_CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("spread", [0.02, 0.7, 4.0])
def test_decode_encode_is_forward_map_bit_exact(name, params, dtype, spread, rng):
    w = _weights(rng, dtype, spread)
    # a fresh quantizer for each side, so that stochastic schemes draw the same stream
    expected = get(name, **params)(w)
    q = get(name, **params).encode(w)
    assert isinstance(q, QuantizedArray)
    assert q.scheme == name
    assert q.dtype == np.dtype(dtype).name and q.codes.shape == w.shape
    assert q.bits == get(name, **params).bits
    assert int(q.codes.min()) >= -(2 ** (q.bits - 1)) and int(q.codes.max()) < 2**q.bits
    out = decode(q)
    assert out.dtype == w.dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("name", "params"), SCHEME_CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_decode_encode_bit_exact_torch(name, params, dtype):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(7)
    w = (torch.randn(5, 8, generator=g, dtype=torch.float64) * 0.6).to(getattr(torch, dtype))
    expected = get(name, **params)(w)
    q = get(name, **params).encode(w)
    assert q.dtype == dtype
    out = decode(q)
    assert out.dtype == w.dtype
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", ["dorefa", "dorefa_activation"])
@pytest.mark.parametrize("bits", [12, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dorefa_wide_grids_bit_exact(name, bits, dtype, rng):
    # (half precision holds no integer above 2**11: its DoReFa grids stop at 11 bits)
    w = _weights(rng, dtype, 0.7)
    q = get(name, bits=bits).encode(w)
    assert int(q.codes.max()) <= 2**bits - 1
    np.testing.assert_array_equal(decode(q), get(name, bits=bits)(w))


def test_fixed_point_half_precision_wide_codes():
    """float16 holds neither 2**-26 nor a 28-bit code; the decoded values still match."""
    w = np.array([1e-7, -3e-8, 0.4, -3.99, 5.0], dtype=np.float16)
    q = get("fixed_point", int_bits=2, frac_bits=26).encode(w)
    assert q.codes.dtype == np.int32 and q.scale.dtype == np.float32
    np.testing.assert_array_equal(decode(q), qr.fixed_point(w, int_bits=2, frac_bits=26))
    assert decode(q)[0] != 0  # 2**-26 steps survive as float16 subnormals


def test_encoders_live_in_their_scheme_modules():
    """The registry is a table: every encoder is defined in the module of its forward map."""
    for name, (forward, encoder, *_rest) in _REGISTRY.items():
        assert encoder.__module__ == forward.__module__, name
        assert encoder.__doc__ and "bit for bit" in encoder.__doc__, name


def test_registry_imports_no_private_names():
    source = pathlib.Path(qr.__file__).with_name("_registry.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"_registry.py imports {private} from {node.module}"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("binary", {"scale": "median"}),
        ("ternary", {"method": "nope"}),
        ("dorefa", {"bits": 17}),
        ("power_of_two", {"bits": 1, "method": "inq"}),
        ("fixed_point", {"int_bits": 20, "frac_bits": 20}),
        ("lsq", {"step_size": -1.0}),
        ("codebook", {"codebook": [1.0, 0.0]}),
    ],
)
def test_encoder_validates_as_the_forward_map(name, params):
    w = np.linspace(-1, 1, 8)
    with pytest.raises(ValueError) as forward_error:
        get(name, **params)(w)
    with pytest.raises(ValueError) as encode_error:
        get(name, **params).encode(w)
    assert str(encode_error.value) == str(forward_error.value)
