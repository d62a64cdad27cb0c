"""Activation quantizers of the layers, applied per row (Linear) or per sample (Conv2d).

Each works on a 2-D array whose rows share a scale: the rows of a linear
layer's input, or the flattened samples of a convolution's input.
"""

import numpy as np

from qtoolkit.bitops import quantize_activations

#: TWN's threshold factor for ternary activations: Delta = 0.7 mean |x|.
TERNARY_DELTA = 0.7


def binary_values(x):
    """sign(x) in {-1, +1} (sign(0) = +1), float32."""
    return np.where(x >= 0, np.float32(1), np.float32(-1))


def ternary_codes(rows):
    """TWN rule per row: t = sign(x) [|x| > 0.7 mean|x|], beta = mean |x| over the kept entries.

    Returns ``(t, beta)``: int8 codes of ``rows``' shape and float32 scales (R,).
    """
    a = np.abs(rows)
    k = rows.shape[1]
    mean = a.mean(axis=1, dtype=np.float64) if k else np.zeros(rows.shape[0])
    keep = a > (TERNARY_DELTA * mean).astype(np.float32)[:, None]
    count = keep.sum(axis=1)
    total = np.where(keep, a, 0).sum(axis=1, dtype=np.float64)
    beta = np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)
    t = (np.sign(rows) * keep).astype(np.int8)
    return t, beta


def int8_codes(rows):
    """Symmetric int8 per row: s = max|x| / 127, q = clip(round(x / s), -127, 127)."""
    a = quantize_activations(np.ascontiguousarray(rows, dtype=np.float32))
    return np.asarray(a.codes), np.asarray(a.scales, dtype=np.float32)


def fake_quantize(rows, activations):
    """The float values the integer path computes with (the float reference's input)."""
    if activations is None:
        return rows
    if activations == "binary":
        return binary_values(rows)
    if activations == "ternary":
        t, beta = ternary_codes(rows)
        return t.astype(np.float32) * beta[:, None]
    q, s = int8_codes(rows)
    return q.astype(np.float32) * s[:, None]
