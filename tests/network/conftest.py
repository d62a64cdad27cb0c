"""Small real networks for the network tests: a digits MLP (trained here) and a
transformer-like stack of Linear layers with a NumPy forward pass."""

import json
import warnings

import numpy as np
import pytest


def relu(x):
    return np.maximum(x, 0.0)


def train_digits_mlp(hidden=64, seed=0):
    """An MLP trained on scikit-learn's digits; returns (state dict, X_train, X_test, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed)
    from threadpoolctl import threadpool_limits

    clf = MLPClassifier(
        hidden_layer_sizes=(hidden, hidden), max_iter=300, random_state=seed, alpha=1e-4
    )
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the network is good enough
        clf.fit(Xtr, ytr)
    assert clf.score(Xte, yte) > 0.9
    state = {}
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        state[f"fc{i + 1}.weight"] = W.T.astype(np.float32).copy()
        state[f"fc{i + 1}.bias"] = b.astype(np.float32)
    return state, Xtr, Xte, yte


def mlp_inputs(state, X):
    """Inputs of every Linear layer of the MLP, and its logits."""
    inputs = {}
    h = X
    n = sum(1 for k in state if k.endswith(".weight"))
    for i in range(1, n + 1):
        inputs[f"fc{i}.weight"] = h
        h = h @ state[f"fc{i}.weight"].T.astype(np.float64) + state[f"fc{i}.bias"]
        if i < n:
            h = relu(h)
    return inputs, h


def make_transformer(n_blocks=2, d=32, vocab=50, seed=0):
    """Random weights of a tiny pre-norm transformer-like stack (single-head attention)."""
    rng = np.random.default_rng(seed)
    s = {"embed.weight": rng.normal(size=(vocab, d)).astype(np.float32)}
    for b in range(n_blocks):
        p = f"blocks.{b}."
        s[p + "ln1.weight"] = np.ones(d, np.float32)
        for name in ("q", "k", "v", "o"):
            s[p + f"attn.{name}.weight"] = (rng.normal(size=(d, d)) / np.sqrt(d)).astype(np.float32)
        s[p + "ln2.weight"] = np.ones(d, np.float32)
        s[p + "mlp.fc1.weight"] = (rng.normal(size=(4 * d, d)) / np.sqrt(d)).astype(np.float32)
        s[p + "mlp.fc1.bias"] = np.zeros(4 * d, np.float32)
        s[p + "mlp.fc2.weight"] = (rng.normal(size=(d, 4 * d)) / np.sqrt(4 * d)).astype(np.float32)
    s["head.weight"] = (rng.normal(size=(vocab, d)) / np.sqrt(d)).astype(np.float32)
    return s


def _norm(x, g):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g


def transformer_inputs(state, tokens):
    """Inputs of each Linear of the stack for a batch of token sequences, and the logits."""
    f = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    x = f["embed.weight"][tokens]  # (batch, seq, d)
    inputs = {}
    n_blocks = sum(1 for k in f if k.endswith("attn.q.weight"))
    for b in range(n_blocks):
        p = f"blocks.{b}."
        h = _norm(x, f[p + "ln1.weight"])
        flat = h.reshape(-1, h.shape[-1])
        for name in ("q", "k", "v"):
            inputs[p + f"attn.{name}.weight"] = flat
        q, k, v = (h @ f[p + f"attn.{n}.weight"].T for n in ("q", "k", "v"))
        att = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        a = att @ v
        inputs[p + "attn.o.weight"] = a.reshape(-1, a.shape[-1])
        x = x + a @ f[p + "attn.o.weight"].T
        h = _norm(x, f[p + "ln2.weight"])
        inputs[p + "mlp.fc1.weight"] = h.reshape(-1, h.shape[-1])
        u = relu(h @ f[p + "mlp.fc1.weight"].T + f[p + "mlp.fc1.bias"])
        inputs[p + "mlp.fc2.weight"] = u.reshape(-1, u.shape[-1])
        x = x + u @ f[p + "mlp.fc2.weight"].T
        # a shared name per block keeps the forward cheap to call
    inputs["head.weight"] = x.reshape(-1, x.shape[-1])
    return inputs, x @ f["head.weight"].T


@pytest.fixture(scope="session")
def digits_mlp():
    """(state, X_train, X_test, y_test) of an MLP trained on digits in this session."""
    return train_digits_mlp()


@pytest.fixture
def mlp_forward():
    return mlp_inputs


@pytest.fixture
def transformer():
    """(state, tokens, forward) of the transformer-like stack."""
    tokens = np.random.default_rng(1).integers(0, 50, size=(8, 12))
    return make_transformer(), tokens, transformer_inputs


def rewrite_checkpoint(path, out, edit):
    """Copy a packed network file to ``out`` after ``edit(header, tensors)`` (a tampered file)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header = json.loads(meta["qtoolkit.network"])
    tensors = edit(header, tensors) or tensors
    save_file(tensors, str(out), metadata={"qtoolkit.network": json.dumps(header)})
    return out
