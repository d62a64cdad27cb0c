"""Every rounding function on NumPy, array-api-strict, PyTorch (CPU) and Dask.

Each case checks that the output is the same kind of array as the input,
with the same dtype, and (for the other namespaces) equal to the NumPy
result; the stochastic functions use counter-based noise, so the same seed
gives the same values in every namespace.
"""

import numpy as np
import pytest

import qtoolkit.rounding as qr

SEED = 7
CODEBOOK = [-1.0, -0.25, 0.0, 0.5, 1.5]


def _cases():
    return {
        "binarize": lambda w: qr.binarize(w),
        "binarize_mean_axis": lambda w: qr.binarize(w, scale="mean", axis=0),
        "stochastic_binarize": lambda w: qr.stochastic_binarize(w, rng=SEED),
        "ternarize_twn": lambda w: qr.ternarize(w, axis=1),
        "ternarize_optimal": lambda w: qr.ternarize(w, method="optimal"),
        "ternarize_optimal_axis": lambda w: qr.ternarize(w, method="optimal", axis=0),
        "ternarize_ttq": lambda w: qr.ternarize(w, method="ttq"),
        "uniform": lambda w: qr.uniform(w, bits=4),
        "uniform_asym_group": lambda w: qr.uniform(
            w, bits=3, mode="asymmetric", axis=0, group_size=3
        ),
        "uniform_percentile": lambda w: qr.uniform(w, bits=4, range="percentile", percentile=90.0),
        "uniform_mse": lambda w: qr.uniform(w, bits=3, range="mse", axis=1),
        "decode_encode": lambda w: qr.decode(qr.encode(w, bits=5, mode="asymmetric")),
        "dorefa_weights": lambda w: qr.dorefa_weights(w, bits=3),
        "dorefa_activations": lambda w: qr.dorefa_activations(w, bits=2),
        "dorefa_gradients": lambda w: qr.dorefa_gradients(w, bits=4, rng=SEED),
        "logquant": lambda w: qr.power_of_two(w, bits=2, axis=0),
        "inq": lambda w: qr.power_of_two(w, bits=4, method="inq"),
        "fixed_point": lambda w: qr.fixed_point(w, 1, 3, rounding="half_away"),
        "fixed_point_wrap": lambda w: qr.fixed_point(w, 0, 2, saturate=False),
        "fixed_point_stochastic": lambda w: qr.fixed_point(
            w, 2, 3, rounding="stochastic", rng=SEED
        ),
        "round_to_codebook": lambda w: qr.round_to_codebook(w, CODEBOOK),
        "stochastic_round_step": lambda w: qr.stochastic_round(w, step=0.3, rng=SEED),
        "stochastic_round_codebook": lambda w: qr.stochastic_round(w, codebook=CODEBOOK, rng=SEED),
        "clipped_ste": lambda w: qr.clipped_straight_through(w, w * 2),
        "approx_sign": lambda w: qr.approx_sign_gradient(w, w * 0 + 1),
        "swish_sign": lambda w: qr.swish_sign_gradient(w, w * 0 + 1),
        "registry_ternary": lambda w: qr.get("ternary", method="ttq")(w),
        "registry_decode": lambda w: qr.decode(qr.get("power_of_two", bits=3).encode(w)),
    }


CASES = _cases()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    return (rng.standard_normal((4, 6)) * 0.8).astype(np.float64)


def _to_numpy(x):
    if hasattr(x, "compute"):
        x = x.compute()
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_array_api_strict_same_type_and_values(name, dtype, data):
    xs = pytest.importorskip("array_api_strict")
    w_np = data.astype(dtype)
    w = xs.asarray(w_np)
    out = CASES[name](w)
    assert type(out) is type(w)
    assert out.dtype == w.dtype
    assert out.shape == w.shape
    ref = CASES[name](w_np)
    np.testing.assert_allclose(_to_numpy(out), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_type_and_dtype(name, data, float_dtype):
    w = data.astype(float_dtype)
    out = CASES[name](w)
    assert type(out) is np.ndarray
    assert out.dtype == w.dtype
    assert out.shape == w.shape


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_cpu(name, data):
    torch = pytest.importorskip("torch")
    for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        w_np = data.astype(dtype)
        w = torch.asarray(w_np)
        out = CASES[name](w)
        assert type(out) is type(w)
        assert out.dtype == tdtype
        assert out.device == w.device
        np.testing.assert_allclose(_to_numpy(out), CASES[name](w_np), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dask_stays_lazy_and_equals_numpy(name, data):
    da = pytest.importorskip("dask.array")
    w_np = data.astype(np.float32)
    w = da.from_array(w_np, chunks=(2, 3))
    out = CASES[name](w)
    assert isinstance(out, da.Array)
    assert out.dtype == w.dtype
    np.testing.assert_allclose(out.compute(), CASES[name](w_np), rtol=1e-6, atol=1e-6)


def test_torch_float16_preserved():
    torch = pytest.importorskip("torch")
    w = torch.linspace(-1, 1, 12, dtype=torch.float16).reshape(3, 4)
    for name in (
        "uniform",
        "binarize_mean_axis",
        "stochastic_round_step",
        "ternarize_twn",
        "round_to_codebook",
    ):
        out = CASES[name](w)
        assert out.dtype == torch.float16, name
