"""What Linear and Conv2d share: the size report, input checks, batch-norm folding."""

from typing import NamedTuple

import numpy as np

from qtoolkit._array import describe


class LayerSize(NamedTuple):
    """Storage of a layer: bytes held and bits per weight.

    Parameters
    ----------
    weight_bytes : int
        Bytes of the weight as the layer holds it: packed codes plus their
        scales and zero points (float32 for a float layer).
    bias_bytes : int
        Bytes of the bias (0 without one).
    nbytes : int
        ``weight_bytes + bias_bytes``.
    n_weights : int
        Number of weights (out_features * in_features, or out * in/groups * kh * kw).
    bits_per_weight : float
        ``8 * weight_bytes / n_weights``, scales included (0 for an empty layer).

    See Also
    --------
    Linear.size_report, Conv2d.size_report

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.nn import Linear
    >>> w = np.ones((4, 512), np.float32)
    >>> Linear.from_float(w, weights="binary", activations="binary").size_report()
    LayerSize(weight_bytes=272, bias_bytes=0, nbytes=272, n_weights=2048, bits_per_weight=1.0625)
    """

    weight_bytes: int
    bias_bytes: int
    nbytes: int
    n_weights: int
    bits_per_weight: float


def _size(weight_bytes, bias, n_weights):
    bias_bytes = 0 if bias is None else int(bias.nbytes)
    bpw = 8.0 * weight_bytes / n_weights if n_weights else 0.0
    return LayerSize(
        int(weight_bytes), bias_bytes, int(weight_bytes) + bias_bytes, int(n_weights), bpw
    )


def _check_input(x, ndim, what):
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise TypeError(f"x must be a real array, got {describe(x)}")
    if arr.ndim != ndim:
        raise ValueError(f"x must be {ndim}-D {what}, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _check_finite(x):
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or Inf")


def _bn_factors(n_out, mean, var, gamma, beta, eps):
    """Per-output scale gamma / sqrt(var + eps) and shift beta - mean * scale (float64)."""
    arrays = []
    for name, a, default in (
        ("mean", mean, None),
        ("var", var, None),
        ("gamma", gamma, 1.0),
        ("beta", beta, 0.0),
    ):
        if a is None:
            if default is None:
                raise TypeError(f"{name} is required")
            a = np.full(n_out, default)
        a = np.asarray(a)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real array, got {describe(a)}")
        if a.shape != (n_out,):
            raise ValueError(f"{name} must have shape ({n_out},), got {a.shape}")
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or Inf")
        arrays.append(a)
    mean, var, gamma, beta = arrays
    eps = float(eps)
    if not (eps >= 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if np.any(var + eps <= 0):
        raise ValueError("var + eps must be > 0 for every output")
    factor = gamma / np.sqrt(var + eps)
    return factor, beta - mean * factor
