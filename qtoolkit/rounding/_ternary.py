"""Ternarization: TWN's rule of thumb, the exact least-squares optimum, and TTQ."""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
from array_api_compat import device as _device
from array_api_compat import is_dask_array

from .._array import check_axis, describe, slice_rows
from .._array import to_numpy as _as_numpy
from .._typing import ArrayT, AxisLike
from .._validation import check_array, check_choice, check_finite, check_real
from ._common import (
    _asarray_like,
    _is_numpy,
    _reduce,
)
from ._quantized import QuantizedArray, _codebook_like, _dtype_name
from ._rounding_kernels import ternary_scan

TERNARY_METHODS = ("twn", "optimal", "ttq")


def _optimal_rows(a):
    """Exact ternary optimum of each row of ``a`` (non-negative, float; sorted in place).

    Returns ``(delta, alpha)`` per row: the threshold and the scale that
    minimise :math:`\\|w - \\alpha t\\|^2`. Candidates are the thresholds
    :math:`\\Delta \\ge 0` that select the top ``n - j`` entries of the sorted row;
    the objective is :math:`S_j^2 / (n - j)` with :math:`S_j` the sum of the
    selected entries.
    """
    if a.shape[0] == 1:
        a.reshape(-1).sort()
    else:
        a.sort(axis=1)
    m = a.shape[0]
    delta = np.empty(m, dtype=np.float64)
    alpha = np.empty(m, dtype=np.float64)
    # One pass per row from the largest entry down, the suffix sum in float64.
    ternary_scan(a, delta, alpha)
    return delta, alpha


def _optimal_threshold_xp(w, xp, kept):
    """The exact optimum in ``w``'s own namespace: sort, cumulative sums, argmax."""
    a, stat_shape = slice_rows(xp.abs(w), kept, xp)
    a = xp.sort(a, axis=1)
    n = a.shape[1]
    a64 = xp.astype(a, xp.float64)
    # suffix[:, j] = sum(a[:, j:]) for the selection |w| > a[:, j - 1]
    suffix = xp.flip(xp.cumulative_sum(xp.flip(a64, axis=1), axis=1), axis=1)
    count = xp.astype(xp.arange(n, 0, -1, device=_device(w)), xp.float64)
    prev = xp.concat([xp.zeros_like(a64[:, :1]), a64[:, :-1]], axis=1)
    valid = (a64 > 0) & ((a64 > prev) | (xp.arange(n, device=_device(w)) == 0))
    obj = xp.where(valid, suffix * suffix / count, -xp.ones_like(a64))
    j = xp.argmax(obj, axis=1)
    pick = xp.arange(n, device=_device(w))[None, :] == j[:, None]
    zero = xp.zeros_like(a64)
    found = xp.max(obj, axis=1) >= 0
    alpha = xp.where(found, xp.sum(xp.where(pick, suffix / count, zero), axis=1), 0.0)
    delta = xp.where(found, xp.sum(xp.where(pick, prev, zero), axis=1), 0.0)
    return (
        xp.astype(xp.reshape(delta, stat_shape), w.dtype),
        xp.astype(xp.reshape(alpha, stat_shape), w.dtype),
    )


def _optimal_threshold(w, xp, kept):
    """Threshold and scale of the exact optimum, as arrays of ``w``'s kind (keepdims).

    NumPy arrays are handled in place on a copy of :math:`|w|` by the
    compiled scan. Dask arrays are computed here, for this data-dependent
    step only, and the two scalars per slice come back as Dask arrays; every
    other namespace sorts and scans in its own namespace, on its device.
    """
    if not _is_numpy(xp) and not is_dask_array(w):
        return _optimal_threshold_xp(w, xp, kept)
    a = np.abs(_as_numpy(w))
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    rows, stat_shape = slice_rows(a, kept)
    rows = np.ascontiguousarray(rows)
    delta, alpha = _optimal_rows(rows)
    delta = delta.reshape(stat_shape)
    alpha = alpha.reshape(stat_shape)
    if _is_numpy(xp):
        return delta.astype(w.dtype), alpha.astype(w.dtype)
    return _asarray_like(delta, w, xp), _asarray_like(alpha, w, xp)


def _mean_where(x, mask, xp, kept):
    """Mean of ``x`` over entries where ``mask`` holds, per slice (0 if none)."""
    z = xp.zeros_like(x)
    num = _reduce(xp.sum, xp.where(mask, x, z), kept)
    cnt = _reduce(xp.sum, xp.where(mask, xp.ones_like(x), z), kept)
    return xp.where(cnt > 0, num / xp.where(cnt > 0, cnt, cnt + 1), xp.zeros_like(num))


def _ternary(w, xp, method, delta, threshold, axis, scales):
    """``(t, alpha_pos, alpha_neg, Delta)`` with ``t`` in {-1, 0, +1} as floats; validated input."""
    a = xp.abs(w)
    if method == "twn":
        thr = delta * _reduce(xp.mean, a, axis)
    elif method == "ttq":
        thr = threshold * _reduce(xp.max, a, axis)
    else:
        thr, alpha = _optimal_threshold(w, xp, axis)
    pos = w > thr
    neg = w < -thr
    zero = xp.zeros_like(w)
    one = xp.ones_like(w)
    t = xp.where(pos, one, xp.where(neg, -one, zero))
    if method == "optimal":
        return t, alpha, alpha, thr
    if method == "twn":
        alpha = _mean_where(a, pos | neg, xp, axis)
        return t, alpha, alpha, thr
    if scales is not None:
        wp = _asarray_like(scales[0], w, xp)
        wn = _asarray_like(scales[1], w, xp)
        return t, wp, wn, thr
    return t, _mean_where(a, pos, xp, axis), _mean_where(a, neg, xp, axis), thr


def _validate_ternarize(w, method, delta, threshold, axis, scales):
    w, xp = check_array(w, "w")
    method = check_choice(method, "method", TERNARY_METHODS)
    delta = check_real(delta, "delta", low=0, low_inclusive=False)
    threshold = check_real(threshold, "threshold", low=0, low_inclusive=False)
    if threshold >= 1:
        raise ValueError(
            f"threshold is a fraction of max|w| and must be in (0, 1), got {threshold}"
        )
    axis = check_axis(axis, w.ndim)
    if scales is not None:
        if method != "ttq":
            raise ValueError(
                f"scales=(W_p, W_n) is used only with method='ttq', got method={method!r}"
            )
        ok = (
            isinstance(scales, (tuple, list))
            and len(scales) == 2
            and all(
                isinstance(s, numbers.Real)
                and not isinstance(s, bool)
                and math.isfinite(s)
                and s >= 0
                for s in scales
            )
        )
        if not ok:
            raise ValueError(
                f"scales must be a pair of finite non-negative numbers "
                f"(W_p, W_n), got {describe(scales)}"
            )
    check_finite(w, "w", xp)
    return w, xp, method, delta, threshold, axis


def ternarize(
    w: ArrayT,
    method: Literal["twn", "optimal", "ttq"] = "twn",
    delta: float = 0.7,
    threshold: float = 0.05,
    axis: AxisLike = None,
    scales: tuple[float, float] | None = None,
) -> ArrayT:
    """Ternarize to :math:`\\{-\\alpha_n, 0, +\\alpha_p\\}` with a threshold :math:`\\Delta`.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor to ternarize, in any Array API namespace.
    method : {"twn", "optimal", "ttq"}, default="twn"
        ``"twn"``: :math:`\\Delta = \\delta\\,\\mathbb{E}|w|` and
        :math:`\\alpha` the mean of :math:`|w|` above :math:`\\Delta`.
        ``"optimal"``: the exact minimiser of :math:`\\|w - \\alpha t\\|^2`,
        found with one sort of :math:`|w|`. ``"ttq"``: :math:`\\Delta =
        t\\,\\max|w|` with separate positive and negative scales.
    delta : float, default=0.7
        TWN's factor :math:`\\delta` (0.75 in the paper's latest version).
    threshold : float, default=0.05
        TTQ's fraction :math:`t` of :math:`\\max|w|`, in (0, 1).
    axis : int, tuple of int or None, default=None
        Axes that keep separate thresholds and scales. None: per tensor.
    scales : tuple (W_p, W_n) of float or None, default=None
        TTQ only: trained positive and negative scales. None: the
        least-squares values, the means of :math:`|w|` over the positive and
        the negative selected entries.

    Returns
    -------
    w_t : array, same shape, dtype, namespace and device as ``w``
        :math:`\\alpha_p` where :math:`w > \\Delta`, :math:`-\\alpha_n` where
        :math:`w < -\\Delta`, 0 elsewhere.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array.
    ValueError
        If ``method`` is unknown, ``w`` is empty or holds NaN/Inf, ``delta``
        or ``threshold`` is out of range, or ``axis`` is out of bounds.

    See Also
    --------
    binarize : Two levels.
    uniform : :math:`2^b` levels.

    Notes
    -----
    With :math:`t_i = \\mathrm{sign}(w_i)\\,1_{|w_i| > \\Delta}` and
    :math:`I_\\Delta = \\{i : |w_i| > \\Delta\\}`,

    .. math::

        \\alpha^*(\\Delta) = \\frac{1}{|I_\\Delta|} \\sum_{i \\in I_\\Delta} |w_i|,
        \\qquad
        \\Delta^* = \\arg\\max_\\Delta
        \\frac{\\big(\\sum_{i \\in I_\\Delta} |w_i|\\big)^2}{|I_\\Delta|}.

    ``"optimal"`` evaluates the objective at every distinct threshold after
    one sort (:math:`O(n \\log n)`) and reports as :math:`\\Delta` the
    largest :math:`|w|` left out. For a Dask array that step computes
    :math:`|w|` once, eagerly, to find the thresholds; the returned array is
    still a lazy Dask array. Other namespaces (PyTorch, CuPy, JAX...) sort
    and scan in their own namespace, on their device. TWN and TTQ stay
    fully lazy. The
    pseudo-gradient is the straight-through estimator (TTQ also trains
    :math:`W_p, W_n` from the gradient summed over their entries).

    References
    ----------
    .. [1] F. Li, B. Zhang, B. Liu, "Ternary Weight Networks",
       arXiv:1605.04711, 2016.
    .. [2] C. Zhu, S. Han, H. Mao, W. J. Dally, "Trained Ternary
       Quantization", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import ternarize
    >>> w = np.array([-1.0, -0.1, 0.05, 0.6, 1.0])
    >>> ternarize(w)
    array([-0.86666667,  0.        ,  0.        ,  0.86666667,  0.86666667])
    >>> ternarize(w, method="ttq")
    array([-0.55, -0.55,  0.  ,  0.8 ,  0.8 ])
    """
    w, xp, method, delta, threshold, axis = _validate_ternarize(
        w, method, delta, threshold, axis, scales
    )
    t, ap, an = _ternary_levels(w, xp, method, delta, threshold, axis, scales)
    if _is_numpy(xp) and t.dtype == np.int8:  # the per-tensor NumPy paths: in place
        out = t.astype(w.dtype)
        out *= ap
        return out
    if method == "ttq":
        return xp.where(t > 0, t * ap, t * an)
    return t * ap


def _ternary_levels(w, xp, method, delta, threshold, axis, scales):
    """``(t, alpha_pos, alpha_neg)`` of :func:`ternarize`, for the values and for the codes.

    ``t`` holds -1, 0, +1: int8 on the per-tensor NumPy paths of TWN and the
    exact optimum (where the scales are 0-d arrays of ``w``'s dtype), floats
    of ``w``'s dtype otherwise. Validated input.
    """
    if _is_numpy(xp) and axis is None and method in ("optimal", "twn"):
        t, alpha = _optimal_numpy(w) if method == "optimal" else _twn_numpy(w, delta)
        alpha = np.asarray(alpha, dtype=w.dtype)
        return t, alpha, alpha
    t, ap, an, _ = _ternary(w, xp, method, delta, threshold, axis, scales)
    return t, ap, an


def _optimal_numpy(w):
    """Per-tensor exact optimum on NumPy (one in-place sort of a copy of |w|): ``(t, alpha)``."""
    a = np.abs(w, dtype=np.float32 if w.dtype == np.float16 else w.dtype)
    a = a.reshape(1, -1)
    delta, alpha = _optimal_rows(a)
    thr = w.dtype.type(delta[0])
    t = np.subtract(np.greater(w, thr), np.less(w, -thr), dtype=np.int8)
    return t, w.dtype.type(alpha[0])


def _twn_numpy(w, delta):
    """Per-tensor TWN on NumPy with in-place ufuncs: ``(t, alpha)``."""
    thr = delta * np.abs(w).mean()
    t = np.subtract(np.greater(w, thr), np.less(w, -thr), dtype=np.int8)
    count = np.count_nonzero(t)
    # sum of |w| over the selected entries = sum(t * w), summed pairwise
    alpha = np.multiply(t.astype(w.dtype), w).sum() / count if count else 0.0
    return t, alpha


def encode_ternary(w, method="twn", delta=0.7, threshold=0.05, axis=None, scales=None):
    """The codes of :func:`ternarize`: ``t + 1`` in {0, 1, 2} on the codebook (-1, 0, +1).

    Takes the parameters of :func:`ternarize` and validates them as it does.
    The thresholds and scales are computed once, by the same code as the
    forward map, so ``decode(encode_ternary(w, ...))`` equals
    ``ternarize(w, ...)`` bit for bit.

    Returns
    -------
    q : QuantizedArray
        int8 codes, the positive scale ``scale`` (and ``scale_neg`` for
        ``method="ttq"``), the codebook ``[-1, 0, 1]``, ``bits=2``,
        ``scheme="ternary"``.
    """
    w, xp, method, delta, threshold, axis = _validate_ternarize(
        w, method, delta, threshold, axis, scales
    )
    t, ap, an = _ternary_levels(w, xp, method, delta, threshold, axis, scales)
    return QuantizedArray(
        codes=xp.astype(t + 1, xp.int8),
        scale=ap,
        scale_neg=an if method == "ttq" else None,
        codebook=_codebook_like((-1, 0, 1), w, xp),
        bits=2,
        axis=axis,
        dtype=_dtype_name(w),
        scheme="ternary",
    )
