"""Post-training rounding of a 1024 x 1024 layer (GPTQ, AdaRound vs round-to-nearest), and the
wire size and speed of the gradient compressors.

Usage::

    python benchmarks/bench_optimize.py               # 3 and 4 bits, AdaRound 500 iterations
    python benchmarks/bench_optimize.py --adaround-iters 1000 --rounds 5
    python benchmarks/bench_optimize.py --skip-layer          # gradient compressors only

The layer is real: an MLP 64-1024-1024-10 is trained on scikit-learn's digits
(``--train-iters`` epochs of Adam), and its second layer (1024 x 1024) is
quantized. Its inputs are the first layer's ReLU activations on digit images
shifted by up to one pixel (the 1797 images and their 8 shifts), 2048 of them
for calibration and 2048 others held out. Errors are
``||X W^T - X W_hat^T||_F^2`` relative to round-to-nearest on the same
per-row min-max grid (``qtoolkit.rounding.uniform(W, bits, mode="asymmetric",
axis=0)``), on the calibration set and on the held-out set. Times are medians
over interleaved rounds; ``vs GPTQ`` is the median of per-round ratios.
"""

import argparse
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (
    interleaved,
    machine_line,
    markdown_table,
    median,
    ratio,
    time_once,
)

import qtoolkit
from qtoolkit.gradients import QSGDCompressor, SignErrorFeedback, TernGradCompressor
from qtoolkit.optimize import adaround, gptq, output_error
from qtoolkit.rounding import uniform


def shifted_digits():
    """Digit images (scaled to [0, 1]) and their 8 one-pixel shifts: 9 x 1797 images, 64 pixels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = d.images / 16.0
    out = [imgs]
    for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]:
        s = np.roll(imgs, (dy, dx), axis=(1, 2))
        if dy:
            s[:, 0 if dy > 0 else -1, :] = 0
        if dx:
            s[:, :, 0 if dx > 0 else -1] = 0
        out.append(s)
    X = np.concatenate(out).reshape(-1, 64)
    y = np.tile(d.target, 9)
    return X, y, d.data / 16.0, d.target


def build_layer(train_iters, n_calib, seed=0):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X_all, _, X_train, y_train = shifted_digits()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(
            hidden_layer_sizes=(1024, 1024), max_iter=train_iters, random_state=seed
        ).fit(X_train, y_train)
    t_train = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    idx = rng.permutation(X_all.shape[0])
    A = np.maximum(X_all @ mlp.coefs_[0] + mlp.intercepts_[0], 0.0)  # layer-1 activations
    calib, held = A[idx[:n_calib]], A[idx[n_calib : 2 * n_calib]]
    W = np.ascontiguousarray(mlp.coefs_[1].T)  # (1024 out, 1024 in)
    return W, calib, held, mlp.score(X_train, y_train), t_train


def bench_layer(args):
    W, Xc, Xh, acc, t_train = build_layer(args.train_iters, args.n_calib)
    dead = int(np.sum(np.all(Xc == 0, axis=0)))
    print(
        f"layer: W {W.shape}, calibration X {Xc.shape}, held-out X {Xh.shape}; "
        f"MLP trained {args.train_iters} epochs in {t_train:.1f} s, train accuracy {acc:.3f}; "
        f"{dead} dead inputs (zero in every calibration vector)"
    )
    rows = []
    for bits in args.bits:
        results = {}

        def run(name, fn, results=results):
            def call():
                results[name] = fn()

            return name, call

        methods = [
            run(
                "round-to-nearest",
                lambda bits=bits: uniform(W, bits=bits, mode="asymmetric", axis=0),
            ),
            run("GPTQ", lambda bits=bits: gptq(W, Xc, bits).weight),
            run(
                "GPTQ, no lazy batch (block_size=1)",
                lambda bits=bits: gptq(W, Xc, bits, block_size=1).weight,
            ),
            run("GPTQ act_order", lambda bits=bits: gptq(W, Xc, bits, act_order=True).weight),
            run(
                "GPTQ act_order, group 128",
                lambda bits=bits: gptq(W, Xc, bits, act_order=True, group_size=128).weight,
            ),
        ]
        times = interleaved(methods, rounds=args.rounds, warmup=1, min_time=0.0)
        ada = {}
        t_ada = [
            time_once(
                lambda ada=ada, bits=bits: ada.setdefault(
                    "w", adaround(W, Xc, bits, max_iter=args.adaround_iters).weight
                )
            )
            for _ in range(args.ada_rounds)
        ]
        results[f"AdaRound ({args.adaround_iters} iterations)"] = ada["w"]
        times[f"AdaRound ({args.adaround_iters} iterations)"] = t_ada
        e_rtn_c = output_error(W, results["round-to-nearest"], Xc)
        e_rtn_h = output_error(W, results["round-to-nearest"], Xh)
        for name, w_hat in results.items():
            t = times[name]
            vs = (
                f"{ratio(times, name, 'GPTQ'):.2f}"
                if len(t) == len(times["GPTQ"])
                else f"{median(t) / median(times['GPTQ']):.2f}"
            )
            rows.append(
                [
                    bits,
                    name,
                    f"{median(t):.3f}",
                    vs,
                    f"{output_error(W, w_hat, Xc) / e_rtn_c:.3f}",
                    f"{output_error(W, w_hat, Xh) / e_rtn_h:.3f}",
                ]
            )
        print(
            f"  {bits} bits done (relative output error of RTN itself: "
            f"{e_rtn_c / float(np.sum((Xc @ W.T) ** 2)):.2e} on calibration)",
            flush=True,
        )
    print()
    print(
        markdown_table(
            [
                "bits",
                "method",
                "median time (s)",
                "time / GPTQ",
                "error / RTN (calibration)",
                "error / RTN (held-out)",
            ],
            rows,
        )
    )
    print(
        f"\nrounds: {args.rounds} (AdaRound: {args.ada_rounds}); "
        f"AdaRound iterations: {args.adaround_iters}"
    )


def bench_gradients(args):
    n = args.grad_size
    g = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    s_sqrt = math.isqrt(n)
    comps = [
        (f"QSGD s=sqrt(n)={s_sqrt}, Elias", QSGDCompressor(n_levels=s_sqrt, coding="elias", rng=0)),
        (
            f"QSGD s=sqrt(n)={s_sqrt}, packed",
            QSGDCompressor(n_levels=s_sqrt, coding="packed", rng=0),
        ),
        ("QSGD s=7, Elias", QSGDCompressor(n_levels=7, coding="elias", rng=0)),
        ("QSGD s=7, packed", QSGDCompressor(n_levels=7, coding="packed", rng=0)),
        (
            "QSGD s=7, buckets of 512, Elias",
            QSGDCompressor(n_levels=7, coding="elias", bucket_size=512, rng=0),
        ),
        ("QSGD s=1, Elias", QSGDCompressor(n_levels=1, coding="elias", rng=0)),
        ("TernGrad (clip 2.5 sigma)", TernGradCompressor(clip=2.5, rng=0)),
        ("sign + error feedback", SignErrorFeedback()),
    ]
    rows = []
    raw = {}
    methods = [
        (
            "float32 tobytes / frombuffer (no compression)",
            lambda: raw.setdefault("x", np.frombuffer(g.tobytes(), np.float32)),
        )
    ]
    data = {}
    for name, c in comps:
        data[name] = c.encode(g)
        methods.append(
            (name + " encode", lambda c=c, name=name: data.__setitem__(name, c.encode(g)))
        )
        methods.append((name + " decode", lambda c=c, name=name: c.decode(data[name])))
    times = interleaved(methods, rounds=args.rounds, warmup=1)
    base = "float32 tobytes / frombuffer (no compression)"
    rows.append([base, "32.00", f"{median(times[base]) * 1e3:.2f}", "-", "-"])
    for name, c in comps:
        q = c.decode(data[name])
        err = float(np.sum((q.astype(np.float64) - g) ** 2) / np.sum(g.astype(np.float64) ** 2))
        rows.append(
            [
                name,
                f"{8 * len(data[name]) / n:.3f}",
                f"{median(times[name + ' encode']) * 1e3:.2f}",
                f"{median(times[name + ' decode']) * 1e3:.2f}",
                f"{err:.3f}",
            ]
        )
    print(f"gradient of n = {n} float32 N(0, 1) entries, one message each")
    print(
        markdown_table(
            [
                "compressor",
                "bits / element (measured, header incl.)",
                "encode (ms)",
                "decode (ms)",
                "||q - g||^2 / ||g||^2 (one draw)",
            ],
            rows,
        )
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    p.add_argument("--n-calib", type=int, default=2048)
    p.add_argument("--train-iters", type=int, default=10)
    p.add_argument("--adaround-iters", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ada-rounds", type=int, default=1)
    p.add_argument("--grad-size", type=int, default=1 << 20)
    p.add_argument("--skip-layer", action="store_true")
    p.add_argument("--skip-gradients", action="store_true")
    args = p.parse_args(argv)
    print(f"qtoolkit {qtoolkit.__version__}, NumPy {np.__version__}; {machine_line()}")
    if not args.skip_layer:
        bench_layer(args)
    if not args.skip_gradients:
        print()
        bench_gradients(args)


if __name__ == "__main__":
    main()
