"""Signed fixed-point (Qm.n) rounding."""

from __future__ import annotations

from typing import Literal

from array_api_compat import device as _device

from .._array import check_int, check_random_state, describe
from .._typing import ArrayT, RNGLike
from .._validation import check_array, check_choice, check_finite
from ._common import _check_finite_result, _round, _uniform_noise
from ._quantized import QuantizedArray, _code_dtype, _dtype_name

FIXED_ROUNDING = ("half_even", "half_away", "floor", "stochastic")


def _fixed_codes(w, xp, int_bits, frac_bits, saturate, rounding, rng):
    """Float-valued two's-complement codes of ``w`` in Q``int_bits``.``frac_bits``."""
    scale = 2.0**frac_bits
    y = w * scale
    if rounding == "floor":
        c = xp.floor(y)
    elif rounding == "stochastic":
        u = _uniform_noise(rng, w, xp)
        if y.dtype != u.dtype:
            y = xp.astype(y, u.dtype)
        c = xp.floor(y + u)
    else:
        c = _round(y, xp, rounding)
    total = int_bits + frac_bits
    qmin, qmax = -(2.0**total), 2.0**total - 1
    if saturate:
        c = xp.clip(c, qmin, qmax)
    else:
        c = xp.remainder(c - qmin, 2.0 ** (total + 1)) + qmin
    return c, scale


def _validate_fixed(w, int_bits, frac_bits, saturate, rounding):
    w, xp = check_array(w, "w")
    int_bits = check_int(int_bits, "int_bits", low=0, high=31)
    frac_bits = check_int(frac_bits, "frac_bits", low=0, high=31)
    if int_bits + frac_bits > 31:
        raise ValueError(
            f"int_bits + frac_bits must be at most 31 (a 32-bit word with its "
            f"sign bit), got {int_bits} + {frac_bits}"
        )
    if not isinstance(saturate, bool):
        raise TypeError(f"saturate must be a bool, got {describe(saturate)}")
    rounding = check_choice(rounding, "rounding", FIXED_ROUNDING)
    check_finite(w, "w", xp)
    return w, xp, int_bits, frac_bits, rounding


def fixed_point(
    w: ArrayT,
    int_bits: int,
    frac_bits: int,
    saturate: bool = True,
    rounding: Literal["half_even", "half_away", "floor", "stochastic"] = "half_even",
    rng: RNGLike = None,
) -> ArrayT:
    """Round to signed fixed point Q\\ ``int_bits``.\\ ``frac_bits`` (two's complement).

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Values to round, in any Array API namespace.
    int_bits : int
        Integer bits, sign bit excluded (>= 0).
    frac_bits : int
        Fractional bits (>= 0); the step is :math:`2^{-n}`.
        ``int_bits + frac_bits <= 31``.
    saturate : bool, default=True
        Clip out-of-range values to the extreme codes; if False they wrap
        around as two's-complement integers do.
    rounding : {"half_even", "half_away", "floor", "stochastic"}, default="half_even"
        Rounding of :math:`w\\,2^{n}` to an integer; ``"stochastic"`` is
        Gupta et al.'s unbiased rounding.
    rng : numpy.random.Generator, int or None, default=None
        Randomness for ``rounding="stochastic"``.

    Returns
    -------
    w_q : array, same shape, dtype, namespace and device as ``w``
        Values on the grid :math:`2^{-n}\\mathbb{Z} \\cap [-2^m, 2^m - 2^{-n}]`.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or a parameter has the wrong type.
    ValueError
        If a bit count is out of range, ``rounding`` is unknown, or ``w`` is
        empty or holds NaN/Inf.

    See Also
    --------
    uniform : A uniform grid with a data-dependent scale.
    stochastic_round : Stochastic rounding to any grid or codebook.

    Notes
    -----
    With :math:`m` integer and :math:`n` fractional bits (word length
    :math:`1 + m + n`),

    .. math::

        q = \\operatorname{clip}\\big(\\operatorname{round}(w\\,2^{n}),
        -2^{m+n}, 2^{m+n} - 1\\big), \\qquad \\hat w = q\\,2^{-n}.

    Without saturation :math:`q` is reduced modulo :math:`2^{1+m+n}` into
    the same range. The pseudo-gradient is the clipped straight-through
    estimator.

    References
    ----------
    .. [1] S. Gupta, A. Agrawal, K. Gopalakrishnan, P. Narayanan, "Deep
       Learning with Limited Numerical Precision", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import fixed_point
    >>> fixed_point(np.array([0.3, -1.7, 5.0]), int_bits=1, frac_bits=2)
    array([ 0.25, -1.75,  1.75])
    >>> fixed_point(np.array([2.25]), int_bits=1, frac_bits=2, saturate=False)
    array([-1.75])
    """
    w, xp, int_bits, frac_bits, rounding = _validate_fixed(
        w, int_bits, frac_bits, saturate, rounding
    )
    rng = check_random_state(rng)
    wide = _widen(w, xp)
    c, scale = _fixed_codes(wide, xp, int_bits, frac_bits, saturate, rounding, rng)
    out = c / scale
    out = xp.astype(out, w.dtype) if out.dtype != w.dtype else out
    return _check_finite_result(out, xp, f"fixed_point with int_bits={int_bits}")


def _widen(w, xp):
    # float16 holds neither the codes of a wide word nor 2**total: compute in float32
    return xp.astype(w, xp.float32) if str(w.dtype).endswith("float16") else w


def encode_fixed_point(w, int_bits, frac_bits, saturate=True, rounding="half_even", rng=None):
    """The codes of :func:`fixed_point`: the two's-complement integers, with the scale
    :math:`2^{-n}`.

    Takes the parameters of :func:`fixed_point` and validates them as it does
    (the same ``rng`` state draws the same noise for ``rounding="stochastic"``).
    The scale is kept in float32 for half-precision input, where
    :math:`2^{-n}` may not exist; a code times a power of two is exact, so
    ``decode(encode_fixed_point(w, ...))`` equals ``fixed_point(w, ...)``
    bit for bit.

    Returns
    -------
    q : QuantizedArray
        Codes in :math:`[-2^{m+n}, 2^{m+n} - 1]`, ``bits = 1 + m + n``,
        ``scheme="fixed_point"``.
    """
    w, xp, int_bits, frac_bits, rounding = _validate_fixed(
        w, int_bits, frac_bits, saturate, rounding
    )
    rng = check_random_state(rng)
    wide = _widen(w, xp)
    c, scale = _fixed_codes(wide, xp, int_bits, frac_bits, saturate, rounding, rng)
    total = int_bits + frac_bits
    return QuantizedArray(
        codes=xp.astype(c, _code_dtype(xp, -(2**total), 2**total - 1)),
        scale=xp.asarray(1.0 / scale, dtype=wide.dtype, device=_device(w)),
        bits=1 + total,
        dtype=_dtype_name(w),
        scheme="fixed_point",
    )
