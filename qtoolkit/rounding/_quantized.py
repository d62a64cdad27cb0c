"""The encoded form of a quantized tensor, and the generic decoder."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from array_api_compat import device as _device

from .._array import array_namespace, check_axis, check_int, describe
from .._typing import Array, SupportsQuantizedArray
from ._common import _check_finite_result, _from_groups


@dataclass(frozen=True)
class QuantizedArray:
    """Integer codes plus what is needed to turn them back into real values.

    Every ``encode`` in :mod:`qtoolkit.rounding` returns one of these;
    :func:`decode` reconstructs the real tensor and
    :func:`save_quantized` stores it.

    Parameters
    ----------
    codes : array of int, shape ``shape``
        The integer code of each entry, in the namespace of the input.
    scale : array or None
        Scale per tensor, per axis or per group, broadcastable against
        ``codes`` (against its grouped view ``(..., n // g, g)`` when
        ``group_size`` is set) without enlarging them. None means 1.
    zero_point : array or None, default=None
        Integer-valued zero point, same shape as ``scale``; used only when
        ``codebook`` is None. None means 0.
    codebook : array of shape (k,) or None, default=None
        Unscaled codewords; the code of an entry indexes it. None means the
        uniform grid ``code - zero_point``.
    scale_neg : array or None, default=None
        Scale of the negative codewords when it differs from ``scale``
        (trained ternary quantization).
    bits : int, default=8
        Bits per code.
    axis : tuple of int or None, default=None
        The axes that keep separate scales.
    group_size : int or None, default=None
        Block length along the last axis when scales are per group.
    dtype : str, default="float32"
        Name of the floating dtype of the original tensor.
    scheme : str, default="uniform"
        Name of the quantizer that produced the codes.
    shape : tuple of int or None, default=None
        Shape of the tensor; None takes ``codes.shape``, and any other value
        must equal it.

    Raises
    ------
    TypeError
        If ``codes`` is not an integer array, or a field has the wrong type.
    ValueError
        If the fields disagree: ``shape`` other than ``codes.shape``, ``bits``
        outside ``[1, 64]``, an unknown ``dtype``, ``axis`` out of range,
        ``group_size`` not dividing the last axis, a scale or zero point that
        does not broadcast against the codes, a codebook that is not 1-D or
        longer than ``2**bits``. The values themselves are not scanned (they
        may be lazy); :func:`load_quantized` checks them for files.

    See Also
    --------
    decode : Reconstruct the real tensor.
    save_quantized : Store it in a versioned ``.npz`` file.

    Notes
    -----
    The reconstruction is

    .. math::

        \\hat w = s\\,(q - z) \\quad\\text{or}\\quad \\hat w = s\\,c_q

    for a uniform grid or a codebook :math:`c`, with :math:`s` replaced by
    :math:`s_-` for negative codewords when ``scale_neg`` is given.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import encode, decode
    >>> q = encode(np.array([-1.0, 0.0, 0.5, 1.0]), bits=2)
    >>> q.codes
    array([-1,  0,  0,  1], dtype=int8)
    >>> decode(q)
    array([-1.,  0.,  0.,  1.])
    """

    codes: Array
    scale: Array | None
    zero_point: Array | None = None
    codebook: Array | None = None
    scale_neg: Array | None = None
    bits: int = 8
    axis: tuple[int, ...] | None = None
    group_size: int | None = None
    dtype: str = "float32"
    scheme: str = "uniform"
    shape: tuple[int, ...] | None = field(default=None)

    def __post_init__(self):
        _check_structure(self)


_DTYPE_NAMES = ("float16", "float32", "float64", "bfloat16")
MAX_BITS = 64


def _dtype_name(w):
    """The name of ``w``'s floating dtype, as :attr:`QuantizedArray.dtype` records it."""
    text = str(w.dtype)
    for name in ("bfloat16", "float16", "float32", "float64"):
        if text.endswith(name):
            return name
    raise TypeError(f"unsupported floating dtype {w.dtype}")  # pragma: no cover


def _code_dtype(xp, qmin, qmax):
    """The narrowest signed integer dtype of ``xp`` that holds every code in ``[qmin, qmax]``."""
    for dt, lo, hi in ((xp.int8, -128, 127), (xp.int16, -(2**15), 2**15 - 1)):
        if lo <= qmin and qmax <= hi:
            return dt
    return xp.int32


def _codebook_like(values, w, xp):
    """Codewords (Python numbers) as a 1-D array of ``w``'s namespace, dtype and device."""
    return xp.asarray([float(v) for v in values], dtype=w.dtype, device=_device(w))


def _shape_of(x, name):
    shape = getattr(x, "shape", None)
    if shape is None or getattr(x, "dtype", None) is None:
        raise TypeError(f"{name} must be an array, got {describe(x)}")
    return tuple(int(s) for s in shape)


def _check_structure(q):
    """Validate the fields against each other (shapes, types); no pass over the values.

    Raises ``TypeError`` for a field of the wrong type and ``ValueError`` for
    fields that disagree (a ``shape`` other than the codes', an axis out of
    range, a ``group_size`` that does not divide the last axis, a scale that
    does not broadcast against the codes without enlarging them).
    """
    codes_shape = _shape_of(q.codes, "codes")
    xp = array_namespace(q.codes)
    if not xp.isdtype(q.codes.dtype, "integral"):
        raise TypeError(f"codes must be an integer array, got {describe(q.codes)}")
    if q.shape is None:
        object.__setattr__(q, "shape", codes_shape)
    if not isinstance(q.shape, (tuple, list)) or not all(
        isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool) for s in q.shape
    ):
        raise TypeError(f"shape must be a tuple of ints, got {q.shape!r}")
    object.__setattr__(q, "shape", tuple(int(s) for s in q.shape))
    if q.shape != codes_shape:
        raise ValueError(f"shape {q.shape} disagrees with the codes of shape {codes_shape}")
    object.__setattr__(q, "bits", check_int(q.bits, "bits", low=1, high=MAX_BITS))
    if not isinstance(q.dtype, str) or q.dtype not in _DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {_DTYPE_NAMES}, got {q.dtype!r}")
    if not isinstance(q.scheme, str):
        raise TypeError(f"scheme must be a str, got {describe(q.scheme)}")
    ndim = len(q.shape)
    if q.axis is not None:
        if not isinstance(q.axis, (tuple, list)):
            raise TypeError(f"axis must be None or a tuple of ints, got {q.axis!r}")
        axis = check_axis(tuple(q.axis), ndim)
        object.__setattr__(q, "axis", axis)
    view = q.shape
    if q.group_size is not None:
        g = check_int(q.group_size, "group_size", low=1)
        if ndim == 0 or q.shape[-1] % g:
            raise ValueError(f"group_size={g} does not divide the last axis of shape {q.shape}")
        if q.axis is not None and ndim - 1 in q.axis:
            raise ValueError(f"axis={q.axis} must not contain the last axis with group_size")
        object.__setattr__(q, "group_size", g)
        view = (*q.shape[:-1], q.shape[-1] // g, g)
    for name in ("scale", "zero_point", "scale_neg"):
        value = getattr(q, name)
        if value is None:
            continue
        shape = _shape_of(value, name)
        if len(shape) > len(view) or any(
            s not in (1, v) for s, v in zip(shape[::-1], view[::-1], strict=False)
        ):
            raise ValueError(
                f"{name} of shape {shape} does not broadcast against the codes "
                f"(shape {view}{' in groups' if q.group_size else ''})"
            )
    if q.codebook is not None:
        shape = _shape_of(q.codebook, "codebook")
        if len(shape) != 1 or shape[0] < 1:
            raise ValueError(f"codebook must be 1-D and non-empty, got shape {shape}")
        if q.bits < 32 and shape[0] > 2**q.bits:
            raise ValueError(f"codebook has {shape[0]} codewords, more than 2**bits={2**q.bits}")


def decode(q: QuantizedArray | SupportsQuantizedArray) -> Array:
    """Reconstruct the real tensor from a :class:`QuantizedArray`.

    Parameters
    ----------
    q : QuantizedArray or object with ``to_quantized_array()``
        Codes and scales, as returned by any ``encode`` of
        :mod:`qtoolkit.rounding` or by :func:`load_quantized`; a layer result
        (:class:`qtoolkit.optimize.QuantizedLayer`) is converted first.

    Returns
    -------
    w_hat : array, shape ``q.shape``
        The dequantized tensor, in the namespace and on the device of
        ``q.codes``, with dtype ``q.dtype``.

    Raises
    ------
    TypeError
        If ``q`` is not a :class:`QuantizedArray`.

    See Also
    --------
    encode : Uniform integer codes of a real tensor.
    QuantizedArray : The encoded form.

    Notes
    -----
    .. math::

        \\hat w = s\\,(q - z) \\quad\\text{(uniform grid)}, \\qquad
        \\hat w = s\\,c_q \\quad\\text{(codebook)}.

    References
    ----------
    .. [1] B. Jacob et al., "Quantization and Training of Neural Networks for
       Efficient Integer-Arithmetic-Only Inference", CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.rounding import encode, decode
    >>> w = np.array([0.1, -0.4, 0.8], dtype=np.float32)
    >>> decode(encode(w, bits=8))
    array([ 0.1007874, -0.4031496,  0.8      ], dtype=float32)
    """
    if not isinstance(q, QuantizedArray) and callable(getattr(q, "to_quantized_array", None)):
        q = q.to_quantized_array()  # a layer-level result (qtoolkit.optimize.QuantizedLayer)
    if not isinstance(q, QuantizedArray):
        raise TypeError(f"q must be a QuantizedArray, got {describe(q)}")
    xp = array_namespace(q.codes)
    dtype = getattr(xp, q.dtype)
    # Without a zero point, a half-precision tensor is rebuilt in float32 and rounded once at
    # the end: a code (or codeword) times a scale, both half-precision numbers, is exact in
    # float32, so this gives what half-precision arithmetic gives, and codes wider than the
    # half-precision significand (fixed point) stay exact. With a zero point, code - zero
    # point is computed in the tensor's dtype, as the forward map computes it.
    half = q.dtype in ("float16", "bfloat16") and q.zero_point is None
    out_dtype, dtype = dtype, (xp.float32 if half else dtype)
    codes = q.codes
    shape = tuple(q.shape)
    if q.group_size is not None:
        codes = xp.reshape(codes, (*shape[:-1], shape[-1] // q.group_size, q.group_size))
    if q.codebook is None:
        v = xp.astype(codes, dtype)
        if q.zero_point is not None:
            v = v - xp.astype(q.zero_point, dtype)
    else:
        flat = xp.reshape(xp.astype(codes, xp.int64), (-1,))
        v = xp.reshape(xp.take(xp.astype(q.codebook, dtype), flat), tuple(codes.shape))
    if q.scale is not None:
        scale = xp.astype(q.scale, dtype)
        with np.errstate(over="ignore"):  # an overflowing reconstruction is refused below
            if q.scale_neg is not None:
                v = xp.where(v < 0, v * xp.astype(q.scale_neg, dtype), v * scale)
            else:
                v = v * scale
    if out_dtype != dtype:
        with np.errstate(over="ignore"):
            v = xp.astype(v, out_dtype)
    if q.scale is not None:
        _check_finite_result(v, xp, "decode")
    return _from_groups(v, xp, shape, q.group_size)
