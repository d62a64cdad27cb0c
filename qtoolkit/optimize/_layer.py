"""Shared pieces of the post-training rounding of a linear layer (GPTQ, AdaRound).

The layer computes ``Y = X @ W.T`` with ``W`` of shape ``(n_out, n_in)`` and
calibration inputs ``X`` of shape ``(n_samples, n_in)``. Both methods round
``W`` onto the same per-output-row (or per-group) uniform grid as
:func:`qtoolkit.rounding.uniform` with ``axis=0`` (the grid fit is
re-implemented here because GPTQ refits it on the error-updated weights, one
group at a time, inside its column loop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._array import check_bits, check_finite, check_int, describe, is_numpy_array
from .._typing import ArrayLike, NDArray
from ..rounding import QuantizedArray
from ._hadamard import IncoherenceTransform

MODES = ("asymmetric", "symmetric")


@dataclass(frozen=True)
class QuantizedLayer:
    """A linear layer's weight rounded onto a grid or codebook, with its codes and grid.

    Returned by every layer method of :mod:`qtoolkit.optimize` (:func:`gptq`,
    :func:`adaround`, :func:`rtn`, :func:`hqq`, :func:`awq`).

    Parameters
    ----------
    weight : numpy.ndarray of shape (n_out, n_in)
        The effective dequantized weight, in the layer's original input basis
        and the input dtype: ``X @ weight.T`` approximates ``X @ W.T``.
    codes : numpy.ndarray of int32, shape (n_out, n_in)
        Integer codes :math:`q` of the *stored* weight :math:`S` (in the
        rotated and scaled basis when ``transform`` / ``input_scale`` are set).
    scale : numpy.ndarray of shape (n_out, n_groups) or None
        Grid step per output row and group (None for a codebook).
    zero_point : numpy.ndarray of shape (n_out, n_groups) or None
        Zero point per output row and group: integer-valued for GPTQ, AdaRound
        and RTN (0 for ``"symmetric"``), real-valued for HQQ; None for a codebook.
    groups : numpy.ndarray of int, shape (n_in,)
        Group index of each input column (all zeros without groups).
    bits : int
        Bits per code.
    dead_inputs : numpy.ndarray of bool, shape (n_in,)
        Input features that are zero in every calibration vector; their
        weights are set to zero (they never reach the output).
    damp : float
        Dampening actually added (relative to the mean Hessian diagonal).
    n_iter : int, default=0
        Iterations run (0 for GPTQ).
    codebook : numpy.ndarray of shape (n_out, n_groups, 2**bits) or None, default=None
        Sorted codewords per row and group for a non-uniform grid
        (:math:`S_{ij} = c_{i, g(j), q_{ij}}`).
    transform : IncoherenceTransform or None, default=None
        The rotation :math:`T` of the inputs (incoherence processing).
    input_scale : numpy.ndarray of shape (n_in,) or None, default=None
        Per-input factor :math:`a` applied to the activations before
        ``transform`` (AWQ's inverse scales, to fold into the previous operation).
    scheme : str, default="uniform"
        ``"uniform"`` (integer zero point), ``"uniform-real-zero"`` (HQQ) or
        ``"codebook"``.
    alpha : float or None, default=None
        AWQ's scale exponent (None for the other methods).

    See Also
    --------
    gptq, adaround, rtn, hqq, awq, output_error

    Notes
    -----
    The stored weight is :math:`S_{ij} = s_{i, g(j)}\\,(q_{ij} - z_{i, g(j)})` (or
    the codeword :math:`c_{i, g(j), q_{ij}}`), with :math:`g(j)` = ``groups[j]``;
    the layer computes :math:`y = S\\,T(a \\odot x)`, so the effective weight is
    :math:`\\hat W = T^{-1}(S)\\,\\operatorname{diag}(a)` (rows of :math:`S`
    transformed by :math:`T^{-1}`).

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
    >>> round(res.bits_per_weight(), 3)  # 2 bits + (16-bit scale + 2-bit zero) / 3 weights
    8.0
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
    codebook: np.ndarray | None = None
    transform: IncoherenceTransform | None = None
    input_scale: np.ndarray | None = None
    scheme: str = "uniform"
    alpha: float | None = None

    def stored_weight(self) -> NDArray[np.floating]:
        """The stored weight, decoded from the codes and the grid or codebook.

        Returns
        -------
        S : numpy.ndarray of shape (n_out, n_in)
            float64 :math:`S` (in the rotated and scaled basis, see Notes of the class).
        """
        g = np.asarray(self.groups)
        rows = np.arange(self.codes.shape[0])[:, None]
        if self.codebook is not None:
            return self.codebook[rows, g[None, :], self.codes]
        return self.scale[:, g] * (self.codes - self.zero_point[:, g])

    def bits_per_weight(self, scale_bits: int = 16) -> float:
        """Storage per weight: codes, scales, zero points, codebooks, transform, input scales.

        Parameters
        ----------
        scale_bits : int, default=16
            Bits of each stored real number (scale, real zero point, codeword,
            input scale, random-block entry). An integer zero point costs
            ``bits`` (0 for a symmetric grid, all zero points 0).

        Returns
        -------
        bpw : float
            Total bits divided by ``n_out * n_in``.
        """
        n_out, n_in = self.codes.shape
        n_groups = int(np.max(self.groups)) + 1 if self.groups.size else 1
        total = self.bits * n_out * n_in
        if self.codebook is not None:
            total += self.codebook.size * scale_bits
        else:
            total += self.scale.size * scale_bits
            if self.scheme == "uniform-real-zero":
                total += self.zero_point.size * scale_bits
            elif np.any(self.zero_point != 0):
                total += n_out * n_groups * self.bits
        if self.transform is not None:
            total += self.transform.storage_bits
        if self.input_scale is not None:
            total += n_in * scale_bits
        return total / (n_out * n_in)

    def to_quantized_array(self) -> QuantizedArray:
        """The stored weight :math:`S` as a :class:`qtoolkit.rounding.QuantizedArray`.

        Contiguous equal groups become ``group_size`` blocks; other layouts
        (act-order groups, a short last group) get a scale and zero point per
        entry. Per-row codebooks (``scheme="codebook"``) become one flat codebook
        of all rows' and groups' codewords, in that order, with the codes offset
        into it (``bits`` = enough for the flat codebook): a faithful form for
        decoding, not a compact one (:meth:`bits_per_weight` counts the compact
        storage). ``transform`` and ``input_scale`` act on the activations and
        are not part of the array.

        Returns
        -------
        q : QuantizedArray
            ``decode(q)`` equals :meth:`stored_weight` up to the dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from qtoolkit.optimize import gptq
        >>> from qtoolkit.rounding import decode
        >>> W = np.random.default_rng(0).normal(size=(4, 16))
        >>> res = gptq(W, np.eye(16), bits=2, grid="optimal")
        >>> q = res.to_quantized_array()
        >>> q.codebook.shape, q.bits
        ((16,), 4)
        >>> bool(np.array_equal(decode(q), res.stored_weight()))
        True
        """
        from qtoolkit.rounding import QuantizedArray

        dtype = str(self.weight.dtype)
        pdt = param_dtype(dtype)  # the parameters are exact in it (float32 for float16)
        if self.codebook is not None:
            n_out, n_groups, k = self.codebook.shape
            g = np.asarray(self.groups)
            offset = (np.arange(n_out)[:, None] * n_groups + g[None, :]) * k
            flat = self.codebook.reshape(-1)
            return QuantizedArray(
                codes=(self.codes + offset).astype(np.int64),
                scale=None,
                codebook=flat.astype(pdt),
                bits=max(1, int(flat.size - 1).bit_length()),
                dtype=dtype,
                scheme="codebook",
            )
        n_in = self.codes.shape[1]
        g = np.asarray(self.groups)
        n_groups = self.scale.shape[1]
        gs = -(-n_in // n_groups)
        contiguous = np.array_equal(g, np.arange(n_in) // gs) and n_in % gs == 0
        if n_groups == 1:
            scale, zero, group_size = self.scale, self.zero_point, None
        elif contiguous:
            scale, zero, group_size = self.scale[..., None], self.zero_point[..., None], gs
        else:
            scale, zero, group_size = self.scale[:, g], self.zero_point[:, g], None
        return QuantizedArray(
            codes=self.codes,
            scale=scale.astype(pdt),
            zero_point=zero.astype(pdt),
            bits=self.bits,
            axis=(0,),
            group_size=group_size,
            dtype=dtype,
            scheme="uniform",
        )


def levels(bits, mode):
    """``(qmin, qmax)`` of the integer grid (as :func:`qtoolkit.rounding.uniform`)."""
    if mode == "symmetric":
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def param_dtype(dtype):
    """The dtype a layer's real parameters are stored in: float64 for float64 weights, else
    float32 (float16 weights get float32 scales: a float16 step can underflow)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def storable(x, dtype):
    """``x`` (float64) rounded to :func:`param_dtype` of ``dtype`` and back to float64, so that
    a file holding the parameters in that dtype reproduces the weights computed from them
    exactly; None leaves ``x`` unchanged. Values beyond the float32 range are clipped to it."""
    if dtype is None or param_dtype(dtype) == np.float64:
        return x
    big = float(np.finfo(np.float32).max)
    return np.clip(x, -big, big).astype(np.float32).astype(np.float64)


def fit_grid(w, qmin, qmax, mode, dtype=None):
    """Per-row min-max grid ``(scale, zero)`` of shape ``(n_rows,)`` for the block ``w``;
    the scales are :func:`storable` in ``dtype``."""
    if mode == "symmetric":
        hi = np.abs(w).max(axis=1) if w.size else np.zeros(w.shape[0])
        scale = storable(hi / qmax, dtype)
        return np.where(scale > 0, scale, 1.0), np.zeros(w.shape[0])
    hi = np.maximum(w.max(axis=1), 0.0)
    lo = np.minimum(w.min(axis=1), 0.0)
    scale = storable((hi - lo) / (qmax - qmin), dtype)
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


def hessian(X):
    """``X.T @ X / n_samples`` in float64 and the mask of dead inputs (zero diagonal)."""
    X = np.asarray(X, dtype=np.float64)
    H = X.T @ X
    H /= X.shape[0]
    dead = np.diag(H) == 0
    return H, dead


def output_error(W: ArrayLike, W_hat: ArrayLike, X: ArrayLike, *, relative: bool = False) -> float:
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
