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
# # Running a quantized network: binary, ternary and 4-bit layers
#
# A quantized checkpoint is only smaller on disk until something computes with the codes.
# `qtoolkit.nn` holds layers that store packed low-bit weights and run on integer kernels:
# xnor-popcount for binary x binary (XNOR-Net), sign and non-zero bit planes for ternary, and
# exact int32 sums of k-bit weights times int8 activations, each followed by one scale per
# output (or per group).
#
# We train an MLP on scikit-learn's 8x8 digits four times, each time with the weights the
# deployed network will have (quantization-aware training with the straight-through
# estimator): float32, 4-bit, ternary (BitNet b1.58's absmean rule) and binary (with sign
# activations). Then we convert every trained network into `qtoolkit.nn.Linear` layers, fold
# the batch normalisations into their scales, and compare accuracy, model size and inference
# time.

# %%
import itertools
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from qtoolkit.nn import Linear
from qtoolkit.rounding import binarize, clipped_straight_through, uniform

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-3)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
print(X_train.shape, X_test.shape)

# %% [markdown]
# ## Training with quantized weights
#
# Each layer keeps real "latent" weights $W$; the forward pass uses $q(W)$ and the backward
# pass treats $q$ as the identity (straight-through). The rules are the ones
# `Linear.from_float` applies, one scale per output row:
#
# - binary: $q(W) = \alpha\,\mathrm{sign}(W)$, $\alpha = \overline{|W|}$ (XNOR-Net);
# - ternary (absmean, BitNet b1.58): $\gamma = \overline{|W|}$,
#   $q(W) = \gamma\,\mathrm{clip}(\mathrm{round}(W/\gamma), -1, 1)$;
# - 4 bits: symmetric uniform rounding, $s = \max|W| / 7$.
#
# Hidden activations are $\mathrm{ReLU}(\mathrm{BN}(\cdot))$, and
# $\mathrm{sign}(\mathrm{BN}(\cdot))$ for the binary network (clipped straight-through
# gradient). At inference the non-binary networks quantize their activations to int8 per row.


# %%
def q_ternary(W):
    gamma = np.abs(W).mean(axis=1, keepdims=True)
    return np.clip(np.rint(W / gamma), -1, 1) * gamma


QUANT = {
    "float32": lambda W: W,
    "4-bit": lambda W: uniform(W, bits=4, axis=0),
    "ternary": q_ternary,
    "binary": lambda W: binarize(W, scale="mean", axis=0),
}


class BatchNorm:
    def __init__(self, n):
        self.gamma, self.beta = np.ones(n, np.float32), np.zeros(n, np.float32)
        self.mean, self.var = np.zeros(n, np.float32), np.ones(n, np.float32)

    def forward(self, z, train):
        if train:
            mu, var = z.mean(axis=0), z.var(axis=0)
            self.mean = 0.9 * self.mean + 0.1 * mu
            self.var = 0.9 * self.var + 0.1 * var
        else:
            mu, var = self.mean, self.var
        self.inv = 1.0 / np.sqrt(var + 1e-5)
        self.zhat = (z - mu) * self.inv
        return self.gamma * self.zhat + self.beta

    def backward(self, g):
        self.dgamma, self.dbeta = (g * self.zhat).sum(axis=0), g.sum(axis=0)
        gz, n = g * self.gamma, g.shape[0]
        return self.inv / n * (n * gz - gz.sum(axis=0) - self.zhat * (gz * self.zhat).sum(axis=0))


class MLP:
    def __init__(self, sizes, mode, rng=0):
        r = np.random.default_rng(rng)
        self.mode, self.q = mode, QUANT[mode]
        self.W = [
            (r.uniform(-1, 1, (o, i)) * np.sqrt(6 / (i + o))).astype(np.float32)
            for i, o in itertools.pairwise(sizes)
        ]
        self.bn = [BatchNorm(o) for o in sizes[1:-1]]
        self.b = np.zeros(sizes[-1], np.float32)

    def act(self, u):
        return (
            np.where(u >= 0, 1.0, -1.0).astype(np.float32)
            if self.mode == "binary"
            else np.maximum(u, 0)
        )

    def forward(self, x, train=False):
        self.cache, h = [], x
        for i, bn in enumerate(self.bn):
            Wq = self.q(self.W[i])
            u = bn.forward(h @ Wq.T, train)
            self.cache.append((h, Wq, u))
            h = self.act(u)
        self.h, self.Wq_out = h, self.q(self.W[-1])
        return h @ self.Wq_out.T + self.b

    def backward(self, g):
        grads = [None] * len(self.W)
        grads[-1], gb = g.T @ self.h, g.sum(axis=0)
        g = g @ self.Wq_out
        for i in reversed(range(len(self.bn))):
            h, Wq, u = self.cache[i]
            g = clipped_straight_through(u, g) if self.mode == "binary" else g * (u > 0)
            g = self.bn[i].backward(g)
            grads[i] = g.T @ h
            g = g @ Wq
        return grads, gb

    def fit(self, X, y, epochs=15, batch=64, lr=3e-3, rng=0):
        r = np.random.default_rng(rng)
        params = self.W + [bn.gamma for bn in self.bn] + [bn.beta for bn in self.bn] + [self.b]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        t = 0
        for _ in range(epochs):
            order = r.permutation(len(X))
            for s in range(0, len(X), batch):
                idx = order[s : s + batch]
                z = self.forward(X[idx], train=True)
                p = np.exp(z - z.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                p[np.arange(len(idx)), y[idx]] -= 1
                gW, gb = self.backward(p / len(idx))
                grads = gW + [bn.dgamma for bn in self.bn] + [bn.dbeta for bn in self.bn] + [gb]
                t += 1
                for P, G, M, V in zip(params, grads, m, v):
                    M[...] = 0.9 * M + 0.1 * G
                    V[...] = 0.999 * V + 0.001 * G * G
                    P -= lr * (M / (1 - 0.9**t)) / (np.sqrt(V / (1 - 0.999**t)) + 1e-8)
                if self.mode == "binary":
                    for W in self.W:
                        np.clip(W, -1, 1, out=W)
        return self


sizes = [64, 256, 256, 10]
with threadpool_limits(1):  # one BLAS thread: reproducible, and fair to the timings below
    nets = {mode: MLP(sizes, mode).fit(X_train, y_train, epochs=15) for mode in QUANT}
for mode, net in nets.items():
    acc = (net.forward(X_test).argmax(axis=1) == y_test).mean()
    print(f"{mode:8s} training-time test accuracy {acc:.3f}")

# %% [markdown]
# ## Converting to `qtoolkit.nn` layers
#
# `Linear.from_float(W, weights=..., activations=...)` quantizes the latent weights with the
# same rule the training used and packs the codes. Each hidden layer is followed by a batch
# normalisation, which `fold_batch_norm` moves into the per-row scales and the bias: the codes
# do not change, so a binary layer stays binary. The binary network's hidden activations are
# $\pm1$, so its second and third layers run binary x binary on the xnor-popcount kernel; its
# first layer sees real pixels, quantized to int8. The other networks use int8 activations
# everywhere (`activations=8`), and the float network plain float32 layers.

# %%
MODES = {"float32": None, "4-bit": 4, "ternary": "ternary", "binary": "binary"}


def convert(net):
    weights = MODES[net.mode]
    layers = []
    for i, W in enumerate(net.W):
        b = net.b if i == len(net.W) - 1 else None
        acts = "binary" if (net.mode == "binary" and i > 0) else 8
        if weights is None:
            layer = Linear(W, b)
        else:
            layer = Linear.from_float(W, b, weights=weights, activations=acts)
        if i < len(net.bn):
            bn = net.bn[i]
            layer = layer.fold_batch_norm(bn.mean, bn.var, bn.gamma, bn.beta)
        layers.append(layer)
    return layers


def run(layers, x, mode):
    for layer in layers[:-1]:
        u = layer.forward(x)
        # a layer with activations="binary" takes sign(x) itself; the others get ReLU(x)
        x = u if mode == "binary" else np.maximum(u, 0)
    return layers[-1].forward(x)


models = {mode: convert(net) for mode, net in nets.items()}
for mode, layers in models.items():
    same = (run(layers, X_test, mode).argmax(1) == nets[mode].forward(X_test).argmax(1)).mean()
    print(
        f"{mode:8s} layers: {[layer.weights for layer in layers]}, same prediction as the "
        f"training-time network on {same:.1%} of the test set"
    )

# %% [markdown]
# ## Accuracy, size and inference time
#
# Size is what the layers hold (`size_report()`: packed codes, scales and bias). Time is the
# median over repeats of one forward pass of the whole network over a batch of 2048 digits
# (the test set repeated), on one thread.

# %%
batch = np.tile(X_test, (4, 1))[:2048]
rows = []
limit = threadpool_limits(1)
for mode, layers in models.items():
    for layer in layers:
        layer.n_threads = 1
    acc = float((run(layers, X_test, mode).argmax(axis=1) == y_test).mean())
    size = sum(layer.size_report().nbytes for layer in layers)
    bpw = (
        8
        * sum(layer.size_report().weight_bytes for layer in layers)
        / sum(layer.size_report().n_weights for layer in layers)
    )
    run(layers, batch, mode)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        run(layers, batch, mode)
        times.append(time.perf_counter() - t0)
    rows.append((mode, acc, size, bpw, 1e3 * float(np.median(times))))
limit.restore_original_limits()
print(f"{'model':8s} {'accuracy':>9s} {'bytes':>9s} {'bits/weight':>12s} {'ms / 2048':>10s}")
for mode, acc, size, bpw, ms in rows:
    print(f"{mode:8s} {acc:9.3f} {size:9d} {bpw:12.2f} {ms:10.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for mode, acc, size, _, ms in rows:
    axes[0].scatter(size / 1024, acc, s=50)
    axes[0].annotate(mode, (size / 1024, acc), textcoords="offset points", xytext=(5, -12))
    axes[1].scatter(ms, acc, s=50)
    axes[1].annotate(mode, (ms, acc), textcoords="offset points", xytext=(5, -12))
axes[0].set_xscale("log")
axes[0].set_xlabel("model size (KiB, log scale)")
axes[1].set_xlabel("inference time, batch of 2048 (ms, one thread)")
for ax in axes:
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
fig.suptitle("digits MLP 64-256-256-10: accuracy against size and time")
fig.tight_layout()
plt.show()

# %% [markdown]
# The binary network keeps 1 bit per weight in the kernel's layout (its rows are padded to
# whole 512-bit blocks, so a 256-input layer holds 2 bits per weight) and replaces 32-bit
# multiply-adds by xnor-popcounts; it gives up a few points of accuracy on this small problem.
# Ternary and 4-bit weights with int8 activations keep nearly the float network's accuracy at
# 1/12 to 1/7 of its size. The times above come from one run on whatever machine executes the
# notebook, for a network this small; the kernels are measured at sizes where they dominate by
# `benchmarks/bench_lowbit.py`.
