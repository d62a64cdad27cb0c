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
# # A tour of the rounding schemes
#
# A quantizer maps a real number to one element of a small set, the *codebook*. The survey
# of Guo (2018) sorts quantizers along two axes: the codebook is *fixed* (chosen before
# seeing the data, up to a scale) or *adaptive* (learned, e.g. by k-means), and the map is
# *deterministic* (each value has one image) or *stochastic* (the image is drawn at random,
# with probabilities set by the value). `qtoolkit.rounding` holds the fixed codebooks, both
# deterministic and stochastic; the adaptive ones are in `qtoolkit.codebooks`.
#
# This notebook draws every fixed codebook as a staircase, measures the error each one makes
# on Gaussian and Laplace weights as the bit width grows, shows why stochastic rounding is
# unbiased, plots the pseudo-gradients used to train through a staircase, and follows a
# tensor from real values to integer codes to densely packed bytes.

# %%
import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
from scipy import integrate, optimize, stats

from qtoolkit.bitops import pack_codes, unpack_codes
from qtoolkit.rounding import (
    approx_sign_gradient,
    available_quantizers,
    binarize,
    clipped_straight_through,
    decode,
    dorefa_weights,
    encode,
    fixed_point,
    get,
    inq_codebook,
    power_of_two,
    stochastic_round,
    straight_through,
    swish_sign_gradient,
    ternarize,
    uniform,
)

rng = np.random.default_rng(0)

# %% [markdown]
# ## Every fixed codebook as a staircase
#
# Most schemes are *scaled* fixed codebooks: the shape of the codebook is fixed and one
# scale is read off the tensor. Binarization keeps $\alpha\,\mathrm{sign}(w)$, with
# $\alpha = 1$ (BinaryConnect) or $\alpha = \mathbb{E}|w|$, the least-squares scale of
# XNOR-Net. Ternarization keeps $\{-\alpha, 0, \alpha\}$ with a threshold $\Delta$: TWN
# (Li et al., 2016) takes $\Delta = 0.7\,\mathbb{E}|w|$, the exact least-squares optimum
# searches all thresholds, TTQ (Zhu et al., 2017) takes $\Delta = 0.05 \max|w|$ with
# separate positive and negative scales. A uniform $b$-bit grid has step
# $s = \max|w| / (2^{b-1} - 1)$ (symmetric) or $s = (\max w - \min w)/(2^b - 1)$ with a
# zero point (asymmetric). DoReFa-Net squashes weights with $\tanh$ before a uniform grid
# on $[-1, 1]$. LogQuant (Miyashita et al., 2016) and INQ (Zhou et al., 2017) keep signed
# powers of two, so a multiplication becomes a shift. Fixed point $Q_{m.n}$ has the fixed
# step $2^{-n}$ and saturates at $\pm 2^m$.
#
# Because the scales depend on the tensor, each staircase below is drawn by quantizing the
# same 20 000 standard-normal weights and plotting each quantized weight against its real
# value.

# %%
w = np.sort(rng.standard_normal(20_000))

schemes = {
    "sign (BinaryConnect)": lambda v: binarize(v),
    "sign x E|w| (XNOR-Net)": lambda v: binarize(v, scale="mean"),
    "ternary TWN": lambda v: ternarize(v, method="twn"),
    "ternary optimal": lambda v: ternarize(v, method="optimal"),
    "ternary TTQ": lambda v: ternarize(v, method="ttq"),
    "uniform 3-bit symmetric": lambda v: uniform(v, bits=3),
    "uniform 3-bit asymmetric": lambda v: uniform(v, bits=3, mode="asymmetric"),
    "DoReFa 3-bit": lambda v: dorefa_weights(v, bits=3),
    "LogQuant 2-bit (5 exponents)": lambda v: power_of_two(v, bits=2),
    "INQ 4-bit": lambda v: power_of_two(v, bits=4, method="inq"),
    "fixed point Q1.2": lambda v: fixed_point(v, int_bits=1, frac_bits=2),
    "uniform 3-bit, MSE range": lambda v: uniform(v, bits=3, range="mse"),
}

fig, axes = plt.subplots(3, 4, figsize=(13, 9), sharex=True)
print(f"{'scheme':30s} {'levels':>6s} {'MSE':>8s}")
for ax, (name, fn) in zip(axes.ravel(), schemes.items()):
    q = fn(w)
    ax.plot(w, w, color="0.8", lw=1)
    ax.plot(w, q, lw=1.8)
    ax.set_title(name, fontsize=9)
    ax.set_ylim(-4.2, 4.2)
    ax.grid(alpha=0.3)
    print(f"{name:30s} {len(np.unique(q)):6d} {np.mean((q - w) ** 2):8.4f}")
for ax in axes[-1]:
    ax.set_xlabel("w")
fig.suptitle("q(w) for 20 000 standard-normal weights (grey: identity)")
fig.tight_layout()
plt.show()

# %% [markdown]
# DoReFa's staircase bends because of the $\tanh$ and lands on $[-1, 1]$ whatever the scale
# of $w$: it is meant to be followed by a learned layer scale, so its squared error against
# $w$ is not a fair comparison. The INQ codebook has $2^{b-2}$ magnitudes, zero and a sign;
# `inq_codebook` returns it:

# %%
print("INQ 4-bit codebook of w:", inq_codebook(w, bits=4))

# %% [markdown]
# ## Two closed forms to check
#
# For binarization with the XNOR scale, the error is
# $\mathbb{E}(w - \alpha\,\mathrm{sign}\,w)^2 = \mathbb{E}w^2 - (\mathbb{E}|w|)^2$: for a standard
# normal $\mathbb{E}|w| = \sqrt{2/\pi}$, so the mean squared error is $1 - 2/\pi$.
#
# For a ternary code with threshold $\Delta$, the best scale is
# $\alpha = \mathbb{E}[\,|w| \mid |w| > \Delta\,]$ and the error is
# $\mathbb{E}w^2 - P(|w| > \Delta)\,\alpha^2$. Minimising over $\Delta$ for the normal
# distribution gives the population optimum; `ternarize(method="optimal")` solves the same
# problem exactly on the sample, and TWN's rule of thumb $\Delta = 0.7\,\mathbb{E}|w|$ was
# derived as an approximation of it.


# %%
def ternary_gain(delta):
    p = 2 * stats.norm.sf(delta)
    alpha = 2 * stats.norm.pdf(delta) / p  # E[|w| | |w| > delta]
    return p * alpha**2


res = optimize.minimize_scalar(lambda d: -ternary_gain(d), bounds=(0.0, 3.0), method="bounded")
delta_star = res.x
print(
    f"binary XNOR:     MSE theory {1 - 2 / np.pi:.4f}   measured "
    f"{np.mean((binarize(w, scale='mean') - w) ** 2):.4f}"
)
print(
    f"ternary optimum: Delta* theory {delta_star:.4f} (TWN's 0.7 E|w| = "
    f"{0.7 * np.sqrt(2 / np.pi):.4f}),  MSE theory {1 - ternary_gain(delta_star):.4f}   "
    f"measured {np.mean((ternarize(w, method='optimal') - w) ** 2):.4f}"
)

# %% [markdown]
# ## Error against bits
#
# The signal-to-quantization-noise ratio $\mathrm{SQNR} = 10 \log_{10}
# \big(\mathbb{E}w^2 / \mathbb{E}(w - q(w))^2\big)$ in decibels puts every scheme on one
# scale. For a uniform grid whose step halves with each extra bit, the granular error
# $s^2/12$ falls by 4, which is $20 \log_{10} 2 \approx 6.02$ dB per bit. Min-max scaling
# wastes most levels on the rare large weights; a range chosen to minimise the error
# (`range="mse"`) clips the tails and does better at low bit widths, more so on the
# heavy-tailed Laplace distribution. Power-of-two grids are dense near zero, where the
# weights are, but the gap between neighbouring powers of two grows with the magnitude, so
# the relative error of a weight stays up to a third however many exponents there are: once
# the smallest magnitude lies below almost every weight, more exponents add levels nobody
# uses and the SQNR stops rising. With very few exponents LogQuant is worse still, since a
# weight below its range is rounded up to the smallest magnitude (only an exact zero stays
# zero), while INQ sends it to zero.
#
# The horizontal axis is the width of one code as the registry counts it (`Quantizer.bits`,
# introduced below): $b$ for a uniform grid and for INQ, and for LogQuant with $2^k + 1$
# exponents, a sign and a zero, the $k + 2$ bits that $2(2^k + 1) + 1$ codewords need.
# Both distributions have unit variance (Laplace with scale $1/\sqrt 2$), so the XNOR
# binarization of a Laplace tensor has error $1 - (\mathbb{E}|w|)^2 = 1 - 1/2$.

# %%
n = 100_000
data = {"Gaussian": rng.standard_normal(n), "Laplace": rng.laplace(scale=1 / np.sqrt(2), size=n)}


def sqnr(x, q):
    return 10 * np.log10(np.mean(x**2) / np.mean((x - q) ** 2))


curves = {
    "uniform, min-max": [get("uniform", bits=b) for b in range(2, 9)],
    "uniform, MSE range": [get("uniform", bits=b, range="mse") for b in range(2, 9)],
    "LogQuant": [get("power_of_two", bits=k) for k in range(1, 7)],
    "INQ": [get("power_of_two", bits=b, method="inq") for b in range(2, 9)],
}
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
table = {}
for ax, (dist, x) in zip(axes, data.items()):
    for label, quantizers in curves.items():
        values = [sqnr(x, quant(x)) for quant in quantizers]
        table[dist, label] = values
        ax.plot([quant.bits for quant in quantizers], values, "o-", label=label)
    ax.plot([1], [sqnr(x, binarize(x, scale="mean"))], "k*", ms=10, label="binary (XNOR)")
    ax.plot([np.log2(3)], [sqnr(x, ternarize(x, method="optimal"))], "kD", label="ternary optimal")
    ax.set_title(f"{dist} weights")
    ax.set_xlabel("bits per weight")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("SQNR (dB)")
axes[1].legend(fontsize=8)
plt.show()

for dist in data:
    mm = table[dist, "uniform, min-max"]
    print(
        f"{dist:8s} min-max slope 7->8 bits {mm[-1] - mm[-2]:.2f} dB/bit (theory 6.02); "
        f"MSE range gains {table[dist, 'uniform, MSE range'][0] - mm[0]:.2f} dB at 2 bits"
    )
lap = data["Laplace"]
print(
    f"Laplace XNOR binarization: MSE {np.mean((binarize(lap, scale='mean') - lap) ** 2):.4f} "
    f"(theory 0.5)"
)

# %% [markdown]
# ## Stochastic against deterministic rounding
#
# Rounding to the nearest grid point is biased for any single value that is not on the
# grid: $x = 0.1$ on a grid of step $1$ always becomes $0$. Stochastic rounding (Gupta et
# al., 2015) goes up to the upper neighbour $h$ with probability $(x - \ell)/(h - \ell)$ and
# down to $\ell$ otherwise, so
#
# $$ \mathbb{E}[q(x)] = \ell + (h - \ell)\frac{x - \ell}{h - \ell} = x, \qquad
#    \operatorname{Var}[q(x)] = (x - \ell)(h - x). $$
#
# The price is variance, largest at the midpoint, $(h-\ell)^2/4$. Below, each of 200 points
# of $[0, 1]$ is rounded 4000 times to the grid of step $1/4$.

# %%
step = 0.25
x = np.linspace(0.0, 1.0, 200)
draws = stochastic_round(np.tile(x, (4000, 1)), step=step, rng=1)
mean, var = draws.mean(axis=0), draws.var(axis=0)
lo = np.floor(x / step) * step
theory_var = (x - lo) * (lo + step - x)
nearest = np.round(x / step) * step

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].plot(x, nearest, label="round to nearest")
axes[0].plot(x, mean, label="mean of 4000 stochastic roundings")
axes[0].plot(x, x, "k:", lw=1, label="identity")
axes[0].set_xlabel("x")
axes[0].set_ylabel("E[q(x)]")
axes[0].legend(fontsize=8)
axes[1].plot(x, var, label="measured variance")
axes[1].plot(x, theory_var, "k--", lw=1, label="(x - lo)(hi - x)")
axes[1].set_xlabel("x")
axes[1].legend(fontsize=8)
plt.show()
print(
    f"max |mean - x| over the 200 points: stochastic {np.abs(mean - x).max():.4f}, "
    f"nearest {np.abs(nearest - x).max():.4f} (half a step: {step / 2})"
)
print(
    f"max |measured - theoretical variance|: {np.abs(var - theory_var).max():.5f} "
    f"(the largest variance is step^2/4 = {step**2 / 4})"
)

# %% [markdown]
# The average of $N$ independent stochastic roundings of one value converges to it at the
# rate $\sqrt{\operatorname{Var}/N}$, while the deterministic result never moves. The same
# fact keeps small updates alive in low-precision training: adding $0.01$ a thousand times
# to a fixed-point number with step $2^{-4}$ gets nowhere with round-to-nearest (each
# update is less than half a step), but reaches about $10$ on average with stochastic
# rounding.

# %%
x0 = np.pi / 10  # irrational, so no average of draws hits it exactly
samples = stochastic_round(np.full(100_000, x0), step=1.0, rng=2)
N = np.unique(np.logspace(0, 5, 30).astype(int))
running = np.cumsum(samples)[N - 1] / N
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].loglog(N, np.abs(running - x0), "o-", ms=3, label="|mean of N stochastic - x|")
axes[0].loglog(N, np.sqrt(x0 * (1 - x0) / N), "k--", lw=1, label="sqrt(Var / N)")
axes[0].axhline(abs(np.round(x0) - x0), color="C1", label="|nearest - x|")
axes[0].set_xlabel("N")
axes[0].legend(fontsize=8)
axes[0].set_title(f"x = {x0:.4f} on the integer grid")

acc = {"half_even": np.zeros(1000), "stochastic": np.zeros(1000)}
trace = {k: [] for k in acc}
gen = np.random.default_rng(3)
for _ in range(1000):
    for mode in acc:
        acc[mode] = fixed_point(acc[mode] + 0.01, int_bits=5, frac_bits=4, rounding=mode, rng=gen)
        trace[mode].append(acc[mode].mean())
for mode in acc:
    axes[1].plot(trace[mode], label=f"rounding={mode!r}")
axes[1].plot(0.01 * np.arange(1, 1001), "k:", lw=1, label="exact sum")
axes[1].set_xlabel("number of +0.01 updates")
axes[1].set_ylabel("mean over 1000 accumulators")
axes[1].legend(fontsize=8)
plt.show()
print(
    f"after 1000 updates of 0.01 in Q5.4: nearest {trace['half_even'][-1]:.3f}, "
    f"stochastic {trace['stochastic'][-1]:.3f} (exact 10)"
)

# %% [markdown]
# ## Pseudo-gradients
#
# Every staircase has zero derivative almost everywhere, so training through it needs a
# *pseudo-gradient* in the backward pass. The straight-through estimator (STE; Bengio et
# al., 2013) passes the gradient unchanged; the clipped STE of BinaryConnect cancels it for
# $|w| > 1$ (the derivative of the hard tanh); ApproxSign (Bi-Real Net, Liu et al., 2018)
# uses $\max(0, 2 - 2|w|)$, the derivative of a piecewise quadratic; SwishSign (BNN+,
# Darabi et al., 2018) uses the derivative of a smooth sign-like function with sharpness
# $\beta$.
#
# Each pseudo-gradient is the exact derivative of some stand-in for the forward function.
# Integrating it from $0$ recovers that stand-in (right panel). A stand-in for sign must
# rise by $2$ across the jump, so the area under its pseudo-gradient should be close to $2$
# once the interval is wide enough; the plain STE's area is the length of the interval
# (its stand-in is the identity). SwishSign's stand-in overshoots $\pm 1$ before it settles,
# the more slowly the smaller $\beta$, which is why the areas are taken on $[-4, 4]$.

# %%
v = np.linspace(-4, 4, 8001)
ones = np.ones_like(v)
grads = {
    "STE": straight_through(v, ones),
    "clipped STE": clipped_straight_through(v, ones),
    "ApproxSign": approx_sign_gradient(v, ones),
    "SwishSign, beta=5": swish_sign_gradient(v, ones, beta=5.0),
    "SwishSign, beta=2": swish_sign_gradient(v, ones, beta=2.0),
}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for label, g in grads.items():
    axes[0].plot(v, g, label=label)
    F = integrate.cumulative_trapezoid(g, v, initial=0.0)
    F -= np.interp(0.0, v, F)
    axes[1].plot(v, F, label=label)
    print(f"{label:18s} area on [-4, 4]: {integrate.trapezoid(g, v):.3f}")
axes[1].plot(v, binarize(v), "k", lw=1, label="sign")
axes[0].set_title("pseudo-gradient d q / d w")
axes[1].set_title("its integral: the implied forward function")
axes[1].set_ylim(-2.2, 2.2)
for ax in axes:
    ax.set_xlim(-2.5, 2.5)
    ax.set_xlabel("w")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The registry: one object per scheme
#
# `qtoolkit.rounding.get` builds a `Quantizer` from a name and the parameters of the
# scheme's function. The object quantizes when called, reports its bits per code, and its
# configuration is plain JSON, so a quantized model can record exactly how it was made.

# %%
print(available_quantizers())
q3 = get("ternary", method="optimal")
config = json.dumps(q3.get_config())
print(config)
print("rebuilt from JSON equals the original:", get(json.loads(config)) == q3)
print(
    "calling it is calling ternarize:",
    np.array_equal(q3(w), ternarize(w, method="optimal")),
    "  bits per code:",
    q3.bits,
)

# %% [markdown]
# ## From real values to integer codes to bytes
#
# `encode` returns a `QuantizedArray`: integer codes plus the scale, zero point or
# codebook needed to map them back (`decode`). The codes are what a deployed model
# stores. `qtoolkit.bitops.pack_codes` packs non-negative codes of 1, 2, 4 or 8 bits
# densely, little-endian within each byte: eight binary codes, four ternary codes (2 bits,
# one pattern unused) or two 4-bit codes per byte. A symmetric uniform code is signed, so it
# is shifted by $2^{b-1}$ before packing, and a 3-bit code travels in a 4-bit field. The
# table checks that unpacking gives back the codes exactly, and how far the decoded tensor
# is from calling the quantizer directly. Decoding takes codes times a scale, or a codebook
# look-up, instead of the scheme's own formula; the scales and codebooks are computed with
# the forward map's own float arithmetic, so the two agree to the last bit (the cell checks
# it).

# %%
W = rng.standard_normal((256, 512)).astype(np.float32)
cases = [
    ("binary", get("binary", scale="mean"), 1, 0),
    ("ternary", get("ternary", method="twn"), 2, 0),
    ("uniform 4-bit asym.", get("uniform", bits=4, mode="asymmetric"), 4, 0),
    ("uniform 4-bit sym.", get("uniform", bits=4), 4, 8),
    ("uniform 8-bit sym.", get("uniform", bits=8), 8, 128),
    ("DoReFa 3-bit", get("dorefa", bits=3), 4, 0),
]
print(
    f"{'scheme':20s} {'codes':>11s} {'bytes':>7s} {'vs float32':>10s} {'codes intact':>12s} "
    f"{'max|decode - q(W)|':>18s}"
)
for name, quant, width, offset in cases:
    enc = quant.encode(W)
    codes = np.asarray(enc.codes).astype(np.int64).ravel() + offset
    packed = pack_codes(codes, bits=width)
    back = unpack_codes(packed, bits=width, count=codes.size).astype(np.int64)
    restored = dataclasses.replace(
        enc, codes=(back - offset).reshape(W.shape).astype(enc.codes.dtype)
    )
    err = float(np.abs(decode(restored) - quant(W)).max())
    intact = bool(np.array_equal(back, codes))
    print(
        f"{name:20s} [{int(codes.min()) - offset:>4d},{int(codes.max()) - offset:>4d}] "
        f"{packed.nbytes:7d} {W.nbytes / packed.nbytes:9.1f}x {intact!s:>12s} {err:18.2g}"
    )
    assert intact and err == 0.0, name

# %% [markdown]
# The first eight ternary codes of one row and the two bytes they pack into: code $i$ takes
# bits $2(i \bmod 4)$ and $2(i \bmod 4) + 1$ of byte $\lfloor i/4 \rfloor$. The bytes are
# printed most significant bit first, so within a byte the codes read from right to left.

# %%
t = get("ternary").encode(W[0, :8]).codes
print("codes:", t, " bytes:", [f"{b:08b}" for b in pack_codes(t, bits=2)])

# %% [markdown]
# ## Any array library
#
# Every function of `qtoolkit.rounding` takes an Array API array and returns the same kind
# of array, on the same device, with the same dtype: the functions used above accept PyTorch
# tensors, or arrays of `array_api_strict`, a deliberately minimal namespace that rejects
# anything outside the standard, with no change to the call. Each block runs only where the
# library is installed.

# %%
w32 = rng.standard_normal(1000).astype(np.float32)
try:
    import array_api_strict as xps

    a = xps.asarray(w32)
    out = ternarize(a, method="optimal")
    print(
        "array_api_strict:",
        type(out).__module__,
        out.dtype,
        "equal to NumPy:",
        np.array_equal(np.from_dlpack(out), ternarize(w32, method="optimal")),
    )
except ImportError:
    print("array_api_strict is not installed")

try:
    import torch

    tt = torch.from_numpy(w32)
    out = uniform(tt, bits=4)
    enc = encode(tt, bits=4)
    print(
        "torch:",
        type(out).__name__,
        out.dtype,
        "codes:",
        enc.codes.dtype,
        "equal to NumPy:",
        np.array_equal(out.numpy(), uniform(w32, bits=4)),
    )
except ImportError:
    print("torch is not installed")

# %% [markdown]
# Next: the adaptive codebooks of `qtoolkit.codebooks` fit the levels to the weights
# instead of fixing them in advance, and notebook 6 uses stochastic rounding to compress
# the gradients of distributed training.
