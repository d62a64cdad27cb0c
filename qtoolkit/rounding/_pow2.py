"""Power-of-two (logarithmic) quantization: LogQuant and the INQ codebook."""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
from array_api_compat import device as _device

from .._array import check_axis, check_bits, describe, is_lazy
from .._typing import ArrayT, AxisLike
from .._validation import check_array, check_choice, check_finite
from ._common import _reduce
from ._quantized import QuantizedArray, _codebook_like, _dtype_name

POW2_METHODS = ("logquant", "inq")


def _safe_log2(a, xp):
    one = xp.ones_like(a)
    return xp.log2(xp.where(a > 0, a, one))


def _logquant_parts(w, xp, bits, fsr, axis):
    """``(values, fsr)`` of LogQuant; ``fsr`` an integer-valued array (keepdims) of ``w``'s kind."""
    a = xp.abs(w)
    if fsr is None:
        fsr = xp.round(_safe_log2(_reduce(xp.max, a, axis), xp))
    else:
        fsr = xp.asarray(float(fsr), dtype=w.dtype, device=_device(w))
    e = xp.clip(xp.round(_safe_log2(a, xp)), fsr - 2**bits, fsr)
    mag = xp.where(a > 0, xp.pow(2.0 * xp.ones_like(a), e), xp.zeros_like(a))
    return xp.where(w < 0, -mag, mag), fsr


def _inq_parts(w, xp, bits, axis):
    """``(values, n1)`` of INQ; ``n1`` an integer-valued array (keepdims)."""
    a = xp.abs(w)
    s = _reduce(xp.max, a, axis)
    n1 = xp.floor(_safe_log2(s * (4.0 / 3.0), xp))
    n2 = n1 + 1 - 2 ** (bits - 2)
    k = xp.floor(_safe_log2(a * (4.0 / 3.0), xp))
    two = 2.0 * xp.ones_like(a)
    # below 2^n2: round to 2^n2 at or above its half, to 0 below it.
    low = a >= xp.pow(two, n2 - 1)
    k = xp.minimum(k, n1)
    mag = xp.where(
        k >= n2, xp.pow(two, k), xp.where(low, xp.pow(two, n2 + 0 * k), xp.zeros_like(a))
    )
    mag = xp.where(a > 0, mag, xp.zeros_like(a))
    return xp.where(w < 0, -mag, mag), n1


def _validate_pow2(w, bits, method, fsr, axis):
    w, xp = check_array(w, "w")
    method = check_choice(method, "method", POW2_METHODS)
    bits = check_bits(bits, "bits", low=2 if method == "inq" else 1, high=8)
    if fsr is not None:
        if method != "logquant":
            raise ValueError("fsr is a LogQuant parameter; INQ derives n1 from max|w|")
        if isinstance(fsr, bool) or not isinstance(fsr, (numbers.Integral, np.integer)):
            raise TypeError(f"fsr must be an integer exponent or None, got {describe(fsr)}")
    axis = check_axis(axis, w.ndim)
    check_finite(w, "w", xp)
    return w, xp, bits, method, axis


def power_of_two(
    w: ArrayT,
    bits: int,
    method: Literal["logquant", "inq"] = "logquant",
    fsr: int | None = None,
    axis: AxisLike = None,
) -> ArrayT:
    """Logarithmic quantization to signed powers of two (LogQuant or INQ).

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor to quantize, in any Array API namespace.
    bits : int
        LogQuant: :math:`b` in [1, 8], giving the :math:`2^b + 1` exponents
        :math:`\\mathrm{FSR} - 2^b, \\dots, \\mathrm{FSR}`. INQ: the bit width
        :math:`b` in [2, 8] of the codebook :math:`\\{0, \\pm 2^{n_2}, \\dots,
        \\pm 2^{n_1}\\}` with :math:`2^{b-2}` magnitudes.
    method : {"logquant", "inq"}, default="logquant"
        Which rule.
    fsr : int or None, default=None
        LogQuant's full-scale range, the largest exponent. None: estimated as
        :math:`\\operatorname{round}(\\log_2 \\max|w|)` per slice.
    axis : int, tuple of int or None, default=None
        Axes that keep separate ``fsr`` / :math:`n_1`. None: per tensor.

    Returns
    -------
    w_q : array, same shape, dtype, namespace and device as ``w``
        Signed powers of two, and exact zeros.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or ``fsr`` is not an integer.
    ValueError
        If ``bits`` or ``method`` is invalid, ``axis`` is out of bounds, or
        ``w`` is empty or holds NaN/Inf.

    See Also
    --------
    inq_codebook : The INQ codebook itself.
    round_to_codebook : Nearest codeword of any codebook.

    Notes
    -----
    LogQuant (0 stays 0):

    .. math::

        q(w) = \\mathrm{sign}(w)\\, 2^{\\mathrm{clip}(\\operatorname{round}(\\log_2|w|),
        \\;\\mathrm{FSR} - 2^b,\\; \\mathrm{FSR})}.

    INQ: with :math:`s = \\max|w|`, :math:`n_1 = \\lfloor \\log_2(4s/3) \\rfloor`
    and :math:`n_2 = n_1 + 1 - 2^{b-1}/2`, each entry goes to the nearest
    element of :math:`\\{0, \\pm 2^{n_2}, \\dots, \\pm 2^{n_1}\\}` (between
    :math:`2^k` and :math:`2^{k+1}` the boundary is :math:`1.5 \\cdot 2^k`;
    below :math:`2^{n_2 - 1}` an entry becomes 0). The pseudo-gradient is
    the straight-through estimator.

    References
    ----------
    .. [1] D. Miyashita, E. H. Lee, B. Murmann, "Convolutional Neural Networks
       using Logarithmic Data Representation", arXiv:1603.01025, 2016.
    .. [2] A. Zhou, A. Yao, Y. Guo, L. Xu, Y. Chen, "Incremental Network
       Quantization: Towards Lossless CNNs with Low-Precision Weights",
       ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import power_of_two
    >>> w = np.array([-0.7, 0.0, 0.05, 0.3, 1.0])
    >>> power_of_two(w, bits=2)
    array([-0.5   ,  0.    ,  0.0625,  0.25  ,  1.    ])
    >>> power_of_two(w, bits=3, method="inq")
    array([-0.5,  0. ,  0. ,  0.5,  1. ])
    """
    w, xp, bits, method, axis = _validate_pow2(w, bits, method, fsr, axis)
    if method == "inq":
        return _inq_parts(w, xp, bits, axis)[0]
    return _logquant_parts(w, xp, bits, fsr, axis)[0]


def power_of_two_code_bits(bits, method="logquant"):
    """Bits per code of :func:`encode_power_of_two` (INQ: ``bits``; LogQuant: enough for
    the ``2 (2^b + 1) + 1`` signed powers of two and zero)."""
    if method == "inq":
        return bits
    return math.ceil(math.log2(2 * (2**bits + 1) + 1))


def encode_power_of_two(w, bits, method="logquant", fsr=None, axis=None):
    """The codes of :func:`power_of_two`: indices into the signed powers of two and zero.

    Takes the parameters of :func:`power_of_two` and validates them as it
    does. The codebook is ``(-1, ..., -2^-(m-1), 0, 2^-(m-1), ..., 1)`` with
    ``m`` magnitudes (``2^b + 1`` for LogQuant, ``2^(b-2)`` for INQ), and the
    scale is :math:`2^{\\mathrm{FSR}}` (LogQuant) or :math:`2^{n_1}` (INQ) per
    slice. Every product of a codeword and a scale is a power of two, so
    ``decode(encode_power_of_two(w, ...))`` equals ``power_of_two(w, ...)``
    bit for bit.

    Returns
    -------
    q : QuantizedArray
        int16 codes, ``scheme="power_of_two"``, ``bits`` as
        :func:`power_of_two_code_bits`.
    """
    w, xp, bits, method, axis = _validate_pow2(w, bits, method, fsr, axis)
    if method == "inq":
        v, top = _inq_parts(w, xp, bits, axis)
        n_mag = 2 ** (bits - 2)
    else:
        v, top = _logquant_parts(w, xp, bits, fsr, axis)
        n_mag = 2**bits + 1
    mags = [2.0 ** (-k) for k in range(n_mag - 1, -1, -1)]
    book = _codebook_like([-m for m in reversed(mags)] + [0.0] + mags, w, xp)
    scale = xp.pow(2.0 * xp.ones_like(top), top)
    mid = (book[1:] + book[:-1]) / 2
    codes = xp.astype(xp.searchsorted(mid, xp.reshape(v / scale, (-1,))), xp.int16)
    return QuantizedArray(
        codes=xp.reshape(codes, tuple(w.shape)),
        scale=scale,
        codebook=book,
        bits=power_of_two_code_bits(bits, method),
        axis=axis,
        dtype=_dtype_name(w),
        scheme="power_of_two",
    )


def inq_codebook(w: ArrayT, bits: int) -> ArrayT:
    """The INQ codebook :math:`\\{0, \\pm 2^{n_2}, \\dots, \\pm 2^{n_1}\\}` of a tensor.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Tensor whose :math:`\\max|w|` sets :math:`n_1`.
    bits : int
        Bit width :math:`b` in [2, 8].

    Returns
    -------
    codebook : array of shape (2**(bits - 1) + 1,)
        Sorted codewords, in ``w``'s namespace, dtype and device.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array.
    ValueError
        If ``bits`` is out of range or ``w`` is empty, all zero, or holds
        NaN/Inf.

    See Also
    --------
    power_of_two : Quantize to it (``method="inq"``).

    Notes
    -----
    .. math::

        n_1 = \\lfloor \\log_2(4s/3) \\rfloor, \\quad s = \\max|w|, \\qquad
        n_2 = n_1 + 1 - 2^{b-1}/2.

    References
    ----------
    .. [1] A. Zhou, A. Yao, Y. Guo, L. Xu, Y. Chen, "Incremental Network
       Quantization: Towards Lossless CNNs with Low-Precision Weights",
       ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import inq_codebook
    >>> inq_codebook(np.array([0.2, -0.9]), bits=3)
    array([-1. , -0.5,  0. ,  0.5,  1. ])
    """
    w, xp = check_array(w, "w")
    bits = check_bits(bits, "bits", low=2, high=8)
    check_finite(w, "w", xp)
    s = xp.max(xp.abs(w))
    if not is_lazy(w) and not bool(s > 0):
        raise ValueError("w is all zero: the INQ codebook needs max|w| > 0")
    # n1 as power_of_two(method="inq") computes it, in w's namespace (so that it traces)
    n1 = xp.floor(_safe_log2(s * (4.0 / 3.0), xp))
    k = 2 ** (bits - 2)
    steps = xp.arange(k - 1, -1, -1, dtype=w.dtype, device=_device(w))
    mags = xp.pow(2.0 * xp.ones_like(steps), n1 - steps)  # 2^n2, ..., 2^n1
    zero = xp.zeros((1,), dtype=w.dtype, device=_device(w))
    return xp.concat([-xp.flip(mags), zero, mags])
