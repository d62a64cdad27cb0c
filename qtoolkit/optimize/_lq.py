"""LQ-Nets: a learned quantizer basis, fitted by quantization-error minimisation (QEM)."""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from .._array import (
    MAX_ITER,
    check_axis,
    check_bits,
    check_finite,
    check_int,
    describe,
    is_numpy_array,
    slice_rows,
)
from .._typing import ArrayLike, AxisLike, NDArray
from .._validation import check_real, renamed_parameters
from ..rounding import CodedValues, round_to_codebook


def _combos(k, signed):
    """All ``2**k`` code vectors ``e`` as rows: bit ``j`` of the row index is ``e_j``."""
    bitsmat = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
    return (2.0 * bitsmat - 1.0) if signed else bitsmat.astype(np.float64)


def _assign(x, v, E):
    """Index (into ``E``) of the nearest level ``E @ v`` for each entry of ``x``."""
    lv = E @ v
    uniq, first = np.unique(lv, return_index=True)
    if uniq.size == 1:
        return np.full(x.shape, first[0])
    _, idx = round_to_codebook(x, uniq, return_codes=True)
    return first[idx]


def _qem_row(x, v, E, n_iter, delta):
    k = v.size
    for _ in range(n_iter):
        c = _assign(x, v, E)
        counts = np.bincount(c, minlength=E.shape[0]).astype(np.float64)
        sums = np.bincount(c, weights=x, minlength=E.shape[0])
        BtB = E.T @ (counts[:, None] * E) + delta * np.eye(k)
        Btx = E.T @ sums + delta * v
        try:
            v = np.linalg.solve(BtB, Btx)
        except np.linalg.LinAlgError:
            v = np.linalg.lstsq(BtB, Btx, rcond=None)[0]
    return v


def _check_x(x, name="x"):
    if not is_numpy_array(x) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a real floating NumPy array, got {describe(x)}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got {describe(x)}")
    check_finite(x, name)
    return x


def _check_basis(basis, n_rows, k, name="basis"):
    b = np.asarray(basis, dtype=np.float64) if basis is not None else None
    if b is None:
        return None
    if b.size != n_rows * k:
        raise ValueError(
            f"{name} must hold {k} coefficients per slice ({n_rows} slices), got shape {b.shape}"
        )
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} contains NaN or Inf")
    return b.reshape(n_rows, k)


@renamed_parameters({"n_iter": "max_iter"})
def lq_fit(
    x: ArrayLike,
    bits: int = 2,
    *,
    signed: bool = True,
    axis: AxisLike = None,
    max_iter: int = 10,
    delta: float = 0.0,
    basis: ArrayLike | None = None,
) -> NDArray[np.floating]:
    r"""Learn the LQ-Nets quantizer basis of a tensor by quantization-error minimisation.

    The quantizer has :math:`2^K` levels :math:`v^\top e`, :math:`e \in \{-1, 1\}^K`
    (weights) or :math:`\{0, 1\}^K` (activations), spanned by a learned basis
    :math:`v \in \mathbb{R}^K`.

    Parameters
    ----------
    x : numpy.ndarray of shape (...)
        Weights, or a batch of activations, real floating, finite.
    bits : int, default=2
        :math:`K`, the number of basis vectors (bits per value), in [1, 8].
    signed : bool, default=True
        ``True``: :math:`e \in \{-1, 1\}^K` (weights); ``False``:
        :math:`e \in \{0, 1\}^K` (activations after a ReLU).
    axis : int, tuple of int or None, default=None
        Axes that keep separate bases (``0``: one per output channel, as in
        LQ-Nets for weights). None: one basis.
    max_iter : int, default=10
        QEM iterations (each: assign codes, then solve for the basis). At most ``10**6``.
    delta : float, default=0.0
        Proximal weight :math:`\delta` that keeps the basis near its previous
        value (useful when fitting activations batch after batch, warm-started
        with ``basis``).
    basis : numpy.ndarray or None, default=None
        Initial basis, ``K`` coefficients per slice. None: the uniform grid
        :math:`v = c\,(1, 2, \dots, 2^{K-1})` with the top level at
        :math:`\max |x|`.

    Returns
    -------
    basis : numpy.ndarray of shape (K,) or (n_slices, K)
        The learned basis (one row per slice of the kept axes, in C order).

    Raises
    ------
    TypeError
        If ``x`` is not a real floating NumPy array or an integer parameter is not an integer.
    ValueError
        If ``x`` is empty or not finite, or a parameter is out of range.

    See Also
    --------
    lq_quantize : apply a basis.
    qtoolkit.codebooks : unstructured learned codebooks (k-means).

    Notes
    -----
    QEM alternates the two exact minimisations of :math:`\|x - B v\|^2`, where
    row :math:`i` of :math:`B` is the code :math:`e` of :math:`x_i`:

    .. math::

        e_i = \arg\min_{e} |x_i - v^\top e|, \qquad
        v \leftarrow (B^\top B + \delta I)^{-1} (B^\top x + \delta\, v_{\text{old}}),

    so with :math:`\delta = 0` the error never increases. :math:`B^\top B`
    and :math:`B^\top x` are accumulated per level (:math:`2^K` of them), so an
    iteration costs one nearest-level search over the data. A singular
    :math:`B^\top B` (unused levels) is solved in the least-squares sense.

    References
    ----------
    .. [1] D. Zhang, J. Yang, D. Ye, G. Hua, "LQ-Nets: Learned Quantization for
       Highly Accurate and Compact Deep Neural Networks", ECCV 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import lq_fit, lq_quantize
    >>> x = np.random.default_rng(0).normal(size=1000)
    >>> v = lq_fit(x, bits=2)
    >>> xq = lq_quantize(x, v)
    >>> len(np.unique(xq))
    4
    """
    x = _check_x(x)
    k = check_bits(bits, "bits", low=1, high=8)
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool, got {describe(signed)}")
    axis = check_axis(axis, x.ndim)
    max_iter = check_int(max_iter, "max_iter", low=0, high=MAX_ITER)
    delta = check_real(delta, "delta", low=0)
    rows, _ = slice_rows(np.asarray(x, dtype=np.float64), axis)
    init = _check_basis(basis, rows.shape[0], k)
    E = _combos(k, signed)
    out = np.empty((rows.shape[0], k))
    for i, r in enumerate(rows):
        if init is None:
            top = float(np.max(np.abs(r))) if signed else float(np.max(r))
            c = top / (2**k - 1) if top > 0 else 1.0
            v = c * 2.0 ** np.arange(k)
        else:
            v = init[i]
        out[i] = _qem_row(r, v, E, max_iter, delta)
    return out[0] if axis is None else out


@overload
def lq_quantize(
    x: ArrayLike,
    basis: ArrayLike,
    *,
    signed: bool = True,
    axis: AxisLike = None,
    return_codes: Literal[False] = False,
) -> NDArray[np.floating]: ...
@overload
def lq_quantize(
    x: ArrayLike,
    basis: ArrayLike,
    *,
    signed: bool = True,
    axis: AxisLike = None,
    return_codes: Literal[True],
) -> CodedValues: ...
@overload
def lq_quantize(
    x: ArrayLike,
    basis: ArrayLike,
    *,
    signed: bool = True,
    axis: AxisLike = None,
    return_codes: bool = False,
) -> NDArray[np.floating] | CodedValues: ...
def lq_quantize(
    x: ArrayLike,
    basis: ArrayLike,
    *,
    signed: bool = True,
    axis: AxisLike = None,
    return_codes: bool = False,
) -> NDArray[np.floating] | CodedValues:
    r"""Quantize with an LQ-Nets basis: each value becomes its nearest level :math:`v^\top e`.

    Parameters
    ----------
    x : numpy.ndarray of shape (...)
        Values, real floating, finite.
    basis : numpy.ndarray of shape (K,) or (n_slices, K)
        Basis from :func:`lq_fit` (one row per slice of ``axis``).
    signed : bool, default=True
        Code alphabet :math:`\{-1, 1\}` (True) or :math:`\{0, 1\}` (False).
    axis : int, tuple of int or None, default=None
        Axes that keep separate bases, as in :func:`lq_fit`.
    return_codes : bool, default=False
        Also return the integer codes (bit :math:`j` of a code is :math:`e_j`,
        with :math:`-1` stored as 0 when ``signed``).

    Returns
    -------
    x_q : numpy.ndarray like ``x``
        Quantized values, in ``x``'s dtype; with ``return_codes``, a
        :class:`qtoolkit.rounding.CodedValues` ``(values, codes)`` instead.
    codes : numpy.ndarray of int64 like ``x``
        Only when ``return_codes``.

    Raises
    ------
    TypeError
        If ``x`` is not a real floating NumPy array.
    ValueError
        If ``x`` is empty or not finite, or ``basis`` has the wrong size.

    See Also
    --------
    lq_fit

    Notes
    -----
    .. math::

        q(x) = v^\top e^*, \qquad e^* = \arg\min_{e} |x - v^\top e| .

    References
    ----------
    .. [1] D. Zhang et al., "LQ-Nets: Learned Quantization for Highly Accurate
       and Compact Deep Neural Networks", ECCV 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import lq_quantize
    >>> lq_quantize(np.array([0.1, 0.9, 2.2, 3.5]), np.array([1.0, 2.0]), signed=False,
    ...             return_codes=True)
    CodedValues(values=array([0., 1., 2., 3.]), codes=array([0, 1, 2, 3]))
    """
    x = _check_x(x)
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool, got {describe(signed)}")
    axis = check_axis(axis, x.ndim)
    rows, _ = slice_rows(np.asarray(x, dtype=np.float64), axis)
    b = np.asarray(basis, dtype=np.float64)
    if b.ndim not in (1, 2) or b.shape[-1] < 1 or b.shape[-1] > 8:
        raise ValueError(
            f"basis must have shape (K,) or (n_slices, K) with K in [1, 8], got {describe(basis)}"
        )
    k = b.shape[-1]
    b = _check_basis(b, rows.shape[0], k)
    E = _combos(k, signed)
    codes = np.empty(rows.shape, dtype=np.int64)
    vals = np.empty_like(rows)
    for i, r in enumerate(rows):
        codes[i] = _assign(r, b[i], E)
        vals[i] = (E @ b[i])[codes[i]]
    kept = () if axis is None else axis
    rest = tuple(ax for ax in range(x.ndim) if ax not in kept)
    shape_t = [x.shape[ax] for ax in kept + rest]
    inv = np.argsort(kept + rest)
    xq = np.transpose(vals.reshape(shape_t), inv).astype(x.dtype)
    if return_codes:
        return CodedValues(xq, np.transpose(codes.reshape(shape_t), inv))
    return xq
