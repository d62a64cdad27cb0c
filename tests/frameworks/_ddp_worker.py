"""Worker of the two-process DDP tests (run by torch.multiprocessing.spawn from test_ddp.py)."""

import copy
import datetime
import json
import os

import numpy as np
import torch
import torch.distributed as dist

from qtoolkit.gradients import (
    QSGDCompressor,
    SignErrorFeedback,
    TernGradCompressor,
    ddp_comm_hook,
)

WORLD = 2
STEPS = 60


def compressors():
    return {
        "qsgd": QSGDCompressor(n_levels=8, bucket_size=128, rng=7),
        "terngrad": TernGradCompressor(rng=7),
        "sign_ef": SignErrorFeedback(scale="mean"),
    }


def _data(rank):
    """A linear regression problem, each rank holding its own half of the samples."""
    r = np.random.default_rng(0)
    X = r.standard_normal((512, 32)).astype(np.float32)
    w = r.standard_normal((32, 4)).astype(np.float32)
    Y = X @ w + 0.1 * r.standard_normal((512, 4)).astype(np.float32)
    part = slice(rank * 256, (rank + 1) * 256)
    return torch.tensor(X[part]), torch.tensor(Y[part])


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))


def exactness(rank, name, comp):
    """One bucket holding one weight: what every rank decodes equals each sender's compress."""
    torch.manual_seed(0)
    local = torch.nn.Linear(40, 7, bias=False)
    ddp = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(local))
    hook, state = ddp_comm_hook(comp, keep_received=True)
    ddp.register_comm_hook(state, hook)
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(rank))
    ddp(x).pow(2).sum().backward()
    local(x).pow(2).sum().backward()
    # the sender's own compress, by a twin of its bucket compressor made before the step
    n = local.weight.numel()
    twin = copy.deepcopy(comp)
    if hasattr(twin, "_rng"):
        twin._rng = np.random.default_rng([7, rank, 0, n])
    mine = torch.tensor(twin.compress(local.weight.grad.reshape(-1).numpy()))
    theirs = [torch.empty_like(mine) for _ in range(WORLD)]
    dist.all_gather(theirs, mine)
    received = state.received_[0]
    ok = all(np.array_equal(received[r], theirs[r].numpy()) for r in range(WORLD))
    mean = ddp.module.weight.grad.reshape(-1).numpy()
    avg = ((received[0].astype(np.float64) + received[1]) / 2).astype(np.float32)
    lens = [torch.zeros(1, dtype=torch.int64) for _ in range(WORLD)]
    dist.all_gather(lens, torch.tensor([state.bytes_per_step_]))
    bits = [torch.zeros(1, dtype=torch.float64) for _ in range(WORLD)]
    dist.all_gather(
        bits, torch.tensor([state.compressors_[0][1].bits_per_element_], dtype=torch.float64)
    )
    return {
        "bit_exact": ok,
        "grad_is_mean": bool(np.array_equal(mean, avg)),
        "bytes": [int(t.item()) for t in lens],
        "bits_per_element": [float(t.item()) for t in bits],
        "n": n,
        "state_bits": state.bits_per_element_,
    }


def training(rank, comp):
    X, Y = _data(rank)
    ddp = torch.nn.parallel.DistributedDataParallel(_model())
    state = None
    if comp is not None:
        hook, state = ddp_comm_hook(comp)
        ddp.register_comm_hook(state, hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    losses, bytes_ = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(X), Y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        bytes_.append(
            state.bytes_per_step_ if state else 4 * sum(p.numel() for p in ddp.parameters())
        )
    out = {"losses": losses, "bytes": bytes_}
    if state is not None:
        out["buckets"] = {
            str(i): [n, c.bits_per_element_] for i, (n, c) in state.compressors_.items()
        }
        out["state_bits"] = state.bits_per_element_
        out["n_params"] = sum(p.numel() for p in ddp.parameters())
    return out


def run(rank, port, outdir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        result = {"exact": {}, "train": {"none": training(rank, None)}}
        for name, comp in compressors().items():
            result["exact"][name] = exactness(rank, name, comp)
            result["train"][name] = training(rank, comp)
        with open(os.path.join(outdir, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()
