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
# # Why binarization works
#
# Replacing every weight by its sign keeps one bit out of 32, yet binarized networks still
# classify well. Anderson and Berg (2018) explain it with the geometry of high dimensions:
#
# * **angle preservation**: a Gaussian vector and its sign make an angle that concentrates,
#   as the dimension $d$ grows, at $\arccos\sqrt{2/\pi} \approx 37°$, while two random
#   vectors are almost orthogonal ($90°$);
# * **dot-product proportionality**: for inputs $a$, the binarized dot product
#   $a \cdot \mathrm{sign}(w)$ is nearly a fixed multiple of $a \cdot w$, and a following
#   batch normalisation absorbs the multiple.
#
# This notebook checks both, theory against Monte Carlo, with the functions of
# `qtoolkit.analysis`, then extends them to pairs of vectors (the arcsine law), correlated
# vectors, and quantizers with more bits (Lloyd–Max), and finally measures the same things on
# the layers of a network trained on digits, with its real activations.

# %%
import functools
import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import kurtosis
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from qtoolkit.analysis import (
    angle,
    angle_experiment,
    angle_preservation,
    arcsine_experiment,
    arcsine_law,
    cosine,
    dot_product_experiment,
    dot_product_proportionality,
    expected_angle,
    expected_cosine,
    lloyd_max,
    pairwise_angle_preservation,
    plot_angle_histograms,
    plot_angle_vs_dimension,
    plot_arcsine_law,
    plot_cosine_vs_bits,
    plot_dot_product,
    plot_rotation,
    rotation_experiment,
    sign_cosine_gaussian,
)
from qtoolkit.codebooks import KMeansQuantizer
from qtoolkit.rounding import binarize, power_of_two, ternarize, uniform

try:  # one BLAS thread: on a small shared machine this is the fastest setting
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:
    pass

rng = np.random.default_rng(0)
deg = np.degrees

# %% [markdown]
# ## The angle between $x$ and $\mathrm{sign}(x)$
#
# For $x \in \mathbb{R}^d$,
#
# $$ \cos\angle(x, \mathrm{sign}\,x) = \frac{x \cdot \mathrm{sign}\,x}{\lVert x\rVert_2\,
#    \lVert \mathrm{sign}\,x\rVert_2} = \frac{\lVert x \rVert_1}{\sqrt d\,\lVert x\rVert_2}
#    = \frac{\frac1d\sum_i |x_i|}{\sqrt{\frac1d \sum_i x_i^2}}
#    \;\xrightarrow{d\to\infty}\; \frac{\mathbb{E}|x|}{\sqrt{\mathbb{E}x^2}} = \sqrt{2/\pi} $$
#
# for iid standard normal entries, by the law of large numbers. A scale $\alpha > 0$ (XNOR-Net's
# $\alpha = \mathbb{E}|w|$) does not change the angle. The delta method gives the spread at
# finite $d$: the angle is approximately normal with a standard deviation that shrinks like
# $1/\sqrt d$. `angle_experiment` draws the vectors and computes the theory beside them.

# %%
dims = (4, 16, 64, 256, 1024, 4096)
res = angle_experiment(np.sign, dims=dims, n_trials=500, vectorized=True, rng=rng)
print(f"limit arccos(sqrt(2/pi)) = {deg(math.acos(sign_cosine_gaussian())):.3f} deg")
print(f"{'d':>5} {'mean (MC)':>10} {'mean (theory)':>14} {'sd (MC)':>8} {'sd (theory)':>12}")
for k, d in enumerate(res.dims):
    print(
        f"{d:5d} {deg(res.mean[k]):10.3f} {deg(res.theory_mean[k]):14.3f} "
        f"{deg(res.std[k]):8.3f} {deg(res.theory_std[k]):12.3f}"
    )

# two independent random vectors, for comparison
x, z = rng.standard_normal((2, 500, 4096))
print(
    f"angle between two independent vectors, d = 4096: "
    f"{deg(angle(x, z)).mean():.2f} +- {deg(angle(x, z)).std():.2f} deg"
)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
plot_angle_histograms(
    angle_experiment(np.sign, dims=(16, 64, 256), n_trials=500, vectorized=True, rng=rng), ax=ax1
)
ax1.set_xlim(15, 60)
plot_angle_vs_dimension(res, ax=ax2)
plt.show()

# %% [markdown]
# At $d = 4$ the delta method is only rough (it is a large-$d$ expansion; the plot draws it from
# $d = 16$); from a few hundred dimensions on, the angles sit in a narrow band around $37°$.
# Binarizing a wide layer thus moves each weight vector by a small, predictable angle
# compared with the typical angle between unrelated vectors.
#
# ## Dot products stay proportional
#
# A layer computes $a \cdot w$. With isotropic activations ($a \sim N(0, I)$), the pair
# $(a\cdot w, a\cdot q(w))$ is bivariate normal, with correlation exactly
# $\cos\angle(w, q(w))$ and least-squares slope $w \cdot q(w) / \lVert w\rVert^2$. For the
# plain sign in the limit,
#
# $$ r \to \sqrt{2/\pi} \approx 0.798, \qquad
#    \text{slope} \to \frac{\mathbb{E}|w|}{\mathbb{E} w^2} = \sqrt{2/\pi}, $$
#
# while XNOR-Net's $\alpha\,\mathrm{sign}(w)$ with $\alpha = \mathbb{E}|w|$ keeps $r$ and
# multiplies the slope by $\alpha$, to $2/\pi \approx 0.637$. The correlation is what the
# network relies on; the slope is a constant that batch normalisation removes.

# %%
quantizers = {"sign(w)": np.sign, "E|w| sign(w) (XNOR-Net)": lambda w: binarize(w, scale="mean")}
dot = {}
for name, q in quantizers.items():
    dot[name] = dot_product_experiment(q, d=1024, n_outputs=32, n_samples=2000, rng=rng)
    r = dot[name]
    print(
        f"{name:>24}: r = {r.r.mean():.4f} (theory {r.theory.r:.4f}, exact isotropic "
        f"{r.cosine.mean():.4f}), slope = {r.slope.mean():.4f} (theory {r.theory.slope:.4f})"
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, (name, r) in zip(axes, dot.items()):
    plot_dot_product(r, ax=ax)
    ax.set_title(name)
plt.show()

# %% [markdown]
# The measured $r$ scatters around the exact isotropic value $\cos\angle(w_j, q(w_j))$ of each
# output, because the activations are a finite sample.
#
# ## Pairs of vectors: the arcsine law
#
# Angles *between* vectors matter too: two inputs that the float layer finds similar should
# stay similar after binarization. For a Gaussian pair with correlation $\rho$, the signs
# agree with a probability fixed by Sheppard's formula, so
#
# $$ \mathbb{E}[\mathrm{sign}(x_i)\,\mathrm{sign}(y_i)] = \tfrac{2}{\pi}\arcsin\rho, $$
#
# which is also why random-hyperplane hashing (Charikar, 2002) estimates angles. Small
# correlations shrink by $2/\pi$; the order of similarities is kept, since $\arcsin$ is
# increasing.

# %%
arc = arcsine_experiment(np.sign, d=1024, n_trials=200, vectorized=True, rng=rng)
print(f"{'rho':>7} {'cos after (MC)':>15} {'(2/pi) arcsin rho':>18}")
for rho, c, t in zip(arc.rho, arc.cos_after, arc.theory):
    print(f"{rho:7.3f} {c:15.4f} {t:18.4f}")
fig, ax = plt.subplots(figsize=(5, 4.2))
plot_arcsine_law(arc, ax=ax)
plt.show()

# %% [markdown]
# ## Correlated coordinates, and a random rotation
#
# The $37°$ limit assumed iid coordinates. Real weight vectors are not iid: neighbouring pixels
# are correlated, and the energy of a vector is often concentrated in a few directions.
# `rotation_experiment` draws $x \sim N(0, \Sigma)$ for two families: a stationary correlation
# $\Sigma_{ij} = e^{-|i-j|/\ell}$, and independent coordinates with decaying variances
# $e^{-i/\ell}$ (an anisotropic vector in its principal axes). It measures the angle to the
# sign with and without a Haar-random rotation $R$ applied first. A rotation spreads the
# energy over all coordinates, so $Rx$ behaves like an isotropic Gaussian vector and its angle
# returns to the limit; without it, a long correlation leaves fewer independent coordinates
# (a smaller angle, a larger spread, as at small $d$), and a decaying spectrum lets a few large
# coordinates dominate (a larger angle).

# %%
rot = {
    cov: rotation_experiment(
        np.sign, d=256, covariance=cov, n_trials=200, n_rotations=10, vectorized=True, rng=rng
    )
    for cov in ("exponential", "exponential-spectrum")
}
for cov, r in rot.items():
    print(cov)
    print(
        f"  {'l':>6} {'no rotation':>12} {'rotated':>10}   (isotropic limit "
        f"{deg(r.theory_mean):.2f} deg)"
    )
    for ell, m, mr in zip(r.length_scales, r.mean, r.mean_rotated):
        print(f"  {ell:6g} {deg(m):12.2f} {deg(mr):10.2f}")
fig, ax = plt.subplots(figsize=(6.5, 4.2))
plot_rotation(rot, ax=ax)
plt.show()

# %% [markdown]
# ## More bits: Lloyd–Max codebooks
#
# The sign is the best one-bit quantizer of a Gaussian *up to scale*. Which scale, and what
# with more levels? Lloyd (1957) and Max (1960) give the mean-squared-error optimal
# $n$-level quantizer of a distribution: thresholds halfway between levels, each level the
# mean of its cell. For $n = 2$ the levels are $\pm\mathbb{E}|x| = \pm\sqrt{2/\pi}$, XNOR-Net's
# scale. For any quantizer whose levels are the means of their cells,
# $\mathbb{E}[x\,q(x)] = \mathbb{E}[q(x)^2]$, so with unit variance
#
# $$ \cos\angle(x, q(x)) \to \sqrt{1 - D}, $$
#
# where $D$ is the mean squared error. Max's table gives $D = 0.3634,\ 0.1175,\ 0.03454,\
# 0.009497$ for 2, 4, 8, 16 levels of the standard normal.

# %%
print(f"{'levels':>6} {'MSE D':>9} {'sqrt(1-D)':>10} {'cosine (quadrature)':>20}  levels")
lloyd = {}
for n in (2, 4, 8, 16):
    lm = lloyd_max(n, tol=1e-7)
    lloyd[n] = lm
    print(
        f"{n:6d} {lm.mse:9.5f} {math.sqrt(1 - lm.mse):10.5f} {expected_cosine(lm):20.5f}  "
        f"{np.array2string(lm.levels[n // 2 :], precision=4)} (and their negatives)"
    )
print(f"sqrt(2/pi) = {math.sqrt(2 / math.pi):.4f}")

grid = np.linspace(-3.5, 3.5, 2001)
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(grid, grid, color="0.7", lw=0.8)
for n in (4, 8):
    ax.step(grid, lloyd[n](grid), where="mid", label=f"Lloyd–Max, {n} levels")
u8 = uniform(grid, bits=3, mode="symmetric", range="minmax")
ax.step(grid, u8, where="mid", ls="--", label="uniform 3 bits on [-3.5, 3.5]")
ax.set_xlabel("x")
ax.set_ylabel("q(x)")
ax.legend(fontsize=8)
ax.set_title("optimal levels crowd where the Gaussian density is high")
plt.show()

# %% [markdown]
# ## Cosine against bits for several quantizer families
#
# `expected_cosine` computes the $d \to \infty$ limit $\mathbb{E}[x q(x)] /
# \sqrt{\mathbb{E}x^2\,\mathbb{E}q(x)^2}$ by quadrature on a quantile grid of the Gaussian, for
# any quantizer. We compare it with the mean cosine of Monte Carlo vectors of dimension
# 1024 for the schemes of `qtoolkit.rounding` (the sign, ternary TWN and the optimal ternary
# split, uniform grids with an MSE-searched range, LogQuant powers of two) and, for the
# adaptive codebook, Lloyd–Max (theory) against k-means fitted on each vector (measured).
# Bits are $\log_2$ of the number of levels. A uniform grid whose range is searched on the
# vector itself has no $d \to \infty$ limit (its range grows with $d$), so its theory uses a
# grid of $d$ nodes.

# %%
d_mc, n_mc = 1024, 60
X_mc = rng.standard_normal((n_mc, d_mc))


def measure(q):
    c = cosine(X_mc, np.stack([q(x) for x in X_mc]))
    return float(c.mean()), float(c.std(ddof=1))


families = {
    "binary": {1.0: lambda x: binarize(x, scale="mean")},
    "ternary (TWN)": {math.log2(3): lambda x: ternarize(x, method="twn")},
    "ternary (optimal)": {math.log2(3): lambda x: ternarize(x, method="optimal")},
    "uniform (MSE range)": {
        float(b): functools.partial(uniform, bits=b, range="mse") for b in range(2, 7)
    },
    "power of two (LogQuant, FSR=1)": {
        math.log2(2 * (2**b + 1)): functools.partial(power_of_two, bits=b, fsr=1) for b in (1, 2, 3)
    },
}
curves = {}
print(f"{'family':>31} {'bits':>5} {'theory':>8} {'measured':>9} {'sd':>7}")
for name, qs in families.items():
    bits, theory, meas, sd = [], [], [], []
    for b, q in qs.items():
        nodes = d_mc if name.startswith("uniform") else 2**18
        bits.append(b)
        theory.append(expected_cosine(q, n_nodes=nodes))
        m, s = measure(q)
        meas.append(m)
        sd.append(s)
        print(f"{name:>31} {b:5.2f} {theory[-1]:8.5f} {m:9.5f} {s:7.5f}")
    curves[name] = {"bits": bits, "theory": theory, "measured": meas, "measured_std": sd}

lm_bits = [1, 2, 3, 4, 5, 6]
lm_theory = [math.sqrt(1 - lloyd_max(2**b, tol=1e-7).mse) for b in lm_bits]
km_bits = [1, 2, 3, 4]
km = [
    measure(lambda x, k=2**b: KMeansQuantizer(k, n_threads=1).fit(x).quantize(x)) for b in km_bits
]
for b, (m, s) in zip(km_bits, km):
    print(f"{'Lloyd-Max / k-means':>31} {b:5.2f} {lm_theory[b - 1]:8.5f} {m:9.5f} {s:7.5f}")
curves["Lloyd–Max (theory) / k-means (MC)"] = {
    "bits": lm_bits,
    "theory": lm_theory,
    "measured": [m for m, _ in km],
    "measured_bits": km_bits,
    "measured_std": [s for _, s in km],
}

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.6), layout="constrained")
plot_cosine_vs_bits(curves, ax=ax1, legend=False)
plot_cosine_vs_bits(curves, ax=ax2, y="angle")
ax2.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
plt.show()

# %% [markdown]
# Lloyd–Max is the upper envelope of every scalar quantizer at a given number of levels (it
# minimises $D$, hence maximises $\sqrt{1-D}$); k-means fitted on one finite vector can sit a
# little above it, since it adapts to that vector's sample. On the angle axis (logarithmic) the
# curves fall roughly geometrically with the bits, the familiar 6 dB per bit.
#
# ## The same measurements on a trained network
#
# Now a network with two hidden ReLU layers (256 and 128 units) trained on digits. For each
# layer $W$ (outputs x inputs) we measure
#
# * the angle between each output unit's weight vector and its sign, against the Gaussian
#   limit and against the theory for the layer's *own* weight distribution (`expected_angle`
#   with the weights as samples, at the layer's input dimension);
# * the dot-product fit $a \cdot \alpha_j\mathrm{sign}(w_j)$ against $a \cdot w_j$ over the
#   layer's real inputs $a$ on the test digits (standardised pixels, then ReLU activations),
#   against the isotropic prediction $r_j = \cos\angle(w_j, \mathrm{sign}\,w_j)$;
# * the angle after a random rotation of the input space: $W a = (W R^\top)(R a)$ for an
#   orthogonal $R$, so a layer can binarize $W R^\top$ instead of $W$.

# %%
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    net = MLPClassifier((256, 128), alpha=1e-3, max_iter=60, random_state=0).fit(X_train, y_train)
print(f"test accuracy {net.score(X_test, y_test):.4f}")

# inputs of every layer on the test set
inputs = [X_test]
for W, b in zip(net.coefs_[:-1], net.intercepts_[:-1]):
    inputs.append(np.maximum(inputs[-1] @ W + b, 0.0))
layers = [W.T for W in net.coefs_]  # (outputs, inputs)


def haar(n, rng):
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    return Q * np.sign(np.diag(R))


per_row_binary = lambda W: binarize(W, scale="mean", axis=0)  # noqa: E731  one alpha per output

print(f"Gaussian limit: {deg(math.acos(sign_cosine_gaussian())):.2f} deg")
print(
    f"{'layer':>5} {'shape':>10} {'kurtosis':>9} {'angle mean':>11} {'own theory':>11} "
    f"{'rotated':>8} {'r mean':>7} {'isotropic r':>12} {'slope mean':>11}"
)
stats = []
for i, (W, A) in enumerate(zip(layers, inputs), start=1):
    th = deg(angle_preservation(W, np.sign))
    own = expected_angle(np.sign, distribution=W.ravel(), d=W.shape[1])
    th_rot = deg(angle_preservation(W @ haar(W.shape[1], rng).T, np.sign))
    fit = dot_product_proportionality(W, per_row_binary, A)
    iso = np.cos(np.radians(th))
    stats.append((th, th_rot, fit, iso, own))
    print(
        f"{i:5d} {W.shape!s:>10} {kurtosis(W.ravel()):9.3f} {th.mean():11.2f} "
        f"{deg(own.mean):11.2f} {th_rot.mean():8.2f} "
        f"{np.nanmean(fit.r):7.3f} {iso.mean():12.3f} {np.nanmean(fit.slope):11.3f}"
    )

# %%
fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), layout="constrained")
for i, (th, th_rot, fit, iso, own) in enumerate(stats):
    ax = axes[0, i]
    bins = np.linspace(min(th.min(), th_rot.min()) - 1, max(th.max(), th_rot.max()) + 1, 40)
    ax.hist(th, bins=bins, alpha=0.6, label="W")
    ax.hist(th_rot, bins=bins, alpha=0.6, label="W R^T (rotated)")
    ax.axvline(deg(math.acos(sign_cosine_gaussian())), color="k", ls=":", label="Gaussian limit")
    ax.axvline(deg(own.mean), color="C3", ls="--", label="own distribution")
    ax.set_xlabel("angle(w_j, sign w_j) (deg)")
    ax.set_title(f"layer {i + 1}, {layers[i].shape[0]} outputs x {layers[i].shape[1]} inputs")
    ax = axes[1, i]
    ax.scatter(iso, fit.r, s=8)
    lo = np.nanmin(np.r_[iso, fit.r])
    ax.plot([lo, 1], [lo, 1], color="0.5", lw=0.8)
    ax.set_xlabel("isotropic prediction cos angle(w_j, sign w_j)")
    ax.set_ylabel("measured r with real inputs")
axes[0, 0].legend(fontsize=7)
plt.show()

# %% [markdown]
# Things to read off the table and the figure:
#
# * the trained weights are not Gaussian. The excess kurtosis in the table is 0 for a Gaussian,
#   $-1.2$ for a uniform distribution (scikit-learn draws the initial weights uniformly, where
#   the limit is $\arccos(\sqrt3/2) = 30°$) and positive for heavier tails; lighter tails
#   typically give a smaller angle, heavier ones a larger angle. The theory with the layer's own
#   weight distribution knows this and is the one to compare the measured mean with;
# * after a random rotation every row looks Gaussian and the angles gather near the Gaussian
#   limit, within the spread expected at the layer's input dimension;
# * with real inputs the correlation $r$ departs from the isotropic prediction: pixels are
#   correlated and ReLU activations are non-negative with a large common mean, so $a$ is far
#   from isotropic. Points above the diagonal are outputs for which the real inputs are
#   *kinder* than isotropic ones. The slope varies from output to output; a per-output scale
#   (XNOR-Net's $\alpha_j$, or the batch normalisation that follows) absorbs it.
#
# Last, the arcsine law on real data, now for binary *activations*. A binarized network feeds
# the next layer with the signs of the (batch-normalised) pre-activations. We take the first
# hidden layer's pre-activations of 200 test digits, centre each unit over the test set (what
# batch normalisation would do), and compare, for every pair of digits, the cosine of the
# signs with $\frac{2}{\pi}\arcsin$ of the cosine before. Digits of the same class give the
# pairs with large cosines. The law is exact for Gaussian pairs; at $d = 256$ a single pair
# also fluctuates by about $1/\sqrt{d}$.

# %%
pre = X_test @ net.coefs_[0] + net.intercepts_[0]
pre = (pre - pre.mean(axis=0))[:200]
pairs = pairwise_angle_preservation(pre, np.sign)
before, after = np.cos(pairs.before), np.cos(pairs.after)
rho = np.linspace(-1, 1, 201)
fig, ax = plt.subplots(figsize=(5, 4.2))
ax.hist2d(before, after, bins=80, cmap="Blues", cmin=1)
ax.plot(rho, arcsine_law(rho), color="C3", label="(2/pi) arcsin")
ax.set_xlabel("cos angle(a_i, a_j), centred pre-activations")
ax.set_ylabel("cos angle(sign a_i, sign a_j)")
ax.set_title(f"layer 1 activations: {before.size} pairs of digits")
ax.legend()
plt.show()
resid = after - arcsine_law(before)
print(f"pairs: {before.size}, cos before from {before.min():.3f} to {before.max():.3f}")
print(
    f"mean of after - (2/pi) arcsin(before): {resid.mean():+.4f}, "
    f"rms: {np.sqrt(np.mean(resid**2)):.4f}, 1/sqrt(d) = {1 / math.sqrt(pre.shape[1]):.4f}"
)

# %% [markdown]
# **References.** A. G. Anderson and C. P. Berg, *The high-dimensional geometry of binary
# neural networks*, ICLR 2018. M. Rastegari et al., *XNOR-Net*, ECCV 2016. M. Courbariaux
# et al., *BinaryConnect*, NeurIPS 2015. J. Max, *Quantizing for minimum distortion*, IRE
# Trans. IT 1960. S. P. Lloyd, *Least squares quantization in PCM*, 1957 (IEEE Trans. IT 1982).
# M. S. Charikar, *Similarity estimation techniques from rounding algorithms*, STOC 2002.
# W. F. Sheppard, *On the application of the theory of error to cases of normal distribution
# and normal correlation*, 1899.
