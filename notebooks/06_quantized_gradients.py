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
# # Stochastic rounding and quantized gradients
#
# In data-parallel training each of $M$ workers computes a gradient $g^{(k)}$ on its share
# of the batch, all workers exchange them, and everyone applies the average
# $\frac1M \sum_k g^{(k)}$. On a slow network the exchange, $32$ bits per parameter per
# worker per step, dominates the time. Quantizing each $g^{(k)}$ before sending cuts that
# cost, and two ideas keep training on course:
#
# * **Unbiased stochastic quantization.** If $\mathbb{E}[Q(g)] = g$, the quantized gradient
#   is just a noisier stochastic gradient and SGD's convergence theory still applies, with
#   the variance of $Q$ added to that of the minibatch. QSGD (Alistarh et al., 2017) keeps
#   the norm and rounds each $|g_i| / \|g\|_2$ stochastically to one of $s$ levels; TernGrad
#   (Wen et al., 2017) keeps $\max|g_i|$ and sends one trit per entry.
# * **Error feedback.** The sign is a biased 1-bit quantizer, but if each worker adds the
#   error it made last step to the next gradient (Seide et al., 2014; Karimireddy et al.,
#   2019), nothing is lost, only delayed.
#
# We train a softmax (multinomial logistic) regression on scikit-learn's digits with four
# simulated workers and `qtoolkit.gradients`, count the bits that really go over the wire
# (each compressor's `encode` returns the bytes of its message), and check QSGD's
# unbiasedness and variance against its stated bound.

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from qtoolkit.gradients import QSGDCompressor, SignErrorFeedback, TernGradCompressor, qsgd, terngrad

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
mu, sd = X_train.mean(axis=0), X_train.std(axis=0) + 1e-3


def prepare(A):
    A = (A - mu) / sd
    return np.hstack([A, np.ones((len(A), 1))]).astype(np.float32)  # a bias column


X_train, X_test = prepare(X_train), prepare(X_test)
n_classes, n_features = 10, X_train.shape[1]
print(X_train.shape, X_test.shape, "parameters:", n_classes * n_features)

# %% [markdown]
# ## The model
#
# With weights $W \in \mathbb{R}^{10 \times 65}$, class probabilities
# $p = \mathrm{softmax}(W x)$ and the cross-entropy loss, the gradient on a batch $B$ is
# $\frac{1}{|B|}\sum_{i \in B} (p_i - e_{y_i})\,x_i^\top$: one $10 \times 65$ float32 array,
# 650 numbers per worker per step.


# %%
def loss_and_grad(W, A, labels):
    Z = A @ W.T
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.log(P[rows, labels] + 1e-12).mean()
    P[rows, labels] -= 1
    return float(loss), (P.T @ A / len(labels)).astype(np.float32)


def accuracy(W, A, labels):
    return float(((A @ W.T).argmax(axis=1) == labels).mean())


# %% [markdown]
# ## Workers, compressors and the wire
#
# Each step draws a batch of 128 training images and splits it into four shards of 32.
# Worker $k$ computes its gradient, its own compressor turns it into bytes, the receiver
# decodes the bytes, and the average of the decoded gradients is applied with plain SGD.
# The bits counted are `8 * len(message)`, headers included. The full-precision baseline
# sends the raw float32 array with no header at all.
#
# The compressors compared:
#
# * QSGD with $s = 2$ and $s = 8$ levels, positions and levels Elias-gamma coded as in the
#   paper;
# * TernGrad, with the paper's clipping at $2.5$ standard deviations;
# * scaled sign, $\frac{\|p\|_1}{n}\mathrm{sign}(p)$, with error feedback
#   ($p = g + e$, $e \leftarrow p - C(p)$), and the same compressor with its error
#   forgotten after every step (`reset()`), which is plain scaled sign without feedback.


# %%
class FullPrecision:
    """The baseline 'compressor': the float32 gradient as raw bytes."""

    def encode(self, g):
        self.shape = g.shape
        return np.ascontiguousarray(g, dtype=np.float32).tobytes()

    def decode(self, data):
        return np.frombuffer(data, dtype=np.float32).reshape(self.shape)


class NoFeedback(SignErrorFeedback):
    """Scaled sign without error feedback: the carried error is dropped every step."""

    def encode(self, g):
        self.reset()
        return super().encode(g)


methods = {
    "float32": lambda k: FullPrecision(),
    "QSGD s=8": lambda k: QSGDCompressor(n_levels=8, rng=100 + k),
    "QSGD s=2": lambda k: QSGDCompressor(n_levels=2, rng=200 + k),
    "TernGrad": lambda k: TernGradCompressor(clip=2.5, rng=300 + k),
    "sign + error feedback": lambda k: SignErrorFeedback(scale="mean"),
    "sign, no feedback": lambda k: NoFeedback(scale="mean"),
}


def train(make, steps=300, workers=4, batch=128, lr=0.3, every=10, rng=0):
    batches = np.random.default_rng(rng)  # the same batches for every method
    comps = [make(k) for k in range(workers)]
    W = np.zeros((n_classes, n_features), np.float32)
    bits, n_sent, log = 0, 0, []
    for t in range(steps + 1):
        if t % every == 0:
            log.append(
                (t, bits, loss_and_grad(W, X_train, y_train)[0], accuracy(W, X_test, y_test))
            )
        if t == steps:
            break
        idx = batches.choice(len(X_train), size=batch, replace=False)
        received = []
        for comp, shard in zip(comps, np.array_split(idx, workers)):
            _, g = loss_and_grad(W, X_train[shard], y_train[shard])
            message = comp.encode(g)
            bits += 8 * len(message)
            n_sent += g.size
            received.append(comp.decode(message))
        W -= lr * np.mean(received, axis=0)
    return np.array(log), bits / n_sent


results = {name: train(make) for name, make in methods.items()}
print(
    f"{'method':22s} {'bits/entry':>10s} {'total Mbit':>10s} {'final loss':>10s} {'test acc':>8s}"
)
for name, (log, bpe) in results.items():
    print(f"{name:22s} {bpe:10.2f} {log[-1, 1] / 1e6:10.2f} {log[-1, 2]:10.4f} {log[-1, 3]:8.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for name, (log, _) in results.items():
    style = "k-" if name == "float32" else "-"
    axes[0].plot(log[:, 0], log[:, 2], style, label=name)
    axes[1].plot(log[:, 0], log[:, 3], style, label=name)
    axes[2].plot(log[1:, 1] / 1e6, log[1:, 2], style, label=name)  # from the first step on
axes[0].set_xlabel("step")
axes[0].set_ylabel("training loss")
axes[1].set_xlabel("step")
axes[1].set_ylabel("test accuracy")
axes[1].set_ylim(0.5, 1.0)
axes[2].set_xscale("log")
axes[0].set_yscale("log")
axes[2].set_yscale("log")
axes[2].set_xlabel("megabits sent by all workers")
axes[2].set_ylabel("training loss")
axes[0].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# Against steps, QSGD and TernGrad (unbiased, up to TernGrad's clipping of the rare large
# entries) follow the float32 curve with some extra noise, and the sign with error feedback
# keeps up with them. Against bits sent (right panel, both
# axes logarithmic) the compressed runs sit far to the left of float32: the table says how
# many bits per entry each one actually used, headers included, against 32. Dropping the
# error feedback changes the sign's behaviour: the last two rows of the table send messages
# of the same size, so their difference is what the carried error buys.

# %% [markdown]
# ## QSGD is unbiased, with a variance it can state
#
# With $r_i = s|g_i| / \|g\|_2$ and $\ell_i = \lfloor r_i \rfloor$, QSGD sends
# $\|g\|_2\,\mathrm{sign}(g_i)\,\xi_i/s$ with $\xi_i = \ell_i + 1$ with probability
# $r_i - \ell_i$ and $\ell_i$ otherwise. Each coordinate is a stochastic rounding of $g_i$ to
# the grid of step $\|g\|_2 / s$, so
#
# $$ \mathbb{E}[Q_s(g)] = g, \qquad
#    \mathbb{E}\|Q_s(g) - g\|^2 = \frac{\|g\|_2^2}{s^2} \sum_i (r_i - \ell_i)(1 - r_i + \ell_i)
#    \le \min\!\Big(\frac{n}{s^2}, \frac{\sqrt n}{s}\Big)\|g\|_2^2 , $$
#
# the second bound of Lemma 3.1 of the paper (`QSGDCompressor.variance_bound`). We take
# one real gradient, the full-batch gradient at the start of training, and draw 2000
# quantizations for each $s$.

# %%
g = loss_and_grad(np.zeros((n_classes, n_features), np.float32), X_train, y_train)[1]
g = g.astype(np.float64)
norm2 = float(np.sum(g**2))
n_draws = 2000
levels = [1, 2, 4, 8, 16, 32, 64]
rows = []
gen = np.random.default_rng(7)
for s in levels:
    Q = np.stack([qsgd(g, s, rng=gen) for _ in range(n_draws)])
    r = s * np.abs(g) / np.sqrt(norm2)
    frac = r - np.floor(r)
    exact = norm2 / s**2 * np.sum(frac * (1 - frac))
    measured = np.mean(np.sum((Q - g) ** 2, axis=(1, 2)))
    bias = np.linalg.norm(Q.mean(axis=0) - g) / np.sqrt(norm2)
    rows.append((s, measured, exact, QSGDCompressor(n_levels=s).variance_bound(g), bias))
rows = np.array(rows)
print(
    f"n = {g.size},  ||g||^2 = {norm2:.4f},  ||g||_1 / (sqrt(n) ||g||_2) = "
    f"{np.abs(g).sum() / np.sqrt(g.size * norm2):.3f}"
)
print(
    f"{'s':>4s} {'measured E|Q-g|^2':>18s} {'exact formula':>14s} {'bound':>10s} "
    f"{'|mean(Q)-g|/|g|':>16s} {'sqrt(exact/N)/|g|':>18s}"
)
for s, measured, exact, bound, bias in rows:
    print(
        f"{int(s):4d} {measured:18.5f} {exact:14.5f} {bound:10.4f} {bias:16.4f} "
        f"{np.sqrt(exact / n_draws / norm2):18.4f}"
    )

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(rows[:, 0], rows[:, 1] / norm2, "o", label="measured (2000 draws)")
ax.loglog(rows[:, 0], rows[:, 2] / norm2, "k-", lw=1, label="exact formula")
ax.loglog(rows[:, 0], rows[:, 3] / norm2, "r--", label="bound min(n/s^2, sqrt(n)/s)")
ax.set_xlabel("levels s")
ax.set_ylabel("E||Q(g) - g||^2 / ||g||^2")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
plt.show()

# %% [markdown]
# The measured variance sits on the exact formula and below the bound, which is a worst
# case. Each term $(r_i - \ell_i)(1 - r_i + \ell_i)$ is at most $\min(r_i, 1/4)$. Summing
# $r_i$ gives $s\,\|g\|_1/\|g\|_2 \le s\sqrt n$, the $\sqrt n / s$ part of the bound;
# summing $1/4$ gives $n/4$, a quarter of the $n/s^2$ part. A real gradient reaches
# neither: its entries are unequal, so $\|g\|_1 < \sqrt n\,\|g\|_2$ (the ratio is printed
# below), and once $s$ is large the fractional parts of the $r_i$ spread over $[0, 1)$
# instead of sitting at $1/2$. The error of the average of $N$ draws shrinks like
# $\sqrt{\mathrm{Var}/N}$ (last two columns): what is left is noise, not bias.
#
# TernGrad is unbiased too, with variance $\|g\|_\infty \|g\|_1 - \|g\|_2^2$ (exact, without
# clipping), which `TernGradCompressor.variance_bound` returns:

# %%
Q = np.stack([terngrad(g, rng=gen) for _ in range(n_draws)])
print(
    f"TernGrad: measured {np.mean(np.sum((Q - g) ** 2, axis=(1, 2))):.5f}, "
    f"formula {TernGradCompressor().variance_bound(g):.5f}, "
    f"|mean(Q)-g|/|g| = {np.linalg.norm(Q.mean(axis=0) - g) / np.sqrt(norm2):.4f}"
)

# %% [markdown]
# ## Error feedback loses nothing
#
# The sign compressor is deterministic and biased: $\|p - C(p)\|^2 = \|p\|^2 - \|p\|_1^2/n$
# is never zero unless all $|p_i|$ are equal. Error feedback keeps the difference and adds it
# to the next gradient, so after $T$ steps the sum of what was sent plus the carried error
# equals the sum of the gradients. We feed one compressor the gradients of 200 steps of a
# float32 run, check the identity, and follow the size of the carried error.

# %%
ef = SignErrorFeedback(scale="mean")
W = np.zeros((n_classes, n_features), np.float32)
sent_sum = np.zeros(W.shape)
grad_sum = np.zeros(W.shape)
err_norm, grad_norm = [], []
batch_rng = np.random.default_rng(1)
for _t in range(200):
    idx = batch_rng.choice(len(X_train), size=32, replace=False)
    _, g_t = loss_and_grad(W, X_train[idx], y_train[idx])
    sent = ef.decode(ef.encode(g_t))
    sent_sum += sent
    grad_sum += g_t
    err_norm.append(np.linalg.norm(ef.error_))
    grad_norm.append(np.linalg.norm(g_t))
    W -= 0.3 * g_t
gap = np.abs(sent_sum + ef.error_ - grad_sum).max()
print(
    f"max |sum sent + error - sum of gradients| = {gap:.2e} "
    f"(largest entry of the sums: {np.abs(grad_sum).max():.2f})"
)
print(
    f"||e_t||: largest {max(err_norm):.3f}, last {err_norm[-1]:.3f};  "
    f"||g_t||: largest {max(grad_norm):.3f};  ||sum of g_t|| = {np.linalg.norm(grad_sum):.3f}"
)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(grad_norm, label="||g_t||, the gradient")
ax.plot(err_norm, label="||e_t||, the carried error")
ax.set_xlabel("step")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The identity holds up to float32 rounding, and the carried error stays of the order of a
# single gradient instead of growing with the number of steps: the compressor is a
# contraction, so error feedback turns its bias into a short delay. This is the mechanism
# behind 1-bit SGD (Seide et al., 2014) and EF-signSGD (Karimireddy et al., 2019), which
# train like full-precision SGD with one bit per entry plus a few bytes per message.
