"""Shared references of the layer tests (fixture `ref`): activation rules, a direct convolution."""

import types

import numpy as np
import pytest


def binary_acts(x):
    return np.where(x >= 0, 1.0, -1.0)


def ternary_acts(rows):
    """TWN rule per row: sign(x) where |x| > 0.7 mean|x|, times the mean of the kept |x|."""
    out = np.zeros(rows.shape, np.float64)
    for i, r in enumerate(np.asarray(rows, np.float32)):
        a = np.abs(r)
        thr = np.float32(0.7 * a.mean(dtype=np.float64)) if r.size else 0
        keep = a > thr
        beta = np.float32(a[keep].sum(dtype=np.float64) / keep.sum()) if keep.any() else 0.0
        out[i] = np.sign(r) * keep * beta
    return out


def int8_acts(rows):
    from qtoolkit.bitops import quantize_activations

    a = quantize_activations(np.asarray(rows, np.float32))
    return np.asarray(a.codes, np.float64) * np.asarray(a.scales, np.float64)[:, None]


def quantize_rows(rows, activations):
    if activations is None:
        return np.asarray(rows, np.float64)
    if activations == "binary":
        return binary_acts(rows)
    if activations == "ternary":
        return ternary_acts(rows)
    return int8_acts(rows)


def per_sample(x_nchw, activations):
    """Activation rule applied with one scale per sample (the convolution's rule), NCHW."""
    n = x_nchw.shape[0]
    flat = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)).reshape(n, -1)
    q = quantize_rows(flat, activations)
    return q.reshape(n, x_nchw.shape[2], x_nchw.shape[3], x_nchw.shape[1]).transpose(0, 3, 1, 2)


def conv2d_direct(x, w, b, stride, padding, dilation, groups):
    """Convolution by loops over output channels and positions (NCHW, float64)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


@pytest.fixture
def ref():
    """The slow references above, as attributes."""
    return types.SimpleNamespace(
        binary_acts=binary_acts,
        ternary_acts=ternary_acts,
        int8_acts=int8_acts,
        quantize_rows=quantize_rows,
        per_sample=per_sample,
        conv2d_direct=conv2d_direct,
    )
