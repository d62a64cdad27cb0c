"""Grids of the layer methods: min-max, error-minimizing clipping, per-row optimal codebooks.

Prior validation of the arguments is assumed. Every function works on a block ``w`` of shape
``(n_rows, n_cols)`` (one row per output, the columns of one group) in float64 and fits one
grid per row.
"""

import numpy as np

from qtoolkit.codebooks import kmeans_1d_rows

from ._layer import fit_grid, quantize_column

GRIDS = ("uniform", "optimal")
CLIPS = (None, "mse")
# shrink factors tried by clip="mse": the range [lo, hi] is scaled by c
_CLIP_FACTORS = np.linspace(1.0, 0.5, 21)


def fit_grid_clipped(w, qmin, qmax, mode, col_weight=None, dtype=None):
    """Per-row ``(scale, zero)`` minimizing ``sum_j col_weight_j (w_ij - q(w_ij))^2`` over the
    shrink factors ``c`` in ``_CLIP_FACTORS`` (range ``c [lo, hi]``; c = 1 is min-max)."""
    n_rows = w.shape[0]
    cw = np.ones(w.shape[1]) if col_weight is None else col_weight
    best_err = np.full(n_rows, np.inf)
    best_s = np.ones(n_rows)
    best_z = np.zeros(n_rows)
    for c in _CLIP_FACTORS:
        s, z = fit_grid(w * c, qmin, qmax, mode, dtype)
        _, q = quantize_column(w, s[:, None], z[:, None], qmin, qmax)
        err = ((w - q) ** 2) @ cw
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_s = np.where(better, s, best_s)
        best_z = np.where(better, z, best_z)
    return best_s, best_z


def fit_uniform(w, qmin, qmax, mode, clip, col_weight=None, dtype=None):
    """Min-max or clipped per-row grid; scales :func:`storable` in ``dtype``."""
    if clip == "mse":
        return fit_grid_clipped(w, qmin, qmax, mode, col_weight, dtype)
    return fit_grid(w, qmin, qmax, mode, dtype)


def fit_codebooks(w, k, col_weight=None):
    """Per-row sorted codebooks (n_rows, k): the optimal weighted 1-D k-means of each row.

    The rows with at least ``k`` distinct values of positive weight are solved together by
    one :func:`qtoolkit.codebooks.kmeans_1d_rows` call; a row with fewer keeps its distinct
    values, which is its optimum (zero error), and repeats the largest one (those codewords
    are never the unique nearest). A row without positive weights gets zeros."""
    n_rows, n_cols = w.shape
    cw = np.ones(n_cols) if col_weight is None else np.asarray(col_weight, dtype=np.float64)
    pos = cw > 0
    vals = w[:, pos]
    out = np.zeros((n_rows, k))
    if vals.shape[1] == 0:
        return out
    srt = np.sort(vals, axis=1)
    new = np.concatenate([np.ones((n_rows, 1), bool), np.diff(srt, axis=1) != 0], axis=1)
    n_distinct = new.sum(axis=1)
    full = n_distinct >= k
    if full.any():
        out[full] = kmeans_1d_rows(vals[full], k, sample_weight=cw[pos]).codebooks
    for i in np.flatnonzero(~full):  # fewer distinct values than codewords: keep them all
        uniq = srt[i, new[i]]
        out[i, : uniq.size] = uniq
        out[i, uniq.size :] = uniq[-1]
    return out


def nearest_codeword(w, codebook):
    """Codes and values of the nearest codeword of each row: ``w`` (n_rows,) or (n_rows, m)."""
    col = w.ndim == 1
    v = w[:, None] if col else w
    # codebooks are sorted: the nearest is found from the midpoints between codewords
    mids = 0.5 * (codebook[:, 1:] + codebook[:, :-1])  # (n_rows, k - 1)
    codes = (v[:, :, None] > mids[:, None, :]).sum(axis=2)
    vals = np.take_along_axis(codebook, codes, axis=1)
    if col:
        return codes[:, 0].astype(np.float64), vals[:, 0]
    return codes.astype(np.float64), vals
