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
# # Adaptive codebooks on a real trained network
#
# A fixed codebook (a uniform grid, powers of two, $\{-1, 0, +1\}$) is chosen before the weights
# are seen. An *adaptive* codebook is learned from them. Deep Compression (Han et al., 2016)
# replaces the $n$ weights of a layer by $k$ shared values found by 1-D k-means and stores, per
# weight, only the index of its value:
#
# $$ \min_{c,\,a} \sum_{i=1}^{n} (w_i - c_{a(i)})^2, \qquad
#    \text{bits per weight} = \lceil \log_2 k \rceil + \frac{k\,b}{n}, $$
#
# with $b = 32$ bits per stored codeword. This notebook trains a small network on scikit-learn's
# digits and then asks, on its real weights:
#
# 1. how much the k-means *initialisation* matters, and what the exactly optimal 1-D k-means
#    gains over Lloyd's algorithm and over scikit-learn's `KMeans`;
# 2. whether weighting each weight by the loss's curvature (Choi et al., 2017) helps;
# 3. what vector codebooks, product quantization (Gong et al., 2014; Jégou et al., 2011) and
#    residual quantization (Chen et al., 2010), buy over scalar sharing;
# 4. how the test accuracy falls with the bits per weight.

# %%
import functools
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from qtoolkit.codebooks import (
    EntropyConstrainedQuantizer,
    KMeansQuantizer,
    ProductQuantizer,
    ResidualQuantizer,
    bits_per_weight,
    deep_compression_ratio,
    entropy_coded_bits,
    hessian_weighted_kmeans,
    kmeans_1d,
    pq_compression_ratio,
    rq_compression_ratio,
)

try:  # one BLAS / OpenMP thread: on a small shared machine this is the fastest setting
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:
    pass

# %% [markdown]
# ## The network
#
# One hidden layer of 256 ReLU units, trained with Adam for 80 epochs on 70% of the 1797
# digits (8x8 pixels, standardised). Its weights are `W1` (64 x 256) and `W2` (256 x 10),
# in scikit-learn's layout (inputs along the rows). We write the forward pass ourselves so
# that quantized weights can be swapped in.

# %%
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    net = MLPClassifier((256,), alpha=1e-3, max_iter=80, random_state=0).fit(X_train, y_train)
print(
    f"trained in {time.perf_counter() - t0:.1f} s on {len(X_train)} digits, "
    f"{len(X_test)} held out for testing"
)
W1, W2 = net.coefs_
b1, b2 = net.intercepts_


def forward(W1, W2, X):
    """Pre-activations, hidden activations and class probabilities."""
    a = X @ W1 + b1
    h = np.maximum(a, 0.0)
    z = h @ W2 + b2
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return a, h, p / p.sum(axis=1, keepdims=True)


def accuracy(W1, W2):
    return float((forward(W1, W2, X_test)[2].argmax(axis=1) == y_test).mean())


def cross_entropy(W1, W2, X=X_test, y=y_test):
    p = forward(W1, W2, X)[2]
    return float(-np.log(p[np.arange(len(y)), y] + 1e-300).mean())


n_weights = W1.size + W2.size
print(f"{n_weights} weights ({W1.size} in W1, {W2.size} in W2)")
print(
    f"test accuracy {accuracy(W1, W2):.4f} (scikit-learn says {net.score(X_test, y_test):.4f}),"
    f" test cross-entropy {cross_entropy(W1, W2):.4f}"
)

# %% [markdown]
# ## Weight sharing, and the initialisation of Lloyd's algorithm
#
# Lloyd's algorithm alternates two steps, assign every weight to its nearest codeword and move
# every codeword to the mean of its weights, and stops at a fixed point that depends on where
# it started. Deep Compression starts from codewords spread *linearly* over
# $[\min w, \max w]$ and argues that this keeps a few large weights represented; the
# alternatives are the *density* (quantile) start, scikit-learn's *k-means++* seeding and a
# *random* choice of weights. In one dimension the problem can also be solved exactly:
# sort the weights, and the optimal clusters are intervals, found by dynamic programming
# (Wang and Song, 2011; Grønlund et al., 2017); `kmeans_1d(..., algorithm="optimal")` does
# that, and it is the yardstick below. `qtoolkit`'s default Lloyd start, `"histogram"`, runs
# the exact programme on a coarsened copy of the data.
#
# First a picture: the histogram of the hidden layer's weights and its optimal 8-word codebook.

# %%
q8 = KMeansQuantizer(n_clusters=8, n_threads=1).fit(W1)
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.hist(W1.ravel(), bins=200, color="0.6")
for c in q8.codebook_:
    ax.axvline(c, color="C3", lw=1)
for t in q8.boundaries_:
    ax.axvline(t, color="C0", lw=0.8, ls=":")
ax.set_yscale("log")
ax.set_xlabel("weight of W1")
ax.set_ylabel("count")
ax.set_title("optimal 8-word codebook (red) and its decision thresholds (dotted)")
plt.show()
print("codebook:", np.round(q8.codebook_, 4))

# %% [markdown]
# Now every start, for several codebook sizes, on the 16384 weights of `W1`. The table gives
# the squared error above the optimum (in percent), the Lloyd iterations, and the test accuracy
# of the network with `W1` shared (and `W2` kept in float). The random starts depend on the
# seed; rerun with another one to see how much.

# %%
inits = ["linear", "density", "k-means++", "random", "histogram"]
ks = [4, 8, 16, 32, 64]
optimal = {k: kmeans_1d(W1, k, n_threads=1) for k in ks}
excess = {init: [] for init in inits}
print(f"{'k':>3} {'init':>10} {'excess SSE %':>13} {'iterations':>11} {'accuracy':>9}")
for k in ks:
    cb, sse_opt, _ = optimal[k]
    print(
        f"{k:3d} {'optimal':>10} {0.0:13.2f} {'-':>11} "
        f"{accuracy(KMeansQuantizer(k, n_threads=1).fit(W1).quantize(W1), W2):9.4f}"
    )
    for init in inits:
        q = KMeansQuantizer(k, algorithm="lloyd", init=init, random_state=0, n_threads=1).fit(W1)
        excess[init].append(100 * (q.inertia_ / sse_opt - 1))
        print(
            f"{k:3d} {init:>10} {excess[init][-1]:13.2f} {q.n_iter_:11d} "
            f"{accuracy(q.quantize(W1), W2):9.4f}"
        )

fig, ax = plt.subplots(figsize=(6, 3.6))
for init in inits:
    ax.plot(ks, excess[init], "o-", label=init)
ax.set_xscale("log", base=2)
ax.set_xlabel("codebook size k")
ax.set_ylabel("squared error above the optimum (%)")
ax.set_title("Lloyd's fixed point depends on its start (W1)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Compare the two columns. The squared error of a Lloyd fixed point can sit far above the
# optimum, the more so as $k$ grows, and the starts rank differently at different $k$; the
# accuracy column moves much less, because a trained network tolerates a moderately worse
# codebook. What changes the accuracy most is $k$ itself.
#
# ## Exact 1-D k-means against Lloyd and scikit-learn
#
# The exact programme costs more than one Lloyd pass but needs no restarts. We time it against
# `qtoolkit`'s Lloyd (from its default start and from Deep Compression's linear start) and
# against `sklearn.cluster.KMeans` (k-means++, one initialisation) on all the weights of the
# network, one thread each, best of three runs.

# %%
w_all = np.concatenate([W1.ravel(), W2.ravel()])


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times)


methods = {
    "optimal (DP)": lambda k: kmeans_1d(w_all, k, n_threads=1)[1],
    "Lloyd, histogram start": lambda k: kmeans_1d(w_all, k, algorithm="lloyd", n_threads=1)[1],
    "Lloyd, linear start": lambda k: kmeans_1d(
        w_all, k, algorithm="lloyd", init="linear", n_threads=1
    )[1],
    "sklearn KMeans": lambda k: (
        KMeans(k, n_init=1, random_state=0).fit(w_all.reshape(-1, 1)).inertia_
    ),
}
ks_time = [4, 16, 64, 256]
sse = {m: [] for m in methods}
seconds = {m: [] for m in methods}
for k in ks_time:
    for m, fn in methods.items():
        s, t = best_time(functools.partial(fn, k))
        sse[m].append(s)
        seconds[m].append(t)
print(f"{'k':>4} " + " ".join(f"{m:>24}" for m in methods))
for i, k in enumerate(ks_time):
    cells = [
        f"{100 * (sse[m][i] / sse['optimal (DP)'][i] - 1):+7.2f}% {1e3 * seconds[m][i]:8.1f} ms"
        for m in methods
    ]
    print(f"{k:4d} " + " ".join(f"{c:>24}" for c in cells))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
for m in methods:
    ax1.plot(
        ks_time, [100 * (s / o - 1) for s, o in zip(sse[m], sse["optimal (DP)"])], "o-", label=m
    )
    ax2.plot(ks_time, 1e3 * np.array(seconds[m]), "o-", label=m)
for ax in (ax1, ax2):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("codebook size k")
ax1.set_ylabel("squared error above the optimum (%)")
ax2.set_ylabel("time (ms, one thread)")
ax2.set_yscale("log")
ax2.legend(fontsize=8)
fig.suptitle(f"{w_all.size} weights of the network")
plt.show()

# %% [markdown]
# The optimal column is the lower bound, so no other column can fall below it (beyond
# rounding in the last digit). The timings are of
# this machine and this run; the benchmark `benchmarks/bench_codebooks.py` measures them
# properly.
#
# ## Hessian-weighted k-means
#
# Not every weight matters equally. Expanding the loss $L$ around the trained weights, at a
# minimum where the gradient vanishes,
#
# $$ \delta L \approx \tfrac12\, \delta w^\top H\, \delta w \approx
#    \tfrac12 \sum_i h_{ii}\, (w_i - \hat w_i)^2, $$
#
# so Choi et al. (2017) cluster with the diagonal $h_{ii}$ as a weight on each squared error
# (`hessian_weighted_kmeans`); each codeword becomes the $h$-weighted mean of its cluster.
#
# For the cross-entropy of a softmax, the Gauss-Newton matrix $\frac1N\sum_n J_n^\top
# (\mathrm{diag}\,p_n - p_n p_n^\top) J_n$ (with $J_n$ the Jacobian of the logits) is also the
# Fisher information. For a ReLU network its *diagonal* equals the Hessian's diagonal wherever
# no pre-activation sits exactly on the kink: the term that Gauss-Newton drops carries the
# second derivative of the logits with respect to one weight, and that is zero for weights
# that enter linearly (`W2`) or through a ReLU (`W1`). The diagonal is cheap:
# with hidden activations $h_{nj} = \max(a_{nj}, 0)$,
#
# $$ h_{W2_{jc}} = \frac1N \sum_n h_{nj}^2\, p_{nc}(1 - p_{nc}), \qquad
#    h_{W1_{ij}} = \frac1N \sum_n x_{ni}^2\, [a_{nj} > 0]\,
#    \big(\textstyle\sum_c p_{nc} W2_{jc}^2 - (\sum_c p_{nc} W2_{jc})^2\big). $$

# %%
a, h, p = forward(W1, W2, X_train)
N = len(X_train)
H2 = (h**2).T @ (p * (1 - p)) / N
spread = p @ (W2**2).T - (p @ W2.T) ** 2
H1 = (X_train**2).T @ ((a > 0) * spread) / N
L0 = cross_entropy(W1, W2, X_train, y_train)

# check a few entries against a central second difference of the training loss
rng = np.random.default_rng(0)
step = 1e-5
print(f"{'entry':>14} {'Gauss-Newton':>13} {'finite difference':>18}")
for _ in range(3):
    i, j = rng.integers(W1.shape[0]), rng.integers(W1.shape[1])
    while H1[i, j] == 0:
        i, j = rng.integers(W1.shape[0]), rng.integers(W1.shape[1])
    E = np.zeros_like(W1)
    E[i, j] = step
    fd = (
        cross_entropy(W1 + E, W2, X_train, y_train)
        + cross_entropy(W1 - E, W2, X_train, y_train)
        - 2 * L0
    ) / step**2
    print(f"W1[{i:2d},{j:3d}]    {H1[i, j]:13.4e} {fd:18.4e}")
    i, j = rng.integers(W2.shape[0]), rng.integers(W2.shape[1])
    E = np.zeros_like(W2)
    E[i, j] = step
    fd = (
        cross_entropy(W1, W2 + E, X_train, y_train)
        + cross_entropy(W1, W2 - E, X_train, y_train)
        - 2 * L0
    ) / step**2
    print(f"W2[{i:3d},{j}]    {H2[i, j]:13.4e} {fd:18.4e}")

# %% [markdown]
# The importance is far from uniform. A pixel that is constant over the training set (such
# as the top-left corner of every digit) is 0 after standardisation, so every weight leaving it has
# $h = 0$: it can take any value without changing the loss. Below, the summed importance of the
# weights leaving each pixel, drawn as an 8x8 image.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
im = ax1.imshow(H1.sum(axis=1).reshape(8, 8), cmap="viridis")
fig.colorbar(im, ax=ax1)
ax1.set_title("importance of each input pixel")
ax1.set_xticks([])
ax1.set_yticks([])
hh = np.concatenate([H1.ravel(), H2.ravel()])
ax2.hist(np.log10(hh[hh > 0]), bins=80, color="0.5")
ax2.set_xlabel("log10 h_ii (positive entries)")
ax2.set_title("Hessian diagonal of all the weights")
plt.show()
print(f"weights with zero importance: {np.mean(hh == 0):.1%}")
print(f"mean importance: W1 {H1.mean():.3e}, W2 {H2.mean():.3e}")

# %% [markdown]
# Following Choi et al., we share **one** codebook between both layers, which is where the
# weighting matters most: the output layer's weights are fewer but each carries more curvature,
# and plain k-means spends its codewords on the bulk of `W1` (compare the mean importances
# printed above). For each $k$ we compare plain
# optimal k-means with the Hessian-weighted one: the second-order proxy
# $\frac12\sum_i h_{ii}(w_i - \hat w_i)^2$ (which the weighted version minimises, so it
# is never worse on that column), the actual increase of the training loss, and the test
# accuracy. The diagonal model ignores the off-diagonal curvature and the ReLU kinks, both of
# which matter for perturbations this large, so the proxy and the actual increase differ.

# %%
ks_h = [2, 3, 4, 6, 8, 16]
rows = {"plain": [], "Hessian-weighted": []}
print(f"{'k':>3} {'k-means':>17} {'proxy':>10} {'train loss +':>13} {'test acc':>9}")
for k in ks_h:
    fitted = {
        "plain": KMeansQuantizer(k, n_threads=1).fit(w_all),
        "Hessian-weighted": hessian_weighted_kmeans(w_all, k, hessian=hh, n_threads=1),
    }
    for name, q in fitted.items():
        wq = q.quantize(w_all)
        q1, q2 = wq[: W1.size].reshape(W1.shape), wq[W1.size :].reshape(W2.shape)
        proxy = 0.5 * float(np.sum(hh * (w_all - wq) ** 2))
        dl = cross_entropy(q1, q2, X_train, y_train) - L0
        rows[name].append((proxy, dl, accuracy(q1, q2)))
        print(f"{k:3d} {name:>17} {proxy:10.2e} {dl:13.4f} {rows[name][-1][2]:9.4f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, r in rows.items():
    ax1.plot(ks_h, [v[1] for v in r], "o-", label=name)
    ax2.plot(ks_h, [v[2] for v in r], "o-", label=name)
ax1.set_yscale("log")
ax1.set_ylabel("increase of the training cross-entropy")
ax2.set_ylabel("test accuracy")
for ax in (ax1, ax2):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("codebook size k (one codebook for both layers)")
ax2.axhline(accuracy(W1, W2), color="k", lw=0.8, ls="--", label="float")
ax2.legend(fontsize=8)
plt.show()

# %% [markdown]
# Read the columns against each other: the weighting targets the loss, and the training loss
# increase is where to look for its effect; the test accuracy of a few hundred digits moves in
# steps of one digit and is a noisier judge.
#
# ## Vector codebooks: product and residual quantization
#
# Scalar sharing cannot go below one bit per weight (plus the codebook). Vector quantization
# codes a *block* of $d$ weights with one index, so $\log_2 k / d$ bits per weight. We cut each
# hidden unit's 64 incoming weights into blocks of 8, a $2048 \times 8$ matrix $B$.
#
# * **Product quantization** (Jégou et al., 2011; Gong et al., 2014 for network weights) splits
#   the 8 columns into $s$ groups and learns one $k$-word codebook per group:
#   $s \lceil\log_2 k\rceil$ bits per block, and a ratio
#   $r = \frac{b\,m\,n}{b\,k\,n + \lceil\log_2 k\rceil\,m\,s}$ (`pq_compression_ratio`).
# * **Residual quantization** (Chen et al., 2010) runs $t$ stages of k-means on whole blocks,
#   each coding what the previous left: $\hat v = c^{(1)}_{i_1} + \dots + c^{(t)}_{i_t}$,
#   $r = \frac{b\,m\,n}{b\,t\,k\,n + t\lceil\log_2 k\rceil\,m}$ (`rq_compression_ratio`).
#
# The codebooks themselves are counted at 32 bits per entry; for a matrix this small they are a
# large part of the bill, which is why these methods were designed for layers with millions of
# weights.

# %%
B = W1.T.reshape(-1, 8)  # row j*8 + g: weights g*8 .. g*8+7 into hidden unit j


def w1_from_blocks(Bq):
    return Bq.reshape(W1.shape[1], W1.shape[0]).T


assert np.array_equal(w1_from_blocks(B), W1)
print("block matrix B:", B.shape)
results = []  # (family, label, bits per weight, accuracy, cross-entropy)


def record(family, label, ratio, W1q):
    results.append((family, label, 32 / ratio, accuracy(W1q, W2), cross_entropy(W1q, W2)))


for s, k in [(1, 4), (1, 16), (1, 64), (2, 16), (4, 16), (8, 4)]:
    pq = ProductQuantizer(n_subspaces=s, n_clusters=k, random_state=0, n_threads=1).fit(B)
    record(
        "product quantization",
        f"s={s}, k={k}",
        pq_compression_ratio(B.shape, s, k),
        w1_from_blocks(pq.inverse_transform(pq.transform(B))),
    )
for t, k in [(1, 16), (2, 16), (3, 16), (4, 16), (2, 64)]:
    rq = ResidualQuantizer(n_stages=t, n_clusters=k, random_state=0).fit(B)
    record(
        "residual quantization",
        f"t={t}, k={k}",
        rq_compression_ratio(B.shape, t, k),
        w1_from_blocks(rq.inverse_transform(rq.transform(B))),
    )
print(
    "RQ training error after each stage (t=4, k=16):",
    np.round(ResidualQuantizer(n_stages=4, n_clusters=16, random_state=0).fit(B).stage_inertia_, 4),
)

# %% [markdown]
# ## Accuracy against bits per weight
#
# For the comparison we quantize `W1` only (most of the weights, see the fraction printed
# below) and keep `W2` in float. The
# scalar families are
#
# * plain optimal k-means, $\lceil\log_2 k\rceil + 32k/n$ bits (`bits_per_weight`,
#   `deep_compression_ratio`);
# * Hessian-weighted k-means with `W1`'s own diagonal;
# * the plain codes with Huffman coding (Deep Compression's last stage): the code lengths
#   follow the cluster sizes, and `entropy_coded_bits` counts $\sum_i \ell_{a(i)} + 32k$;
# * entropy-constrained scalar quantization (ECSQ, Chou et al., 1989), which moves the
#   thresholds to trade distortion against the Huffman rate, $\min D + \lambda H$.
#
# The top axis gives the compression ratio $32 / \text{bits per weight}$.

# %%
n1 = W1.size
print(f"W1 holds {n1 / n_weights:.1%} of the weights")
for k in [2, 3, 4, 8, 16]:
    plain = KMeansQuantizer(k, n_threads=1).fit(W1)
    record("scalar k-means", f"k={k}", deep_compression_ratio(n1, k), plain.quantize(W1))
    assert np.isclose(32 / deep_compression_ratio(n1, k), bits_per_weight(n1, k))
    weighted = hessian_weighted_kmeans(W1, k, hessian=H1, n_threads=1)
    record(
        "Hessian-weighted k-means", f"k={k}", deep_compression_ratio(n1, k), weighted.quantize(W1)
    )
    huff = entropy_coded_bits(plain.transform(W1), k)
    record("k-means + Huffman", f"k={k}", 32 * n1 / huff, plain.quantize(W1))
var = float(W1.var())
for lam in [0.5, 0.2, 0.05, 0.01]:
    ecsq = EntropyConstrainedQuantizer(n_clusters=16, lam=lam * var).fit(W1)
    codes = ecsq.transform(W1)
    record(
        "ECSQ",
        f"lam={lam}*var",
        32 * n1 / entropy_coded_bits(codes, len(ecsq.codebook_)),
        ecsq.inverse_transform(codes).reshape(W1.shape),
    )

print(f"float: accuracy {accuracy(W1, W2):.4f}, cross-entropy {cross_entropy(W1, W2):.4f}")
print(
    f"{'family':>26} {'setting':>12} {'bits/weight':>12} {'ratio':>7} {'accuracy':>9} "
    f"{'cross-ent.':>10}"
)
for fam, label, bpw, acc, ce in sorted(results, key=lambda r: (r[0], r[2])):
    print(f"{fam:>26} {label:>12} {bpw:12.3f} {32 / bpw:7.1f} {acc:9.4f} {ce:10.4f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
families = list(dict.fromkeys(r[0] for r in results))
markers = dict(zip(families, "os^vDP"))
for fam in families:
    pts = sorted((r for r in results if r[0] == fam), key=lambda r: r[2])
    bpw = [r[2] for r in pts]
    ax1.plot(bpw, [r[3] for r in pts], marker=markers[fam], label=fam)
    ax2.plot(bpw, [r[4] for r in pts], marker=markers[fam], label=fam)
ax1.axhline(accuracy(W1, W2), color="k", lw=0.8, ls="--", label="float")
ax2.axhline(cross_entropy(W1, W2), color="k", lw=0.8, ls="--", label="float")
ax1.set_ylabel("test accuracy")
ax2.set_ylabel("test cross-entropy")
ax2.set_yscale("log")
for ax in (ax1, ax2):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bits per weight of W1 (codebook included)")
    inv = lambda v: 32 / np.maximum(v, 1e-9)  # noqa: E731  (bits <-> ratio, its own inverse)
    top = ax.secondary_xaxis("top", functions=(inv, inv))
    top.set_xlabel("compression ratio")
ax2.legend(fontsize=8)
plt.show()

# %% [markdown]
# How to read it: a curve further to the left at the same height is the better code. The
# accuracy panel is coarse (a handful of test digits separate the points); the cross-entropy
# panel shows the differences more smoothly. Things to check in the table above:
#
# * entropy coding moves the scalar points left, or leaves them in place, without changing the
#   weights at all: Huffman coding is lossless, never longer than the fixed-length code, and
#   never shorter than one bit per symbol;
# * at a comparable rate, compare the vector codes (below one bit per weight is out of reach of
#   plain scalar sharing) with the scalar ones, and note how much of their rate is codebook;
# * the digits network is small and redundant, so it survives surprisingly coarse codes; a
#   larger model trained longer is less forgiving, and retraining the shared codewords (as
#   Deep Compression does) recovers most of what remains.
#
# **References.** S. Han, H. Mao, W. J. Dally, *Deep Compression*, ICLR 2016. Y. Choi,
# M. El-Khamy, J. Lee, *Towards the limit of network quantization*, ICLR 2017. Y. Gong, L. Liu,
# M. Yang, L. Bourdev, *Compressing deep convolutional networks using vector quantization*,
# 2014. H. Jégou, M. Douze, C. Schmid, *Product quantization for nearest neighbor search*,
# IEEE TPAMI 2011. Y. Chen, T. Guan, C. Wang, *Approximate nearest neighbor search by residual
# vector quantization*, Sensors 2010. P. A. Chou, T. Lookabaugh, R. M. Gray,
# *Entropy-constrained vector quantization*, IEEE TASSP 1989. H. Wang, M. Song,
# *Ckmeans.1d.dp*, The R Journal 2011.
