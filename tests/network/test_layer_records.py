"""Layer-method records in the packed format: rotations, per-row codebooks, AWQ scales."""

import numpy as np
import pytest

from qtoolkit import optimize
from qtoolkit.network import Calibration, CheckpointError, load, quantize
from qtoolkit.network._methods import Record, dequantize_record, store_layer
from qtoolkit.optimize import output_error

from .conftest import mlp_inputs, rewrite_checkpoint


def _layer_results(W, X):
    """One result of every layer method and option the packed format has to hold."""
    g = W.shape[1] // 2
    return {
        "gptq rotate": optimize.gptq(W, X, bits=3, rotate=True, rng=1),
        "gptq optimal": optimize.gptq(W, X, bits=2, grid="optimal", group_size=g),
        "gptq optimal act-order": optimize.gptq(W, X, bits=3, grid="optimal", act_order=True),
        "awq rtn": optimize.awq(W, X, bits=3, group_size=g),
        "awq gptq": optimize.awq(W, X, bits=3, group_size=g, method="gptq"),
        "awq optimal": optimize.awq(W, X, bits=3, method="gptq", method_params={"grid": "optimal"}),
        "hqq rotate": optimize.hqq(W, bits=3, group_size=g, rotate=True, rng=2),
        "rtn rotate": optimize.rtn(W, bits=3, rotate=True, rng=4),
        "adaround": optimize.adaround(W, X, bits=3, max_iter=20),
    }


@pytest.mark.parametrize("n_in", [48, 10])  # 48 = 4 x Paley 12; 10 = 2 x random 5 x 5 block
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_record_decodes_to_the_layer_weight_exactly(dtype, n_in, rng):
    W = rng.normal(size=(6, n_in)).astype(dtype)
    X = (rng.normal(size=(120, n_in)) * np.linspace(0.2, 3, n_in)).astype(dtype)
    for label, res in _layer_results(W, X).items():
        rec = Record(
            name="w", shape=W.shape, dtype=str(W.dtype), method="gptq", params={}, kind="grid"
        )
        store_layer(rec, res, W.dtype)
        out = dequantize_record(rec)
        assert out.dtype == W.dtype, label
        assert np.array_equal(out, res.weight), label
        if res.transform is not None:  # 1 bit per sign, the random block only when drawn
            assert rec.arrays["signs"].nbytes == -(-n_in // 8)
            assert ("block" in rec.arrays) == (n_in == 10)


RECIPES = {
    "gptq rotate": ("gptq", {"bits": 3, "group_size": 16, "rotate": True, "rng": 0}),
    "gptq optimal": ("gptq", {"bits": 3, "grid": "optimal", "act_order": True}),
    "rtn rotate": ("rtn", {"bits": 4, "rotate": True, "rng": 5}),
    "hqq rotate": ("hqq", {"bits": 3, "group_size": 16, "rotate": True, "rng": 1}),
    "awq": ("awq", {"bits": 3, "group_size": 16}),
    "awq gptq optimal": (
        "awq",
        {"bits": 3, "method": "gptq", "method_params": {"grid": "optimal", "act_order": True}},
    ),
}


@pytest.mark.parametrize("label", sorted(RECIPES))
def test_recipes_with_rotation_codebooks_and_awq_round_trip(label, rng, tmp_path):
    method, params = RECIPES[label]
    state = {"a.weight": rng.normal(size=(8, 48)).astype(np.float32)}
    X = rng.normal(size=(200, 48)) * np.linspace(0.1, 4, 48)
    recipe = [{"match": "*.weight", "method": method, "params": params}]
    net = quantize(state, recipe, calibration={"a.weight": X})
    back = load(net.save(tmp_path / "n.safetensors"))
    assert np.array_equal(back["a.weight"], net["a.weight"])
    row = net.report.rows[0]
    assert row["method"] == method and row["output_error"] is not None
    assert row["bits_per_weight"] == back.report.rows[0]["bits_per_weight"]
    # the effective weight is a good approximation of W on the calibration inputs
    assert output_error(state["a.weight"], net["a.weight"], X, relative=True) < 0.1
    # a seeded rotation is reproducible (and differs per tensor name, not per run)
    again = quantize(state, recipe, calibration={"a.weight": X})
    assert np.array_equal(again["a.weight"], net["a.weight"])
    # the report counts every stored byte: codes, grids or codebooks, signs, input scales
    rec = net._records["a.weight"]
    assert row["bits_per_weight"] == pytest.approx(8 * rec.nbytes / state["a.weight"].size)


def test_rotated_layer_equals_the_layer_method_on_the_same_hessian(rng):
    """The pipeline calls the layer method on a square-root factor R of the streamed XᵀX
    (R.T R = XᵀX): with the same factor, its weight is that of the layer function, bit for
    bit, including the rotation drawn from the tensor's seed."""
    from qtoolkit.network._methods import factor, tensor_rng

    W = rng.normal(size=(8, 64)).astype(np.float32)
    X = rng.normal(size=(300, 64))
    net = quantize(
        {"w": W},
        [{"match": "w", "method": "gptq", "params": {"bits": 3, "rotate": True, "rng": 7}}],
        calibration={"w": X},
    )
    cal = Calibration()
    cal.update("w", X)
    R = factor(cal.hessian("w"), 64)
    ref = optimize.gptq(W, R, bits=3, rotate=True, rng=tensor_rng(7, "w"))
    assert np.array_equal(net["w"], ref.weight)


def test_awq_recipe_uses_streamed_activation_magnitudes(digits_mlp):
    """AWQ in a recipe on the trained digits MLP: the calibration keeps XᵀX and mean |x| per
    layer (streamed over batches); the result equals the layer-level awq on the full inputs
    (same exponent, same weights up to the float32 rounding of the square-root factor) and
    beats round-to-nearest on every layer."""
    state, Xtr, _, _ = digits_mlp
    inputs, _ = mlp_inputs(state, Xtr)
    cal = Calibration()
    for name, X in inputs.items():
        for i in range(0, X.shape[0], 100):  # streamed in batches
            cal.update(name, X[i : i + 100])
    for name, X in inputs.items():
        np.testing.assert_allclose(cal._get(name).abs_mean, np.abs(X).mean(axis=0), rtol=1e-12)
    params = {"bits": 3, "group_size": 16}
    net = quantize(
        state, [{"match": "*.weight", "method": "awq", "params": params}], calibration=cal
    )
    rtn = quantize(state, [{"match": "*.weight", "method": "rtn", "params": params}])
    for name, X in inputs.items():
        W = state[name]
        ref = optimize.awq(W, X.astype(np.float32), **params)
        ours = net[name]
        e_ours = output_error(W, ours, X, relative=True)
        e_ref = output_error(W, ref.weight, X, relative=True)
        assert e_ours == pytest.approx(e_ref, rel=0.02)
        assert e_ours < output_error(W, rtn[name], X, relative=True)
        codes = net._records[name].arrays
        assert "input_scale" in codes and codes["input_scale"].dtype == np.float32


def test_awq_needs_calibration_and_checks_its_params(rng):
    state = {"w": rng.normal(size=(4, 32)).astype(np.float32)}
    with pytest.raises(ValueError, match="needs calibration inputs"):
        quantize(state, [{"match": "w", "method": "awq", "params": {"bits": 3}}])
    with pytest.raises(TypeError, match="mean_abs_x"):
        quantize(state, [{"match": "w", "method": "awq", "params": {"mean_abs_x": [1.0]}}])
    with pytest.raises(TypeError, match="rng of method 'gptq' must be an int seed"):
        quantize(state, [{"match": "w", "method": "gptq", "params": {"rng": "x"}}])


def _saved(rng, tmp_path):
    state = {
        "a.weight": rng.normal(size=(8, 40)).astype(np.float32),  # rotation, Paley 20 block
        "b.weight": rng.normal(size=(8, 10)).astype(np.float32),  # rotation, random block
        "c.weight": rng.normal(size=(8, 32)).astype(np.float32),  # per-row codebooks
        "d.weight": rng.normal(size=(8, 32)).astype(np.float32),  # AWQ
    }
    recipe = [
        {"match": "a.*", "method": "gptq", "params": {"bits": 3, "rotate": True, "rng": 0}},
        {"match": "b.*", "method": "rtn", "params": {"bits": 3, "rotate": True, "rng": 0}},
        {"match": "c.*", "method": "gptq", "params": {"bits": 2, "grid": "optimal"}},
        {"match": "d.*", "method": "awq", "params": {"bits": 3}},
    ]
    cal = {k: rng.normal(size=(64, v.shape[1])) for k, v in state.items()}
    net = quantize(state, recipe, calibration=cal)
    return net.save(tmp_path / "good.safetensors")


def _flip_block(h, t):
    b = t["t1.block"].copy()
    b[0, 0] += 0.5
    return {**t, "t1.block": b}


def _drop(key):
    def edit(h, t):
        del h["tensors"][int(key[1])]["arrays"][key.split(".")[1]]
        return {k: v for k, v in t.items() if k != key}

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h, t: {**t, "t0.signs": t["t0.signs"][:-1]}, "signs must be 5 uint8"),
        (lambda h, t: {**t, "t0.signs": t["t0.signs"].astype(np.int16)}, "signs must be"),
        (_flip_block, "bad rotation: block must be a finite orthogonal"),
        (lambda h, t: {**t, "t1.block": t["t1.block"][:2, :2]}, "bad rotation"),
        (_drop("t1.block"), "bad rotation: a transform of length 10 has a random block"),
        (_drop("t1.signs"), "rotation block needs its signs"),
        (lambda h, t: {**t, "t2.codebook": t["t2.codebook"][:, :, :2]}, "outside the 2 codewords"),
        (lambda h, t: {**t, "t2.codebook": t["t2.codebook"][0]}, "codebook must be float"),
        (lambda h, t: {**t, "t2.codebook": np.full((8, 1, 4), np.inf)}, "NaN or Inf"),
        (
            lambda h, t: (
                h["tensors"][2]["arrays"].update(scale="t2.scale"),
                {**t, "t2.scale": np.ones((8, 1), np.float32)},
            )[1],
            "no scale",
        ),
        (_drop("t0.scale"), "needs scale and zero_point"),
        (lambda h, t: h["tensors"][2]["meta"].update(scheme="uniform"), "scheme 'codebook'"),
        (lambda h, t: h["tensors"][0]["meta"].update(scheme="lattice"), "scheme must be one of"),
        (lambda h, t: {**t, "t3.input_scale": t["t3.input_scale"][:5]}, "input_scale must be 32"),
        (lambda h, t: {**t, "t3.input_scale": np.arange(32)}, "input_scale must be 32 floats"),
        (lambda h, t: {**t, "t3.groups": t["t3.groups"] + 1}, "groups index outside"),
    ],
)
def test_load_rejects_corrupt_layer_records(edit, match, rng, tmp_path):
    good = _saved(rng, tmp_path)
    load(good)  # the untouched file is fine
    bad = rewrite_checkpoint(good, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=match):
        load(bad)
