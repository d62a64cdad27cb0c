"""Calibration: streaming XᵀX, every input form, bad shapes, and sequential against one-shot."""

import tracemalloc

import numpy as np
import pytest

from qtoolkit.network import Calibration, CheckpointError, Sequential, quantize
from qtoolkit.optimize import gptq

GPTQ = [{"match": "*.weight", "method": "gptq", "params": {"bits": 3}}]


def test_streaming_hessian_equals_the_direct_product(rng):
    X = rng.normal(size=(1000, 12)).astype(np.float32)
    cal = Calibration(chunk_rows=64)
    for i in range(0, 1000, 137):
        cal.update("w", X[i : i + 137])
    X64 = X.astype(np.float64)
    assert np.allclose(cal.hessian("w"), X64.T @ X64 / 1000, rtol=1e-12, atol=1e-12)
    assert cal.names == ["w"]


def test_every_input_form_gives_the_same_network(rng, tmp_path):
    W = rng.normal(size=(6, 16)).astype(np.float32)
    X = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    state = {"l.weight": W}
    ref = quantize(state, GPTQ, calibration={"l.weight": X})["l.weight"]
    batches = [X[i : i + 50] for i in range(0, 300, 50)]
    cal = Calibration()
    for b in batches:
        cal.update("l.weight", b)
    np.savez(tmp_path / "cal.npz", **{"l.weight": X})
    forms = [
        {"l.weight": batches},  # a list of batches
        {"l.weight": (b for b in batches)},  # a generator
        lambda name: X if name == "l.weight" else None,  # a callable
        lambda name: {"l.weight": X}[name],  # a callable raising KeyError for others
        cal,
        str(tmp_path / "cal.npz"),
    ]
    for form in forms:
        got = quantize(state, GPTQ, calibration=form)["l.weight"]
        # batches sum XᵀX in another order: equal up to rounding of the float64 sums
        assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max() or np.mean(got != ref) < 0.01


def test_streaming_never_holds_all_activations(rng):
    """A generator of 40 batches of 2000 x 64 (40 MB in float64) is reduced to one 64 x 64 sum."""
    W = rng.normal(size=(8, 64)).astype(np.float32)

    def batches():
        g = np.random.default_rng(0)
        for _ in range(40):
            yield g.normal(size=(2000, 64))

    tracemalloc.start()
    try:
        quantize({"w": W}, [{"match": "w", "method": "gptq"}], calibration={"w": batches()})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_batch = 2000 * 64 * 8
    assert peak < 4 * one_batch  # not 40 batches


@pytest.mark.parametrize(
    "calibration, err, match",
    [
        ({"w": np.ones((10, 5))}, ValueError, "5 features, but the weight has 16 inputs"),
        ({"w": np.ones(16)}, ValueError, "must be 2-D"),
        ({"w": np.ones((0, 16))}, ValueError, "are empty"),
        ({"w": np.full((3, 16), np.nan)}, ValueError, "NaN or Inf"),
        ({"w": [np.ones((3, 16)), np.ones((3, 15))]}, ValueError, "disagree in width"),
        ({"w": np.array([["a"] * 16])}, TypeError, "must be numeric"),
        (42, TypeError, "calibration must be None"),
    ],
)
def test_bad_calibration(calibration, err, match, rng):
    state = {"w": rng.normal(size=(4, 16)).astype(np.float32)}
    with pytest.raises(err, match=match):
        quantize(state, [{"match": "w", "method": "gptq"}], calibration=calibration)


def test_bad_calibration_file_and_accumulator_arguments(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="calibration file"):
        quantize(
            {"w": np.ones((2, 2))},
            [{"match": "w", "method": "gptq"}],
            calibration=str(tmp_path / "c.npz"),
        )
    cal = Calibration()
    cal.update("a", np.ones((2, 3)))
    with pytest.raises(ValueError, match="must have 3 features"):
        cal.update("a", np.ones((2, 4)))
    with pytest.raises(TypeError, match="name must be a string"):
        cal.update(1, np.ones((2, 4)))
    with pytest.raises(ValueError, match="chunk_rows"):
        Calibration(chunk_rows=0)
    with pytest.raises(TypeError, match="forward must be callable"):
        Sequential(3)
    with pytest.raises(TypeError, match="blocks must be a list"):
        Sequential(lambda s: {}, blocks="fc1")


def test_sequential_differs_from_and_beats_one_shot_on_the_trained_mlp(digits_mlp, mlp_forward):
    state, Xtr, Xte, yte = digits_mlp
    recipe = [{"match": "*.weight", "method": "gptq", "params": {"bits": 2}}]
    calib = Xtr[:512]
    inputs, _ = mlp_forward(state, calib)
    one_shot = quantize(state, recipe, calibration=inputs)
    calls = []

    def forward(current):
        calls.append(1)
        return mlp_forward(current, calib)[0]

    seq = quantize(state, recipe, calibration=Sequential(forward))
    assert len(calls) == 3  # one forward pass per quantized layer
    # the first layer sees the same inputs in both modes; later layers do not
    assert np.array_equal(seq["fc1.weight"], one_shot["fc1.weight"])
    assert not np.array_equal(seq["fc3.weight"], one_shot["fc3.weight"])

    _, ref = mlp_forward(state, Xte)

    def out_err(net):
        _, logits = mlp_forward(net.dequantize(), Xte)
        return float(np.mean((logits - ref) ** 2))

    def acc(net):
        _, logits = mlp_forward(net.dequantize(), Xte)
        return float(np.mean(logits.argmax(1) == yte))

    assert out_err(seq) < out_err(one_shot)
    assert acc(seq) >= acc(one_shot) - 0.01
    # and the sequential network's layer 3 is GPTQ on the quantized network's own activations
    act = mlp_forward(
        {**state, "fc1.weight": seq["fc1.weight"], "fc2.weight": seq["fc2.weight"]}, calib
    )[0]
    direct = gptq(state["fc3.weight"], act["fc3.weight"], bits=2).weight
    assert np.mean(direct == seq["fc3.weight"]) > 0.95


def test_sequential_blocks_on_the_transformer_stack(transformer):
    state, tokens, forward = transformer
    recipe = [
        {"match": "blocks.*", "method": "gptq", "params": {"bits": 3}},
        {"match": "head.weight", "method": "q8_0"},
    ]
    calls = []

    def fwd(current):
        calls.append(1)
        return forward(current, tokens)[0]

    blocks = ["blocks.0.*", "blocks.1.*"]
    net = quantize(state, recipe, calibration=Sequential(fwd, blocks=blocks))
    assert len(calls) == 3  # two named blocks and the rest (the head)
    methods = {r["name"]: r["method"] for r in net.report.rows}
    assert methods["blocks.0.attn.q.weight"] == "gptq" and methods["embed.weight"] == "float"
    assert methods["blocks.1.ln1.weight"] == "float" and methods["head.weight"] == "q8_0"
    _, ref = forward(state, tokens)
    _, out = forward(net.dequantize(), tokens)
    assert np.mean((out - ref) ** 2) < 0.05 * np.mean(ref**2)


def test_sequential_refuses_dask():
    class FakeClient:
        def submit(self):
            pass

        def scatter(self):
            pass

    with pytest.raises(ValueError, match="scheduler=None"):
        quantize(
            {"w": np.ones((2, 2))},
            [{"match": "w", "method": "gptq"}],
            calibration=Sequential(lambda s: {}),
            scheduler=FakeClient(),
        )
