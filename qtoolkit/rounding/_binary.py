"""Binarization: sign with a scale (BinaryConnect, XNOR-Net, loss-aware)."""

from __future__ import annotations

from typing import Literal

from .._array import check_random_state, describe, is_lazy
from .._typing import Array, ArrayT, AxisLike, RNGLike
from .._validation import check_array, check_finite, check_no_nan
from ._common import (
    _reduce,
    _sign,
    _uniform_noise,
    check_axis,
)
from ._quantized import QuantizedArray, _codebook_like, _dtype_name

BINARY_SCALES = (None, "mean", "loss_aware")


def _binary_scale(w, xp, scale, axis, d):
    """The scale of :func:`binarize` (None when ``scale`` is None); prior validation assumed."""
    if scale is None:
        return None
    if scale == "mean":
        return _reduce(xp.mean, xp.abs(w), axis)
    num = _reduce(xp.sum, d * xp.abs(w), axis)
    den = _reduce(xp.sum, d * xp.ones_like(w), axis)
    zero = xp.zeros_like(den)
    return xp.where(den > 0, num / xp.where(den > 0, den, zero + 1), zero)


def _validate_binarize(w, scale, axis, d):
    w, xp = check_array(w, "w")
    if scale not in BINARY_SCALES:
        raise ValueError(f"scale must be None, 'mean' or 'loss_aware', got {scale!r}")
    axis = check_axis(axis, w.ndim)
    if scale is not None:
        check_finite(w, "w", xp)
    else:
        check_no_nan(w, "w", xp)  # an infinity has a sign; a NaN has none
    if scale == "loss_aware":
        if d is None:
            raise ValueError(
                "scale='loss_aware' needs d, a non-negative curvature estimate "
                "of the same shape as w (e.g. sqrt of Adam's v_hat)"
            )
        d, _ = check_array(d, "d")
        if tuple(d.shape) != tuple(w.shape):
            raise ValueError(f"d must have the shape of w {tuple(w.shape)}, got {describe(d)}")
        check_finite(d, "d", xp)
        if not is_lazy(d) and bool(xp.any(d < 0)):
            raise ValueError("d must be non-negative (a diagonal curvature estimate)")
        d = xp.astype(d, w.dtype)
    elif d is not None:
        raise ValueError(f"d is used only with scale='loss_aware', got scale={scale!r}")
    return w, xp, axis, d


def binarize(
    w: ArrayT,
    scale: Literal["mean", "loss_aware"] | None = None,
    axis: AxisLike = None,
    d: Array | None = None,
) -> ArrayT:
    """Deterministic binarization :math:`\\alpha\\,\\mathrm{sign}(w)` with sign(0) = +1.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor to binarize, in any Array API namespace.
    scale : {None, "mean", "loss_aware"}, default=None
        None: plain sign (BinaryConnect). ``"mean"``: XNOR-Net's
        :math:`\\alpha = \\mathbb{E}|w|`. ``"loss_aware"``: the loss-aware
        binarization scale :math:`\\|d \\odot w\\|_1 / \\|d\\|_1`.
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales (``0``: one :math:`\\alpha` per output
        filter); the mean runs over the other axes. None: one scale.
    d : array of shape ``w.shape`` or None, default=None
        Non-negative diagonal curvature estimate (e.g. the square root of
        Adam's second moment); required by and only used with
        ``scale="loss_aware"``.

    Returns
    -------
    w_b : array, same shape, dtype, namespace and device as ``w``
        :math:`\\alpha\\,\\mathrm{sign}(w)` (:math:`\\alpha = 1` without scale).

    Raises
    ------
    TypeError
        If ``w`` or ``d`` is not a real floating array.
    ValueError
        If ``scale`` is unknown, ``w`` is empty or holds NaN (which has no
        sign), ``axis`` is out of bounds, NaN/Inf enter a scale, or ``d`` is
        missing, misshapen or negative.

    See Also
    --------
    stochastic_binarize : BinaryConnect's stochastic binarization.
    ternarize : Three levels instead of two.
    clipped_straight_through : The usual pseudo-gradient of sign.

    Notes
    -----
    .. math::

        w_b = \\alpha\\,\\mathrm{sign}(w), \\qquad
        \\alpha_{\\text{XNOR}} = \\frac{\\|w\\|_1}{n}, \\qquad
        \\alpha_{\\text{LAB}} = \\frac{\\|d \\odot w\\|_1}{\\|d\\|_1}.

    :math:`\\alpha_{\\text{XNOR}}` minimises :math:`\\|w - \\alpha b\\|^2`
    over :math:`b \\in \\{\\pm 1\\}^n, \\alpha \\ge 0`; the loss-aware scale
    reduces to it when :math:`d = 1`. The pseudo-gradient is the clipped
    straight-through estimator :math:`g\\,1_{|w| \\le 1}`.

    References
    ----------
    .. [1] M. Courbariaux, Y. Bengio, J.-P. David, "BinaryConnect: Training
       Deep Neural Networks with binary weights during propagations",
       NeurIPS 2015.
    .. [2] M. Rastegari et al., "XNOR-Net: ImageNet Classification Using Binary
       Convolutional Neural Networks", ECCV 2016.
    .. [3] L. Hou, Q. Yao, J. T. Kwok, "Loss-aware Binarization of Deep
       Networks", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import binarize
    >>> binarize(np.array([-0.5, 0.0, 1.5]))
    array([-1.,  1.,  1.])
    >>> binarize(np.array([-0.5, 0.0, 1.5]), scale="mean")
    array([-0.66666667,  0.66666667,  0.66666667])
    """
    w, xp, axis, d = _validate_binarize(w, scale, axis, d)
    s = _sign(w, xp)
    alpha = _binary_scale(w, xp, scale, axis, d)
    return s if alpha is None else s * alpha


def encode_binary(w, scale=None, axis=None, d=None):
    """The codes of :func:`binarize`: 1 where ``w >= 0``, 0 elsewhere, on the codebook (-1, +1).

    Takes the parameters of :func:`binarize` and validates them as it does.
    ``decode(encode_binary(w, ...))`` equals ``binarize(w, ...)`` bit for bit:
    the scale is the same array, and a codeword of +-1 times it is exact.

    Returns
    -------
    q : QuantizedArray
        int8 codes in {0, 1}, the scale (None without one), the codebook
        ``[-1, 1]``, ``bits=1``, ``scheme="binary"``.
    """
    w, xp, axis, d = _validate_binarize(w, scale, axis, d)
    return QuantizedArray(
        codes=xp.astype(w >= 0, xp.int8),
        scale=_binary_scale(w, xp, scale, axis, d),
        codebook=_codebook_like((-1, 1), w, xp),
        bits=1,
        axis=axis,
        dtype=_dtype_name(w),
        scheme="binary",
    )


def _stochastic_plus(w, xp, rng):
    """The entries :func:`stochastic_binarize` sets to +1 (a boolean array); validated input."""
    u = _uniform_noise(rng, w, xp)
    p = xp.clip((w + 1) * 0.5, 0.0, 1.0)
    if p.dtype != u.dtype:
        p = xp.astype(p, u.dtype)
    return u < p


def stochastic_binarize(w: ArrayT, rng: RNGLike = None) -> ArrayT:
    """Binarize at random with :math:`P(+1) = \\mathrm{clip}((w+1)/2, 0, 1)` (BinaryConnect).

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor to binarize, in any Array API namespace.
    rng : numpy.random.Generator, int or None, default=None
        Source of randomness; the same seed gives the same result. For a
        Dask array the noise is drawn lazily from a seed taken from ``rng``.

    Returns
    -------
    w_b : array of +1/-1, same shape, dtype, namespace and device as ``w``

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or ``rng`` is not a valid seed.
    ValueError
        If ``w`` is empty or holds NaN.

    See Also
    --------
    binarize : The deterministic sign.
    stochastic_round : Unbiased rounding to any codebook.

    Notes
    -----
    With the hard sigmoid :math:`\\sigma(x) = \\mathrm{clip}((x+1)/2, 0, 1)`,

    .. math::

        w_b = \\begin{cases} +1 & \\text{with probability } \\sigma(w),\\\\
        -1 & \\text{with probability } 1 - \\sigma(w), \\end{cases}

    so :math:`\\mathbb{E}[w_b] = \\mathrm{clip}(w, -1, 1)`. The pseudo-gradient
    is :math:`g\\,1_{|w| \\le 1}`. Infinities binarize to their sign; NaN is
    refused, as in :func:`binarize`.

    References
    ----------
    .. [1] M. Courbariaux, Y. Bengio, J.-P. David, "BinaryConnect: Training
       Deep Neural Networks with binary weights during propagations",
       NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import stochastic_binarize
    >>> stochastic_binarize(np.array([-2.0, 0.0, 2.0]), rng=0)
    array([-1., -1.,  1.])
    """
    w, xp = check_array(w, "w")
    check_no_nan(w, "w", xp)  # a NaN has no probability of being +1
    plus = _stochastic_plus(w, xp, check_random_state(rng))
    one = xp.ones_like(w)
    return xp.where(plus, one, -one)


def encode_stochastic_binary(w, rng=None):
    """The codes of :func:`stochastic_binarize`: 1 for +1, 0 for -1, on the codebook (-1, +1).

    Same parameters and validation as :func:`stochastic_binarize`; the same
    ``rng`` state draws the same noise, so ``decode(encode_stochastic_binary(w,
    rng=s))`` equals ``stochastic_binarize(w, rng=s)`` bit for bit.

    Returns
    -------
    q : QuantizedArray
        int8 codes in {0, 1}, no scale, the codebook ``[-1, 1]``, ``bits=1``.
    """
    w, xp = check_array(w, "w")
    check_no_nan(w, "w", xp)  # a NaN has no probability of being +1
    plus = _stochastic_plus(w, xp, check_random_state(rng))
    return QuantizedArray(
        codes=xp.astype(plus, xp.int8),
        scale=None,
        codebook=_codebook_like((-1, 1), w, xp),
        bits=1,
        dtype=_dtype_name(w),
        scheme="stochastic_binary",
    )
