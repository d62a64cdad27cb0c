"""Compressed-gradient DDP hooks against PyTorch's all-reduce, fp16 and PowerSGD hooks.

Two processes on the gloo backend over 127.0.0.1 train the same MLP; every method wraps its own
copy of the model in DistributedDataParallel with its hook. Rounds are interleaved (each round
times a few steps of every method, in the same order); the table gives the median time per
training step (forward, backward with the hook, optimizer step), its ratio to the plain
all-reduce, and the payload bytes each rank sends per step: measured from the messages for
the qtoolkit hooks, the tensor sizes for all-reduce (4 bytes per entry) and fp16 (2), and
PowerSGD's factors ((m + n) r per compressed matrix, 4 bytes per entry for the others).

    flock /work/locks/bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        python benchmarks/bench_ddp.py [--sizes 784,512,512,10] [--rounds 7] [--steps 3]

PyTorch's PowerSGD hook issues its second all-reduce of a bucket from a callback thread; on
gloo, with several buckets, that can interleave with the next bucket's first all-reduce in a
different order on the two ranks, and gloo aborts with "Received data size doesn't match".
It happens now and then when PowerSGD runs with the other methods; ``--only allreduce,PowerSGD``
runs it on its own (each method already has its own process group).
"""

import argparse
import datetime
import itertools
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

from qtoolkit.gradients import QSGDCompressor, SignErrorFeedback, TernGradCompressor, ddp_comm_hook

POWERSGD_RANK = 4


def _model(sizes):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _powersgd_bytes(model, rank, min_rate=2.0):
    total = 0
    for p in model.parameters():
        if p.ndim > 1:
            m, n = p.shape[0], p.numel() // p.shape[0]
            total += 4 * ((m + n) * rank if (m + n) * rank * min_rate < m * n else m * n)
        else:
            total += 4 * p.numel()
    return total


def _methods(model):
    n = sum(p.numel() for p in model.parameters())
    return [
        ("allreduce (no hook)", None, lambda s: 4 * n),
        ("fp16_compress_hook", "fp16", lambda s: 2 * n),
        (
            f"PowerSGD rank {POWERSGD_RANK}",
            "powersgd",
            lambda s: _powersgd_bytes(model, POWERSGD_RANK),
        ),
        (
            "qtoolkit QSGD s=15, buckets 512",
            QSGDCompressor(n_levels=15, bucket_size=512, rng=0),
            None,
        ),
        ("qtoolkit TernGrad", TernGradCompressor(rng=0), None),
        ("qtoolkit sign + error feedback", SignErrorFeedback(), None),
    ]


def _worker(rank, port, out, sizes, rounds, steps, batch, only):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=120),
    )
    r = np.random.default_rng(rank)
    X = torch.tensor(r.standard_normal((batch, sizes[0])).astype(np.float32))
    y = torch.tensor(r.integers(0, sizes[-1], batch))
    runs = []
    for name, spec, nbytes in _methods(_model(sizes)):
        if only and not any(o in name for o in only):
            continue
        # each method has its own process group, so that the collectives one hook launches
        # from a callback thread (PowerSGD) never interleave with another method's
        group = dist.new_group(backend="gloo")
        ddp = torch.nn.parallel.DistributedDataParallel(_model(sizes), process_group=group)
        state = None
        if spec == "fp16":
            ddp.register_comm_hook(group, default_hooks.fp16_compress_hook)
        elif spec == "powersgd":
            ps = powerSGD_hook.PowerSGDState(
                process_group=group, matrix_approximation_rank=POWERSGD_RANK, start_powerSGD_iter=2
            )
            ddp.register_comm_hook(ps, powerSGD_hook.powerSGD_hook)
        elif spec is not None:
            hook, state = ddp_comm_hook(spec, process_group=group)
            ddp.register_comm_hook(state, hook)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.01)

        def step(ddp=ddp, opt=opt):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ddp(X), y).backward()
            opt.step()

        for _ in range(3):  # bucket rebuild, PowerSGD's start
            step()
        runs.append((name, step, state, nbytes))
    times = {name: [] for name, _, _, _ in runs}
    for _ in range(rounds):
        for name, step, _, _ in runs:
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - t0) / steps)
    rows = []
    for name, _, state, nbytes in runs:
        sent = state.bytes_per_step_ if state is not None else nbytes(None)
        padded = state.padded_bytes_per_step_ if state is not None else sent
        rows.append((name, statistics.median(times[name]), times[name], sent, padded))
    if rank == 0:
        with open(out, "w") as f:
            json.dump(rows, f)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="784,512,512,10")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--only", default="", help="comma-separated name parts of methods to run")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    only = [o for o in args.only.split(",") if o]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = os.path.join(tempfile.mkdtemp(), "ddp.json")
    mp.spawn(_worker, args=(port, out, sizes, args.rounds, args.steps, args.batch, only), nprocs=2)
    with open(out) as f:
        rows = json.load(f)
    n = sum(a * b + b for a, b in itertools.pairwise(sizes))
    print(f"# DDP, 2 processes, gloo on 127.0.0.1, 1 thread each; MLP {sizes} ({n} parameters)")
    print(f"# torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print(f"# median of {args.rounds} interleaved rounds of {args.steps} steps, batch {args.batch}")
    base_name = rows[0][0]
    base_times = rows[0][2]
    print(
        "| method | ms / step | vs all-reduce | bytes / step / rank | bits / entry | padded bytes |"
    )
    print("|---|---|---|---|---|---|")
    for name, t, ts, sent, padded in rows:
        rel = statistics.median(b / x for b, x in zip(base_times, ts))
        print(
            f"| {name} | {1e3 * t:.2f} | {rel:.2f}x | {sent:,} | {8 * sent / n:.2f} | {padded:,} |"
        )
    print(f"# 'vs all-reduce': median per-round ratio {base_name} time / method time (>1: faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
