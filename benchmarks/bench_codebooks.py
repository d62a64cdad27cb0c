"""Codebook learners side by side with their peers, in one process.

Usage::

    # scalar weight sharing: 1e6 weights, k in 16 256 4096 65536 (slow peers up to k = 256)
    python benchmarks/bench_codebooks.py scalar --data gaussian --peers sklearn ckmeans kmeans1d
    # one codebook per row of a 4096 x 4096 matrix
    python benchmarks/bench_codebooks.py rows
    # a quick subset
    python benchmarks/bench_codebooks.py scalar --n 200000 --k 16 --data gaussian \
        --peers sklearn ckmeans
    # product quantization (100k x 128, 8 x 256) and residual quantization (2 x 8 bits)
    python benchmarks/bench_codebooks.py pq
    python benchmarks/bench_codebooks.py rq

Scalar: qtoolkit's ``kmeans_1d`` (``"optimal"`` unweighted and weighted,
``"lloyd"``), the previous layered exact solver (the reference, k <= 256),
against scikit-learn ``KMeans(n_init=1)``, the optimal DPs of ``ckmeans``
(k <= 255, so k = 256 rows also run both at k = 255) and ``kmeans1d``, and
``faiss.Kmeans``; the slow peers are skipped above k = 256 (the reason is
printed). Every method's error is the weighted
squared error of the data against its centroids (nearest-centroid
assignment, float64), reported relative to qtoolkit's optimum. Times are
medians over interleaved rounds (each round runs every method once, in the
same order); speed-ups are medians of per-round ratios.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import machine_line, markdown_table, median, time_once

from qtoolkit.codebooks import ProductQuantizer, ResidualQuantizer, kmeans_1d


def digits_weights(n):
    """Weights of an MLP trained on scikit-learn's digits (cached in the temp dir)."""
    path = os.path.join(tempfile.gettempdir(), "qtoolkit_bench_digits_mlp_weights.npy")
    if os.path.exists(path):
        w = np.load(path)
    else:
        import warnings

        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        X, y = load_digits(return_X_y=True)
        mlp = MLPClassifier(hidden_layer_sizes=(1024, 900), max_iter=15, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(X / 16.0, y)
        w = np.concatenate([c.ravel() for c in mlp.coefs_]).astype(np.float32)
        np.save(path, w)
    return w[:n]


def make_data(name, n, rng):
    if name == "gaussian":
        return rng.standard_normal(n).astype(np.float32)
    if name == "laplace":
        return rng.laplace(size=n).astype(np.float32)
    if name == "digits":
        return digits_weights(n)
    raise ValueError(f"unknown data set {name!r}")


def sse(x, centroids, w=None):
    """(Weighted) squared error of x against its nearest centroid (float64)."""
    c = np.sort(np.asarray(centroids, dtype=np.float64).ravel())
    xd = x.astype(np.float64)
    idx = np.searchsorted(0.5 * (c[1:] + c[:-1]), xd)
    d2 = (xd - c[idx]) ** 2
    return float(np.sum(d2) if w is None else np.dot(w, d2))


#: Codebook sizes above which the slow peers (and the previous layered solver) are
#: skipped: their cost grows as k * n (kmeans1d ~69 s and ckmeans ~22 s at k = 256, n = 1e6),
#: so k = 4096 would take tens of minutes each; ckmeans also stops at k = 255.
SLOW_PEERS_MAX_K = 256


def layered_reference(x, k, w=None):
    """The previous exact solver (k layers of the dynamic programme), kept as the reference."""
    from qtoolkit.codebooks._kmeans import (
        _cluster_means,
        _distinct_weighted,
        _optimal_starts,
        _prefix,
    )

    ux, uw = _distinct_weighted(
        x.astype(np.float64).ravel(), np.ones(x.size) if w is None else w.astype(np.float64)
    )
    _, pw, p1, p2 = _prefix(ux, uw)
    return _cluster_means(ux, uw, _optimal_starts(pw, p1, p2, ux.size, k, 1), None)


def scalar_methods(x, w, k, peers, skipped):
    """(name, fn returning centroids, weighted?) for every method at codebook size k."""
    x64 = x.astype(np.float64)
    out = [
        ("qtoolkit optimal", lambda: kmeans_1d(x, k)[0], False),
        ("qtoolkit optimal, weighted", lambda: kmeans_1d(x, k, sample_weight=w)[0], True),
        ("qtoolkit lloyd", lambda: kmeans_1d(x, k, algorithm="lloyd")[0], False),
    ]
    slow_ok = k <= SLOW_PEERS_MAX_K
    if slow_ok:
        out.append(("previous layered DP (reference)", lambda: layered_reference(x, k), False))
        out.append(
            (
                "previous layered DP, weighted (reference)",
                lambda: layered_reference(x, k, w),
                True,
            )
        )
    else:
        skipped.append(f"k={k}: previous layered DP (O(k n log n), minutes)")
    if "sklearn" in peers and not slow_ok:
        skipped.append(f"k={k}: scikit-learn KMeans (O(k n) per iteration: minutes)")
    if "sklearn" in peers and slow_ok:
        from sklearn.cluster import KMeans

        out.append(
            (
                "scikit-learn KMeans(n_init=1)",
                lambda: (
                    KMeans(n_clusters=k, n_init=1, random_state=0).fit(x[:, None]).cluster_centers_
                ),
                False,
            )
        )
    if "faiss" in peers:
        import faiss

        def run_faiss():
            km = faiss.Kmeans(1, k, niter=25, seed=1, verbose=False)
            km.train(np.ascontiguousarray(x[:, None]))
            return km.centroids

        out.append(("faiss.Kmeans(niter=25)", run_faiss, False))
    if "ckmeans" in peers:
        if k <= 255:
            import ckmeans

            out.append(
                (f"ckmeans k={k}", lambda: [c.mean() for c in ckmeans.ckmeans(x64, k)], False)
            )
        elif slow_ok:
            import ckmeans

            out.append(("qtoolkit optimal k=255", lambda: kmeans_1d(x, 255)[0], False))
            out.append(
                ("ckmeans k=255", lambda: [c.mean() for c in ckmeans.ckmeans(x64, 255)], False)
            )
        else:
            skipped.append(f"k={k}: ckmeans (k <= 255 only)")
    if "kmeans1d" in peers:
        if slow_ok:
            import kmeans1d

            out.append(("kmeans1d", lambda: kmeans1d.cluster(x64, k)[1], False))
        else:
            skipped.append(f"k={k}: kmeans1d (O(k n): tens of minutes)")
    return out


def run_scalar(args):
    rng = np.random.default_rng(0)
    print(
        f"# Scalar weight sharing: n = {args.n}, rounds = {args.rounds}, one thread "
        f"(the exact solver is sequential)\n# {machine_line()}\n"
    )
    summary = []
    skipped = []
    for data in args.data:
        x = make_data(data, args.n, rng)
        # Hessian-like importance weights (heavy-tailed, positive)
        w = rng.exponential(size=x.size) ** 2
        for k in args.k:
            methods = scalar_methods(x, w, k, args.peers, skipped)
            times = {name: [] for name, _, _ in methods}
            errors = {}
            for _ in range(args.rounds):
                for name, fn, weighted in methods:
                    result = {}
                    times[name].append(time_once(lambda fn=fn, r=result: r.setdefault("c", fn())))
                    errors[name] = sse(x, result["c"], w if weighted else None)
            ref_time = times["qtoolkit optimal"]
            rows = []
            for name, _, weighted in methods:
                base = errors["qtoolkit optimal, weighted" if weighted else "qtoolkit optimal"]
                if "k=255" in name:
                    base = errors.get("qtoolkit optimal k=255", base)
                rel = errors[name] / base - 1.0
                speed = median([t / r for t, r in zip(times[name], ref_time)])
                rows.append(
                    [
                        name,
                        f"{median(times[name]):.3f}",
                        f"{errors[name]:.12g}",
                        f"{rel:+.2e}",
                        f"{speed:.2f}",
                    ]
                )
            print(f"## {data}, n = {x.size}, k = {k}\n")
            print(
                markdown_table(
                    [
                        "method",
                        "median time (s)",
                        "squared error (weighted rows: weighted)",
                        "error vs qtoolkit optimal",
                        "time / qtoolkit optimal",
                    ],
                    rows,
                )
            )
            print()
            summary.append((data, k, times, errors))
    if skipped:
        print("Skipped: " + "; ".join(dict.fromkeys(skipped)) + ".\n")
    print_scalar_targets(summary)


def _speedup(times, slow, fast):
    return median([s / f for s, f in zip(times[slow], times[fast])])


def _met(ok):
    return "met" if ok else "NOT met"


#: Time targets of the exact solver (one thread, n = 1e6), by k.
TIME_TARGETS = {16: 0.5, 256: 1.5, 4096: 3.0, 65536: 3.0}


def print_scalar_targets(summary):
    print("## Targets\n")
    lines = []
    for data, k, times, errors in summary:
        opt, wopt = "qtoolkit optimal", "qtoolkit optimal, weighted"
        t = median(times[opt])
        tw = median(times[wopt])
        line = f"- {data} k={k}: optimal {t:.3f} s"
        if k in TIME_TARGETS:
            line += f" (target <= {TIME_TARGETS[k]} s: {_met(t <= TIME_TARGETS[k])})"
        ratio_w = _speedup(times, wopt, opt)
        line += (
            f"; weighted {tw:.3f} s = {ratio_w:.2f}x unweighted "
            f"(target <= 1.2x: {_met(ratio_w <= 1.2)})"
        )
        lines.append(line)
        for ref, mine in (
            ("previous layered DP (reference)", opt),
            ("previous layered DP, weighted (reference)", wopt),
        ):
            if ref in errors:
                rel = abs(errors[mine] - errors[ref]) / errors[ref]
                sp = _speedup(times, ref, mine)
                lines.append(
                    f"- {data} k={k}: {mine} vs {ref}: error differs by {rel:.1e} relative "
                    f"(target <= 1e-12: {_met(rel <= 1e-12)}); {sp:.1f}x faster"
                )
        if "kmeans1d" in times:
            sp = _speedup(times, "kmeans1d", opt)
            rel = abs(errors[opt] - errors["kmeans1d"]) / errors["kmeans1d"]
            target = f" (target >= 45x: {_met(sp >= 45)})" if k == 256 else ""
            lines.append(
                f"- {data} k={k}: optimal vs kmeans1d: {sp:.1f}x faster{target}; error differs "
                f"by {rel:.1e} relative"
            )
        ck = [name for name in times if name.startswith("ckmeans")]
        if ck:
            mine = "qtoolkit optimal k=255" if "qtoolkit optimal k=255" in times else opt
            sp = _speedup(times, ck[0], mine)
            lines.append(f"- {data} {ck[0]}: optimal {sp:.1f}x faster than ckmeans")
        lloyd = "qtoolkit lloyd"
        rel = errors[lloyd] / errors[opt] - 1
        line = f"- {data} k={k}: lloyd error {rel * 100:+.3f}% vs optimal"
        if "scikit-learn KMeans(n_init=1)" in times:
            sp = _speedup(times, "scikit-learn KMeans(n_init=1)", lloyd)
            line += f"; lloyd {sp:.0f}x faster than scikit-learn"
        lines.append(line)
    print("\n".join(lines))


def run_rows(args):
    """One optimal codebook per row of a matrix (kmeans_1d_rows) against a loop of kmeans_1d."""
    from qtoolkit.codebooks import kmeans_1d_rows

    rng = np.random.default_rng(0)
    W = rng.standard_normal((args.rows, args.cols)).astype(np.float32)
    h = rng.exponential(size=args.cols)
    n_cpu = len(os.sched_getaffinity(0))
    print(
        f"# Per-row codebooks: {args.rows} x {args.cols} float32, rounds = {args.rounds}\n"
        f"# {machine_line()}\n"
    )
    rows = []
    for k in args.k:
        sub = W[: args.loop_rows]
        methods = [
            (f"kmeans_1d_rows k={k} (default threads: {n_cpu})", lambda k=k: kmeans_1d_rows(W, k)),
            (f"kmeans_1d_rows k={k} (1 thread)", lambda k=k: kmeans_1d_rows(W, k, n_threads=1)),
            (
                f"kmeans_1d_rows k={k}, Hessian-diagonal weights",
                lambda k=k: kmeans_1d_rows(W, k, sample_weight=h),
            ),
            (
                f"loop of kmeans_1d k={k} ({args.loop_rows} rows, scaled to {args.rows})",
                lambda k=k, sub=sub: [kmeans_1d(r, k) for r in sub],
            ),
        ]
        times = {name: [] for name, _ in methods}
        for _ in range(args.rounds):
            for name, fn in methods:
                times[name].append(time_once(fn))
        times[methods[3][0]] = [t * (args.rows // args.loop_rows) for t in times[methods[3][0]]]
        for name, _ in methods:
            rows.append([name, f"{median(times[name]):.3f}"])
    print(markdown_table(["method", "median time (s)"], rows))


def vector_data(n, d, rng):
    """Correlated Gaussian vectors (a random linear map of white noise), float32."""
    A = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ A).astype(np.float32)


def run_pq(args):
    rng = np.random.default_rng(0)
    X = vector_data(args.n, args.d, rng)
    M, K, it = args.m, args.k_vec, 25
    print(
        f"# Product quantization: {args.n} x {args.d} float32, M = {M}, K = {K}, "
        f"{it} iterations, trained and encoded on all points\n# {machine_line()}\n"
    )

    def qt():
        pq = ProductQuantizer(M, K, max_iter=it, tol=0.0, random_state=0).fit(X)
        return pq.inverse_transform(pq.transform(X))

    def fa():
        import faiss

        pq = faiss.ProductQuantizer(args.d, M, int(np.log2(K)))
        pq.cp.niter = it
        pq.cp.max_points_per_centroid = args.n  # train on every point, like the others
        pq.train(X)
        return pq.decode(pq.compute_codes(X))

    def nano():
        import nanopq

        pq = nanopq.PQ(M=M, Ks=K, verbose=False)
        pq.fit(X, iter=it, seed=0)
        return pq.decode(pq.encode(X))

    methods = [("qtoolkit ProductQuantizer", qt)]
    if "faiss" in args.peers:
        methods.append(("faiss.ProductQuantizer", fa))
    if "nanopq" in args.peers:
        methods.append(("nanopq.PQ", nano))
    vector_table(X, methods, args.rounds, "qtoolkit ProductQuantizer")


def run_rq(args):
    rng = np.random.default_rng(0)
    X = vector_data(args.n, args.d, rng)
    S, K = 2, 256
    print(
        f"# Residual quantization: {args.n} x {args.d} float32, {S} x {K} codewords\n"
        f"# {machine_line()}\n"
    )

    def qt(beam):
        def run():
            rq = ResidualQuantizer(
                S, K, beam_size=beam, init=args.rq_init, max_iter=25, random_state=0
            ).fit(X)
            return rq.inverse_transform(rq.transform(X))

        return run

    def fa():
        import faiss

        rq = faiss.ResidualQuantizer(args.d, S, int(np.log2(K)))
        rq.train(X)
        return rq.decode(rq.compute_codes(X))

    methods = [
        ("qtoolkit ResidualQuantizer beam 1", qt(1)),
        ("qtoolkit ResidualQuantizer beam 5", qt(5)),
    ]
    if "faiss" in args.peers:
        methods.append(("faiss.ResidualQuantizer (default beam 5)", fa))
    vector_table(X, methods, args.rounds, "qtoolkit ResidualQuantizer beam 1")


def vector_table(X, methods, rounds, ref):
    times = {name: [] for name, _ in methods}
    errors = {}
    for _ in range(rounds):
        for name, fn in methods:
            result = {}
            times[name].append(time_once(lambda fn=fn, r=result: r.setdefault("r", fn())))
            errors[name] = float(np.sum((X.astype(np.float64) - result["r"]) ** 2))
    rows = []
    for name, _ in methods:
        sp = median([t / r for t, r in zip(times[name], times[ref])])
        rows.append(
            [
                name,
                f"{median(times[name]):.2f}",
                f"{errors[name]:.6g}",
                f"{errors[name] / errors[ref] - 1:+.2%}",
                f"{sp:.2f}",
            ]
        )
    print(
        markdown_table(
            ["method", "median time (s)", "squared error", f"error vs {ref}", f"time / {ref}"], rows
        )
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scalar", help="1-D k-means (scalar weight sharing)")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--k", type=int, nargs="+", default=[16, 256, 4096, 65536])
    s.add_argument(
        "--data",
        nargs="+",
        default=["gaussian", "laplace", "digits"],
        choices=["gaussian", "laplace", "digits"],
    )
    s.add_argument(
        "--peers",
        nargs="*",
        default=["sklearn", "faiss", "ckmeans", "kmeans1d"],
        choices=["sklearn", "faiss", "ckmeans", "kmeans1d"],
    )
    s.add_argument("--rounds", type=int, default=1)
    r = sub.add_parser("rows", help="one 1-D codebook per row of a matrix")
    r.add_argument("--rows", type=int, default=4096)
    r.add_argument("--cols", type=int, default=4096)
    r.add_argument("--k", type=int, nargs="+", default=[4, 16])
    r.add_argument("--loop-rows", type=int, default=256)
    r.add_argument("--rounds", type=int, default=1)
    for name, n, d in (("pq", 100_000, 128), ("rq", 100_000, 128)):
        v = sub.add_parser(name)
        v.add_argument("--n", type=int, default=n)
        v.add_argument("--d", type=int, default=d)
        v.add_argument("--rounds", type=int, default=1)
        v.add_argument(
            "--peers", nargs="*", default=["faiss", "nanopq"], choices=["faiss", "nanopq"]
        )
        if name == "pq":
            v.add_argument("--m", type=int, default=8)
            v.add_argument("--k-vec", type=int, default=256)
        else:
            v.add_argument("--rq-init", default="k-means++", choices=["k-means++", "random"])
    args = p.parse_args(argv)
    {"scalar": run_scalar, "rows": run_rows, "pq": run_pq, "rq": run_rq}[args.what](args)


if __name__ == "__main__":
    main()
