"""Codebook learners side by side with their peers, in one process.

Usage::

    # scalar weight sharing: 1e6 weights, k in 4 16 256, every peer (slow: ~30 min)
    python benchmarks/bench_codebooks.py scalar
    # a quick subset
    python benchmarks/bench_codebooks.py scalar --n 200000 --k 16 --data gaussian \
        --peers sklearn ckmeans
    # product quantization (100k x 128, 8 x 256) and residual quantization (2 x 8 bits)
    python benchmarks/bench_codebooks.py pq
    python benchmarks/bench_codebooks.py rq

Scalar: qtoolkit's ``kmeans_1d`` (``"optimal"`` at 1 thread and at every
CPU, ``"lloyd"``) against scikit-learn ``KMeans(n_init=1)``, the optimal
DPs of ``ckmeans`` (k <= 255, so k = 256 rows also run both at k = 255) and
``kmeans1d``, and ``faiss.Kmeans``. Every method's error is the weighted
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


def sse(x, centroids):
    """Squared error of x against its nearest centroid (float64)."""
    c = np.sort(np.asarray(centroids, dtype=np.float64).ravel())
    xd = x.astype(np.float64)
    idx = np.searchsorted(0.5 * (c[1:] + c[:-1]), xd)
    return float(np.sum((xd - c[idx]) ** 2))


def scalar_methods(x, k, peers, n_cpu):
    """(name, fn returning centroids) for every method at codebook size k."""
    x64 = x.astype(np.float64)
    out = [
        ("qtoolkit optimal (1 thread)", lambda: kmeans_1d(x, k, n_threads=1)[0]),
        (f"qtoolkit optimal ({n_cpu} threads)", lambda: kmeans_1d(x, k, n_threads=n_cpu)[0]),
        ("qtoolkit lloyd", lambda: kmeans_1d(x, k, algorithm="lloyd")[0]),
    ]
    if "sklearn" in peers:
        from sklearn.cluster import KMeans

        out.append(
            (
                "scikit-learn KMeans(n_init=1)",
                lambda: (
                    KMeans(n_clusters=k, n_init=1, random_state=0).fit(x[:, None]).cluster_centers_
                ),
            )
        )
    if "faiss" in peers:
        import faiss

        def run_faiss():
            km = faiss.Kmeans(1, k, niter=25, seed=1, verbose=False)
            km.train(np.ascontiguousarray(x[:, None]))
            return km.centroids

        out.append(("faiss.Kmeans(niter=25)", run_faiss))
    if "ckmeans" in peers:
        import ckmeans

        kc = min(k, 255)
        if kc != k:
            out.append(
                (f"qtoolkit optimal k={kc} (1 thread)", lambda: kmeans_1d(x, kc, n_threads=1)[0])
            )
            out.append(
                (
                    f"qtoolkit optimal k={kc} ({n_cpu} threads)",
                    lambda: kmeans_1d(x, kc, n_threads=n_cpu)[0],
                )
            )
        out.append((f"ckmeans k={kc}", lambda: [c.mean() for c in ckmeans.ckmeans(x64, kc)]))
    if "kmeans1d" in peers:
        import kmeans1d

        out.append(("kmeans1d", lambda: kmeans1d.cluster(x64, k)[1]))
    return out


def run_scalar(args):
    rng = np.random.default_rng(0)
    n_cpu = len(os.sched_getaffinity(0))
    print(f"# Scalar weight sharing: n = {args.n}, rounds = {args.rounds}\n# {machine_line()}\n")
    summary = []
    for data in args.data:
        x = make_data(data, args.n, rng)
        for k in args.k:
            methods = scalar_methods(x, k, args.peers, n_cpu)
            times = {name: [] for name, _ in methods}
            errors = {}
            for _ in range(args.rounds):
                for name, fn in methods:
                    result = {}
                    times[name].append(time_once(lambda: result.setdefault("c", fn())))
                    errors[name] = sse(x, result["c"])
            opt = errors["qtoolkit optimal (1 thread)"]
            ref_time = times["qtoolkit optimal (1 thread)"]
            rows = []
            for name, _ in methods:
                base = opt
                if "k=255" in name:
                    base = errors.get("qtoolkit optimal k=255 (1 thread)", opt)
                rel = errors[name] / base - 1.0
                speed = median([t / r for t, r in zip(times[name], ref_time)])
                rows.append(
                    [
                        name,
                        f"{median(times[name]):.3f}",
                        f"{errors[name]:.10g}",
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
                        "squared error",
                        "error vs optimal",
                        "time / qtoolkit optimal (1 thread)",
                    ],
                    rows,
                )
            )
            print()
            summary.append((data, k, times, errors))
    print_scalar_targets(summary, n_cpu)


def _speedup(times, slow, fast):
    return median([s / f for s, f in zip(times[slow], times[fast])])


def print_scalar_targets(summary, n_cpu):
    print("## Targets\n")
    lines = []
    for data, k, times, errors in summary:
        for label in ("1 thread", f"{n_cpu} threads"):
            opt = f"qtoolkit optimal ({label})"
            if "kmeans1d" in times:
                rel = abs(errors[opt] - errors["kmeans1d"]) / errors["kmeans1d"]
                sp = _speedup(times, "kmeans1d", opt)
                lines.append(
                    f"- {data} k={k}: optimal ({label}) vs kmeans1d: error differs by "
                    f"{rel:.1e} relative (target <= 1e-9: {'met' if rel <= 1e-9 else 'NOT met'}); "
                    f"{sp:.1f}x faster (target >= 10x: {'met' if sp >= 10 else 'NOT met'})"
                )
            ck = [name for name in times if name.startswith("ckmeans")]
            if ck and k >= 255:
                mine = f"qtoolkit optimal k=255 ({label})" if k != 255 else opt
                sp = _speedup(times, ck[0], mine)
                lines.append(
                    f"- {data} k=255: optimal ({label}) vs ckmeans: {sp:.2f}x faster "
                    f"(target >= 2x: {'met' if sp >= 2 else 'NOT met'})"
                )
        lloyd = "qtoolkit lloyd"
        rel = errors[lloyd] / errors["qtoolkit optimal (1 thread)"] - 1
        line = (
            f"- {data} k={k}: lloyd error {rel * 100:+.3f}% vs optimal "
            f"(target <= +0.5%: {'met' if rel <= 0.005 else 'NOT met'})"
        )
        if "scikit-learn KMeans(n_init=1)" in times:
            sp = _speedup(times, "scikit-learn KMeans(n_init=1)", lloyd)
            line += f"; {sp:.0f}x faster than scikit-learn (target >= 20x: {'met' if sp >= 20 else 'NOT met'})"
        lines.append(line)
    print("\n".join(lines))


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
            times[name].append(time_once(lambda: result.setdefault("r", fn())))
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
    s.add_argument("--k", type=int, nargs="+", default=[4, 16, 256])
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
    {"scalar": run_scalar, "pq": run_pq, "rq": run_rq}[args.what](args)


if __name__ == "__main__":
    main()
