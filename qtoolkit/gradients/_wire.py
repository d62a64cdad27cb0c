"""Wire formats shared by the gradient compressors: header, bit streams, Elias-gamma codes.

Prior validation of data is assumed: these helpers take NumPy arrays of the
documented dtype and only compute.

Every message starts with the same header::

    magic  b"QG"      2 bytes
    scheme            1 byte   (1 = QSGD, 2 = TernGrad, 3 = sign)
    dtype             1 byte   (b"e", b"f", b"d": float16 / float32 / float64)
    ndim              1 byte   (at most MAX_NDIM)
    shape             ndim x uint64, little endian

followed by a scheme-specific body written by the compressor. Decoders check
every length and count against the message's actual size before they
allocate, and refuse messages that decode to more than ``max_elements``
values (default ``DEFAULT_MAX_ELEMENTS``, overridable per call): a message
whose payload is only its non-zeros (QSGD's Elias coding) is otherwise the
one thing that could turn a few bytes into gigabytes.
"""

import math
import struct

import numpy as np

from .._array import to_numpy

SCHEME_QSGD = 1
SCHEME_TERNGRAD = 2
SCHEME_SIGN = 3
_SCHEME_NAMES = {SCHEME_QSGD: "QSGD", SCHEME_TERNGRAD: "TernGrad", SCHEME_SIGN: "sign"}
_DTYPE_CODES = {np.dtype(np.float16): b"e", np.dtype(np.float32): b"f", np.dtype(np.float64): b"d"}
_CODE_DTYPES = {v: k for k, v in _DTYPE_CODES.items()}
MAX_NDIM = 64
DEFAULT_MAX_ELEMENTS = 1 << 26  # 64 Mi values: 512 MiB as float64


def wire_array(g, name="g"):
    """Host NumPy copy of ``g`` in native byte order; ``TypeError`` if no wire code fits."""
    g = to_numpy(g)
    dtype = g.dtype.newbyteorder("=")
    if dtype not in _DTYPE_CODES:
        raise TypeError(
            f"{name} must be float16, float32 or float64 to be encoded, got dtype {g.dtype}"
        )
    return g.astype(dtype, copy=False)


def check_wire_dtype(g, name="g"):
    """``TypeError`` unless a NumPy ``g`` has a dtype (any byte order) with a wire code.

    Other namespaces are checked by :func:`write_header` once copied to the host.
    """
    if isinstance(g, (np.ndarray, np.generic)) and g.dtype.newbyteorder("=") not in _DTYPE_CODES:
        raise TypeError(
            f"{name} must be float16, float32 or float64 to be encoded, got dtype {g.dtype}"
        )


def check_max_elements(max_elements):
    """Validate a decoder's ``max_elements`` (None: ``DEFAULT_MAX_ELEMENTS``)."""
    if max_elements is None:
        return DEFAULT_MAX_ELEMENTS
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)):
        raise TypeError(f"max_elements must be None or an int, got {max_elements!r}")
    if max_elements < 0:
        raise ValueError(f"max_elements must be non-negative, got {max_elements}")
    return int(max_elements)


def write_header(scheme, dtype, shape):
    """Bytes of the common header."""
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype not in _DTYPE_CODES:
        raise TypeError(f"gradients of dtype {dtype} cannot be encoded (float16/32/64 only)")
    return (
        b"QG"
        + struct.pack("<BcB", scheme, _DTYPE_CODES[dtype], len(shape))
        + struct.pack(f"<{len(shape)}Q", *shape)
    )


def read_header(data, scheme, name="data", max_elements=None):
    """Parse the header; return ``(dtype, shape, offset_of_body)``.

    Raises ``TypeError`` if ``data`` is not bytes-like and ``ValueError`` if it
    is not a message of ``scheme`` or its shape holds more than
    ``max_elements`` values (see :func:`check_max_elements`).
    """
    max_elements = check_max_elements(max_elements)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes produced by encode(), got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 5 or data[:2] != b"QG":
        raise ValueError(
            f"{name} is not a qtoolkit gradient message (bad magic or too short, {len(data)} bytes)"
        )
    got, code, ndim = struct.unpack_from("<BcB", data, 2)
    if got != scheme:
        raise ValueError(
            f"{name} holds a {_SCHEME_NAMES.get(got, got)!s} message, expected "
            f"{_SCHEME_NAMES[scheme]}"
        )
    if code not in _CODE_DTYPES:
        raise ValueError(f"{name} has an unknown dtype code {code!r}")
    if ndim > MAX_NDIM:
        raise ValueError(f"{name} is corrupt (ndim {ndim} > {MAX_NDIM})")
    end = 5 + 8 * ndim
    if len(data) < end:
        raise ValueError(f"{name} is truncated (header needs {end} bytes, got {len(data)})")
    shape = tuple(int(s) for s in struct.unpack_from(f"<{ndim}Q", data, 5))
    if any(s > max_elements for s in shape) or math.prod(shape) > max_elements:
        raise ValueError(
            f"{name} declares shape {shape}, more than max_elements={max_elements} values; "
            "pass a larger max_elements to decode it"
        )
    return _CODE_DTYPES[code], shape, end


def bit_length(values):
    """``floor(log2 v) + 1`` for positive integers below 2**53 (vectorised)."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def elias_gamma_bits(values):
    """Elias-gamma code of positive integers as a 0/1 ``uint8`` bit array.

    The code of ``v`` with ``N = floor(log2 v)`` is ``N`` zeros, a one, and the
    ``N`` low bits of ``v`` (most significant first): ``2N + 1`` bits. The
    stream is laid out in two parts, all unary prefixes first and then all
    mantissas, so that decoding is vectorised; the length is that of the
    interleaved code, ``sum(2N + 1)``.
    """
    values = np.asarray(values, dtype=np.uint64)
    n = values.size
    nbits = bit_length(values) - 1  # N per value
    prefix = np.zeros(int(nbits.sum()) + n, dtype=np.uint8)
    prefix[np.cumsum(nbits + 1) - 1] = 1
    total = int(nbits.sum())
    if total == 0:
        return prefix
    owner = np.repeat(np.arange(n), nbits)
    starts = np.cumsum(nbits) - nbits
    j = np.arange(total) - starts[owner]
    shift = (nbits[owner] - 1 - j).astype(np.uint64)
    suffix = ((values[owner] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.concatenate([prefix, suffix])


def elias_gamma_decode(bits, count, name="data"):
    """Decode ``count`` Elias-gamma values from the start of ``bits``.

    Returns ``(values as uint64, number of bits consumed)``.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint64), 0
    ones = np.flatnonzero(bits)
    if ones.size < count:
        raise ValueError(f"{name} is truncated (Elias-gamma stream ends early)")
    ones = ones[:count]
    nbits = np.diff(np.concatenate([[-1], ones])) - 1
    if nbits.max() > 63:
        raise ValueError(f"{name} is corrupt (an Elias-gamma value exceeds 64 bits)")
    start = int(ones[-1]) + 1
    total = int(nbits.sum())
    if start + total > bits.size:
        raise ValueError(f"{name} is truncated (Elias-gamma mantissas end early)")
    values = np.left_shift(np.uint64(1), nbits.astype(np.uint64))
    if total:
        owner = np.repeat(np.arange(count), nbits)
        starts = np.cumsum(nbits) - nbits
        j = np.arange(total) - starts[owner]
        shift = (nbits[owner] - 1 - j).astype(np.uint64)
        contrib = bits[start : start + total].astype(np.uint64) << shift
        np.add.at(values, owner, contrib)
    return values, start + total


def _container(width):
    """Smallest big-endian unsigned dtype holding ``width`` bits, and its bit count."""
    for nbits, code in ((8, ">u1"), (16, ">u2"), (32, ">u4"), (64, ">u8")):
        if width <= nbits:
            return nbits, np.dtype(code)
    raise ValueError(f"fields of {width} bits are not supported (at most 64)")  # pragma: no cover


def uint_bits(values, width):
    """Fixed-width big-endian bits of unsigned integers, as a flat 0/1 ``uint8`` array."""
    if width == 0:
        return np.zeros(0, dtype=np.uint8)
    nbits, dt = _container(width)
    raw = np.asarray(values, dtype=np.uint64).astype(dt).view(np.uint8)
    bits = np.unpackbits(raw.reshape(-1, nbits // 8), axis=1)
    return np.ascontiguousarray(bits[:, nbits - width :]).ravel()


def bits_uint(bits, width, count):
    """Inverse of :func:`uint_bits`."""
    if width == 0:
        return np.zeros(count, dtype=np.uint64)
    nbits, dt = _container(width)
    padded = np.zeros((count, nbits), dtype=np.uint8)
    padded[:, nbits - width :] = bits[: count * width].reshape(count, width)
    return np.packbits(padded, axis=1).view(dt).ravel().astype(np.uint64)


def read_fields(data, offset, width, count, name="data"):
    """``count`` big-endian ``width``-bit unsigned fields packed from byte ``offset`` of ``data``.

    Equal to ``bits_uint(unpack_body(data, offset, ...), width, count)``; for
    ``width <= 25`` each field is cut out of a 4-byte window (no unpacking to bits).
    """
    need = -(-count * width // 8)
    buf = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if buf.size < need:
        raise ValueError(
            f"{name} is truncated (needs {count * width} bits of payload, has {8 * buf.size})"
        )
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint64)
    if width > 25:
        return bits_uint(np.unpackbits(buf[:need]), width, count)
    buf = np.concatenate([buf[:need], np.zeros(4, dtype=np.uint8)]).astype(np.uint32)
    pos = np.arange(count, dtype=np.int64) * width
    byte = pos >> 3
    win = (buf[byte] << 24) | (buf[byte + 1] << 16) | (buf[byte + 2] << 8) | buf[byte + 3]
    shift = (32 - width - (pos & 7)).astype(np.uint32)
    return ((win >> shift) & np.uint32((1 << width) - 1)).astype(np.uint64)


def unpack_body(data, offset, nbits, name="data"):
    """0/1 bits of ``data[offset:]``; check that ``nbits`` are available."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, offset=offset))
    if bits.size < nbits:
        raise ValueError(f"{name} is truncated (needs {nbits} bits of payload, has {bits.size})")
    return bits


class WireCompressor:
    """The contract every gradient compressor of :mod:`qtoolkit.gradients` keeps.

    A compressor is an object with

    - ``compress(g)``: the compressed gradient, an array of ``g``'s namespace,
      shape and dtype (stateful compressors advance their generator or their
      carried error);
    - ``encode(g)``: the same step serialized to ``bytes``: the common header
      (:func:`write_header`), then a scheme-specific body; it records the
      message size in ``bits_per_element_``;
    - ``decode(data, *, max_elements=None)``: a NumPy array equal bit for bit
      to what ``compress`` returns for the same step (same generator state);
      every length and count is checked against the message's real size
      before anything is allocated, and shapes above ``max_elements`` values
      are refused (:func:`read_header`);
    - ``variance_bound(g)``: the scheme's error bound as a float.

    Subclasses set ``_scheme`` (the wire id) and ``_wire_name`` (used in messages)
    and build their bodies with :meth:`_message` and :meth:`_open`, so the
    header, the size accounting and the exact-length check are written once.
    """

    _scheme: int
    _wire_name: str

    def _message(self, dtype, shape, *parts):
        """Header + body parts as one message; records ``bits_per_element_``."""
        data = write_header(self._scheme, dtype, shape) + b"".join(parts)
        self.bits_per_element_ = 8 * len(data) / max(math.prod(shape), 1)
        return data

    def _open(self, data, max_elements):
        """Parse the header: ``(bytes, dtype, shape, n_values, body offset)``."""
        dtype, shape, off = read_header(data, self._scheme, max_elements=max_elements)
        return bytes(data), dtype, shape, math.prod(shape), off

    def _check_length(self, data, need):
        """``ValueError`` unless the message is exactly ``need`` bytes."""
        if len(data) != need:
            state = "truncated" if len(data) < need else "corrupt"
            raise ValueError(
                f"data is {state} ({self._wire_name} message needs {need} bytes, got {len(data)})"
            )
