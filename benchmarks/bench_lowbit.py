"""Low-bit inference side by side, in one process: subcommands per workload.

Usage::

    python benchmarks/bench_lowbit.py gemm --sizes 2048   # k-bit / ternary GEMMs vs peers
    python benchmarks/bench_lowbit.py gemv                # 1 x 4096 x 4096, and beyond L3
    python benchmarks/bench_lowbit.py roofline            # in-cache micro-kernel rates
    python benchmarks/bench_lowbit.py bitserial --size 2048   # k <= 2: bit-serial vs unpack
    python benchmarks/bench_lowbit.py lut --size 4096         # k <= 2: table lookup vs unpack
    python benchmarks/bench_lowbit.py conv   # binary 3x3 Conv2d, 256 -> 256, 14 x 14, batch 8
    python benchmarks/bench_lowbit.py conv --rounds 9 --threads 1 2

``gemm`` times :func:`qtoolkit.bitops.lowbit_matmul` (ternary, 2- and 4-bit
weights in groups of 32 and 128, 8-bit per row; float32 in, dynamic int8
activations, float32 out) and :func:`qtoolkit.bitops.ternary_gemm` against
NumPy float32 ``matmul`` (OpenBLAS), onnxruntime ``MatMulInteger`` (uint8 x
int8) and ``MatMulNBits`` (4-bit blocks, ``accuracy_level`` 0 and 4) as
one-node graphs with one intra-op thread, and :func:`xnor_gemm`, for
M = N = K = n. ``gemv`` is the one-row case (weights streamed once) and a
16384 x 16384 2-bit GEMV against a large ``np.copyto``'s bandwidth.

``bitserial`` decides, for 1- and 2-bit weights times int8 activations, between
unpacking the codes to bytes (the ``lowbit_gemm_int`` kernels) and a bit-serial
product over bit planes, ``sum_ij c_i c_j popcount(u_i & a_j)``: the latter's
popcounts are timed as k * 8 calls of :func:`xnor_gemm` (our fastest popcount
GEMM) on the planes, a lower bound of any bit-serial kernel (the packing of the
planes and the combination are not timed); the combination is checked exactly
against ``lowbit_gemm_int`` once.

``lut`` measures the other candidate for k <= 2: a table-lookup product (T-MAC
style: per quad of activations a 16-entry int16 table of partial sums, looked up
with ``vpshufb`` on its low and high bytes, exact), written in
``benchmarks/_tmac_lut.c`` and compiled here at run time, against the unpack
kernels, for one activation row (GEMV) and for several; both are checked
exactly against each other and against an int64 product first. Cap the level
with ``QTOOLKIT_SIMD=avx2`` to compare with the AVX2 unpack kernel.

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
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import interleaved, machine_line, markdown_table, median, ratio, thread_limiter

import qtoolkit
from qtoolkit.bitops import (
    PackedBits,
    QuantizedActivations,
    get_simd_level,
    lowbit_gemm_int,
    lowbit_matmul,
    pack_bits,
    pack_ternary,
    pack_ternary_bits,
    pack_weights,
    ternary_gemm,
    xnor_gemm,
)
from qtoolkit.bitops._buffers import _aligned_empty
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


def _ort_session(model):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_matmul_integer(m, k, n, rng):
    """One-node MatMulInteger graph, uint8 A (zero point 128) x int8 B (K x N); returns run()."""
    from onnx import TensorProto, helper, numpy_helper

    b = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "za"], ["Y"])],
        "mmi",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])],
        [numpy_helper.from_array(b, "B"), numpy_helper.from_array(np.array(128, np.uint8), "za")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = _ort_session(model)
    a = rng.integers(0, 256, size=(m, k)).astype(np.uint8)
    return lambda: sess.run(None, {"A": a})


def ort_matmul_nbits(x, codes, scales, block, accuracy_level):
    """One-node com.microsoft MatMulNBits graph, 4-bit codes (N, K) in [0, 15], zero point 8."""
    from onnx import TensorProto, helper, numpy_helper

    m, k = x.shape
    n = codes.shape[0]
    nb = k // block
    q = codes.reshape(n, nb, block).astype(np.uint8)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)  # low nibble first
    node = helper.make_node(
        "MatMulNBits",
        ["A", "B", "S"],
        ["Y"],
        domain="com.microsoft",
        K=k,
        N=n,
        bits=4,
        block_size=block,
        accuracy_level=accuracy_level,
    )
    graph = helper.make_graph(
        [node],
        "nbits",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])],
        [
            numpy_helper.from_array(packed, "B"),
            numpy_helper.from_array(scales.astype(np.float32).reshape(-1), "S"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
    )
    sess = _ort_session(model)
    return lambda: sess.run(None, {"A": x})[0]


def _uniform4(rng, n, k, block):
    """4-bit codes [0, 15] with zero point 8 and per-block scales, and our packed form."""
    codes = rng.integers(0, 16, size=(n, k))
    scales = rng.uniform(0.01, 0.02, size=(n, k // block)).astype(np.float32)
    w = pack_weights(codes, 4, scales=scales, zero_points=8, group_size=block)
    return codes, scales, w


def _fresh_aligned(shape):
    """A float32 output on newly allocated memory (not from the buffer cache), 64-byte aligned
    as the cache's buffers are."""
    nbytes = math.prod(shape) * 4
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + nbytes].view(np.float32).reshape(shape)


def _header(title, args_line):
    print(f"# qtoolkit {qtoolkit.__version__}: {title}")
    print(
        f"# {machine_line()}; kernel level {get_simd_level()} (k-bit: "
        f"{_lowbit_kernel_names()[0]}, ternary: {_lowbit_kernel_names()[1]}); "
        f"numpy {np.__version__}; {blas_line()}"
    )
    print(f"# {args_line}\n")


def _lowbit_kernel_names():
    from qtoolkit.bitops import _lowbit
    from qtoolkit.bitops._dispatch import _level_id

    return _lowbit.kernel_names(_level_id())


def gemm_main(args):
    import onnxruntime

    rng = np.random.default_rng(0)
    for n in args.sizes:
        m = k = n
        x = rng.standard_normal((m, k)).astype(np.float32)
        wf = rng.standard_normal((n, k)).astype(np.float32)
        wt = wf.T.copy()
        tern = pack_ternary(rng.integers(-1, 2, size=(n, k)))
        c32, s32, w4_32 = _uniform4(rng, n, k, 32)
        c128, s128, w4_128 = _uniform4(rng, n, k, 128)
        w2 = pack_weights(rng.integers(-2, 2, size=(n, k)), 2, scales=s128, group_size=128)
        w8 = pack_weights(rng.integers(-127, 128, size=(n, k)), 8, scales=1.0)
        ta = pack_ternary_bits(rng.integers(-1, 2, size=(m, k)))
        tb = pack_ternary_bits(rng.integers(-1, 2, size=(n, k)))
        xa, xb = pack_bits(x), pack_bits(wf)
        one = thread_limiter(1)
        methods = [
            ("f32", lambda x=x, wt=wt: x @ wt, one),
            ("mmi", ort_matmul_integer(m, k, n, rng), one),
            ("nbits32_0", ort_matmul_nbits(x, c32, s32, 32, 0), one),
            ("nbits32_4", ort_matmul_nbits(x, c32, s32, 32, 4), one),
            ("nbits128_0", ort_matmul_nbits(x, c128, s128, 128, 0), one),
            ("nbits128_4", ort_matmul_nbits(x, c128, s128, 128, 4), one),
            ("xnor[1]", lambda a=xa, b=xb: xnor_gemm(a, b, n_threads=1), one),
            ("xnor[2]", lambda a=xa, b=xb: xnor_gemm(a, b, n_threads=2), one),
        ]
        ours = [("tern", tern), ("w4g32", w4_32), ("w4g128", w4_128), ("w2g128", w2), ("w8", w8)]
        for t in args.threads:
            for name, w in ours:
                methods.append(
                    (f"{name}[{t}]", lambda w=w, t=t, x=x: lowbit_matmul(x, w, n_threads=t), one)
                )
            methods.append(
                (f"txt[{t}]", lambda t=t, a=ta, b=tb: ternary_gemm(a, b, n_threads=t), one)
            )
            # the same product into one reused output, and into a fresh output of its own on
            # every call: lowbit_matmul's new outputs come from the buffer cache
            # (set_buffer_cache), and the rounds keep each sample's outputs alive, so without
            # the cache every call would fault in M N * 4 bytes of new pages, serially in the OS
            reused = _aligned_empty((m, n), np.float32)
            methods.append(
                (
                    f"tern-out[{t}]",
                    lambda t=t, x=x, w=tern, o=reused: lowbit_matmul(x, w, out=o, n_threads=t),
                    one,
                )
            )
            methods.append(
                (
                    f"tern-fresh[{t}]",
                    lambda t=t, x=x, w=tern, s=(m, n): lowbit_matmul(
                        x, w, out=_fresh_aligned(s), n_threads=t
                    ),
                    one,
                )
            )
        from qtoolkit.bitops import _lowbit

        if _lowbit.amx_available():  # the same products on the VNNI kernel, AMX switched off

            def vnni(w, x=x):
                _lowbit.set_amx(False)
                try:
                    return lowbit_matmul(x, w, n_threads=1)
                finally:
                    _lowbit.set_amx(True)

            for name, w in ours[:3]:
                methods.append((f"{name}-vnni[1]", lambda w=w: vnni(w), one))
        # sanity: our 4-bit product and MatMulNBits agree (not timed)
        y_ours = lowbit_matmul(x[:4], w4_32)
        y_ort = ort_matmul_nbits(x[:4], c32, s32, 32, 0)()
        err = np.abs(y_ours - y_ort).max() / np.abs(y_ort).max()
        assert err < 0.05, f"4-bit product disagrees with MatMulNBits: relative error {err}"
        times = interleaved(methods, rounds=args.rounds)
        macs = m * n * k
        _header(
            f"low-bit GEMM, M = N = K = {n}",
            f"onnxruntime {onnxruntime.__version__} (1 intra-op thread); median of "
            f"{args.rounds} interleaved rounds; GMAC/s = M N K / time (binary/ternary MAC: one "
            "value of K); ratios are medians of per-round ratios",
        )
        labels = {
            "f32": "NumPy float32 matmul (OpenBLAS), 1 thread",
            "mmi": "onnxruntime MatMulInteger u8 x s8",
            "nbits32_0": "onnxruntime MatMulNBits 4-bit, block 32, acc. level 0",
            "nbits32_4": "onnxruntime MatMulNBits 4-bit, block 32, acc. level 4",
            "nbits128_0": "onnxruntime MatMulNBits 4-bit, block 128, acc. level 0",
            "nbits128_4": "onnxruntime MatMulNBits 4-bit, block 128, acc. level 4",
            "xnor[1]": "qtoolkit xnor_gemm (binary x binary), 1 thread",
            "xnor[2]": "qtoolkit xnor_gemm (binary x binary), 2 threads",
        }
        for t in args.threads:
            labels.update(
                {
                    f"tern[{t}]": f"qtoolkit lowbit_matmul ternary x int8, {t} thr.",
                    f"w4g32[{t}]": f"qtoolkit lowbit_matmul 4-bit g32 x int8, {t} thr.",
                    f"w4g128[{t}]": f"qtoolkit lowbit_matmul 4-bit g128 x int8, {t} thr.",
                    f"w2g128[{t}]": f"qtoolkit lowbit_matmul 2-bit g128 x int8, {t} thr.",
                    f"w8[{t}]": f"qtoolkit lowbit_matmul 8-bit per row x int8, {t} thr.",
                    f"txt[{t}]": f"qtoolkit ternary_gemm (ternary x ternary), {t} thr.",
                }
            )
        for t in args.threads:
            labels[f"tern-out[{t}]"] = f"  the same, ternary x int8 into a reused out=, {t} thr."
            labels[f"tern-fresh[{t}]"] = (
                f"  the same into fresh memory (buffer cache bypassed), {t} thr."
            )
        labels.update(
            {
                "tern-vnni[1]": "  the same, ternary x int8 on VNNI (AMX off), 1 thr.",
                "w4g32-vnni[1]": "  the same, 4-bit g32 on VNNI (AMX off), 1 thr.",
                "w4g128-vnni[1]": "  the same, 4-bit g128 on VNNI (AMX off), 1 thr.",
            }
        )
        rows = []
        for name, label in labels.items():
            if name not in times:
                continue
            sec = median(times[name])
            rows.append(
                [
                    label,
                    f"{sec * 1e3:.1f}",
                    f"{macs / sec / 1e9:.0f}",
                    f"{ratio(times, 'f32', name):.2f}",
                    f"{ratio(times, 'mmi', name):.2f}",
                ]
            )
        print(markdown_table(["method", "ms", "GMAC/s", "vs float32", "vs MatMulInteger"], rows))
        print()
        t1 = args.threads[0]
        checks = [
            ("ternary x int8 >= 2.5x float32", ratio(times, "f32", f"tern[{t1}]"), 2.5),
            ("ternary x int8 >= 1.0x MatMulInteger", ratio(times, "mmi", f"tern[{t1}]"), 1.0),
            (
                "4-bit g32 >= 2x MatMulNBits (best acc. level)",
                min(
                    ratio(times, "nbits32_0", f"w4g32[{t1}]"),
                    ratio(times, "nbits32_4", f"w4g32[{t1}]"),
                ),
                2.0,
            ),
            (
                "4-bit g128 >= 2x MatMulNBits (best acc. level)",
                min(
                    ratio(times, "nbits128_0", f"w4g128[{t1}]"),
                    ratio(times, "nbits128_4", f"w4g128[{t1}]"),
                ),
                2.0,
            ),
            ("ternary x ternary >= 0.4x xnor_gemm", ratio(times, "xnor[1]", f"txt[{t1}]"), 0.4),
        ]
        if 2 in args.threads and 1 in args.threads:
            for name in ("tern", "w4g32", "w4g128", "txt"):
                checks.append(
                    (
                        f"{name}: 2 threads >= 1.8x 1 thread",
                        ratio(times, f"{name}[1]", f"{name}[2]"),
                        1.8,
                    )
                )
        for text, r, target in checks:
            print(f"target {text} (n = {n}): {r:.2f}x ({'met' if r >= target else 'NOT met'})")
        print()


def _l3_bytes():
    """The largest cache the OS reports for CPU 0 (sysfs), in bytes, or None."""
    import glob

    best = None
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            best = max(best or 0, int(digits) * scale)
    return best


def gemv_main(args):
    import onnxruntime

    rng = np.random.default_rng(1)
    one = thread_limiter(1)
    n = k = args.size
    x = rng.standard_normal((1, k)).astype(np.float32)
    wt = rng.standard_normal((k, n)).astype(np.float32)
    c32, s32, w4_32 = _uniform4(rng, n, k, 32)
    c128, s128, w4_128 = _uniform4(rng, n, k, 128)
    tern = pack_ternary(rng.integers(-1, 2, size=(n, k)))
    methods = [
        ("f32", lambda: x @ wt, one),
        ("mmi", ort_matmul_integer(1, k, n, rng), one),
        ("nbits32_4", ort_matmul_nbits(x, c32, s32, 32, 4), one),
        ("nbits128_4", ort_matmul_nbits(x, c128, s128, 128, 4), one),
        ("nbits32_0", ort_matmul_nbits(x, c32, s32, 32, 0), one),
        ("w4g32", lambda: lowbit_matmul(x, w4_32, n_threads=1), one),
        ("w4g128", lambda: lowbit_matmul(x, w4_128, n_threads=1), one),
        ("tern", lambda: lowbit_matmul(x, tern, n_threads=1), one),
    ]
    times = interleaved(methods, rounds=args.rounds)
    _header(
        f"low-bit GEMV, 1 x {k} -> {n}",
        f"onnxruntime {onnxruntime.__version__} (1 intra-op thread); 1 thread; median of "
        f"{args.rounds} interleaved rounds",
    )
    labels = {
        "f32": "NumPy float32 matmul (OpenBLAS)",
        "mmi": "onnxruntime MatMulInteger u8 x s8",
        "nbits32_0": "onnxruntime MatMulNBits 4-bit, block 32, acc. 0",
        "nbits32_4": "onnxruntime MatMulNBits 4-bit, block 32, acc. 4",
        "nbits128_4": "onnxruntime MatMulNBits 4-bit, block 128, acc. 4",
        "w4g32": "qtoolkit lowbit_matmul 4-bit g32",
        "w4g128": "qtoolkit lowbit_matmul 4-bit g128",
        "tern": "qtoolkit lowbit_matmul ternary",
    }
    rows = [
        [
            lab,
            f"{median(times[nm]) * 1e6:.0f}",
            f"{n * k / median(times[nm]) / 1e9:.1f}",
            f"{ratio(times, 'f32', nm):.2f}",
        ]
        for nm, lab in labels.items()
    ]
    print(markdown_table(["method", "us", "GMAC/s", "vs float32"], rows))
    print()
    for name, peer in (("w4g32", "nbits32_4"), ("w4g128", "nbits128_4")):
        best = min(
            ratio(times, peer, name),
            ratio(times, "nbits32_0", name) if "32" in peer else ratio(times, peer, name),
        )
        print(
            f"target GEMV {name} >= 1.2x MatMulNBits (acc. 4): {best:.2f}x "
            f"({'met' if best >= 1.2 else 'NOT met'})"
        )
    print()
    # beyond L3: 2-bit weights larger than the last-level cache the OS reports (16384 x 16384,
    # 64 MiB, at least), against np.copyto of as many bytes as the weights (at least 128 MiB)
    l3 = _l3_bytes()
    big = args.big
    if big is None:
        big = 16384
        while l3 is not None and big * big // 4 < 1.25 * l3:
            big += 4096
    codes = rng.integers(-2, 2, size=(big, big), dtype=np.int8)
    w2 = pack_weights(codes, 2, scales=1.0)
    del codes
    xb = rng.standard_normal((1, big)).astype(np.float32)
    wbytes = big * big // 4
    src = np.ones(max(16 << 20, wbytes // 8), np.float64)
    dst = np.empty_like(src)
    methods = [("copy", lambda: np.copyto(dst, src), one)]
    for t in args.threads:
        methods.append((f"w2[{t}]", lambda t=t: lowbit_matmul(xb, w2, n_threads=t), one))
    times = interleaved(methods, rounds=args.rounds)
    copy_bw = 2 * src.nbytes / median(times["copy"]) / 1e9
    l3_text = "L3 size unknown" if l3 is None else f"L3 {l3 / 2**20:.0f} MiB as the OS reports it"
    beyond = l3 is None or wbytes > l3
    print(
        f"# GEMV 1 x {big} -> {big}, 2-bit weights ({wbytes / 2**20:.0f} MiB, "
        f"{'beyond' if beyond else 'NOT beyond'} the {l3_text})"
    )
    rows = [
        [
            f"np.copyto of {src.nbytes / 2**20:.0f} MiB (read + write)",
            f"{median(times['copy']) * 1e3:.1f}",
            f"{copy_bw:.1f}",
            "1.00",
        ]
    ]
    for t in args.threads:
        sec = median(times[f"w2[{t}]"])
        rows.append(
            [
                f"qtoolkit lowbit_matmul 2-bit, {t} thread(s): weight bytes / time",
                f"{sec * 1e3:.1f}",
                f"{wbytes / sec / 1e9:.1f}",
                f"{wbytes / sec / 1e9 / copy_bw:.2f}",
            ]
        )
    print(markdown_table(["method", "ms", "GB/s", "vs copyto"], rows))
    for t in args.threads:
        r = wbytes / median(times[f"w2[{t}]"]) / 1e9 / copy_bw
        print(
            f"target GEMV beyond L3 >= 0.7x copyto bandwidth, {t} thread(s): {r:.2f}x "
            f"({'met' if r >= 0.7 else 'NOT met'})"
        )


def _bit_planes(codes, nbits):
    """Bit ``i`` of unsigned ``codes`` as +-1 rows packed for xnor_gemm, i < nbits."""
    return [pack_bits(((codes >> i) & 1).astype(np.int8) * 2 - 1) for i in range(nbits)]


def _bitserial_int(a_planes, a_weights, w_planes, w_weights, k):
    """sum_ij c_i c_j P_ij, P_ij = sum_k a_j w_i = (K + Sa_j + Sw_i + X_ij) / 4 on 0/1 planes."""
    out = 0
    row_sums = [xnor_gemm(p, pack_bits(np.ones((1, k)))).astype(np.int64)[:, 0] for p in a_planes]
    col_sums = [xnor_gemm(pack_bits(np.ones((1, k))), p).astype(np.int64)[0] for p in w_planes]
    for j, (pa, ca) in enumerate(zip(a_planes, a_weights, strict=True)):
        for i, (pw, cw) in enumerate(zip(w_planes, w_weights, strict=True)):
            x = xnor_gemm(pa, pw).astype(np.int64)
            out = out + ca * cw * ((k + row_sums[j][:, None] + col_sums[i][None, :] + x) // 4)
    return out


def bitserial_main(args):
    rng = np.random.default_rng(3)
    one = thread_limiter(1)
    act_weights = [1 << j for j in range(7)] + [-128]  # int8 two's complement planes
    # exactness of the bit-serial combination (untimed, small)
    qa = rng.integers(-128, 128, size=(9, 200)).astype(np.int8)
    for bits in (1, 2):
        u = rng.integers(0, 1 << bits, size=(13, 200)).astype(np.uint8)
        ref = lowbit_gemm_int(qa, pack_weights(u, bits, scales=1.0))[:, :, 0]
        got = _bitserial_int(
            _bit_planes(qa.view(np.uint8), 8),
            act_weights,
            _bit_planes(u, bits),
            [1 << i for i in range(bits)],
            200,
        )
        assert np.array_equal(got, ref), "bit-serial combination disagrees with lowbit_gemm_int"
    n = k = m = args.size
    codes = rng.integers(-127, 128, size=(m, k)).astype(np.int8)
    qact = QuantizedActivations(codes, np.ones(m, np.float32), np.zeros(m, np.int32))
    a_planes = _bit_planes(codes.view(np.uint8), 8)
    methods = []
    for bits in (1, 2):
        u = rng.integers(0, 1 << bits, size=(n, k)).astype(np.uint8)
        w = pack_weights(u, bits, scales=1.0)
        w_planes = _bit_planes(u, bits)
        methods.append((f"unpack{bits}", lambda w=w: lowbit_gemm_int(qact, w, n_threads=1), one))

        def popcounts(w_planes=w_planes):
            for pa in a_planes:
                for pw in w_planes:
                    xnor_gemm(pa, pw, n_threads=1)

        methods.append((f"serial{bits}", popcounts, one))
    methods.append(("xnor", lambda: xnor_gemm(a_planes[0], a_planes[1], n_threads=1), one))
    times = interleaved(methods, rounds=args.rounds)
    _header(
        f"k <= 2 bits x int8: unpack-to-int8 vs bit-serial, M = N = K = {n}",
        f"1 thread; median of {args.rounds} interleaved rounds; exact int32 products from "
        "int8 codes; bit-serial = its k * 8 plane popcount GEMMs only (a lower bound)",
    )
    labels = {
        "unpack1": "lowbit_gemm_int 1-bit x int8 (unpack to int8, vpmaddubsw)",
        "serial1": "bit-serial 1-bit x int8: 8 xnor_gemm on bit planes (lower bound)",
        "unpack2": "lowbit_gemm_int 2-bit x int8 (unpack to int8, vpmaddubsw)",
        "serial2": "bit-serial 2-bit x int8: 16 xnor_gemm on bit planes (lower bound)",
        "xnor": "one xnor_gemm (binary x binary), for reference",
    }
    rows = [
        [
            lab,
            f"{median(times[nm]) * 1e3:.1f}",
            f"{m * n * k / median(times[nm]) / 1e9:.0f}",
            f"{ratio(times, nm, 'unpack' + nm[-1]):.2f}" if nm != "xnor" else "",
        ]
        for nm, lab in labels.items()
    ]
    print(markdown_table(["method", "ms", "GMAC/s (int8 MACs)", "unpack speed-up"], rows))
    for bits in (1, 2):
        r = ratio(times, f"unpack{bits}", f"serial{bits}")
        faster = "unpack-to-int8" if r < 1 else "bit-serial"
        print(f"{bits}-bit x int8: bit-serial / unpack time = {1 / r:.2f} -> {faster} is faster")


def _build_lut_kernel():
    """Compile benchmarks/_tmac_lut.c (the table-lookup candidate) and load it with ctypes."""
    import ctypes
    import subprocess
    import sysconfig
    import tempfile

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tmac_lut.c")
    out = os.path.join(tempfile.mkdtemp(prefix="qtoolkit-lut-"), "tmac_lut.so")
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    subprocess.run([cc, "-O3", "-mavx2", "-shared", "-fPIC", src, "-o", out], check=True)
    lib = ctypes.CDLL(out)
    p = ctypes.c_void_p
    lib.tmac_pack.argtypes = [p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, p]
    lib.tmac_gemm.argtypes = [
        p,
        ctypes.c_size_t,
        ctypes.c_size_t,
        ctypes.c_int,
        p,
        ctypes.c_size_t,
        p,
    ]
    lib.tmac_gemm.restype = ctypes.c_int
    return lib


class _LutWeights:
    """Codes (N, K) packed for the table-lookup kernel; ``matmul(a)`` is the exact int32 product."""

    def __init__(self, lib, codes, bits):
        self.lib, self.bits = lib, bits
        self.n, self.k = codes.shape
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        size = -(-self.n // 32) * -(-self.k // 8) * bits * 32
        self.packed = np.zeros(size, np.uint8)
        lib.tmac_pack(codes.ctypes.data, self.n, self.k, bits, self.packed.ctypes.data)

    def matmul(self, a):
        a = np.ascontiguousarray(a, dtype=np.int8)
        out = np.empty((a.shape[0], self.n), np.int32)
        rc = self.lib.tmac_gemm(
            self.packed.ctypes.data,
            self.n,
            self.k,
            self.bits,
            a.ctypes.data,
            a.shape[0],
            out.ctypes.data,
        )
        if rc != 0:
            raise MemoryError("table-lookup kernel: allocation failed")
        return out


def lut_main(args):
    if get_simd_level() not in ("avx2", "avx512"):
        print(f"# lut: the table-lookup candidate is AVX2 code; this CPU runs {get_simd_level()}")
        return
    lib = _build_lut_kernel()
    rng = np.random.default_rng(5)
    one = thread_limiter(1)
    # exactness first (untimed): odd sizes and the extremes of int8
    for bits in (1, 2):
        for n, k, m in ((37, 203, 3), (64, 4096, 2), (1, 9, 1)):
            u = rng.integers(0, 1 << bits, size=(n, k)).astype(np.uint8)
            a = rng.choice(np.array([-128, 127, -1, 0, 1], np.int8), size=(m, k))
            ref = a.astype(np.int64) @ u.astype(np.int64).T
            got = _LutWeights(lib, u, bits).matmul(a)
            assert np.array_equal(got, ref), f"table-lookup kernel wrong at bits={bits} {n, k, m}"
    n = k = args.size
    methods, macs = [], {}
    for m in args.rows:
        codes = rng.integers(-127, 128, size=(m, k)).astype(np.int8)
        qact = QuantizedActivations(codes, np.ones(m, np.float32), np.zeros(m, np.int32))
        for bits in (1, 2):
            u = rng.integers(0, 1 << bits, size=(n, k)).astype(np.uint8)
            w = pack_weights(u, bits, scales=1.0)
            lw = _LutWeights(lib, u, bits)
            ref = lowbit_gemm_int(qact, w, n_threads=1)[:, :, 0]
            # the unpack kernel's integer result, made unsigned-code form: sum_k a u
            zz = np.asarray(w.zero_points, np.int64)[:, 0]
            assert np.array_equal(
                lw.matmul(codes).astype(np.int64)
                - zz[None, :] * codes.sum(1, dtype=np.int64)[:, None],
                ref,
            ), "table-lookup and unpack kernels disagree"
            methods.append(
                (f"unpack{bits}[{m}]", lambda w=w, q=qact: lowbit_gemm_int(q, w, n_threads=1), one)
            )
            methods.append((f"lut{bits}[{m}]", lambda lw=lw, c=codes: lw.matmul(c), one))
            macs[m] = m * n * k
    times = interleaved(methods, rounds=args.rounds)
    _header(
        f"k <= 2 bits x int8: unpack-to-int8 vs table lookup (T-MAC style), N = K = {n}",
        f"1 thread; median of {args.rounds} interleaved rounds; both exact int32; table lookup: "
        "16-entry int16 tables per quad of activations, vpshufb on the low and high bytes "
        "(benchmarks/_tmac_lut.c, built here with -O3 -mavx2)",
    )
    rows = []
    for m in args.rows:
        for bits in (1, 2):
            for nm, lab in (
                (f"unpack{bits}[{m}]", "unpack to int8 (lowbit_gemm_int)"),
                (f"lut{bits}[{m}]", "table lookup"),
            ):
                t = median(times[nm])
                rows.append(
                    [
                        f"M = {m}, {bits}-bit: {lab}",
                        f"{t * 1e3:.2f}",
                        f"{macs[m] / t / 1e9:.0f}",
                        f"{ratio(times, f'unpack{bits}[{m}]', nm):.2f}",
                    ]
                )
    print(markdown_table(["method", "ms", "GMAC/s", "speed-up vs unpack"], rows))
    for m in args.rows:
        for bits in (1, 2):
            r = ratio(times, f"unpack{bits}[{m}]", f"lut{bits}[{m}]")
            faster = "table lookup" if r > 1 else "unpack-to-int8"
            print(
                f"M = {m}, {bits}-bit x int8: unpack / lookup time = {r:.2f} -> {faster} is faster"
            )


def roofline_main(args):
    import time

    from qtoolkit.bitops import _lowbit
    from qtoolkit.bitops._dispatch import _level_id

    _header(
        "in-cache micro-kernel rates (one L1-resident panel, 1 thread)",
        f"K = {args.k}; best of {args.rounds}",
    )
    rows = []
    level = _level_id()
    for bits in (1, 2, 3, 4, 8):
        best = 0.0
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            macs = _lowbit.ukernel_repeat(level, bits, args.k // 32, 2000)
            best = max(best, macs / (time.perf_counter() - t0) / 1e9)
        rows.append([f"k-bit x int8 micro-kernel, {bits}-bit weights", f"{best:.0f}"])
    if _lowbit.amx_available():
        for bits in (2, 4):
            best = 0.0
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                macs = _lowbit.amx_ukernel_repeat(bits, args.k // 32, 2000)
                best = max(best, macs / (time.perf_counter() - t0) / 1e9)
            rows.append([f"AMX tile loop (32 x 32 blocks), {bits}-bit weights", f"{best:.0f}"])
    best = 0.0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        macs = _lowbit.ternary_ukernel_repeat(level, args.k // 64, 20000)
        best = max(best, macs / (time.perf_counter() - t0) / 1e9)
    rows.append(["ternary x ternary micro-kernel", f"{best:.0f}"])
    print(markdown_table(["micro-kernel", "GMAC/s"], rows))


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
    gemm = sub.add_parser("gemm", help="k-bit / ternary GEMMs against float32 and onnxruntime")
    gemm.add_argument("--sizes", type=int, nargs="+", default=[2048])
    gemm.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    gemm.add_argument("--rounds", type=int, default=5)
    gemm.set_defaults(run=gemm_main)
    gemv = sub.add_parser("gemv", help="one-row products, in cache and beyond L3")
    gemv.add_argument("--size", type=int, default=4096)
    gemv.add_argument("--big", type=int, default=None, help="default: weights > 1.25 x L3")
    gemv.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    gemv.add_argument("--rounds", type=int, default=7)
    gemv.set_defaults(run=gemv_main)
    roof = sub.add_parser("roofline", help="in-cache micro-kernel rates")
    roof.add_argument("--k", type=int, default=1024)
    roof.add_argument("--rounds", type=int, default=5)
    roof.set_defaults(run=roofline_main)
    serial = sub.add_parser("bitserial", help="k <= 2 bits: bit-serial popcounts vs unpack")
    serial.add_argument("--size", type=int, default=2048)
    serial.add_argument("--rounds", type=int, default=3)
    serial.set_defaults(run=bitserial_main)
    lut = sub.add_parser("lut", help="k <= 2 bits: table lookup (T-MAC style) vs unpack")
    lut.add_argument("--size", type=int, default=4096)
    lut.add_argument("--rows", type=int, nargs="+", default=[1, 64])
    lut.add_argument("--rounds", type=int, default=7)
    lut.set_defaults(run=lut_main)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
