"""Uniform (linear) quantization with a scale and a zero point."""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np

from .._array import check_bits, describe, slice_rows
from .._typing import ArrayT, AxisLike
from .._validation import check_array, check_choice, check_finite
from ._common import (
    ROUNDING_MODES,
    _check_finite_result,
    _check_scale_axes,
    _from_groups,
    _is_numpy,
    _reduce,
    _round,
    _to_groups,
)
from ._quantized import QuantizedArray, _code_dtype, _dtype_name

UNIFORM_MODES = ("symmetric", "asymmetric", "unsigned")
RANGE_METHODS = ("minmax", "percentile", "mse")
_MSE_GRID = 100


def _levels(bits, mode, narrow_range):
    if mode == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax if narrow_range else -qmax - 1
    else:
        qmin = 1 if narrow_range else 0
        qmax = 2**bits - 1
    return qmin, qmax


def _quantile(x, xp, kept, q):
    """Linear-interpolation quantile ``q`` in [0, 1] over the non-kept axes (keepdims)."""
    flat, stat_shape = slice_rows(x, kept, xp)
    s = xp.sort(flat, axis=1)
    n = s.shape[1]
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    v = s[:, lo] * (1.0 - frac) + s[:, hi] * frac
    return xp.reshape(v, stat_shape)


def _range(view, xp, kept, mode, method, percentile):
    """Clipping range ``(lo, hi)`` per slice, before any MSE search."""
    if method == "percentile":
        p = percentile / 100.0
        if mode == "symmetric":
            return None, _quantile(xp.abs(view), xp, kept, p)
        hi = _quantile(view, xp, kept, p)
        lo = _quantile(view, xp, kept, 1.0 - p)
    else:
        if mode == "symmetric":
            return None, _reduce(xp.max, xp.abs(view), kept)
        hi = _reduce(xp.max, view, kept)
        lo = _reduce(xp.min, view, kept)
    zero = xp.zeros_like(hi)
    hi = xp.maximum(hi, zero)
    lo = xp.minimum(lo, zero)
    if mode == "unsigned":
        return None, hi
    return lo, hi


def _params_from_range(lo, hi, xp, qmin, qmax):
    """Scale and zero point of a clipping range (``lo`` None: zero point 0)."""
    if lo is None:
        scale = hi / qmax
        one = xp.ones_like(scale)
        return xp.where(scale > 0, scale, one), None
    n = qmax - qmin
    # hi - lo overflows for ranges wider than the dtype's max: there, halve both ends first
    half = float(xp.finfo(hi.dtype).max) / 2
    big = (hi > half) | (lo < -half)
    two = xp.where(big, 2 * xp.ones_like(hi), xp.ones_like(hi))
    scale = ((hi / two - lo / two) / n) * two
    one = xp.ones_like(scale)
    scale = xp.where(scale > 0, scale, one)
    zp = xp.clip(xp.round(qmin - lo / scale), float(qmin), float(qmax))
    return scale, zp


def _codes(view, xp, scale, zp, qmin, qmax, rounding):
    """Float-valued integer codes ``clip(round(w / s) + z, qmin, qmax)``."""
    c = _round(view / scale, xp, rounding)
    if zp is not None:
        c = c + zp
    return xp.clip(c, float(qmin), float(qmax))


def _fit(view, xp, kept, bits, mode, method, percentile, narrow_range, rounding):
    qmin, qmax = _levels(bits, mode, narrow_range)
    lo, hi = _range(view, xp, kept, mode, method, percentile)
    if method != "mse":
        scale, zp = _params_from_range(lo, hi, xp, qmin, qmax)
        return scale, zp, qmin, qmax
    # Grid search of a shrink ratio of the range, per slice, minimising the
    # squared reconstruction error.
    errors, params = [], []
    for r in np.linspace(1.0 / _MSE_GRID, 1.0, _MSE_GRID).tolist():
        scale, zp = _params_from_range(None if lo is None else lo * r, hi * r, xp, qmin, qmax)
        c = _codes(view, xp, scale, zp, qmin, qmax, rounding)
        rec = (c - zp) * scale if zp is not None else c * scale
        errors.append(_reduce(xp.sum, (rec - view) ** 2, kept))
        params.append((scale, zp))
    err = xp.stack(errors, axis=0)
    best = xp.argmin(err, axis=0)
    scale = params[0][0] * 0
    zp = None if params[0][1] is None else params[0][1] * 0
    for i, (s_i, z_i) in enumerate(params):
        pick = best == i
        scale = xp.where(pick, s_i, scale)
        if zp is not None:
            zp = xp.where(pick, z_i, zp)
    return scale, zp, qmin, qmax


def _validate(
    w, bits, mode, axis, group_size, range, narrow_range, rounding, percentile, finite=True
):
    w, xp = check_array(w, "w")
    mode = check_choice(mode, "mode", UNIFORM_MODES)
    bits = check_bits(bits, "bits", low=2 if mode == "symmetric" else 1, high=16)
    range = check_choice(range, "range", RANGE_METHODS)
    rounding = check_choice(rounding, "rounding", ROUNDING_MODES)
    if not isinstance(narrow_range, (bool, np.bool_)):
        raise TypeError(f"narrow_range must be a bool, got {describe(narrow_range)}")
    if (
        isinstance(percentile, bool)
        or not isinstance(percentile, numbers.Real)
        or not (50.0 < float(percentile) <= 100.0)
    ):
        raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r}")
    if narrow_range and mode == "unsigned":
        raise ValueError(
            "narrow_range applies to mode='symmetric' or 'asymmetric'; "
            "mode='unsigned' keeps code 0 for the value 0"
        )
    if narrow_range and bits == 1:
        raise ValueError("narrow_range with bits=1 leaves a single level; use bits >= 2")
    axis, group_size = _check_scale_axes(w, axis, group_size)
    if finite:
        check_finite(w, "w", xp)
    return w, xp, bits, mode, axis, group_size, range, rounding, float(percentile)


def _uniform_numpy_fast(w, bits, narrow_range):
    """Per-tensor, min-max, symmetric, ties-to-even on NumPy, with in-place ufuncs."""
    _qmin, qmax = _levels(bits, "symmetric", narrow_range)
    r = max(float(w.max()), -float(w.min()))
    if not math.isfinite(r):  # max/min propagate NaN and reach Inf
        raise ValueError("w contains NaN or Inf; a scale cannot be estimated from it")
    scale = np.asarray(r / qmax if r > 0 else 1.0, dtype=w.dtype)
    out = np.divide(w, scale)
    np.rint(out, out=out)
    # |w| * (qmax / r) <= qmax (1 + eps) rounds to at most qmax: no clip needed.
    np.multiply(out, scale, out=out)
    return out


def uniform(
    w: ArrayT,
    bits: int = 8,
    mode: Literal["symmetric", "asymmetric", "unsigned"] = "symmetric",
    axis: AxisLike = None,
    group_size: int | None = None,
    range: Literal["minmax", "percentile", "mse"] = "minmax",
    narrow_range: bool = False,
    rounding: Literal["half_even", "half_away"] = "half_even",
    percentile: float = 99.99,
) -> ArrayT:
    """Uniform quantize-dequantize: round to a scaled integer grid and map back.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor to quantize, in any Array API namespace.
    bits : int, default=8
        Bit width, in [2, 16] for ``"symmetric"`` and [1, 16] otherwise.
    mode : {"symmetric", "asymmetric", "unsigned"}, default="symmetric"
        Symmetric: integer levels :math:`[-2^{b-1}, 2^{b-1}-1]`, zero point
        0, scale from :math:`\\max|w|`. Asymmetric: levels
        :math:`[0, 2^b-1]` over :math:`[\\min(w, 0), \\max(w, 0)]` with an
        integer zero point. Unsigned: levels :math:`[0, 2^b-1]` over
        :math:`[0, \\max w]` (negative values clip to 0).
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales (e.g. ``0`` for one scale per output
        channel); statistics are taken over the other axes. None: per tensor,
        or, with ``group_size``, every leading axis.
    group_size : int or None, default=None
        Split the last axis into blocks of this many entries *within each row
        of the leading axes*; each (row, block) gets its own scale, as in
        GPTQ, AWQ and llama.cpp. For a ``(4, 8)`` matrix and
        ``group_size=4`` the scales form a ``(4, 2)`` grid::

            columns  0 1 2 3 | 4 5 6 7
            row 0    s[0,0]  | s[0,1]
            ...
            row 3    s[3,0]  | s[3,1]

        It must divide the last axis, which must not be in ``axis``; an
        explicit ``axis`` names the leading axes that keep scales (``axis=()``
        shares each block's scale across all rows).
    range : {"minmax", "percentile", "mse"}, default="minmax"
        How the clipping range is estimated: the extremes, the
        ``percentile`` (of :math:`|w|` for symmetric), or the shrink of the
        min-max range (100 candidates) that minimises the squared error.
    narrow_range : bool, default=False
        Drop the lowest level (symmetric: :math:`-2^{b-1}`, so the grid is
        symmetric about zero; asymmetric: code 0). Not for ``"unsigned"``.
    rounding : {"half_even", "half_away"}, default="half_even"
        Tie-breaking rule of the rounding.
    percentile : float, default=99.99
        Percentile in (50, 100] used when ``range="percentile"``.

    Returns
    -------
    w_hat : array, same shape, dtype, namespace and device as ``w``
        The dequantized tensor :math:`s\\,(q - z)`.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or a parameter has the wrong type.
    ValueError
        If ``w`` is empty or holds NaN/Inf, ``bits`` is out of range,
        ``axis`` is out of bounds, or ``group_size`` does not divide the last
        axis.

    See Also
    --------
    encode : The integer codes, scale and zero point.
    decode : Back from codes to values.
    fixed_point : A uniform grid with a fixed power-of-two step.

    Notes
    -----
    With scale :math:`s` and zero point :math:`z`,

    .. math::

        q = \\operatorname{clip}\\big(\\operatorname{round}(w/s) + z,\\;
        q_{\\min}, q_{\\max}\\big), \\qquad \\hat w = s\\,(q - z),

    and, inside the range, :math:`|\\hat w - w| \\le s/2`. Symmetric:
    :math:`s = \\max|w| / (2^{b-1}-1)`, :math:`z = 0`; asymmetric:
    :math:`s = (\\max w - \\min w)/(q_{\\max} - q_{\\min})`,
    :math:`z = \\operatorname{round}(q_{\\min} - \\min w / s)`. The
    pseudo-gradient is the straight-through estimator, clipped to the range
    (:func:`clipped_straight_through`). For a Dask array NaN/Inf are not
    checked (that would compute it) and the result stays lazy.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.
    .. [2] R. Krishnamoorthi, "Quantizing deep convolutional networks for
       efficient inference: A whitepaper", arXiv:1806.08342, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import uniform
    >>> uniform(np.array([-1.0, -0.3, 0.2, 0.7]), bits=3)
    array([-1.        , -0.33333333,  0.33333333,  0.66666667])
    """
    w, xp, bits, mode, axis, group_size, range, rounding, percentile = _validate(
        w,
        bits,
        mode,
        axis,
        group_size,
        range,
        narrow_range,
        rounding,
        percentile,
        finite=False,
    )
    if (
        _is_numpy(xp)
        and axis is None
        and group_size is None
        and mode == "symmetric"
        and range == "minmax"
        and rounding == "half_even"
    ):
        return _uniform_numpy_fast(w, bits, narrow_range)
    check_finite(w, "w", xp)
    view, kept = _to_groups(w, xp, axis, group_size)
    scale, zp, qmin, qmax = _fit(
        view, xp, kept, bits, mode, range, percentile, narrow_range, rounding
    )
    c = _codes(view, xp, scale, zp, qmin, qmax, rounding)
    with np.errstate(over="ignore"):  # an overflowing grid is refused just below
        rec = (c - zp) * scale if zp is not None else c * scale
    _check_finite_result(rec, xp, "the quantization grid of w's range")
    return _from_groups(rec, xp, w.shape, group_size)


def encode(
    w: ArrayT,
    bits: int = 8,
    mode: Literal["symmetric", "asymmetric", "unsigned"] = "symmetric",
    axis: AxisLike = None,
    group_size: int | None = None,
    range: Literal["minmax", "percentile", "mse"] = "minmax",
    narrow_range: bool = False,
    rounding: Literal["half_even", "half_away"] = "half_even",
    percentile: float = 99.99,
) -> QuantizedArray:
    """Uniform quantization to integer codes with a scale and a zero point.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor to quantize, in any Array API namespace.
    bits : int, default=8
        Bit width (see :func:`uniform`).
    mode : {"symmetric", "asymmetric", "unsigned"}, default="symmetric"
        Grid placement (see :func:`uniform`).
    axis : int, tuple of int or None, default=None
        Axes that keep separate scales.
    group_size : int or None, default=None
        Block length along the last axis; one scale per row of the leading
        axes and per block (see :func:`uniform`).
    range : {"minmax", "percentile", "mse"}, default="minmax"
        Clipping-range estimate.
    narrow_range : bool, default=False
        Drop the lowest level.
    rounding : {"half_even", "half_away"}, default="half_even"
        Tie-breaking rule.
    percentile : float, default=99.99
        Percentile for ``range="percentile"``.

    Returns
    -------
    q : QuantizedArray
        ``q.codes`` holds signed codes (symmetric, int8/int16) or unsigned
        codes stored in a signed dtype wide enough (asymmetric, unsigned);
        ``q.scale`` and ``q.zero_point`` broadcast against the codes (their
        grouped view when ``group_size`` is set); all in ``w``'s namespace.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or a parameter has the wrong type.
    ValueError
        As :func:`uniform`.

    See Also
    --------
    uniform : Quantize-dequantize in one call.
    decode : Back from codes to values.
    save_quantized : Store the codes densely packed.

    Notes
    -----
    .. math::

        q = \\operatorname{clip}\\big(\\operatorname{round}(w/s) + z,\\;
        q_{\\min}, q_{\\max}\\big).

    ``decode(encode(w, ...))`` equals ``uniform(w, ...)`` bit for bit.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import encode
    >>> q = encode(np.array([0.0, 0.5, 1.0, 2.0]), bits=2, mode="unsigned")
    >>> q.codes, float(q.scale[0])
    (array([0, 1, 2, 3], dtype=int8), 0.6666666666666666)
    """
    w, xp, bits, mode, axis, group_size, range, rounding, percentile = _validate(
        w, bits, mode, axis, group_size, range, narrow_range, rounding, percentile
    )
    view, kept = _to_groups(w, xp, axis, group_size)
    scale, zp, qmin, qmax = _fit(
        view, xp, kept, bits, mode, range, percentile, narrow_range, rounding
    )
    c = _codes(view, xp, scale, zp, qmin, qmax, rounding)
    codes = xp.astype(_from_groups(c, xp, w.shape, group_size), _code_dtype(xp, qmin, qmax))
    return QuantizedArray(
        codes=codes,
        scale=scale,
        zero_point=zp,
        bits=bits,
        axis=axis,
        group_size=group_size,
        dtype=_dtype_name(w),
        scheme="uniform",
    )
