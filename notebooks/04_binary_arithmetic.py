# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Binary arithmetic: bit packing, xnor-popcount and the speed of `xnor_gemm`
#
# A binarized layer multiplies vectors whose entries are $\pm 1$. Store each entry as one bit
# (1 for $+1$, 0 for $-1$) and a dot product of two length-$K$ vectors needs no multiplication:
# two entries agree exactly where their bits agree, so
#
# $$ a \cdot b = (\#\text{agree}) - (\#\text{differ}) = K - 2\,\mathrm{popcount}(a \oplus b). $$
#
# XNOR-Net writes the same thing with XNOR ("agree") instead of XOR. This notebook builds the
# identity by hand, shows how `qtoolkit.bitops` stores bits, checks that its GEMM is exact, and
# measures how much faster it is than a float32 matrix product on this machine.

# %%
import functools
import time

import matplotlib.pyplot as plt
import numpy as np

import qtoolkit
from qtoolkit.bitops import (
    available_simd_levels,
    binary_matmul,
    pack_bits,
    simd_level,
    unpack_bits,
    xnor_gemm,
)

rng = np.random.default_rng(0)

# %% [markdown]
# ## The identity with Python integers
#
# Eight entries fit in one byte. Python's `int.bit_count` is a popcount.

# %%
a = np.array([1, -1, -1, 1, 1, 1, -1, 1])
b = np.array([1, 1, -1, -1, 1, -1, -1, 1])
bits_a = sum(1 << k for k in range(8) if a[k] > 0)
bits_b = sum(1 << k for k in range(8) if b[k] > 0)
print(f"a as bits: {bits_a:08b} (bit k is entry k, read right to left)")
print(f"b as bits: {bits_b:08b}")
print("a . b                      =", int(a @ b))
print("K - 2 popcount(a xor b)    =", 8 - 2 * (bits_a ^ bits_b).bit_count())

# %% [markdown]
# ## How `pack_bits` stores a matrix
#
# `pack_bits` packs the signs of each row into 64-bit words: entry $k$ is bit $k \bmod 64$ of
# word $\lfloor k/64 \rfloor$, with sign(0) = +1. Rows are padded with zero bits to a multiple
# of 512 bits, and the true length $K$ is kept beside the words, so the padding never counts.
# The layout is the one of `np.packbits(x >= 0, bitorder="little")` viewed as `uint64`.

# %%
x = rng.standard_normal((3, 100)).astype(np.float32)
p = pack_bits(x)
print(p, "words per row:", p.words.shape[1], "of which hold data:", p.n_words)
ref = np.packbits(x >= 0, axis=1, bitorder="little")
ref = np.pad(ref, ((0, 0), (0, 64 - ref.shape[1]))).view("<u8")
print("same as np.packbits:", np.array_equal(p.words, ref))
print("unpack is the inverse:", np.array_equal(unpack_bits(p), np.where(x >= 0, 1, -1)))

# %% [markdown]
# ## The GEMM is exact
#
# `xnor_gemm(a, b)` computes $C_{ij} = K - 2\,\mathrm{popcount}(a_i \oplus b_j)$ for packed
# $a$ ($M \times K$) and $b$ ($N \times K$): the product `A @ B.T` of the sign matrices, in
# int32, exactly. Every instruction-set level gives the same bits.

# %%
A = rng.standard_normal((200, 1000)).astype(np.float32)
B = rng.standard_normal((300, 1000)).astype(np.float32)
exact = (np.sign(A) @ np.sign(B).T).astype(np.int32)
for level in available_simd_levels():
    with simd_level(level):
        C = xnor_gemm(pack_bits(A), pack_bits(B))
    print(f"{level:8s} equal to the float product: {np.array_equal(C, exact)}")

# %% [markdown]
# ## Scaling brings back the magnitude (XNOR-Net)
#
# Signs throw away magnitudes. XNOR-Net multiplies row $i$ of the product by
# $\alpha_i = \lVert A_i \rVert_1 / K$ and column $j$ by $\beta_j = \lVert B_j \rVert_1 / K$.
# For Gaussian rows the scaled binary product tracks the real one with correlation near
# $2/\pi \approx 0.64$ (the arcsine law of the analysis notebook), and the scaling fixes
# the slope.

# %%
real = A @ B.T
approx = binary_matmul(A, B, scale="mean")
r = np.corrcoef(real.ravel(), approx.ravel())[0, 1]
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.hist2d(real.ravel(), approx.ravel(), bins=80, cmap="Blues")
ax.set_xlabel("real dot product  $A_i \\cdot B_j$")
ax.set_ylabel("XNOR-scaled binary product")
ax.set_title(f"Pearson r = {r:.3f}")
plt.show()

# %% [markdown]
# ## Speed on this machine
#
# The runtime report says which kernel the CPU gets. Below, one thread each, we time
# `xnor_gemm` on packed operands against NumPy's float32 matmul (OpenBLAS) of the same
# $\pm1$ matrices, in binary multiply-accumulates per second ($M N K$ / time). The
# benchmark runner `benchmarks/bench_gemm.py` does this properly (interleaved rounds,
# medians, peers such as faiss); this is a quick look.

# %%
qtoolkit.show_runtime()


def best_time(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


try:
    from threadpoolctl import threadpool_limits
except ImportError:  # the float32 product then uses every BLAS thread
    threadpool_limits = None

sizes = [256, 512, 1024]
speed = {"float32 matmul": []}
speed.update({f"xnor_gemm ({lv})": [] for lv in available_simd_levels()})
for n in sizes:
    X = np.sign(rng.standard_normal((n, n))).astype(np.float32)
    Y = np.sign(rng.standard_normal((n, n))).astype(np.float32)
    px, py = pack_bits(X), pack_bits(Y)
    if threadpool_limits is not None:
        with threadpool_limits(1):
            t = best_time(functools.partial(np.matmul, X, Y.T))
    else:
        t = best_time(functools.partial(np.matmul, X, Y.T))
    speed["float32 matmul"].append(n**3 / t / 1e9)
    for lv in available_simd_levels():
        with simd_level(lv):
            t = best_time(functools.partial(xnor_gemm, px, py, n_threads=1))
        speed[f"xnor_gemm ({lv})"].append(n**3 / t / 1e9)

fig, ax = plt.subplots(figsize=(6, 4))
for name, values in speed.items():
    ax.plot(sizes, values, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("n  (M = N = K)")
ax.set_ylabel("GMAC/s, one thread")
ax.legend(fontsize=8)
ax.set_title("binary GEMM against float32 on this CPU")
plt.show()
best = f"xnor_gemm ({available_simd_levels()[-1]})"
print(f"at n = {sizes[-1]}: {speed[best][-1] / speed['float32 matmul'][-1]:.1f}x float32")

# %% [markdown]
# One 512-bit `vpopcntq` (AVX-512) or a pair of `vpshufb` table look-ups (AVX2) does the work
# of hundreds of multiply-adds, which is why binary layers are attractive on CPUs. The price
# is accuracy: the next notebook trains a binarized network and runs it with `xnor_gemm`.
