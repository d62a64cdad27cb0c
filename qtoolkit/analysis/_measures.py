"""Measurements: angle, cosine, MSE, SQNR, angle preservation, dot-product proportionality.

Every function here takes arrays of any Array API namespace (NumPy, PyTorch,
CuPy, JAX, Dask, array-api-strict) and returns arrays of the same namespace.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from .._array import array_namespace, check_axis, describe, is_lazy
from .._typing import ArrayLike, ArrayT, AxisLike
from .._validation import check_finite

__all__ = [
    "DotProductFit",
    "PairwiseAngles",
    "angle",
    "angle_preservation",
    "cosine",
    "dot_product_proportionality",
    "mse",
    "pairwise_angle_preservation",
    "sqnr",
]

DotProductFit = namedtuple("DotProductFit", ["r", "slope", "intercept"])
DotProductFit.__doc__ = """Least-squares fit of quantized against real dot products, per output.

Parameters
----------
r : array
    Pearson correlation between ``a . w`` and ``a . q(w)`` over the activations.
slope : array
    Slope of the least-squares line ``a . q(w) ~ slope * (a . w) + intercept``.
intercept : array
    Intercept of that line.

See Also
--------
dot_product_proportionality : Returns it.

Examples
--------
>>> from qtoolkit.analysis import DotProductFit
>>> DotProductFit(r=0.8, slope=0.8, intercept=0.0).r
0.8
"""
PairwiseAngles = namedtuple("PairwiseAngles", ["before", "after"])
PairwiseAngles.__doc__ = """Angles between all pairs of vectors, before and after quantization.

Parameters
----------
before : array of shape (n * (n - 1) / 2,)
    Angles between the real vectors, pairs (i, j) with i < j in the order of
    :func:`scipy.spatial.distance.pdist`.
after : array of shape (n * (n - 1) / 2,)
    Angles between the quantized vectors, same order.

See Also
--------
pairwise_angle_preservation : Returns it.

Examples
--------
>>> from qtoolkit.analysis import PairwiseAngles
>>> PairwiseAngles(before=[0.5], after=[0.7]).after
[0.7]
"""


def _check_float(x, name, xp):
    if not hasattr(x, "dtype") or not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating array (float16/32/64), got {describe(x)}")


def _namespace(**arrays):
    """The common Array API namespace, or a TypeError naming the argument that has none."""
    for name, a in arrays.items():
        try:
            array_namespace(a)
        except TypeError:
            raise TypeError(
                f"{name} must be a real floating array (float16/32/64), got {describe(a)}"
            ) from None
    return array_namespace(*arrays.values())


def _pair(x, y, axis, xp=None):
    """Validate a pair of arrays; return them broadcast, with the normalised axes."""
    xp = _namespace(x=x, y=y) if xp is None else xp
    _check_float(x, "x", xp)
    _check_float(y, "y", xp)
    try:
        x, y = xp.broadcast_arrays(x, y)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ValueError(
            f"x and y must have broadcastable shapes, got {tuple(x.shape)} and {tuple(y.shape)}"
        ) from exc
    dtype = xp.result_type(x.dtype, y.dtype)
    x = xp.astype(x, dtype)
    y = xp.astype(y, dtype)
    if x.ndim == 0:
        raise ValueError("x and y must have at least one dimension, got 0-d arrays")
    check_finite(x, "x", xp)
    check_finite(y, "y", xp)
    axes = check_axis(axis, x.ndim)
    if axes is None:
        axes = tuple(range(x.ndim))
    return x, y, axes, xp


def _unit(x, axes, xp):
    """x / ||x|| along ``axes`` (zero vectors stay zero) and the mask of zero vectors.

    The vector is first divided by its largest magnitude, so the norm never overflows.
    """
    m = xp.max(xp.abs(x), axis=axes, keepdims=True)
    zero = m == 0
    x = x / xp.where(zero, xp.ones_like(m), m)
    n = xp.linalg.vector_norm(x, axis=axes, keepdims=True)
    return x / xp.where(zero, xp.ones_like(n), n), zero


def _squeeze(m, axes, xp):
    for ax in sorted(axes, reverse=True):
        m = xp.squeeze(m, axis=ax)
    return m


def angle(x: ArrayT, y: ArrayT, *, axis: AxisLike = -1, degrees: bool = False) -> ArrayT:
    r"""Angle between vectors, batched along an axis, accurate near 0 and 180 degrees.

    Parameters
    ----------
    x, y : array of shape (..., d, ...)
        Real floating arrays of any Array API namespace; their shapes broadcast.
    axis : int or tuple of int or None, default=-1
        The axis (or axes) along which each vector lies; the others are batch
        axes. ``None`` takes the whole array as one vector. For convolution
        filters of shape ``(out, in, kh, kw)`` use ``axis=(1, 2, 3)``.
    degrees : bool, default=False
        Return degrees instead of radians.

    Returns
    -------
    theta : array
        Angles in ``[0, pi]`` (or ``[0, 180]``), of the broadcast shape without
        ``axis``; NaN where ``x`` or ``y`` is a zero vector (the angle is
        undefined there).

    Raises
    ------
    TypeError
        If ``x`` or ``y`` is not a real floating array.
    ValueError
        If the shapes do not broadcast, ``axis`` is out of bounds, or ``x`` or
        ``y`` holds NaN or Inf.

    See Also
    --------
    cosine : The cosine of the same angle.
    angle_preservation : Angle between weights and their quantized version.

    Notes
    -----
    The angle is computed from the unit vectors :math:`\hat x = x/\|x\|`,
    :math:`\hat y = y/\|y\|` as

    .. math:: \theta = 2 \operatorname{atan2}(\|\hat x - \hat y\|, \|\hat x + \hat y\|),

    which keeps full relative precision at every angle, where
    :math:`\arccos(\hat x \cdot \hat y)` loses half the digits near 0 and pi.

    References
    ----------
    .. [1] W. Kahan, "How futile are mindless assessments of roundoff in
       floating-point computation?", 2006, section 12 (angles between vectors).

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import angle
    >>> x = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> y = np.array([[0.0, 2.0], [1.0, 1.0 + 1e-9]])
    >>> angle(x, y, degrees=True).round(6)
    array([90.,  0.])
    >>> float(angle(np.array([1.0, 0.0]), np.array([1.0, 1e-12])))
    1e-12
    """
    x, y, axes, xp = _pair(x, y, axis)
    ux, zx = _unit(x, axes, xp)
    uy, zy = _unit(y, axes, xp)
    num = xp.linalg.vector_norm(ux - uy, axis=axes)
    den = xp.linalg.vector_norm(ux + uy, axis=axes)
    theta = 2 * xp.atan2(num, den)
    zero = _squeeze(zx | zy, axes, xp)
    theta = xp.where(zero, xp.asarray(float("nan"), dtype=theta.dtype), theta)
    if degrees:
        theta = theta * (180.0 / 3.141592653589793)
    return theta


def cosine(x: ArrayT, y: ArrayT, *, axis: AxisLike = -1) -> ArrayT:
    r"""Cosine similarity of vectors, batched along an axis.

    Parameters
    ----------
    x, y : array of shape (..., d, ...)
        Real floating arrays of any Array API namespace; their shapes broadcast.
    axis : int or tuple of int or None, default=-1
        The axis (or axes) along which each vector lies; ``None`` takes the
        whole array as one vector.

    Returns
    -------
    c : array
        Cosines in ``[-1, 1]``, of the broadcast shape without ``axis``; NaN
        where ``x`` or ``y`` is a zero vector.

    Raises
    ------
    TypeError
        If ``x`` or ``y`` is not a real floating array.
    ValueError
        If the shapes do not broadcast, ``axis`` is out of bounds, or ``x`` or
        ``y`` holds NaN or Inf.

    See Also
    --------
    angle : The angle, accurate near 0 and pi.

    Notes
    -----
    .. math:: \cos\angle(x, y) = \frac{x \cdot y}{\|x\| \|y\|},

    computed from the unit vectors (no overflow for large entries) and
    clipped to ``[-1, 1]``.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import cosine
    >>> w = np.array([0.5, -1.5, 2.0, -0.1])
    >>> float(cosine(w, np.sign(w)))
    0.8034...
    """
    x, y, axes, xp = _pair(x, y, axis)
    ux, zx = _unit(x, axes, xp)
    uy, zy = _unit(y, axes, xp)
    c = xp.sum(ux * uy, axis=axes)
    c = xp.clip(c, -1.0, 1.0)
    zero = _squeeze(zx | zy, axes, xp)
    return xp.where(zero, xp.asarray(float("nan"), dtype=c.dtype), c)


def _check_not_empty(x, y):
    if math.prod(x.shape) == 0 or math.prod(y.shape) == 0:
        raise ValueError(
            f"x and y must not be empty, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )


def _check_result(out, xp, what, allow_inf):
    """``ValueError`` for NaN (or, unless allowed, Inf) computed from finite input."""
    if is_lazy(out):
        return out
    bad = xp.isnan(out) if allow_inf else ~xp.isfinite(out)
    if bool(xp.any(bad)):
        raise ValueError(f"{what} overflows {out.dtype} for this input; rescale x and y")
    return out


def mse(x: ArrayT, y: ArrayT, *, axis: AxisLike = None) -> ArrayT:
    r"""Mean squared error between an array and its quantized version.

    Parameters
    ----------
    x, y : array
        Real floating arrays of any Array API namespace; their shapes broadcast.
    axis : int or tuple of int or None, default=None
        Axes to average over; ``None`` averages over everything.

    Returns
    -------
    err : array
        :math:`\frac1n\sum_i (x_i - y_i)^2` over ``axis``.

    Raises
    ------
    TypeError
        If ``x`` or ``y`` is not a real floating array.
    ValueError
        If the shapes do not broadcast, ``axis`` is out of bounds, or ``x`` or
        ``y`` holds NaN or Inf.

    See Also
    --------
    sqnr : The same error as a signal-to-noise ratio in decibels.

    Notes
    -----
    .. math:: \mathrm{MSE}(x, y) = \frac{1}{n}\sum_{i=1}^n (x_i - y_i)^2.

    References
    ----------
    .. [1] J. Max, "Quantizing for minimum distortion", IRE Transactions on
       Information Theory 6(1), 1960.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import mse
    >>> float(mse(np.array([0.2, -0.7, 1.1]), np.array([0.0, -1.0, 1.0])))
    0.0466...
    """
    x, y, axes, xp = _pair(x, y, axis)
    _check_not_empty(x, y)
    d = x - y
    with np.errstate(over="ignore"):
        out = xp.mean(d * d, axis=axes)
    return _check_result(out, xp, "mse", allow_inf=False)


def sqnr(x: ArrayT, y: ArrayT, *, axis: AxisLike = None) -> ArrayT:
    r"""Signal-to-quantization-noise ratio in decibels.

    Parameters
    ----------
    x : array
        The real signal (any Array API namespace, real floating).
    y : array
        Its quantized version; the shapes broadcast.
    axis : int or tuple of int or None, default=None
        Axes to sum over; ``None`` uses the whole array.

    Returns
    -------
    ratio : array
        :math:`10\log_{10}(\sum x^2 / \sum (x-y)^2)` over ``axis``: ``+inf``
        where the quantization is exact, ``-inf`` where ``x`` is zero and
        ``y`` is not, NaN where both are zero.

    Raises
    ------
    TypeError
        If ``x`` or ``y`` is not a real floating array.
    ValueError
        If the shapes do not broadcast, ``axis`` is out of bounds, or ``x`` or
        ``y`` holds NaN or Inf.

    See Also
    --------
    mse : The mean squared error.

    Notes
    -----
    .. math:: \mathrm{SQNR} = 10 \log_{10} \frac{\sum_i x_i^2}{\sum_i (x_i - y_i)^2}.

    A uniform quantizer of step :math:`\Delta` adds about :math:`\Delta^2/12`
    of noise, so each extra bit buys about 6.02 dB.

    References
    ----------
    .. [1] R. M. Gray and D. L. Neuhoff, "Quantization", IEEE Transactions on
       Information Theory 44(6), 1998.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import sqnr
    >>> float(sqnr(np.array([3.0, 4.0]), np.array([3.0, 3.0])))
    13.979...
    """
    x, y, axes, xp = _pair(x, y, axis)
    _check_not_empty(x, y)
    with np.errstate(over="ignore", invalid="ignore"):
        d = x - y
        sig = xp.sum(x * x, axis=axes)
        noise = xp.sum(d * d, axis=axes)
        if not is_lazy(sig) and not bool(xp.all(xp.isfinite(sig) & xp.isfinite(noise))):
            # squares overflow: the ratio is scale-free, so divide both by the largest value
            m = xp.max(xp.maximum(xp.abs(x / 2), xp.abs(d / 2)))
            m = xp.where(m > 0, m, xp.ones_like(m))
            xs, ds = (x / 2) / m, (d / 2) / m
            if not bool(xp.all(xp.isfinite(ds))):
                raise ValueError("x - y overflows for this input; rescale x and y")
            sig = xp.sum(xs * xs, axis=axes)
            noise = xp.sum(ds * ds, axis=axes)
    one = xp.ones_like(sig)
    ok = (sig > 0) & (noise > 0)
    ratio = 10.0 * xp.log10(xp.where(ok, sig, one) / xp.where(ok, noise, one))
    inf = xp.asarray(float("inf"), dtype=ratio.dtype)
    nan = xp.asarray(float("nan"), dtype=ratio.dtype)
    ratio = xp.where((sig > 0) & (noise == 0), inf, ratio)
    ratio = xp.where((sig == 0) & (noise > 0), -inf, ratio)
    return xp.where((sig == 0) & (noise == 0), nan, ratio)


def _apply(quantizer, w, name="quantizer"):
    if not callable(quantizer):
        raise TypeError(f"{name} must be a callable array -> array, got {describe(quantizer)}")
    q = quantizer(w)
    if tuple(getattr(q, "shape", ())) != tuple(w.shape):
        raise ValueError(
            f"{name} must return an array of the input's shape {tuple(w.shape)}, got {describe(q)}"
        )
    xp = array_namespace(w)
    if not xp.isdtype(q.dtype, "real floating"):
        q = xp.astype(q, w.dtype)
    return q


def angle_preservation(
    w: ArrayT, quantizer: Callable[..., Any], *, axis: AxisLike = -1, degrees: bool = False
) -> ArrayT:
    r"""Angle between each weight vector (row, filter) and its quantized version.

    Parameters
    ----------
    w : array
        Real floating weight tensor of any Array API namespace, e.g. a dense
        layer ``(n_out, n_in)`` or convolution filters ``(out, in, kh, kw)``.
    quantizer : callable
        ``q(w) -> array`` of the same shape, applied once to the whole ``w``
        (so per-channel scales inside ``q`` see the whole tensor). It need not
        be entrywise.
    axis : int or tuple of int or None, default=-1
        The axes of one vector: ``-1`` for the rows of a matrix,
        ``(1, 2, 3)`` for convolution filters, ``None`` for the whole tensor.
    degrees : bool, default=False
        Return degrees instead of radians.

    Returns
    -------
    theta : array
        :math:`\angle(w_j, q(w)_j)` for each vector, of ``w``'s shape without
        ``axis``; NaN where a vector or its quantized version is zero.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or ``quantizer`` is not callable.
    ValueError
        If ``quantizer`` changes the shape, or ``axis`` is out of bounds.

    See Also
    --------
    angle : The angle between two arrays.
    expected_cosine : The d -> infinity limit of the cosine of this angle.

    Notes
    -----
    For iid entries the angle concentrates, as the dimension grows, at

    .. math:: \arccos \frac{E[x\,q(x)]}{\sqrt{E[x^2]\,E[q(x)^2]}},

    which is :math:`\arccos\sqrt{2/\pi} \approx 37^\circ` for the sign of a
    Gaussian.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import angle_preservation
    >>> w = np.random.default_rng(0).standard_normal((3, 10000))
    >>> angle_preservation(w, np.sign, degrees=True).round(0)
    array([37., 37., 37.])
    """
    xp = _namespace(w=w)
    _check_float(w, "w", xp)
    q = _apply(quantizer, w)
    return angle(w, q, axis=axis, degrees=degrees)


def dot_product_proportionality(
    w: ArrayLike, quantizer: Callable[..., Any], activations: ArrayLike
) -> DotProductFit:
    r"""Pearson r, slope and intercept of quantized against real dot products, per output.

    Parameters
    ----------
    w : array of shape (n_out, n_in) or (n_in,)
        Real floating weights of any Array API namespace.
    quantizer : callable
        ``q(w) -> array`` of ``w``'s shape, applied once to the whole ``w``.
    activations : array of shape (n_samples, n_in)
        Inputs ``a`` of the layer, same namespace as ``w``; ``n_samples >= 2``.

    Returns
    -------
    fit : DotProductFit
        Named tuple ``(r, slope, intercept)`` of arrays of shape ``(n_out,)``
        (0-d for 1-D ``w``). ``r`` is NaN for an output whose real or
        quantized dot products are constant; ``slope`` and ``intercept`` are
        NaN where the real dot products are constant.

    Raises
    ------
    TypeError
        If ``w`` or ``activations`` is not a real floating array, or
        ``quantizer`` is not callable.
    ValueError
        If the shapes do not match or there are fewer than 2 samples.

    See Also
    --------
    angle_preservation : The angle between ``w`` and ``q(w)``.
    dot_product_experiment : The same measurement over random weights.

    Notes
    -----
    With :math:`u = a\cdot w` and :math:`v = a \cdot q(w)` over the samples,

    .. math:: r = \frac{\operatorname{cov}(u, v)}{\sigma_u\sigma_v},\quad
              \text{slope} = \frac{\operatorname{cov}(u, v)}{\sigma_u^2},\quad
              \text{intercept} = \bar v - \text{slope}\,\bar u.

    For isotropic activations (:math:`E[a a^T] \propto I`, zero mean) the
    population correlation equals :math:`\cos\angle(w, q(w))` exactly, so a
    following batch normalization absorbs the constant (Anderson & Berg).

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import dot_product_proportionality
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((2, 4096))
    >>> a = rng.standard_normal((2000, 4096))
    >>> fit = dot_product_proportionality(w, np.sign, a)
    >>> fit.r.round(1)
    array([0.8, 0.8])
    """
    xp = _namespace(w=w, activations=activations)
    _check_float(w, "w", xp)
    _check_float(activations, "activations", xp)
    if w.ndim not in (1, 2):
        raise ValueError(f"w must have shape (n_out, n_in) or (n_in,), got {describe(w)}")
    if activations.ndim != 2:
        raise ValueError(
            f"activations must have shape (n_samples, n_in), got {describe(activations)}"
        )
    n_in = w.shape[-1]
    if activations.shape[1] != n_in:
        raise ValueError(
            f"activations must have n_in={n_in} columns to match w, got {describe(activations)}"
        )
    if activations.shape[0] < 2:
        raise ValueError(f"activations must have at least 2 samples, got {describe(activations)}")
    q = _apply(quantizer, w)
    w2 = w if w.ndim == 2 else xp.reshape(w, (1, n_in))
    q2 = q if q.ndim == 2 else xp.reshape(q, (1, n_in))
    dtype = xp.result_type(w.dtype, activations.dtype)
    a = xp.astype(activations, dtype)
    u = xp.matmul(a, xp.astype(xp.matrix_transpose(w2), dtype))
    v = xp.matmul(a, xp.astype(xp.matrix_transpose(q2), dtype))
    u_mean = xp.mean(u, axis=0)
    v_mean = xp.mean(v, axis=0)
    uc = u - u_mean
    vc = v - v_mean
    suv = xp.sum(uc * vc, axis=0)
    suu = xp.sum(uc * uc, axis=0)
    svv = xp.sum(vc * vc, axis=0)
    one = xp.ones_like(suu)
    nan = xp.asarray(float("nan"), dtype=suu.dtype)
    ok_u = suu > 0
    ok_r = ok_u & (svv > 0)
    r = xp.where(ok_r, suv / xp.sqrt(xp.where(ok_r, suu * svv, one)), nan)
    r = xp.where(ok_r, xp.clip(r, -1.0, 1.0), nan)
    slope = xp.where(ok_u, suv / xp.where(ok_u, suu, one), nan)
    intercept = v_mean - slope * u_mean
    if w.ndim == 1:
        r, slope, intercept = r[0], slope[0], intercept[0]
    return DotProductFit(r, slope, intercept)


def pairwise_angle_preservation(
    X: ArrayLike, quantizer: Callable[..., Any], *, degrees: bool = False
) -> PairwiseAngles:
    r"""Measure the angles between all pairs of vectors before and after quantization.

    Parameters
    ----------
    X : array of shape (n, d)
        ``n >= 2`` real floating vectors (rows) of any Array API namespace.
    quantizer : callable
        ``q(X) -> array`` of shape ``(n, d)``, applied once to the whole ``X``.
    degrees : bool, default=False
        Return degrees instead of radians.

    Returns
    -------
    angles : PairwiseAngles
        Named tuple ``(before, after)``, each of shape ``(n (n - 1) / 2,)``
        in the pair order of :func:`scipy.spatial.distance.pdist`; NaN for a
        pair with a zero vector.

    Raises
    ------
    TypeError
        If ``X`` is not a real floating array or ``quantizer`` is not callable.
    ValueError
        If ``X`` is not 2-D with at least 2 rows, or ``quantizer`` changes the shape.

    See Also
    --------
    arcsine_law : The expected cosine between the signs of two correlated Gaussians.

    Notes
    -----
    For the sign of Gaussian vectors at angle :math:`\theta`, the cosine
    after binarization tends to :math:`\frac{2}{\pi}\arcsin(\cos\theta)`
    (the arcsine law), i.e. the angle after is :math:`\arccos` of that.
    Each angle is computed as in :func:`angle`.

    References
    ----------
    .. [1] A. G. Anderson and C. P. Berg, "The high-dimensional geometry of
       binary neural networks", ICLR 2018.
    .. [2] M. X. Goemans and D. P. Williamson, "Improved approximation
       algorithms for maximum cut and satisfiability problems using
       semidefinite programming", JACM 42(6), 1995.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.analysis import pairwise_angle_preservation
    >>> X = np.array([[1.0, 0.2, -0.3], [0.9, 0.4, -0.1], [-1.0, 0.5, 0.5]])
    >>> res = pairwise_angle_preservation(X, np.sign, degrees=True)
    >>> res.before.round(1), res.after.round(1)
    (array([ 16.3, 143.8, 128.2]), array([  0. , 109.5, 109.5]))
    """
    xp = _namespace(X=X)
    _check_float(X, "X", xp)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must have shape (n, d) with n >= 2, got {describe(X)}")
    Q = _apply(quantizer, X)
    n = X.shape[0]
    before, after = [], []
    for i in range(n - 1):
        before.append(angle(X[i : i + 1, :], X[i + 1 :, :], axis=-1, degrees=degrees))
        after.append(angle(Q[i : i + 1, :], Q[i + 1 :, :], axis=-1, degrees=degrees))
    return PairwiseAngles(xp.concat(before), xp.concat(after))
