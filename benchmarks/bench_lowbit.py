"""Low-bit inference side by side, in one process: subcommands per workload.

Usage::

    python benchmarks/bench_lowbit.py conv   # binary 3x3 Conv2d, 256 -> 256, 14 x 14, batch 8
    python benchmarks/bench_lowbit.py conv --rounds 9 --threads 1 2

``conv`` times :class:`qtoolkit.nn.Conv2d` with binary weights and binary
activations (sign; XNOR-Net) against the same convolution in float32 done as
im2col + one OpenBLAS ``matmul`` (the float layer of :mod:`qtoolkit.nn`, and a
plain NumPy im2col written here), plus PyTorch's ``conv2d`` for context.
Times are medians over interleaved rounds, ratios medians of per-round ratios.
While a method runs, every BLAS/OpenMP pool is held at its thread count
(threadpoolctl). Run it with the OpenBLAS throttles of this machine unset::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lowbit.py conv
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import interleaved, machine_line, markdown_table, median, ratio, thread_limiter

import qtoolkit
from qtoolkit.bitops import PackedBits, get_simd_level, pack_bits, xnor_gemm
from qtoolkit.nn import Conv2d


def blas_line():
    from threadpoolctl import threadpool_info

    parts = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    ]
    return ", ".join(parts) or "no BLAS found by threadpoolctl"


def numpy_im2col_conv(x, w_rows, padding):
    """float32 3x3 convolution, NCHW: zero pad, sliding-window im2col (one copy), one matmul."""
    n, c, h, wd = x.shape
    p = padding
    xp = np.zeros((n, h + 2 * p, wd + 2 * p, c), np.float32)
    xp[:, p : p + h, p : p + wd] = x.transpose(0, 2, 3, 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))  # n,h,w,c,3,3
    cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * h * wd, -1)
    y = cols @ w_rows.T
    return np.ascontiguousarray(y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2))


def conv_main(args):
    n, c, o, hw, k = args.batch, args.channels, args.channels, args.size, 3
    rng = np.random.default_rng(0)
    w = rng.standard_normal((o, c, k, k)).astype(np.float32)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    macs = n * hw * hw * o * c * k * k
    try:
        import torch
        import torch.nn.functional as F

        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    except ImportError:
        torch = None
    methods = []
    check = {}
    for t in args.threads:
        prep = thread_limiter(t)
        float_conv = Conv2d(w, padding=1, n_threads=t)
        binary = Conv2d.from_float(
            w, padding=1, weights="binary", activations="binary", n_threads=t
        )
        binary_nhwc = Conv2d.from_float(
            w, padding=1, weights="binary", activations="binary", data_format="NHWC", n_threads=t
        )
        w_rows = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, -1)
        check[t] = (float_conv, binary)
        methods += [
            (f"f32_layer[{t}]", lambda f=float_conv: f.forward(x), prep),
            (f"f32_numpy[{t}]", lambda r=w_rows: numpy_im2col_conv(x, r, 1), prep),
            (f"binary[{t}]", lambda b=binary: b.forward(x), prep),
            (f"binary_nhwc[{t}]", lambda b=binary_nhwc: b.forward(x_nhwc), prep),
        ]
        if torch is not None:
            methods.append((f"torch[{t}]", lambda: F.conv2d(tx, tw, padding=1), prep))
        # the binary layer's parts: packing the input, and the xnor GEMM on packed patches
        cw = -(-c // 64)
        rows = n * hw * hw
        xb = PackedBits(
            pack_bits(rng.standard_normal((rows, k * k * cw * 64))).words, n_bits=k * k * cw * 64
        )
        wb = pack_bits(rng.standard_normal((o, k * k * cw * 64)))
        methods += [
            (f"pack[{t}]", lambda t=t: pack_bits(x, axis=1, n_threads=t), prep),
            (f"xnor[{t}]", lambda t=t, a=xb, b=wb: xnor_gemm(a, b, n_threads=t), prep),
        ]
    # the float layer and the binary layer's float reference agree (a sanity check, not timed)
    fc, bc = check[args.threads[0]]
    ref = bc.dequantized().forward(x)
    assert np.allclose(bc.forward(x), ref, atol=1e-3), "binary layer disagrees with its reference"
    assert np.allclose(fc.forward(x), numpy_im2col_conv(x, fc._float_rows(0), 1), atol=1e-2)
    times = interleaved(methods, rounds=args.rounds)
    print(f"# qtoolkit {qtoolkit.__version__}: binary Conv2d benchmark")
    print(f"# {machine_line()}; kernel {get_simd_level()}; numpy {np.__version__}; {blas_line()}")
    print(
        f"# 3x3 conv, {c} -> {o} channels, {hw} x {hw}, batch {n}, padding 1; "
        f"median of {args.rounds} interleaved rounds; GMAC/s = {macs / 1e9:.3f} G MACs / time\n"
    )
    rows = []
    for t in args.threads:
        for name, label in [
            (f"f32_layer[{t}]", "float32 im2col + matmul (qtoolkit.nn.Conv2d, float weight)"),
            (f"f32_numpy[{t}]", "float32 im2col + matmul (NumPy sliding window)"),
            (f"torch[{t}]", "float32 torch.nn.functional.conv2d"),
            (f"binary[{t}]", "binary Conv2d (weights and activations), NCHW"),
            (f"binary_nhwc[{t}]", "binary Conv2d, NHWC"),
            (f"pack[{t}]", "  part: pack_bits of the input (NCHW, channel axis)"),
            (f"xnor[{t}]", "  part: xnor_gemm on the packed patches"),
        ]:
            if name not in times:
                continue
            ms = median(times[name]) * 1e3
            rows.append(
                [
                    t,
                    label,
                    f"{ms:.3f}",
                    f"{macs / median(times[name]) / 1e9:.0f}",
                    f"{ratio(times, f'f32_layer[{t}]', name):.1f}x",
                ]
            )
    print(
        markdown_table(
            ["threads", "method", "ms", "GMAC/s", "speed-up vs float32 im2col + matmul"], rows
        )
    )
    print()
    for t in args.threads:
        r = ratio(times, f"f32_layer[{t}]", f"binary[{t}]")
        verdict = "met" if r >= 10 else "NOT met"
        print(f"target binary >= 10x float32 im2col + matmul, {t} thread(s): {r:.1f}x ({verdict})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("conv", help="binary 3x3 Conv2d against float32 im2col + matmul")
    conv.add_argument("--batch", type=int, default=8)
    conv.add_argument("--channels", type=int, default=256)
    conv.add_argument("--size", type=int, default=14)
    conv.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    conv.add_argument("--rounds", type=int, default=7)
    conv.set_defaults(run=conv_main)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
