"""Shared pieces of the post-training rounding of a linear layer (GPTQ, AdaRound).

The layer computes ``Y = X @ W.T`` with ``W`` of shape ``(n_out, n_in)`` and
calibration inputs ``X`` of shape ``(n_samples, n_in)``. Both methods round
``W`` onto the same per-output-row (or per-group) uniform grid as
:func:`qtoolkit.rounding.uniform` with ``axis=0`` (the grid fit is
re-implemented here because GPTQ refits it on the error-updated weights, one
group at a time, inside its column loop).
"""

import numbers
from dataclasses import dataclass

import numpy as np

from .._array import check_bits, check_finite, check_int, describe, is_numpy_array

MODES = ("asymmetric", "symmetric")


@dataclass(frozen=True)
class QuantizedLayer:
    """A linear layer's weight rounded onto a uniform grid, with its codes and grid.

    Returned by :func:`gptq` and :func:`adaround`.

    Parameters
    ----------
    weight : numpy.ndarray of shape (n_out, n_in)
        The dequantized weight :math:`\\hat W = s\\,(q - z)`, in the input dtype.
    codes : numpy.ndarray of int32, shape (n_out, n_in)
        Integer codes :math:`q` in ``[qmin, qmax]``.
    scale : numpy.ndarray of shape (n_out, n_groups)
        Grid step per output row and group.
    zero_point : numpy.ndarray of shape (n_out, n_groups)
        Integer-valued zero point per output row and group (0 for ``"symmetric"``).
    groups : numpy.ndarray of int, shape (n_in,)
        Group index of each input column (all zeros without groups).
    bits : int
        Bits per code.
    dead_inputs : numpy.ndarray of bool, shape (n_in,)
        Input features that are zero in every calibration vector; their
        weights are set to zero (they never reach the output).
    damp : float
        Dampening actually added (relative to the mean Hessian diagonal).
    n_iter : int
        Iterations run (0 for GPTQ).

    See Also
    --------
    gptq, adaround, output_error

    Notes
    -----
    :math:`\\hat W_{ij} = s_{i, g(j)}\\,(q_{ij} - z_{i, g(j)})` with :math:`g(j)`
    = ``groups[j]``.

    References
    ----------
    .. [1] E. Frantar, S. P. Singh, D. Alistarh, "Optimal Brain Compression",
       NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import gptq
    >>> res = gptq(np.array([[0.1, -0.7, 0.4]]), np.eye(3), bits=2)
    >>> res.codes
    array([[2, 0, 3]], dtype=int32)
    >>> bool(np.allclose(res.weight, res.scale[0, 0] * (res.codes - res.zero_point[0, 0])))
    True
    """

    weight: np.ndarray
    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    groups: np.ndarray
    bits: int
    dead_inputs: np.ndarray
    damp: float
    n_iter: int = 0


def levels(bits, mode):
    """``(qmin, qmax)`` of the integer grid (as :func:`qtoolkit.rounding.uniform`)."""
    if mode == "symmetric":
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def fit_grid(w, qmin, qmax, mode):
    """Per-row min-max grid ``(scale, zero)`` of shape ``(n_rows,)`` for the block ``w``."""
    if mode == "symmetric":
        hi = np.abs(w).max(axis=1) if w.size else np.zeros(w.shape[0])
        scale = hi / qmax
        return np.where(scale > 0, scale, 1.0), np.zeros(w.shape[0])
    hi = np.maximum(w.max(axis=1), 0.0)
    lo = np.minimum(w.min(axis=1), 0.0)
    scale = (hi - lo) / (qmax - qmin)
    scale = np.where(scale > 0, scale, 1.0)
    zero = np.clip(np.round(qmin - lo / scale), qmin, qmax)
    return scale, zero


def quantize_column(w, scale, zero, qmin, qmax):
    """Round ``w`` to the grid: codes (float) and dequantized values."""
    q = np.clip(np.round(w / scale) + zero, qmin, qmax)
    return q, (q - zero) * scale


def check_layer(W, X, bits, mode, w_name="W"):
    """Validate a weight, its calibration inputs, the bit width and the grid mode."""
    for name, a in ((w_name, W), ("X", X)):
        if not is_numpy_array(a):
            raise TypeError(f"{name} must be a 2-D NumPy array of real floats, got {describe(a)}")
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {describe(a)}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(
                f"{name} must be a real floating array (float16/32/64), got {describe(a)}"
            )
        check_finite(a, name)
    if W.shape[1] != X.shape[1]:
        raise ValueError(
            f"X must have one column per input of {w_name} ({w_name} has shape "
            f"{W.shape}: {W.shape[1]} inputs), got X of shape {X.shape}"
        )
    if W.size == 0 or X.shape[0] == 0:
        raise ValueError(
            f"{w_name} and X must not be empty, got {w_name} {W.shape} and X {X.shape}"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    bits = check_bits(bits, "bits", low=2 if mode == "symmetric" else 1, high=16)
    return bits


def check_group_size(group_size, n_in):
    """None or an int in [1, n_in]."""
    return check_int(group_size, "group_size", low=1, high=n_in, allow_none=True)


def check_nonneg_float(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def hessian(X):
    """``X.T @ X / n_samples`` in float64 and the mask of dead inputs (zero diagonal)."""
    X = np.asarray(X, dtype=np.float64)
    H = X.T @ X
    H /= X.shape[0]
    dead = np.diag(H) == 0
    return H, dead


def output_error(W, W_hat, X, *, relative=False):
    r"""Layer-output error :math:`\|X W^\top - X \hat W^\top\|_F^2` on calibration inputs.

    Parameters
    ----------
    W : numpy.ndarray of shape (n_out, n_in)
        Original weight.
    W_hat : numpy.ndarray of shape (n_out, n_in)
        Quantized weight.
    X : numpy.ndarray of shape (n_samples, n_in)
        Inputs of the layer.
    relative : bool, default=False
        Divide by :math:`\|X W^\top\|_F^2`.

    Returns
    -------
    error : float
        The squared Frobenius error (computed in float64).

    Raises
    ------
    TypeError
        If an argument is not a real floating NumPy array.
    ValueError
        If shapes disagree or values are not finite.

    See Also
    --------
    gptq, adaround

    Notes
    -----
    .. math::

        E = \|X (W - \hat W)^\top\|_F^2 = \operatorname{tr}\big((W - \hat W)\,
        X^\top X\,(W - \hat W)^\top\big).

    References
    ----------
    .. [1] M. Nagel, R. A. Amjad, M. van Baalen, C. Louizos, T. Blankevoort,
       "Up or Down? Adaptive Rounding for Post-Training Quantization", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import output_error
    >>> output_error(np.array([[1.0, 2.0]]), np.array([[1.0, 1.5]]), np.array([[1.0, 2.0]]))
    1.0
    """
    check_layer(W, X, 1, "asymmetric")
    if getattr(W_hat, "shape", None) != W.shape:
        raise ValueError(f"W_hat must have the shape of W {W.shape}, got {describe(W_hat)}")
    check_layer(W_hat, X, 1, "asymmetric")
    X64 = np.asarray(X, dtype=np.float64)
    err = float(np.sum((X64 @ (np.asarray(W, np.float64) - W_hat).T) ** 2))
    if relative:
        ref = float(np.sum((X64 @ np.asarray(W, np.float64).T) ** 2))
        return err / ref if ref > 0 else (0.0 if err == 0 else np.inf)
    return err
