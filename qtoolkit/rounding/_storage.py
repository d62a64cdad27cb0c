"""A versioned ``.npz`` file format for a :class:`QuantizedArray`."""

from __future__ import annotations

import math

import numpy as np

from .._array import describe
from .._array import to_numpy as _as_numpy
from .._npz import NpzReader
from .._typing import FileLike, SupportsQuantizedArray
from ..bitops import PACKABLE_BITS, pack_codes, unpack_codes
from ._quantized import QuantizedArray

FORMAT_NAME = "qtoolkit.QuantizedArray"
FORMAT_VERSION = 1
_FLOAT_DTYPES = ("float16", "float32", "float64")
_CODE_DTYPES = ("int8", "int16", "int32", "int64", "uint8")
_OPTIONAL = ("scale", "zero_point", "codebook", "scale_neg")
_FLOAT_NP = tuple(np.dtype(d) for d in _FLOAT_DTYPES)
_FIELDS = (
    *("format", "version", "scheme", "dtype", "shape", "bits", "axis", "axis_is_none"),
    *("group_size", "codes_dtype", "codes", "codes_width", "codes_offset", *_OPTIONAL),
)


def _pack_width(bits):
    for b in PACKABLE_BITS:
        if bits <= b:
            return b
    return None


def save_quantized(file: FileLike, q: QuantizedArray | SupportsQuantizedArray) -> None:
    """Save a :class:`QuantizedArray` to a versioned ``.npz`` file, codes densely packed.

    Parameters
    ----------
    file : str, os.PathLike or file object
        Destination (``numpy.savez`` adds ``.npz`` to a name without it).
    q : QuantizedArray or object with ``to_quantized_array()``
        The encoded tensor (a :class:`qtoolkit.optimize.QuantizedLayer` is
        converted first). Arrays of any namespace are copied to NumPy (a Dask
        array is computed).

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
    if not isinstance(q, QuantizedArray) and callable(getattr(q, "to_quantized_array", None)):
        q = q.to_quantized_array()  # a layer-level result (qtoolkit.optimize.QuantizedLayer)
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


class QuantizedFileError(ValueError):
    """A file given to :func:`load_quantized` is not a valid quantized-array file.

    Raised for every malformed input: not an ``.npz`` archive, truncated or
    corrupt, another format or version, a field of the wrong type, shape or
    dtype, codes out of the range of ``bits`` or of the codebook, non-finite
    scales, and members whose declared size disagrees with their header or
    with the tensor's shape. The message names the field and what is wrong.
    It is a ``ValueError``, so ``except ValueError`` catches it too.

    See Also
    --------
    load_quantized : the loader that raises it.

    Examples
    --------
    >>> import io
    >>> from qtoolkit.rounding import QuantizedFileError, load_quantized
    >>> try:
    ...     load_quantized(io.BytesIO(b""))
    ... except QuantizedFileError as exc:
    ...     print(type(exc).__name__, isinstance(exc, ValueError))
    QuantizedFileError True
    """


_MAX_NDIM = 64
_MAX_SCHEME = 64


def _int_scalar(r, key, low, high):
    value = r.scalar(key, "iu", "an integer")
    if not low <= value <= high:
        raise r.fail(f"has {key}={value}, expected an integer in [{low}, {high}]")
    return int(value)


def _int_vector(r, key, max_len):
    def check(shape, dtype):
        if len(shape) != 1 or shape[0] > max_len or dtype.kind not in "iu":
            raise r.fail(
                f"has {key} of shape {shape} and dtype {dtype}, expected at most {max_len} integers"
            )

    return [int(v) for v in r.read(key, check)]


def _read_codes(r, count, width, offset, codes_dtype, bits):
    """The codes as ``codes_dtype`` (never a wider type), checked against the member sizes."""
    cdt = np.dtype(codes_dtype)
    info = np.iinfo(cdt)
    if width:
        nbytes = -(-count * width // 8)

        def check(shape, dtype):
            if shape != (nbytes,) or dtype != np.uint8:
                raise r.fail(
                    f"has packed codes of shape {shape} and dtype {dtype}; {count} codes "
                    f"of {width} bits need ({nbytes},) uint8"
                )

        raw = unpack_codes(r.read("codes", check), width, count)
        if count:
            lo, hi = int(raw.min()) + offset, int(raw.max()) + offset
            if lo < info.min or hi > info.max:
                raise r.fail(f"has codes in [{lo}, {hi}], outside {codes_dtype}")
        codes = raw.astype(cdt)
        if offset:
            # modular arithmetic in the codes' own dtype: exact, as the result fits (checked)
            np.add(codes, np.array(offset).astype(cdt), out=codes, casting="unsafe")
        return codes

    def check(shape, dtype):
        if shape != (count,) or dtype.newbyteorder("=") != cdt:
            raise r.fail(
                f"has codes of shape {shape} and dtype {dtype}; expected ({count},) {codes_dtype}"
            )

    return r.read("codes", check)


def load_quantized(file: FileLike) -> QuantizedArray:
    """Load a :class:`QuantizedArray` written by :func:`save_quantized`.

    The file is not trusted: every field is validated, each member's ``.npy``
    header is checked against its declared size and against the size the
    tensor's shape requires before its data is read, and codes are unpacked
    into their own dtype (never widened).

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
    QuantizedFileError
        (a ``ValueError``) If the file is not a valid file of
        :func:`save_quantized`: not an ``.npz`` archive, truncated or corrupt,
        another format or version, or a field missing, of the wrong type,
        shape or dtype, or inconsistent with the others (codes outside the
        range of ``bits``, of their dtype or of the codebook; NaN or Inf
        scales; a scale that does not broadcast against the codes; an axis
        out of range; a ``group_size`` that does not divide the last axis).
    OSError
        If a path cannot be opened.

    See Also
    --------
    save_quantized : Write one.
    decode : Reconstruct the tensor.
    QuantizedFileError : The error raised for malformed files.

    Notes
    -----
    The file is opened without pickle; codes are unpacked with
    :func:`qtoolkit.bitops.unpack_codes` and shifted back by the stored
    offset, so :math:`q_{\\text{loaded}} = q_{\\text{saved}}` exactly. Memory is
    bounded by the file's contents: the largest allocation is the codes
    (a few times ``prod(shape)`` bytes for 8-bit codes).

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
    with NpzReader(file, QuantizedFileError) as r:
        fail = r.fail
        if "format" not in r:
            raise fail("is not a qtoolkit quantized-array file: field 'format' is missing")
        fmt = r.scalar("format", "U", "a format name")
        if fmt != FORMAT_NAME:
            raise fail(f"has format {fmt[:60]!r}, expected {FORMAT_NAME!r}")
        for key in r.members:
            if key not in _FIELDS:
                raise fail(f"has an unexpected member {key[:60]!r}")
        version = r.scalar("version", "iu", "an integer version")
        if version != FORMAT_VERSION:
            raise fail(
                f"has format version {version}; this qtoolkit reads version {FORMAT_VERSION}"
            )
        dtype = r.scalar("dtype", "U", "a dtype name")
        codes_dtype = r.scalar("codes_dtype", "U", "a dtype name")
        if dtype not in _FLOAT_DTYPES or codes_dtype not in _CODE_DTYPES:
            raise fail(f"has unsupported dtypes {dtype[:20]!r} / {codes_dtype[:20]!r}")
        scheme = r.scalar("scheme", "U", "a scheme name")
        if len(scheme) > _MAX_SCHEME:
            raise fail(f"has a scheme name of {len(scheme)} characters")
        bits = _int_scalar(r, "bits", 1, 64)
        shape = tuple(_int_vector(r, "shape", _MAX_NDIM))
        if any(s < 0 for s in shape):
            raise fail(f"has a negative dimension in shape {shape}")
        count = math.prod(shape)
        if count > 1 << 62:
            raise fail(f"has a shape {shape} of {count} entries")
        width = _int_scalar(r, "codes_width", 0, 8)
        if width and (width not in PACKABLE_BITS or width < bits):
            raise fail(f"has codes_width={width} for bits={bits}")
        offset = _int_scalar(r, "codes_offset", -(2**63), 0)
        if offset not in (0, -(2 ** (bits - 1))) or (offset and codes_dtype == "uint8"):
            raise fail(f"has codes_offset={offset} for bits={bits} and {codes_dtype} codes")
        axis_is_none = r.scalar("axis_is_none", "b", "a bool")
        axis = None if axis_is_none else tuple(_int_vector(r, "axis", _MAX_NDIM))
        group = _int_scalar(r, "group_size", 0, 1 << 62)
        codes = _read_codes(r, count, width, offset, codes_dtype, bits)
        codes = codes.reshape(shape)
        extra = {}
        for key in _OPTIONAL:
            if key in r:

                def check(s, dt, key=key):
                    if dt.newbyteorder("=") not in _FLOAT_NP or len(s) > len(shape) + 1:
                        raise fail(f"has {key} of shape {s} and dtype {dt}")
                    if math.prod(s) > max(count, 1) or (key == "codebook" and len(s) != 1):
                        raise fail(f"has {key} of shape {s}, too large for shape {shape}")

                extra[key] = r.read(key, check)
                if not np.all(np.isfinite(extra[key])):
                    raise fail(f"has NaN or Inf in {key}")
    try:
        q = QuantizedArray(
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
    except (TypeError, ValueError) as exc:
        raise fail(f"has inconsistent fields: {exc}") from None
    if count:
        lo, hi = int(codes.min()), int(codes.max())
        if q.codebook is not None:
            if lo < 0 or hi >= q.codebook.shape[0]:
                raise fail(
                    f"has codes in [{lo}, {hi}] for a codebook of {q.codebook.shape[0]} entries"
                )
        elif lo < -(2 ** (bits - 1)) or hi > 2**bits - 1:
            raise fail(f"has codes in [{lo}, {hi}], outside the range of {bits}-bit codes")
    return q
