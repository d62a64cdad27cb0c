"""Learned step size quantization (LSQ): a uniform grid whose step is a trained parameter."""

from __future__ import annotations

import math
import numbers

from array_api_compat import device as _device

from .._array import check_bits, describe, is_lazy
from .._typing import Array, ArrayT
from .._validation import check_array
from ._quantized import QuantizedArray, _code_dtype, _dtype_name


def _lsq_levels(bits, signed):
    """``(Q_n, Q_p)``: the grid is the integers in ``[-Q_n, Q_p]``."""
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _check_step(step_size, w, xp, name="step_size"):
    """``step_size`` as an array of ``w``'s kind (a positive number, or a positive array)."""
    if isinstance(step_size, bool):
        raise TypeError(f"{name} must be a positive number or array, got {describe(step_size)}")
    if isinstance(step_size, numbers.Real):
        s = float(step_size)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {step_size!r}")
        return xp.asarray(s, dtype=w.dtype, device=_device(w))
    if not hasattr(step_size, "dtype") or not hasattr(step_size, "shape"):
        raise TypeError(f"{name} must be a positive number or array, got {describe(step_size)}")
    if type(step_size).__module__.split(".")[0] != type(w).__module__.split(".")[0]:
        raise TypeError(
            f"{name} must be a number or an array of the namespace of w "
            f"({type(w).__name__}), got {describe(step_size)}"
        )
    if step_size.ndim > w.ndim:
        raise ValueError(
            f"{name} must broadcast against w of shape {tuple(w.shape)}, got {describe(step_size)}"
        )
    if not is_lazy(step_size) and not bool(xp.all(step_size > 0)):
        raise ValueError(f"{name} must be > 0 (and finite) everywhere")
    return xp.astype(step_size, w.dtype)


def _lsq_codes(w, xp, s, bits, signed):
    """Float-valued codes ``clip(round(w / s), -Q_n, Q_p)`` and the scaled input ``w / s``."""
    qn, qp = _lsq_levels(bits, signed)
    v = w / s
    return xp.clip(xp.round(v), -float(qn), float(qp)), v


def _validate_lsq(w, step_size, bits, signed):
    w, xp = check_array(w, "w")
    bits = check_bits(bits, "bits", low=2 if signed else 1, high=16)
    if not isinstance(signed, bool):
        raise TypeError(f"signed must be a bool, got {describe(signed)}")
    return w, xp, _check_step(step_size, w, xp), bits


def lsq(w: ArrayT, step_size: float | Array, bits: int = 4, signed: bool = True) -> ArrayT:
    """Learned step size quantization: round :math:`w/s` to a clipped integer grid, times :math:`s`.

    Parameters
    ----------
    w : array of real floating dtype, any shape
        Weights or activations, in any Array API namespace.
    step_size : float or array
        The step :math:`s > 0`: a number, or an array of ``w``'s namespace
        that broadcasts against ``w`` (one step per channel, say). In
        training it is a learned parameter (see :func:`ste`).
    bits : int, default=4
        Bit width :math:`b`, in [2, 16] when signed and [1, 16] otherwise.
    signed : bool, default=True
        Signed grid :math:`[-2^{b-1}, 2^{b-1} - 1]` (weights) or unsigned
        :math:`[0, 2^b - 1]` (activations after a ReLU).

    Returns
    -------
    w_q : array, same shape, dtype, namespace and device as ``w``
        :math:`s\\,\\mathrm{clip}(\\operatorname{round}(w/s), -Q_n, Q_p)`.

    Raises
    ------
    TypeError
        If ``w`` is not a real floating array or ``step_size`` is neither a
        number nor an array of ``w``'s namespace.
    ValueError
        If ``bits`` is out of range, ``w`` is empty, or ``step_size`` is not
        positive (checked when its values can be read: not under tracing).

    See Also
    --------
    ste : LSQ with its step-size gradient, in PyTorch or JAX autodiff.
    uniform : A uniform grid whose scale is estimated from the data.

    Notes
    -----
    .. math::

        \\hat w = s\\,\\big\\lfloor \\mathrm{clip}(w/s, -Q_n, Q_p) \\big\\rceil,
        \\qquad
        \\frac{\\partial \\hat w}{\\partial s} =
        \\begin{cases} -w/s + \\lfloor w/s \\rceil & -Q_n < w/s < Q_p \\\\
        -Q_n & w/s \\le -Q_n \\\\ Q_p & w/s \\ge Q_p, \\end{cases}

    with the straight-through estimator :math:`1_{-Q_n < w/s < Q_p}` for
    :math:`w`. The paper scales the step's gradient by
    :math:`g = 1/\\sqrt{N Q_p}` (:math:`N` the number of weights, or of
    features for activations) and initialises
    :math:`s = 2\\,\\mathbb{E}|w| / \\sqrt{Q_p}`. Rounding is half to even.

    References
    ----------
    .. [1] S. K. Esser, J. L. McKinstry, D. Bablani, R. Appuswamy,
       D. S. Modha, "Learned Step Size Quantization", ICLR 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import lsq
    >>> lsq(np.array([-2.0, -0.26, 0.1, 0.3, 2.0]), step_size=0.25, bits=3)
    array([-1.  , -0.25,  0.  ,  0.25,  0.75])
    """
    w, xp, s, bits = _validate_lsq(w, step_size, bits, signed)
    c, _ = _lsq_codes(w, xp, s, bits, signed)
    return c * s


def encode_lsq(w, step_size, bits=4, signed=True):
    """The codes of :func:`lsq`: ``clip(round(w / s), -Q_n, Q_p)`` as integers, scale ``s``.

    Takes the parameters of :func:`lsq` and validates them as it does;
    ``decode(encode_lsq(w, ...))`` equals ``lsq(w, ...)`` bit for bit.

    Returns
    -------
    q : QuantizedArray
        Integer codes in ``[-Q_n, Q_p]``, the step as ``scale``, ``scheme="lsq"``.
    """
    w, xp, s, bits = _validate_lsq(w, step_size, bits, signed)
    c, _ = _lsq_codes(w, xp, s, bits, signed)
    qn, qp = _lsq_levels(bits, signed)
    return QuantizedArray(
        codes=xp.astype(c, _code_dtype(xp, -qn, qp)),
        scale=s,
        bits=bits,
        dtype=_dtype_name(w),
        scheme="lsq",
    )
