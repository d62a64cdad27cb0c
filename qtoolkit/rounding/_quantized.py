"""The encoded form of a quantized tensor, and the generic decoder."""

from dataclasses import dataclass, field

from .._array import array_namespace, describe
from ._common import _from_groups


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
        ``group_size`` is set). None means 1.
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
        Shape of the tensor; None takes ``codes.shape``.

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

    codes: object
    scale: object
    zero_point: object = None
    codebook: object = None
    scale_neg: object = None
    bits: int = 8
    axis: tuple = None
    group_size: int = None
    dtype: str = "float32"
    scheme: str = "uniform"
    shape: tuple = field(default=None)

    def __post_init__(self):
        if self.shape is None:
            object.__setattr__(self, "shape", tuple(self.codes.shape))


def decode(q):
    """Reconstruct the real tensor from a :class:`QuantizedArray`.

    Parameters
    ----------
    q : QuantizedArray
        Codes and scales, as returned by any ``encode`` of
        :mod:`qtoolkit.rounding` or by :func:`load_quantized`.

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
    if not isinstance(q, QuantizedArray):
        raise TypeError(f"q must be a QuantizedArray, got {describe(q)}")
    xp = array_namespace(q.codes)
    dtype = getattr(xp, q.dtype)
    codes = q.codes
    shape = tuple(q.shape)
    if q.group_size is not None:
        codes = xp.reshape(codes, shape[:-1] + (shape[-1] // q.group_size, q.group_size))
    if q.codebook is None:
        v = xp.astype(codes, dtype)
        if q.zero_point is not None:
            v = v - xp.astype(q.zero_point, dtype)
    else:
        flat = xp.reshape(xp.astype(codes, xp.int64), (-1,))
        v = xp.reshape(xp.take(xp.astype(q.codebook, dtype), flat), tuple(codes.shape))
    if q.scale is not None:
        scale = xp.astype(q.scale, dtype)
        if q.scale_neg is not None:
            v = xp.where(v < 0, v * xp.astype(q.scale_neg, dtype), v * scale)
        else:
            v = v * scale
    return _from_groups(v, xp, shape, q.group_size)
