"""A versioned ``.npz`` file format for a :class:`QuantizedArray`."""

import numbers
import os

import numpy as np

from .._array import describe
from ..bitops._codes import PACKABLE_BITS, pack_codes, unpack_codes
from ._common import _as_numpy
from ._quantized import QuantizedArray

FORMAT_NAME = "qtoolkit.QuantizedArray"
FORMAT_VERSION = 1
_FLOAT_DTYPES = ("float16", "float32", "float64")
_CODE_DTYPES = ("int8", "int16", "int32", "int64", "uint8")
_OPTIONAL = ("scale", "zero_point", "codebook", "scale_neg")


def _pack_width(bits):
    for b in PACKABLE_BITS:
        if bits <= b:
            return b
    return None


def save_quantized(file, q):
    """Save a :class:`QuantizedArray` to a versioned ``.npz`` file, codes densely packed.

    Parameters
    ----------
    file : str, os.PathLike or file object
        Destination (``numpy.savez`` adds ``.npz`` to a name without it).
    q : QuantizedArray
        The encoded tensor. Arrays of any namespace are copied to NumPy
        (a Dask array is computed).

    Returns
    -------
    None

    Raises
    ------
    TypeError
        If ``q`` is not a :class:`QuantizedArray`.

    See Also
    --------
    load_quantized : Read it back.
    qtoolkit.bitops.pack_codes : The dense packing of 1/2/4/8-bit codes.

    Notes
    -----
    Codes of ``bits`` <= 8 are shifted to be non-negative (offset
    :math:`-2^{b-1}` for signed codes) and packed at the smallest width
    :math:`w \\in \\{1, 2, 4, 8\\}` with :math:`w \\ge b`, so a 4-bit tensor
    of :math:`n` entries takes :math:`\\lceil n/2 \\rceil` bytes. The file
    records the format name and version, shape, dtype, bits, axis, group
    size, scheme, scales, zero points and codebook, and is read with
    ``allow_pickle=False``.

    References
    ----------
    .. [1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep
       Neural Networks with Pruning, Trained Quantization and Huffman
       Coding", ICLR 2016.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.rounding import encode, save_quantized, load_quantized, decode
    >>> buf = io.BytesIO()
    >>> save_quantized(buf, encode(np.array([-1.0, 0.5, 1.0]), bits=4))
    >>> _ = buf.seek(0)
    >>> decode(load_quantized(buf))
    array([-1.        ,  0.57142857,  1.        ])
    """
    if not isinstance(q, QuantizedArray):
        raise TypeError(f"q must be a QuantizedArray, got {describe(q)}")
    codes = _as_numpy(q.codes)
    fields = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "scheme": np.array(str(q.scheme)),
        "dtype": np.array(str(q.dtype)),
        "shape": np.array(tuple(q.shape), dtype=np.int64),
        "bits": np.array(int(q.bits), dtype=np.int64),
        "axis": np.array(() if q.axis is None else tuple(q.axis), dtype=np.int64),
        "axis_is_none": np.array(q.axis is None),
        "group_size": np.array(0 if q.group_size is None else int(q.group_size), dtype=np.int64),
        "codes_dtype": np.array(codes.dtype.name),
    }
    width = _pack_width(int(q.bits))
    offset = 0
    if codes.size and codes.min() < 0:
        offset = -(2 ** (int(q.bits) - 1))
    shifted = codes.astype(np.int64) - offset
    packable = (
        width is not None
        and codes.dtype.kind in "iu"
        and (codes.size == 0 or (shifted.min() >= 0 and shifted.max() < 2**width))
    )
    if packable:
        fields["codes"] = pack_codes(shifted, width)
        fields["codes_width"] = np.array(width, dtype=np.int64)
    else:
        fields["codes"] = codes.reshape(-1)
        fields["codes_width"] = np.array(0, dtype=np.int64)
    fields["codes_offset"] = np.array(offset, dtype=np.int64)
    for name in _OPTIONAL:
        value = getattr(q, name)
        if value is not None:
            fields[name] = _as_numpy(value)
    np.savez(file, **fields)


def _field(data, name, file):
    if name not in data:
        raise ValueError(
            f"{file!r} is not a qtoolkit quantized-array file: field {name!r} is missing"
        )
    return data[name]


def load_quantized(file):
    """Load a :class:`QuantizedArray` written by :func:`save_quantized`.

    Parameters
    ----------
    file : str, os.PathLike or file object
        The ``.npz`` file.

    Returns
    -------
    q : QuantizedArray
        With NumPy arrays; ``decode(q)`` gives the tensor back.

    Raises
    ------
    ValueError
        If the file is not in this format, has a version this qtoolkit does
        not read, or its fields are inconsistent.

    See Also
    --------
    save_quantized : Write one.
    decode : Reconstruct the tensor.

    Notes
    -----
    The file is opened with ``allow_pickle=False``; codes are unpacked with
    :func:`qtoolkit.bitops.unpack_codes` and shifted back by the stored
    offset, so :math:`q_{\\text{loaded}} = q_{\\text{saved}}` exactly.

    References
    ----------
    .. [1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep
       Neural Networks with Pruning, Trained Quantization and Huffman
       Coding", ICLR 2016.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from qtoolkit.rounding import encode, save_quantized, load_quantized
    >>> buf = io.BytesIO()
    >>> save_quantized(buf, encode(np.array([0.0, 1.0]), bits=8))
    >>> _ = buf.seek(0)
    >>> load_quantized(buf).codes
    array([  0, 127], dtype=int8)
    """
    name = file if isinstance(file, (str, os.PathLike)) else type(file).__name__
    try:
        data = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a readable .npz file: {exc}") from exc
    if not hasattr(data, "files"):
        raise ValueError(f"{name!r} holds a single array, not a qtoolkit quantized-array file")
    with data:
        fmt = str(_field(data, "format", name))
        if fmt != FORMAT_NAME:
            raise ValueError(f"{name!r} has format {fmt!r}, expected {FORMAT_NAME!r}")
        version = int(_field(data, "version", name))
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{name!r} has format version {version}; this qtoolkit reads "
                f"version {FORMAT_VERSION}"
            )
        dtype = str(_field(data, "dtype", name))
        codes_dtype = str(_field(data, "codes_dtype", name))
        if dtype not in _FLOAT_DTYPES or codes_dtype not in _CODE_DTYPES:
            raise ValueError(f"{name!r} has unsupported dtypes {dtype!r} / {codes_dtype!r}")
        shape = tuple(int(s) for s in _field(data, "shape", name))
        count = int(np.prod(shape, dtype=np.int64))
        width = int(_field(data, "codes_width", name))
        offset = int(_field(data, "codes_offset", name))
        raw = _field(data, "codes", name)
        if width:
            if width not in PACKABLE_BITS or raw.dtype != np.uint8:
                raise ValueError(
                    f"{name!r} has invalid packed codes (width {width}, dtype {raw.dtype})"
                )
            codes = unpack_codes(raw, width, count).astype(np.int64) + offset
        else:
            if raw.size != count:
                raise ValueError(f"{name!r} holds {raw.size} codes for shape {shape}")
            codes = raw.astype(np.int64)
        codes = codes.astype(codes_dtype).reshape(shape)
        axis = (
            None
            if bool(_field(data, "axis_is_none", name))
            else tuple(int(a) for a in _field(data, "axis", name))
        )
        group = int(_field(data, "group_size", name))
        extra = {k: np.asarray(data[k]) for k in _OPTIONAL if k in data}
        bits = int(_field(data, "bits", name))
        scheme = str(_field(data, "scheme", name))
    if not isinstance(bits, numbers.Integral) or bits < 1:
        raise ValueError(f"{name!r} has invalid bits {bits}")
    return QuantizedArray(
        codes=codes,
        scale=extra.get("scale"),
        zero_point=extra.get("zero_point"),
        codebook=extra.get("codebook"),
        scale_neg=extra.get("scale_neg"),
        bits=bits,
        axis=axis,
        group_size=group or None,
        dtype=dtype,
        scheme=scheme,
        shape=shape,
    )
