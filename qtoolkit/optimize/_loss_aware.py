"""Loss-aware binarization and ternarization: closed-form proximal Newton steps."""

from __future__ import annotations

import numpy as np
from array_api_compat import device as _device

from .._array import array_namespace, check_axis, describe, is_numpy_array, slice_rows, to_numpy
from .._typing import Array, ArrayT, AxisLike
from .._validation import check_array
from ..rounding import binarize


def _check_w_d(w, d):
    """Validate ``w`` and ``d`` (same shape, real floating, finite, ``d >= 0``); return xp."""
    check_array(w, "w", finite=True)
    check_array(d, "d", finite=True)
    xp = array_namespace(w, d)
    if tuple(d.shape) != tuple(w.shape):
        raise ValueError(f"d must have the shape of w {tuple(w.shape)}, got {describe(d)}")
    if bool(xp.any(d < 0)):
        raise ValueError("d must be non-negative (a diagonal curvature estimate)")
    return xp


def loss_aware_binarize(w: ArrayT, d: Array, *, axis: AxisLike = None) -> ArrayT:
    r"""Proximal Newton step of loss-aware binarization (LAB), :math:`\alpha\,\mathrm{sign}(w)`.

    Parameters
    ----------
    w : array of shape (...)
        Full-precision weights after the optimizer's step, any Array API array.
    d : array of the shape of ``w``
        Non-negative diagonal curvature estimate, e.g. :math:`\sqrt{\hat v} + \epsilon`
        from Adam's second moment.
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales (``0``: one :math:`\alpha` per output
        channel). None: one scale for the tensor.

    Returns
    -------
    w_b : array like ``w``
        The binarized weights :math:`\alpha\,\operatorname{sign}(w)` (sign(0) = +1).

    Raises
    ------
    TypeError
        If ``w`` or ``d`` is not a real floating array.
    ValueError
        If shapes differ, ``d`` is negative, or values are not finite.

    See Also
    --------
    qtoolkit.rounding.binarize : the forward map (``scale="loss_aware"``), called here.
    loss_aware_ternarize : three levels.

    Notes
    -----
    With the loss approximated to second order around the current iterate,
    the step solves

    .. math::

        \min_{\alpha \ge 0,\ b \in \{\pm 1\}^n}\ \tfrac12 \sum_i d_i (w_i - \alpha b_i)^2
        \quad\Rightarrow\quad b = \operatorname{sign}(w), \qquad
        \alpha = \frac{\|d \odot w\|_1}{\|d\|_1},

    where :math:`w` is the full-precision weight after the preconditioned
    gradient step :math:`w \leftarrow w - \eta\, \hat m / d`. With
    :math:`d = 1` this is XNOR-Net's scale.

    References
    ----------
    .. [1] L. Hou, Q. Yao, J. T. Kwok, "Loss-aware Binarization of Deep
       Networks", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import loss_aware_binarize
    >>> loss_aware_binarize(np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 1.0]))
    array([ 1.125, -1.125,  1.125])
    """
    # binarize validates w, d (shape, finite, d >= 0) and axis: the one check of this call
    return binarize(w, scale="loss_aware", axis=axis, d=d)


def _weighted_ternary_alpha(a, dd):
    """Exact optimal scale per row of ``min sum d (|w| - alpha t)^2``, ``t`` in {0, 1}.

    The optimal support is a set of largest ``|w|``: sort, and maximise
    ``(cumsum d|w|)^2 / cumsum d`` over the prefix length.
    """
    order = np.argsort(-a, axis=1, kind="stable")
    sa = np.take_along_axis(a, order, axis=1)
    sd = np.take_along_axis(dd, order, axis=1)
    num = np.cumsum(sd * sa, axis=1)
    den = np.cumsum(sd, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        obj = np.where(den > 0, num * num / np.where(den > 0, den, 1.0), 0.0)
        alpha = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    best = np.argmax(obj, axis=1)
    return alpha[np.arange(a.shape[0]), best]


def loss_aware_ternarize(w: ArrayT, d: Array, *, axis: AxisLike = None) -> ArrayT:
    r"""Exact proximal Newton step of loss-aware ternarization (LAT), :math:`\alpha\,t`.

    Parameters
    ----------
    w : array of shape (...)
        Full-precision weights after the optimizer's step, any Array API array.
    d : array of the shape of ``w``
        Non-negative diagonal curvature estimate (e.g. :math:`\sqrt{\hat v} + \epsilon`).
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales. None: one scale for the tensor.

    Returns
    -------
    w_t : array like ``w``
        The ternarized weights :math:`\alpha\,t`.

    Raises
    ------
    TypeError
        If ``w`` or ``d`` is not a real floating array.
    ValueError
        If shapes differ, ``d`` is negative, or values are not finite.

    See Also
    --------
    loss_aware_binarize : two levels.
    qtoolkit.rounding.ternarize : the unweighted (:math:`d = 1`) ternarizers.

    Notes
    -----
    The step solves exactly

    .. math::

        \min_{\alpha \ge 0,\ t \in \{-1,0,1\}^n}\ \sum_i d_i (w_i - \alpha t_i)^2 .

    For a support :math:`S` the best scale is
    :math:`\alpha_S = \sum_S d_i|w_i| / \sum_S d_i` and the objective drops by
    :math:`(\sum_S d_i|w_i|)^2 / \sum_S d_i`; for a given :math:`\alpha` the
    best support is :math:`\{|w_i| > \alpha/2\}`, a set of largest
    :math:`|w_i|`, so the optimum is found by sorting :math:`|w|` and scanning
    the prefixes (the exact variant of [1]_). The final support is
    :math:`\{|w_i| > \alpha^*/2\}` with its own :math:`\alpha`, which can only
    lower the objective. The sort runs in NumPy (the one data-dependent
    step, as for :func:`qtoolkit.rounding.ternarize` with
    ``method="optimal"``); the result comes back in ``w``'s namespace.

    References
    ----------
    .. [1] L. Hou, J. T. Kwok, "Loss-aware Weight Quantization of Deep
       Networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.optimize import loss_aware_ternarize
    >>> loss_aware_ternarize(np.array([0.1, -1.0, 2.0, 0.9]), np.array([1.0, 1.0, 1.0, 4.0]))
    array([ 0. , -1.1,  1.1,  1.1])
    """
    xp = _check_w_d(w, d)
    axis = check_axis(axis, w.ndim)
    wn = np.asarray(to_numpy(w), dtype=np.float64)
    dn = np.asarray(to_numpy(d), dtype=np.float64)
    a_rows, stat_shape = slice_rows(np.abs(wn), axis)
    d_rows, _ = slice_rows(dn, axis)
    alpha = _weighted_ternary_alpha(a_rows, d_rows).reshape(stat_shape)
    # final support {|w| > alpha/2} and its own weighted scale
    keep = np.abs(wn) > alpha / 2
    red = None if axis is None else tuple(ax for ax in range(wn.ndim) if ax not in axis)
    num = np.sum(np.where(keep, dn * np.abs(wn), 0.0), axis=red, keepdims=True)
    den = np.sum(np.where(keep, dn, 0.0), axis=red, keepdims=True)
    alpha = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    t = np.where(keep, np.where(wn < 0, -1.0, 1.0), 0.0)
    out = t * alpha
    if is_numpy_array(w):
        return out.astype(w.dtype)  # type: ignore[return-value]  # w is a NumPy array here
    return xp.astype(xp.asarray(out, device=_device(w)), w.dtype)
