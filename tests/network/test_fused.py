"""The compiled one-pass path of registry ``uniform`` = the registry quantizer, bit for bit."""

import itertools

import numpy as np
import pytest

from qtoolkit import rounding
from qtoolkit.network import _methods, load, quantize


def _values(kind, shape, dtype, rng):
    if kind == "normal":
        w = rng.normal(size=shape)
    elif kind == "ties":  # exact halves of the grid step are frequent
        w = rng.integers(-16, 17, size=shape) / 2.0
    elif kind == "sparse":  # all-zero groups (scale 1) next to others
        w = np.zeros(shape)
        w.reshape(-1)[:: max(1, w.size // 5)] = rng.normal(
            size=w.reshape(-1)[:: max(1, w.size // 5)].size
        )
    elif kind == "positive":
        w = rng.uniform(0.1, 2.0, size=shape)
    elif kind == "negative":
        w = -rng.uniform(0.1, 2.0, size=shape)
    elif kind == "subnormal":
        w = rng.normal(size=shape) * (1e-41 if dtype == np.float32 else 1e-310)
    elif kind == "wide":  # ranges wider than half the dtype's maximum
        w = rng.uniform(-1, 1, size=shape) * (1.5e38 if dtype == np.float32 else 8e307)
    else:
        w = np.full(shape, -0.37)
    return w.astype(dtype)


def _record(w, params, monkeypatch=None):
    rec = _methods.Record("w", w.shape, str(w.dtype), "uniform", params, "registry")
    acc = _methods.ErrorSums(None)
    if monkeypatch is None:
        _methods._quantize_registry(w, "uniform", params, rec, acc)
    else:  # (float64 squares of values near the maximum overflow the float64 sums)
        with monkeypatch.context() as m, np.errstate(over="ignore"):
            m.setattr(_methods, "_fused_plan", lambda *a: None)
            _methods._quantize_registry(w, "uniform", params, rec, acc)
    return rec, acc


CASES = [
    ((37, 256), 128),
    ((37, 256), 32),
    ((5, 96), None),
    ((6, 3, 3, 3), None),
    ((3, 40), 8),
    ((2, 1000), 1000),
]
MODES = [
    (mode, bits, narrow)
    for mode, bits, narrow in itertools.product(
        ("symmetric", "asymmetric", "unsigned"), (1, 2, 3, 4, 5, 8), (False, True)
    )
    if not (mode == "symmetric" and bits == 1)
    and not (narrow and (mode == "unsigned" or bits == 1))
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "kind", ["normal", "ties", "sparse", "positive", "negative", "subnormal", "wide", "constant"]
)
def test_fused_record_equals_the_generic_record(dtype, kind, rng, monkeypatch):
    for (shape, group), (mode, bits, narrow) in itertools.product(CASES, MODES):
        w = _values(kind, shape, dtype, rng)
        params = {"bits": bits, "axis": 0, "mode": mode, "narrow_range": narrow}
        if group is not None:
            params["group_size"] = group
        assert _methods._fused_plan(w, "uniform", params, _methods.ErrorSums(None)) is not None
        try:
            ref, ref_acc = _record(w, params, monkeypatch)
        except ValueError as err:  # an overflowing grid: the fused path refuses it the same way
            with pytest.raises(ValueError, match=str(err)[:20]):
                _record(w, params)
            continue
        got, acc = _record(w, params)
        assert got.meta == ref.meta
        assert set(got.arrays) == set(ref.arrays)
        for key, a in ref.arrays.items():
            b = got.arrays[key]
            assert b.dtype == a.dtype and b.shape == a.shape, key
            assert np.array_equal(b.view(np.uint8), a.view(np.uint8)), (key, params, shape)
        for x, y in ((acc.sq, ref_acc.sq), (acc.ref, ref_acc.ref)):  # sums in another order
            assert x == y or abs(x - y) <= 1e-12 * abs(y)


def test_network_results_equal_the_registry_quantizer(rng, tmp_path):
    """Through the public API: dequantized tensors = rounding.get(...)(w), report errors."""
    state = {
        "a.weight": rng.normal(size=(300, 512)).astype(np.float32),
        "b.weight": rng.normal(size=(64, 3, 3, 3)).astype(np.float32),
        "c.weight": rng.normal(size=(17, 96)),  # float64
    }
    params = {"bits": 4, "axis": 0, "mode": "asymmetric"}
    recipe = [
        {"match": "a.weight", "method": "uniform", "params": {**params, "group_size": 128}},
        {"match": "*", "method": "uniform", "params": params},
    ]
    net = quantize(state, recipe)
    back = load(net.save(tmp_path / "n.safetensors"))
    for row in net.report.rows:
        name = row["name"]
        p = recipe[0]["params"] if name == "a.weight" else params
        want = np.asarray(rounding.get("uniform", **p)(state[name]))
        assert net[name].dtype == state[name].dtype
        assert np.array_equal(net[name], want) and np.array_equal(back[name], want)
        w = state[name].astype(np.float64)
        rel = np.sum((w - want) ** 2) / np.sum(w**2)
        assert row["weight_error"] == pytest.approx(rel, rel=1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_tensors_are_refused(bad, rng):
    w = rng.normal(size=(8, 256)).astype(np.float32)
    w[3, 200] = bad
    recipe = [{"match": "*", "method": "uniform", "params": {"bits": 4, "axis": 0}}]
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize({"w": w}, recipe)


def test_other_parameters_take_the_generic_path(rng):
    w = rng.normal(size=(8, 64)).astype(np.float32)
    acc = _methods.ErrorSums(None)
    plan = _methods._fused_plan
    assert plan(w, "uniform", {"bits": 4, "axis": 0}, acc) is not None
    for params in (
        {"bits": 4},  # one scale for the tensor
        {"bits": 4, "axis": 1},
        {"bits": 4, "axis": 0, "range": "mse"},
        {"bits": 4, "axis": 0, "rounding": "half_away"},
        {"bits": 12, "axis": 0},
    ):
        assert plan(w, "uniform", params, acc) is None
    assert plan(w.astype(np.float16), "uniform", {"bits": 4, "axis": 0}, acc) is None
    assert plan(w, "uniform", {"bits": 4, "axis": 0}, _methods.ErrorSums(np.eye(64))) is None


def test_safetensors_tensors_read_in_row_slices_are_the_tensors(rng, tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from qtoolkit.network import _checkpoint

    state = {
        "a": rng.normal(size=(37, 5, 3)).astype(np.float32),
        "b": rng.normal(size=(10, 64)).astype(np.float16),
        "c": rng.integers(-5, 5, size=(9, 7)).astype(np.int32),
        "d": np.array(2.5, dtype=np.float64),
        "e": np.zeros((0, 4), np.float32),
    }
    path = tmp_path / "s.safetensors"
    save_file(state, str(path))
    monkeypatch.setattr(_checkpoint, "SLICE_BYTES", 200)  # a few rows per slice
    ck = _checkpoint.open_checkpoint(str(path))
    try:
        for name, want in state.items():
            got = ck.get(name)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.array_equal(got, want)
    finally:
        ck.close()
