"""qtoolkit.network: checkpoints in, recipes, methods, the packed file, the report, bad input."""

import json
import math
import os
import tracemalloc

import numpy as np
import pytest
from safetensors.numpy import save_file

from qtoolkit import rounding
from qtoolkit.codebooks import ProductQuantizer, kmeans_1d
from qtoolkit.network import CheckpointError, QuantizedNetwork, available_methods, load, quantize
from qtoolkit.optimize import gptq, output_error

from .conftest import rewrite_checkpoint

W4 = [{"match": "*.weight", "method": "uniform", "params": {"bits": 4, "axis": 0}}]


def small_state(rng):
    return {
        "fc1.weight": rng.normal(size=(16, 64)).astype(np.float32),
        "fc1.bias": rng.normal(size=16).astype(np.float32),
        "fc2.weight": rng.normal(size=(8, 16)).astype(np.float32),
    }


def same(a, b):
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a
    )


# ---------------------------------------------------------------- checkpoints in


def test_mapping_npz_safetensors_and_torch_give_the_same_network(rng, tmp_path):
    state = small_state(rng)
    ref = quantize(state, W4).dequantize()
    np.savez(tmp_path / "m.npz", **state)
    save_file(state, str(tmp_path / "m.safetensors"))
    assert same(quantize(str(tmp_path / "m.npz"), W4).dequantize(), ref)
    assert same(quantize(tmp_path / "m.safetensors", W4).dequantize(), ref)
    torch = pytest.importorskip("torch")
    sd = {
        k: torch.from_numpy(v.copy()).requires_grad_(k.endswith("weight")) for k, v in state.items()
    }
    assert same(quantize(sd, W4).dequantize(), ref)


def test_torch_bfloat16_goes_through_float32(rng):
    torch = pytest.importorskip("torch")
    w = torch.randn(4, 32).to(torch.bfloat16)
    net = quantize({"a.weight": w}, [{"match": "*", "method": "q8_0"}])
    assert net["a.weight"].dtype == np.float32
    assert net.report.rows[0]["weight_error"] < 1e-3


def test_weights_are_kept_in_their_dtype(rng):
    state = {
        "a.weight": rng.normal(size=(4, 32)),
        "b.weight": rng.normal(size=(4, 32)).astype(np.float16),
    }
    out = quantize(state, W4).dequantize()
    assert out["a.weight"].dtype == np.float64 and out["b.weight"].dtype == np.float16


# ---------------------------------------------------------------- recipes


def test_first_matching_rule_wins_and_double_matches_are_reported(rng):
    state = small_state(rng)
    recipe = [
        {"match": "fc1.*", "method": "uniform", "params": {"bits": 2, "axis": 0}},
        {"match": "re:fc\\d\\.weight", "method": "uniform", "params": {"bits": 8, "axis": 0}},
    ]
    net = quantize(state, recipe)
    rows = {r["name"]: r for r in net.report.rows}
    assert rows["fc1.weight"]["bits_per_weight"] == pytest.approx(
        2 + 32 / 64
    )  # symmetric: one float32 scale per row
    assert rows["fc2.weight"]["bits_per_weight"] == pytest.approx(8 + 32 / 16)
    assert net.report.recipe["multiple"] == {"fc1.weight": [0, 1]}
    assert "also matched rules [1]" in rows["fc1.weight"]["note"]
    # the bias matched fc1.* but is a 1-D tensor: kept by the default skip
    assert rows["fc1.bias"]["method"] == "float" and rows["fc1.bias"]["note"] == "1-D tensor"
    assert np.array_equal(net["fc1.bias"], state["fc1.bias"])
    assert "fc1.weight matched rules [0, 1]" in net.report.to_markdown()


def test_default_skips_unless_named_or_forced(rng):
    state = {
        "embed.weight": rng.normal(size=(10, 32)).astype(np.float32),
        "blocks.0.ln_f.weight": rng.normal(size=(4, 32)).astype(np.float32),
        "layer.norm.scale": rng.normal(size=(4, 32)).astype(np.float32),
        "proj.bias": rng.normal(size=(4, 32)).astype(np.float32),
        "proj.weight": rng.normal(size=(4, 32)).astype(np.float32),
    }
    net = quantize(state, [*W4, {"match": "*", "method": "q8_0"}])
    methods = {r["name"]: r["method"] for r in net.report.rows}
    assert methods == {
        "embed.weight": "float",
        "blocks.0.ln_f.weight": "float",
        "layer.norm.scale": "float",
        "proj.bias": "float",
        "proj.weight": "uniform",
    }
    named = quantize(state, [{"match": "embed.weight", "method": "q8_0"}, *W4])
    assert named.report.rows[0]["method"] == "q8_0"
    forced = quantize(state, [{"match": "*", "method": "q8_0", "force": True}])
    assert {r["method"] for r in forced.report.rows} == {"q8_0"}


def test_unmatched_names_are_reported_and_kept(rng):
    state = small_state(rng)
    net = quantize(state, [{"match": "fc2.*", "method": "uniform", "params": {"axis": 0}}])
    assert net.report.recipe["unmatched"] == ["fc1.weight", "fc1.bias"]
    assert np.array_equal(net["fc1.weight"], state["fc1.weight"])
    assert "unmatched (kept in floating point): fc1.weight, fc1.bias" in net.report.to_markdown()


def test_skip_rule_and_recipe_from_json_file(rng, tmp_path):
    state = small_state(rng)
    recipe = [{"match": "fc1.weight", "method": "skip"}, *W4]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe))
    a, b = quantize(state, recipe), quantize(state, str(path))
    assert same(a.dequantize(), b.dequantize())
    assert np.array_equal(a["fc1.weight"], state["fc1.weight"])
    assert a.report.rows[0]["note"].startswith("skipped by rule 0 ('fc1.weight')")


@pytest.mark.parametrize(
    "recipe, err, match",
    [
        ([{"match": "*", "method": "nope"}], ValueError, r"rule 0 \('\*'\): unknown method 'nope'"),
        ([{"match": "*", "method": "uniform", "params": {"bitz": 4}}], TypeError, "rule 0.*'bitz'"),
        (
            [W4[0], {"match": "*", "method": "gptq", "params": {"block": 1}}],
            TypeError,
            "rule 1.*'block'",
        ),
        ([{"match": "re:(", "method": "skip"}], ValueError, "rule 0.*invalid regular expression"),
        ([{"method": "skip"}], ValueError, "rule 0 needs 'match'"),
        ([{"match": "*", "method": "skip", "extra": 1}], ValueError, "unknown keys \\['extra'\\]"),
        ([{"match": "*"}], ValueError, "needs 'method'"),
        (
            [{"match": "*", "method": "kmeans"}],
            ValueError,
            "exactly one of 'n_clusters' and 'bits'",
        ),
        ([], ValueError, "at least one rule"),
        (
            [{"match": "*", "method": "gptq", "params": {"rng": 1.5}}],
            TypeError,
            "rng of method 'gptq' must be an int seed",
        ),
        ({"match": "*"}, TypeError, "recipe must be a list"),
        ("[not json", ValueError, "not valid JSON"),
        ("missing.json", ValueError, "cannot read recipe file"),
        (
            [{"match": "*", "method": "skip", "force": 1}],
            TypeError,
            "'force' must be true or false",
        ),
    ],
)
def test_bad_recipes_name_the_rule(recipe, err, match, rng):
    with pytest.raises(err, match=match):
        quantize(small_state(rng), recipe)


def test_method_failing_on_a_tensor_names_rule_tensor_and_shape(rng):
    state = {"w": rng.normal(size=(4, 30)).astype(np.float32)}
    with pytest.raises(ValueError, match=r"'q4_0'.*tensor 'w' of shape \(4, 30\).*multiple of 32"):
        quantize(state, [{"match": "w", "method": "q4_0"}])
    with pytest.raises(ValueError, match=r"'gptq'.*needs calibration inputs"):
        quantize(state, [{"match": "w", "method": "gptq"}])
    bad = {"w": np.array([[1.0, np.nan]])}
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize(bad, [{"match": "w", "method": "uniform"}])


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize(
    "name, params",
    [
        ("uniform", {"bits": 4, "axis": 0}),
        ("uniform", {"bits": 3, "axis": 0, "group_size": 64, "mode": "asymmetric"}),
        ("uniform", {"bits": 8}),
        ("uniform", {"bits": 5, "axis": [0], "range": "mse"}),
        ("binary", {"axis": 0}),
        ("ternary", {"axis": 0}),
        ("ternary", {"method": "optimal"}),
        ("power_of_two", {"bits": 3, "axis": 0}),
        ("fixed_point", {"int_bits": 2, "frac_bits": 4}),
        ("dorefa", {"bits": 3}),
    ],
)
def test_registry_methods_equal_the_quantizer_bit_for_bit(name, params, rng, tmp_path):
    # 700 x 512 has more entries than one row chunk: the chunked path must match the whole
    w = rng.normal(size=(700, 512)).astype(np.float32)
    net = quantize({"w": w}, [{"match": "w", "method": name, "params": params}])
    expect = np.asarray(rounding.get(name, **params)(w))
    assert np.array_equal(net["w"], expect)
    back = load(net.save(tmp_path / "n.safetensors"))
    assert np.array_equal(back["w"], expect)
    err = float(np.sum((w.astype(np.float64) - expect) ** 2) / np.sum(w.astype(np.float64) ** 2))
    assert net.report.rows[0]["weight_error"] == pytest.approx(err, rel=1e-9)


def test_gptq_and_adaround_beat_rtn_on_correlated_inputs(rng, tmp_path):
    X = rng.normal(size=(512, 32)) @ rng.normal(size=(32, 32))
    W = rng.normal(size=(16, 32)).astype(np.float32)
    rtn = rounding.uniform(W, bits=3, mode="asymmetric", axis=0)
    for method, params in (("gptq", {"bits": 3}), ("adaround", {"bits": 3, "max_iter": 200})):
        net = quantize(
            {"w": W}, [{"match": "w", "method": method, "params": params}], calibration={"w": X}
        )
        What = net["w"]
        assert output_error(W, What, X) < output_error(W, rtn, X)
        row = net.report.rows[0]
        assert row["output_error"] == pytest.approx(
            output_error(W, What, X, relative=True),
            rel=1e-5,  # float32 products (ErrorSums)
        )
        assert np.array_equal(load(net.save(tmp_path / f"{method}.safetensors"))["w"], What)
    # GPTQ from the streamed X^T X matches GPTQ on X itself (up to the factorization's rounding)
    direct = gptq(W, X, bits=3).weight
    ours = quantize(
        {"w": W}, [{"match": "w", "method": "gptq", "params": {"bits": 3}}], calibration={"w": X}
    )["w"]
    assert output_error(W, ours, X) == pytest.approx(output_error(W, direct, X), rel=1e-3)


@pytest.mark.parametrize("method", ["rtn", "hqq"])
def test_rtn_and_hqq_layers(method, rng, tmp_path):
    from qtoolkit import optimize

    W = rng.normal(size=(8, 64)).astype(np.float32)
    p = {"bits": 3, "group_size": 32}
    net = quantize({"w": W}, [{"match": "w", "method": method, "params": p}])
    ref = getattr(optimize, method)(W, **p).weight
    # HQQ's real-valued zero points are stored in the weight's dtype
    assert np.allclose(net["w"], ref, rtol=1e-5, atol=1e-6)
    assert np.array_equal(load(net.save(tmp_path / "l.safetensors"))["w"], net["w"])
    X = rng.normal(size=(100, 64))
    cal = quantize({"w": W}, [{"match": "w", "method": method, "params": p}], calibration={"w": X})
    assert cal.report.rows[0]["output_error"] is not None


def test_gptq_groups_and_act_order_round_trip(rng, tmp_path):
    X = rng.normal(size=(256, 64)) * np.linspace(0.1, 3, 64)
    W = rng.normal(size=(8, 64)).astype(np.float32)
    p = {"bits": 4, "group_size": 16, "act_order": True}
    net = quantize({"w": W}, [{"match": "w", "method": "gptq", "params": p}], calibration={"w": X})
    res = gptq(W, X, **p)
    # same grid structure: values are scale * (code - zero) of the group of each column
    assert np.unique(net["w"][0]).size <= 4 * 16
    assert np.array_equal(load(net.save(tmp_path / "g.safetensors"))["w"], net["w"])
    assert output_error(W, net["w"], X) == pytest.approx(output_error(W, res.weight, X), rel=1e-2)


def test_kmeans_and_hessian_kmeans(rng):
    W = rng.normal(size=(8, 64)).astype(np.float32)
    X = rng.normal(size=(100, 64)) * np.linspace(0.01, 5, 64)
    net = quantize({"w": W}, [{"match": "w", "method": "kmeans", "params": {"bits": 3}}])
    book, _, _ = kmeans_1d(W.astype(np.float64), 8)
    got = net["w"]
    assert set(np.unique(got)) <= set(book.astype(np.float32))
    nearest = book[np.abs(W[..., None] - book).argmin(-1)].astype(np.float32)
    assert np.array_equal(got, nearest)
    hk = quantize(
        {"w": W},
        [{"match": "w", "method": "hessian_kmeans", "params": {"n_clusters": 8}}],
        calibration={"w": X},
    )
    # importance-weighted: lower output error, higher plain weight error than plain k-means
    assert output_error(W, hk["w"], X) < output_error(W, got, X)
    assert np.sum((hk["w"] - W) ** 2) > np.sum((got - W) ** 2)


def test_product_quantization_equals_the_estimator(rng):
    W = rng.normal(size=(64, 32)).astype(np.float32)
    p = {"n_subspaces": 4, "n_clusters": 16, "random_state": 0}
    net = quantize({"w": W}, [{"match": "w", "method": "pq", "params": p}])
    pq = ProductQuantizer(**p).fit(W)
    assert np.array_equal(net["w"], pq.inverse_transform(pq.transform(W)).astype(np.float32))
    assert net.report.rows[0]["bits_per_weight"] == pytest.approx(
        (64 * 4 * 4 + 4 * 16 * 8 * 32) / (64 * 32)
    )


def test_available_methods():
    names = set(available_methods())
    assert {"gptq", "adaround", "kmeans", "hessian_kmeans", "pq", "skip", "q4_0"} <= names
    assert set(rounding.available_quantizers()) <= names


# ---------------------------------------------------------------- packed file


def test_codes_are_densely_packed(rng, tmp_path):
    from safetensors import safe_open

    w = rng.normal(size=(5, 77)).astype(np.float32)
    for bits in (1, 2, 3, 4, 5, 8):
        method = "binary" if bits == 1 else "uniform"
        params = {"axis": 0} if bits == 1 else {"bits": bits, "axis": 0, "mode": "asymmetric"}
        net = quantize({"w": w}, [{"match": "w", "method": method, "params": params}])
        path = net.save(tmp_path / f"b{bits}.safetensors")
        with safe_open(path, framework="numpy") as f:
            codes = f.get_tensor("t0.codes")
        assert codes.dtype == np.uint8 and codes.size == math.ceil(w.size * bits / 8)
        assert np.array_equal(load(path)["w"], net["w"])


def test_save_load_keeps_report_and_every_kind(rng, tmp_path):
    state = {
        "a.weight": rng.normal(size=(8, 64)).astype(np.float32),
        "b.weight": rng.normal(size=(8, 64)).astype(np.float32),
        "c.weight": rng.normal(size=(16, 32)).astype(np.float32),
        "d.weight": rng.normal(size=(8, 256)).astype(np.float32),
        "e.weight": rng.normal(size=(3, 4, 64)).astype(np.float32),
        "e.bias": np.arange(3, dtype=np.int64),
    }
    X = rng.normal(size=(64, 64))
    recipe = [
        {"match": "a.*", "method": "gptq", "params": {"bits": 2, "group_size": 32}},
        {"match": "b.*", "method": "kmeans", "params": {"n_clusters": 5}},
        {
            "match": "c.*",
            "method": "pq",
            "params": {"n_subspaces": 2, "n_clusters": 4, "random_state": 1},
        },
        {"match": "d.*", "method": "tq1_0"},
        {"match": "e.*", "method": "ternary", "params": {"axis": 0}},
    ]
    net = quantize(state, recipe, calibration={"a.weight": X})
    back = load(net.save(tmp_path / "all.safetensors"))
    assert isinstance(back, QuantizedNetwork) and back.names == list(state)
    assert same(back.dequantize(), net.dequantize())
    assert back.report.to_dict()["rows"] == json.loads(net.report.to_json())["rows"]
    assert back.report.totals == net.report.totals


def test_report_formats_and_totals(rng):
    state = small_state(rng)
    rep = quantize(state, W4).report
    t = rep.totals
    assert t["bytes_before"] == sum(v.nbytes for v in state.values())
    # 4-bit codes + a float32 scale per row (symmetric grid: no zero point)
    after_w1 = 16 * 64 * 4 // 8 + 16 * 4
    after_w2 = 8 * 16 * 4 // 8 + 8 * 4
    assert t["bytes_after"] == after_w1 + after_w2 + state["fc1.bias"].nbytes
    assert t["compression_ratio"] == pytest.approx(t["bytes_before"] / t["bytes_after"])
    assert t["bits_per_weight"] == pytest.approx(8 * (after_w1 + after_w2) / (16 * 64 + 8 * 16))
    lines = rep.to_csv().splitlines()
    assert lines[0].split(",") == list(rep.COLUMNS) and len(lines) == 4
    assert lines[1].startswith("fc1.weight,16x64,uniform,4.5,")
    md = rep.to_markdown()
    assert md.count("\n| ") == 3 and "compression" in md
    js = json.loads(rep.to_json())
    assert js["totals"]["n_quantized"] == 2


def _set(path, value):
    def edit(h, t):
        obj = h
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set(["version"], 99), "version 99 is not supported"),
        (_set(["format"], "x"), "does not describe"),
        (_set(["tensors", 0, "kind"], "magic"), "unknown kind"),
        (_set(["tensors", 0, "shape"], [16, 65]), "code_shape"),
        (_set(["tensors", 0, "shape"], [-1, 64]), "shape must be"),
        (_set(["tensors", 0, "meta", "code_bits"], 9), "code_bits"),
        (_set(["tensors", 0, "meta", "code_shape"], [1 << 40, 64]), "code_shape"),
        (_set(["tensors", 0, "dtype"], "object"), "unsupported dtype"),
        (_set(["tensors", 0, "arrays", "codes"], "nothere"), "missing from the file"),
        (_set(["tensors", 1, "meta", "code_offset"], 3), "codes index outside the codebook"),
        (_set(["tensors", 2, "meta", "code_offset"], 4), "codes outside"),
        (_set(["tensors"], {}), "no list of tensors"),
        (_set(["report", "rows"], []), "report does not match"),
        (lambda h, t: {**t, "t0.codes": t["t0.codes"][:-1]}, "codes must be"),
        (lambda h, t: {**t, "t0.scale": t["t0.scale"][:3]}, "scale"),
        (lambda h, t: {**t, "t0.groups": t["t0.groups"] + 5}, "groups index outside"),
        (lambda h, t: {**t, "t2.d": t["t2.d"].astype(np.float32)}, "d must be"),
        (lambda h, t: {**t, "t1.codebook": np.full(5, np.nan)}, "NaN"),
    ],
)
def test_load_rejects_corrupt_files(edit, match, rng, tmp_path):
    state = {
        "a.weight": rng.normal(size=(16, 64)).astype(np.float32),
        "b.weight": rng.normal(size=(8, 16)).astype(np.float32),
        "c.weight": rng.normal(size=(2, 64)).astype(np.float32),
    }
    recipe = [
        {"match": "a.*", "method": "gptq", "params": {"bits": 3, "group_size": 16}},
        {"match": "b.*", "method": "kmeans", "params": {"n_clusters": 5}},
        {"match": "c.*", "method": "q4_0"},
    ]
    net = quantize(state, recipe, calibration={"a.weight": rng.normal(size=(40, 64))})
    good = net.save(tmp_path / "good.safetensors")
    bad = rewrite_checkpoint(good, tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError, match=match):
        load(bad)


def test_load_rejects_non_qtoolkit_files(tmp_path, rng):
    with pytest.raises(CheckpointError, match="no such file"):
        load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(100))
    with pytest.raises(CheckpointError, match="as a safetensors file"):
        load(tmp_path / "junk.safetensors")
    save_file({"x": np.zeros(3)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not a qtoolkit packed network"):
        load(tmp_path / "plain.safetensors")
    save_file(
        {"x": np.zeros(3)}, str(tmp_path / "j.safetensors"), metadata={"qtoolkit.network": "{"}
    )
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tmp_path / "j.safetensors")


def test_corrupt_or_wrong_checkpoints(rng, tmp_path):
    state = small_state(rng)
    save_file(state, str(tmp_path / "m.safetensors"))
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors"):
        quantize(tmp_path / "cut.safetensors", W4)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(CheckpointError, match=r"bad\.npz"):
        quantize(tmp_path / "bad.npz", W4)
    with pytest.raises(CheckpointError, match="no such file"):
        quantize(tmp_path / "none.safetensors", W4)
    with pytest.raises(ValueError, match="must end in"):
        (tmp_path / "m.bin").write_bytes(b"")
        quantize(tmp_path / "m.bin", W4)
    with pytest.raises(TypeError, match="checkpoint must be a mapping"):
        quantize(42, W4)
    with pytest.raises(TypeError, match=r"checkpoint\['x'\] must be a numeric array"):
        quantize({"x": object()}, W4)


def test_bad_arguments(rng):
    state = small_state(rng)
    with pytest.raises(TypeError, match="budget must be a number"):
        quantize(state, W4, budget="4")
    with pytest.raises(ValueError, match="budget must be a positive"):
        quantize(state, W4, budget=-1.0)
    with pytest.raises(TypeError, match="scheduler must be None or a dask"):
        quantize(state, W4, scheduler=object())
    with pytest.raises(TypeError, match="progress must be a bool"):
        quantize(state, W4, progress=1)
    with pytest.raises(ValueError, match="format must be"):
        quantize(state, W4).save("x.bin", format="onnx")


def test_progress_bar(rng, capsys):
    quantize(small_state(rng), W4, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and err.endswith("\n")


# ---------------------------------------------------------------- streaming


def test_streaming_peak_memory_is_bounded_by_the_largest_tensor(tmp_path):
    """A checkpoint of many tensors is processed one at a time: peak traced memory stays near
    one tensor (plus the packed outputs), far below the checkpoint's size."""
    rng = np.random.default_rng(0)
    n, shape = 20, (1024, 1024)
    state = {f"layer{i}.weight": rng.normal(size=shape).astype(np.float32) for i in range(n)}
    path = tmp_path / "big.safetensors"
    save_file(state, str(path))
    tensor = 1024 * 1024 * 4
    del state
    recipe = [
        {"match": "*", "method": "uniform", "params": {"bits": 4, "axis": 0, "group_size": 128}}
    ]
    tracemalloc.start()
    try:
        net = quantize(path, recipe)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out = net.report.totals["bytes_after"]
    assert out < n * tensor / 6
    # the checkpoint is 20 tensors; the peak stays within 2 tensors plus the outputs
    assert peak < 2 * tensor + out, (peak / tensor, out / tensor)
