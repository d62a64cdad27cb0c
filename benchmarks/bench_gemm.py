"""Binary GEMM side by side: qtoolkit.xnor_gemm against NumPy/OpenBLAS float32,
NumPy bitwise_xor + bitwise_count, and faiss.hammings, in one process.

Usage::

    python benchmarks/bench_gemm.py                  # n in 512 1024 2048 4096, 1 and 2 threads
    python benchmarks/bench_gemm.py --sizes 512 2048 --rounds 7

Speeds are binary MACs per second, M*N*K / time (one MAC = one bit of K), as
medians over interleaved rounds; ratios are medians of per-round ratios.
While a method runs, the thread pools of the others are held at one thread
(threadpoolctl), so that idle OpenMP/OpenBLAS workers do not spin against it.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import interleaved, machine_line, markdown_table, median, ratio, thread_limiter

import qtoolkit
from qtoolkit.bitops import (
    available_simd_levels,
    binary_matmul,
    pack_bits,
    set_simd_level,
    xnor_gemm,
)


def numpy_xor_count(wa, wb, k, out):
    """Reference binary GEMM in NumPy: xor + bitwise_count on the words, blocked over rows."""
    rows = max(1, (32 << 20) // max(1, wb.nbytes))
    for i in range(0, wa.shape[0], rows):
        x = np.bitwise_xor(wa[i : i + rows, None, :], wb[None, :, :])
        out[i : i + rows] = k - 2 * np.bitwise_count(x).sum(axis=-1, dtype=np.int32)
    return out


def faiss_hammings(faiss, ca, cb, out):
    faiss.hammings(
        faiss.swig_ptr(ca),
        faiss.swig_ptr(cb),
        ca.shape[0],
        cb.shape[0],
        ca.shape[1],
        faiss.swig_ptr(out),
    )
    return out


def bench_size(n, threads, rounds, levels, faiss):
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n)).astype(np.float32)
    B = rng.standard_normal((n, n)).astype(np.float32)
    SA, SB = np.sign(A), np.sign(B)  # +-1 float32 (no zeros in Gaussian data)
    pa, pb = pack_bits(A), pack_bits(B)
    k = n
    wa = np.ascontiguousarray(pa.words[:, : pa.n_words])
    wb = np.ascontiguousarray(pb.words[:, : pb.n_words])
    ca = np.ascontiguousarray(wa.view(np.uint8)[:, : k // 8])
    cb = np.ascontiguousarray(wb.view(np.uint8)[:, : k // 8])
    c = np.empty((n, n), np.int32)
    ref = xnor_gemm(pa, pb)

    # correctness of every peer against qtoolkit before timing
    assert np.array_equal(np.rint(SA @ SB.T).astype(np.int32), ref)
    if n <= 1024:
        assert np.array_equal(numpy_xor_count(wa, wb, k, np.empty_like(c)), ref)
    if faiss is not None:
        ham = faiss_hammings(faiss, ca, cb, np.empty((n, n), np.int32))
        assert np.array_equal(k - 2 * ham, ref)

    methods = []

    def xnor(level, t):
        def prepare():
            set_simd_level(level)
            thread_limiter(1)()

        return lambda: xnor_gemm(pa, pb, out=c, n_threads=t), prepare

    def e2e(t):
        def prepare():
            set_simd_level(best)
            thread_limiter(1)()

        return lambda: binary_matmul(A, B, n_threads=t), prepare

    best = available_simd_levels()[-1]
    for t in threads:
        for level in levels:
            methods.append((f"xnor[{level},{t}]", *xnor(level, t)))
        methods.append((f"f32[{t}]", lambda: np.matmul(SA, SB.T), thread_limiter(t)))
        methods.append((f"e2e[{t}]", *e2e(t)))
    methods.append(("pack", lambda: (pack_bits(A), pack_bits(B)), e2e(1)[1]))
    methods.append(("numpy", lambda: numpy_xor_count(wa, wb, k, c), thread_limiter(1)))
    if faiss is not None:
        methods.append(("faiss", lambda: faiss_hammings(faiss, ca, cb, c), thread_limiter(1)))
    previous = set_simd_level(best)
    try:
        return interleaved(methods, rounds)
    finally:
        set_simd_level(previous)


def in_cache(levels, rounds):
    """GMAC/s of each micro-kernel alone, repeated on one pair of L1-resident micro-panels
    (K = 2048 bits): the kernel's own in-cache throughput, an upper bound for the GEMM."""
    from qtoolkit.bitops import _bitops

    kw, reps = 32, 20000
    methods = []
    for level in levels:
        lid = _bitops.LEVEL_NAMES.index(level)
        methods.append(
            (level, lambda lid=lid: _bitops.ukernel_repeat(lid, kw, reps), thread_limiter(1))
        )
    macs = {
        level: _bitops.ukernel_repeat(_bitops.LEVEL_NAMES.index(level), kw, 1) * reps
        for level in levels
    }
    times = interleaved(methods, rounds)
    return {level: macs[level] / median(ts) / 1e9 for level, ts in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--levels",
        nargs="+",
        default=None,
        help="SIMD levels to time (default: the best one and avx2 if present)",
    )
    args = parser.parse_args(argv)
    try:
        import faiss
    except ImportError:
        faiss = None
        print("faiss-cpu is not installed: its column is left out", file=sys.stderr)
    avail = available_simd_levels()
    levels = (
        args.levels or [lv for lv in ("avx512", "avx2", "neon") if lv in avail][:2] or [avail[-1]]
    )
    print(f"# qtoolkit {qtoolkit.__version__} binary GEMM benchmark")
    print(
        f"# {machine_line()}; levels {', '.join(avail)}; numpy {np.__version__}"
        + (f"; faiss {faiss.__version__}" if faiss is not None else "")
    )
    print(
        f"# M = N = K = n, median of {args.rounds} interleaved rounds; "
        "GMAC/s = M*N*K / time / 1e9\n"
    )
    cache = in_cache(levels, args.rounds)
    rows, thread_rows, e2e_rows = [], [], []
    for n in args.sizes:
        times = bench_size(n, args.threads, args.rounds, levels, faiss)
        macs = float(n) ** 3
        g = {name: macs / median(ts) / 1e9 for name, ts in times.items()}
        for t in args.threads:
            for level in levels:
                key = f"xnor[{level},{t}]"
                row = [
                    n,
                    t,
                    level,
                    f"{g[key]:.0f}",
                    f"{g[f'f32[{t}]']:.1f}",
                    f"{ratio(times, f'f32[{t}]', key):.1f}x",
                ]
                row.append(f"{ratio(times, 'faiss', key):.1f}x" if "faiss" in times else "n/a")
                row.append(f"{ratio(times, 'numpy', key):.1f}x" if "numpy" in times else "n/a")
                row.append(f"{ratio(times, 'pack', key):.2f}" if t == 1 else "")
                row.append(f"{g[key] / cache[level]:.2f}" if t == 1 else "")
                rows.append(row)
        if 1 in args.threads:
            for level in levels:
                for t in args.threads:
                    if t == 1:
                        continue
                    thread_rows.append(
                        [
                            n,
                            level,
                            t,
                            f"{ratio(times, f'xnor[{level},1]', f'xnor[{level},{t}]'):.2f}x",
                            f"{ratio(times, 'f32[1]', f'f32[{t}]'):.2f}x",
                        ]
                    )
        for t in args.threads:
            e2e_rows.append(
                [n, t, f"{g[f'e2e[{t}]']:.0f}", f"{ratio(times, f'f32[{t}]', f'e2e[{t}]'):.1f}x"]
            )
        extra = []
        if "faiss" in times:
            extra.append(f"faiss {g['faiss']:.0f}")
        if "numpy" in times:
            extra.append(f"numpy xor+bitwise_count {g['numpy']:.1f}")
        print(f"n={n}: GMAC/s " + ", ".join(extra), file=sys.stderr)
    print("## xnor_gemm on packed operands\n")
    print(
        markdown_table(
            [
                "n",
                "threads",
                "kernel",
                "xnor_gemm GMAC/s",
                "float32 GMAC/s",
                "vs float32",
                "vs faiss.hammings",
                "vs NumPy xor+count",
                "pack both / GEMM",
                "of in-cache",
            ],
            rows,
        )
    )
    print(
        "\nIn-cache throughput of the micro-kernel alone (L1-resident panels, K = 2048, 1 thread): "
        + ", ".join(f"{lv} {v:.0f} GMAC/s" for lv, v in cache.items())
    )
    if thread_rows:
        print("\n## Thread scaling (time with 1 thread / time with t threads)\n")
        print(
            markdown_table(["n", "kernel", "threads", "xnor_gemm", "float32 matmul"], thread_rows)
        )
    print("\n## binary_matmul end to end (float32 in, both packed, GEMM), best kernel\n")
    print(markdown_table(["n", "threads", "GMAC/s", "vs float32 matmul"], e2e_rows))


if __name__ == "__main__":
    main()
