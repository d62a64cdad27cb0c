"""Dask: per-tensor tasks on a LocalCluster of 2 workers equal the serial run bit for bit."""

import numpy as np
import pytest
from safetensors.numpy import save_file

distributed = pytest.importorskip("dask.distributed")

from qtoolkit.network import _methods, quantize  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def recipe():
    return [
        {"match": "*.attn.*", "method": "gptq", "params": {"bits": 3}},
        {"match": "*.mlp.fc1.weight", "method": "kmeans", "params": {"bits": 3}},
        {
            "match": "*.mlp.fc2.weight",
            "method": "stochastic",
            "params": {"codebook": [-0.2, 0, 0.2], "rng": 3},
        },
        {"match": "head.weight", "method": "q4_1"},
    ]


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_dask_equals_serial_bit_for_bit(client, transformer, tmp_path):
    state, tokens, forward = transformer
    inputs, _ = forward(state, tokens)
    serial = quantize(state, recipe(), calibration=inputs)
    on_dask = quantize(state, recipe(), calibration=inputs, scheduler=client)
    assert same(serial.dequantize(), on_dask.dequantize())
    assert [r["name"] for r in serial.report.rows] == [r["name"] for r in on_dask.report.rows]
    # from a file: each task reads its own tensor
    save_file(state, str(tmp_path / "m.safetensors"))
    from_file = quantize(tmp_path / "m.safetensors", recipe(), calibration=inputs, scheduler=client)
    assert same(
        from_file.dequantize(),
        quantize(tmp_path / "m.safetensors", recipe(), calibration=inputs).dequantize(),
    )


def test_failed_tasks_are_retried_without_corrupting_the_result(client, transformer, monkeypatch):
    state = transformer[0]
    serial = quantize(state, recipe()[1:], calibration=None)
    real = _methods.quantize_tensor
    failed = set()

    def flaky(name, *args, **kwargs):
        try:
            distributed.get_worker()
        except ValueError:  # in the client: the tensors kept in floating point
            return real(name, *args, **kwargs)
        if name not in failed:  # every tensor sent to a worker fails once, then succeeds
            failed.add(name)
            raise OSError(f"worker lost while quantizing {name}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(_methods, "quantize_tensor", flaky)
    import qtoolkit.network._network as net_mod

    monkeypatch.setattr(net_mod, "quantize_tensor", flaky)
    retried = quantize(state, recipe()[1:], scheduler=client)
    quantized = {r["name"] for r in serial.report.rows if r["method"] != "float"}
    assert len(quantized) == 5 and failed == quantized  # kept tensors never go to a worker
    assert same(serial.dequantize(), retried.dequantize())


def test_budget_on_dask_equals_serial(client, transformer):
    state, tokens, forward = transformer
    inputs, _ = forward(state, tokens)
    cands = [{"method": "uniform", "params": {"bits": b, "axis": 0}} for b in (2, 4, 8)]
    r = [{"match": "blocks.*", "candidates": cands}]
    a = quantize(state, r, calibration=inputs, budget=5.0)
    b = quantize(state, r, calibration=inputs, budget=5.0, scheduler=client)
    assert same(a.dequantize(), b.dequantize())
    assert a.report.pareto == b.report.pareto
