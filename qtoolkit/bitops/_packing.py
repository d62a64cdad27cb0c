"""Sign bits in 64-bit words: :class:`PackedBits`, :func:`pack_bits`, :func:`unpack_bits`."""

from __future__ import annotations

import numbers
from typing import Any, Literal

import numpy as np

from .._array import describe
from .._typing import ArrayLike, DTypeLike, NDArray
from . import _bitops
from ._dispatch import PACK, _level_id, _resolve_threads

__all__ = ["PackedBits", "pack_bits", "unpack_bits"]

_WORD_ALIGN = 8  # rows are padded to a multiple of 8 words (64 bytes)
_THREAD_MIN_VALUES = 1 << 22  # below this many values packing runs on one thread


def _stride(n_bits):
    n_words = -(-n_bits // 64)
    return -(-n_words // _WORD_ALIGN) * _WORD_ALIGN


class PackedBits:
    """A bit array packed along its last axis into 64-bit words.

    Bit ``k`` of a row is bit ``k % 64`` of word ``k // 64`` (the layout of
    ``np.packbits(bits, axis=-1, bitorder="little")`` viewed as ``uint64`` on a
    little-endian machine). Each row is zero-padded to a multiple of 8 words,
    the stride the kernels use, and every bit at a position ``>= n_bits`` is
    zero. A 1 bit stands for +1 and a 0 bit for -1.

    Parameters
    ----------
    words : array_like of uint64, shape (..., n_words_in)
        Packed rows, with at least ``ceil(n_bits / 64)`` words each. They are
        copied into the padded layout; bits at positions ``>= n_bits`` are
        ignored (cleared in the copy).
    n_bits : int
        The true number of bits ``K`` of each row.

    Attributes
    ----------
    words : ndarray of uint64, shape (..., stride)
        The packed rows, C-contiguous, read-only.
    n_bits : int
        The number of bits ``K`` of each row.
    shape : tuple of int
        The shape of the bit array, ``words.shape[:-1] + (n_bits,)``.

    Raises
    ------
    TypeError
        If ``words`` is not an unsigned 64-bit integer array.
    ValueError
        If ``words`` is 0-d or has too few words for ``n_bits``.

    See Also
    --------
    pack_bits : pack real or boolean arrays.
    unpack_bits : the inverse.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import PackedBits
    >>> p = PackedBits(np.array([[0b1011]], dtype=np.uint64), n_bits=4)
    >>> p.shape
    (1, 4)
    >>> int(p.words[0, 0])
    11
    """

    __slots__ = ("_n_bits", "_words")

    def __init__(self, words: ArrayLike, n_bits: int) -> None:
        if isinstance(n_bits, bool) or not isinstance(n_bits, (numbers.Integral, np.integer)):
            raise TypeError(f"n_bits must be an integer, got {describe(n_bits)}")
        n_bits = int(n_bits)
        if n_bits < 0:
            raise ValueError(f"n_bits must be >= 0, got {n_bits}")
        words = np.asarray(words)
        if words.dtype != np.uint64:
            raise TypeError(f"words must be an array of uint64, got {describe(words)}")
        if words.ndim < 1:
            raise ValueError("words must have at least one axis (the packed axis)")
        n_words = -(-n_bits // 64)
        if words.shape[-1] < n_words:
            raise ValueError(
                f"words has {words.shape[-1]} words per row but n_bits={n_bits} needs {n_words}"
            )
        out = np.zeros((*words.shape[:-1], _stride(n_bits)), dtype=np.uint64)
        out[..., :n_words] = words[..., :n_words]
        if n_bits % 64:
            out[..., n_words - 1] &= np.uint64((1 << (n_bits % 64)) - 1)
        out.flags.writeable = False
        self._words = out
        self._n_bits = n_bits

    @classmethod
    def _trusted(cls, words, n_bits):
        """Wrap words already in the canonical layout (kernel output) without a copy."""
        self = cls.__new__(cls)
        words.flags.writeable = False
        self._words = words
        self._n_bits = int(n_bits)
        return self

    @property
    def words(self) -> NDArray[np.uint64]:
        """The packed rows (read-only, padded to the kernels' stride)."""
        return self._words

    @property
    def n_bits(self) -> int:
        """The number of bits of each row."""
        return self._n_bits

    @property
    def n_words(self) -> int:
        """The number of words that hold data in each row, ``ceil(n_bits / 64)``."""
        return -(-self._n_bits // 64)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the bit array."""
        return (*self._words.shape[:-1], self._n_bits)

    @property
    def ndim(self) -> int:
        """The number of axes of the bit array."""
        return self._words.ndim

    def __repr__(self) -> str:
        return f"PackedBits(shape={self.shape}, n_bits={self._n_bits})"


def pack_bits(x: ArrayLike, axis: int = -1, n_threads: int | None = None) -> PackedBits:
    """Pack the signs of ``x`` along ``axis`` into 64-bit words.

    For real input the bit is 1 where ``x >= 0`` (so sign(0) = +1) and 0 where
    ``x < 0``; for boolean input the bit is the value. The packing runs in C
    (compare and ``movemask``, no boolean temporary) at memory speed.

    Parameters
    ----------
    x : array_like, shape (..., K, ...)
        Real (floating or integer) or boolean values. Non-NumPy arrays are
        converted with ``numpy.asarray``.
    axis : int, default -1
        The axis to pack. It becomes the last axis of the result.
    n_threads : int, optional
        OpenMP threads for the packing loop (rows are split between them). By
        default one thread below 2**22 values and all usable CPUs above.

    Returns
    -------
    packed : PackedBits
        ``packed.shape`` is ``x.shape`` with ``axis`` moved to the end;
        ``packed.n_bits`` is ``x.shape[axis]``.

    Raises
    ------
    ValueError
        If ``x`` holds NaN, is 0-d, ``axis`` is out of bounds, or
        ``n_threads`` is outside ``[1, 4096]`` (larger counts are capped at
        the usable CPUs and the rows).
    TypeError
        If ``x`` is complex, object or string typed, or ``axis`` or
        ``n_threads`` is not an int.

    See Also
    --------
    unpack_bits : the inverse.
    xnor_gemm : products of packed matrices.

    Notes
    -----
    Element ``k`` of a row is bit ``k % 64`` of word ``k // 64``, which equals
    ``np.packbits(x >= 0, axis=-1, bitorder="little")`` viewed as ``uint64`` on
    a little-endian machine. Rows are zero-padded to a multiple of 512 bits.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_bits
    >>> p = pack_bits(np.array([[0.5, -2.0, 0.0, -0.1]]))
    >>> p.shape, int(p.words[0, 0])
    ((1, 4), 5)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real or boolean array, got {describe(x)}")
    if x.ndim == 0:
        raise ValueError("x must have at least one axis to pack, got a 0-d array")
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis={axis} is out of bounds for an array of dimension {x.ndim}")
    return _pack_bits(x, axis, n_threads)


def _pack_bits(x, axis, n_threads):
    """:func:`pack_bits` on validated input (a real or boolean ndarray, an axis in range)."""
    rows_of_x = x.size // x.shape[axis] if x.shape[axis] else 0
    threads = _resolve_threads(n_threads, x.size, _THREAD_MIN_VALUES, items=rows_of_x)
    x = np.moveaxis(x, axis, -1)
    batch, k = x.shape[:-1], x.shape[-1]
    if x.dtype.kind == "b":
        flat = x.view(np.uint8)
    elif x.dtype == np.float64:
        flat = x
    elif x.dtype.kind == "f" and x.dtype.itemsize <= 4:
        flat = x.astype(np.float32, copy=False)  # exact: float16 and byte-swapped float32
    elif x.dtype.kind == "f" and x.dtype.itemsize == 8:
        flat = x.astype(np.float64)  # byte-swapped float64, exact
    elif x.dtype.kind == "f":  # long double: compare in its own precision
        if np.isnan(x).any():
            raise ValueError("x contains NaN, which has no sign to pack")
        flat = (x >= 0).view(np.uint8)
    else:  # integers: the sign decides
        flat = (x >= 0).view(np.uint8)
    rows = int(np.prod(batch, dtype=np.int64))
    flat = np.ascontiguousarray(flat.reshape(rows, k))
    words = np.empty((rows, _stride(k)), dtype=np.uint64)
    if k == 0:
        words[...] = 0
    elif _bitops.pack_rows(flat, words, _level_id(PACK), threads):
        raise ValueError("x contains NaN, which has no sign to pack")
    return PackedBits._trusted(words.reshape((*batch, words.shape[-1])), k)


def unpack_bits(
    packed: PackedBits,
    kind: Literal["sign", "bool"] = "sign",
    dtype: DTypeLike | None = None,
    axis: int = -1,
) -> NDArray[Any]:
    """Unpack a :class:`PackedBits` into +-1 values or booleans.

    Parameters
    ----------
    packed : PackedBits
        The packed bits.
    kind : {"sign", "bool"}, default "sign"
        ``"sign"`` gives +1 for a 1 bit and -1 for a 0 bit; ``"bool"`` gives
        the bits.
    dtype : dtype, optional
        Output dtype for ``kind="sign"`` (default ``float32``); must be a
        signed integer or floating dtype. Not allowed with ``kind="bool"``.
    axis : int, default -1
        Where the unpacked axis goes in the result.

    Returns
    -------
    out : ndarray
        Shape ``packed.shape`` with its last axis moved to ``axis``.

    Raises
    ------
    TypeError
        If ``packed`` is not a PackedBits or ``dtype`` is not allowed.
    ValueError
        If ``kind`` is unknown or ``axis`` out of bounds.

    See Also
    --------
    pack_bits : the inverse.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_bits, unpack_bits
    >>> x = np.array([0.5, -2.0, 0.0, -0.1])
    >>> unpack_bits(pack_bits(x))
    array([ 1., -1.,  1., -1.], dtype=float32)
    """
    if not isinstance(packed, PackedBits):
        raise TypeError(f"packed must be a PackedBits (see pack_bits), got {describe(packed)}")
    if kind not in ("sign", "bool"):
        raise ValueError(f"kind must be 'sign' or 'bool', got {kind!r}")
    if kind == "bool" and dtype is not None:
        raise TypeError("dtype is only allowed with kind='sign'")
    if kind == "sign":
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if dtype.kind not in "if":
            raise TypeError(f"dtype must be a signed integer or floating dtype, got {dtype}")
    ndim = packed.ndim
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of bounds for an array of dimension {ndim}")
    words = packed.words
    k = packed.n_bits
    as_bytes = words.astype("<u8", copy=False).view(np.uint8)
    n_rows = int(np.prod(words.shape[:-1], dtype=np.int64))
    rows = as_bytes.reshape(n_rows, as_bytes.shape[-1])  # 2-D: unpackbits takes <= 32 axes
    bits = np.unpackbits(rows, axis=-1, count=k, bitorder="little").view(bool)
    bits = bits.reshape((*words.shape[:-1], k))
    if kind == "sign":
        out = np.where(bits, dtype.type(1), dtype.type(-1)).astype(dtype, copy=False)
    else:
        out = bits
    return np.moveaxis(out, -1, axis)
