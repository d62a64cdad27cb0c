"""Ternary popcount products: TernaryBits, pack_ternary_bits and ternary_gemm."""

from __future__ import annotations

import numpy as np

from .._array import describe
from .._typing import ArrayLike, NDArray
from .._validation import check_no_nan
from . import _lowbit
from ._dispatch import TERNARY, _level_id, _resolve_threads
from ._gemm import MAX_BITS, _output_buffer
from ._packing import PackedBits, pack_bits

__all__ = ["TernaryBits", "pack_ternary_bits", "ternary_gemm"]

_THREAD_MIN_MACS = 1 << 26


class TernaryBits:
    """Rows of values in {-1, 0, +1} as two bit planes (sign and non-zero).

    Bit ``k`` of a row is bit ``k % 64`` of word ``k // 64`` in each plane, as
    in :class:`PackedBits`; rows are padded to a multiple of 8 words and every
    bit at a position ``>= n_bits`` is zero in both planes.

    Attributes
    ----------
    sign : ndarray of uint64, shape (R, stride)
        1 where the value is +1 (0 where it is -1 or 0).
    nonzero : ndarray of uint64, shape (R, stride)
        1 where the value is not 0.
    n_bits : int
        The number of values ``K`` per row.
    shape : tuple of int
        ``(R, n_bits)``.
    ndim : int
        2.

    See Also
    --------
    pack_ternary_bits, ternary_gemm

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_ternary_bits
    >>> t = pack_ternary_bits(np.array([[1, 0, -1]]))
    >>> int(t.sign[0, 0]), int(t.nonzero[0, 0])
    (1, 5)
    """

    __slots__ = ("_n_bits", "_nonzero", "_sign")

    def __init__(self) -> None:
        raise TypeError("TernaryBits is built by pack_ternary_bits")

    @classmethod
    def _trusted(cls, sign, nonzero, n_bits):
        self = object.__new__(cls)
        sign.flags.writeable = False
        nonzero.flags.writeable = False
        self._sign, self._nonzero, self._n_bits = sign, nonzero, int(n_bits)
        return self

    sign = property(lambda self: self._sign, doc="Sign plane, uint64 (R, stride).")
    nonzero = property(lambda self: self._nonzero, doc="Non-zero plane, uint64 (R, stride).")
    n_bits = property(lambda self: self._n_bits, doc="Values per row K.")
    shape = property(lambda self: (self._sign.shape[0], self._n_bits), doc="(R, K).")
    ndim = property(lambda self: 2, doc="2.")

    def __repr__(self) -> str:
        return f"TernaryBits(shape={self.shape})"


def pack_ternary_bits(x: ArrayLike, *, n_threads: int | None = None) -> TernaryBits:
    """Pack the signs of a 2-D array, with zeros kept, into :class:`TernaryBits`.

    Parameters
    ----------
    x : array_like, shape (R, K)
        Real or integer values; each is taken as sign(x) in {-1, 0, +1} (e.g.
        the output of :func:`qtoolkit.rounding.ternarize`).
    n_threads : int, optional
        Threads for the packing (see :func:`pack_bits`).

    Returns
    -------
    t : TernaryBits

    Raises
    ------
    TypeError
        If ``x`` is not real.
    ValueError
        If ``x`` is not 2-D or holds NaN.

    See Also
    --------
    ternary_gemm

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_ternary_bits
    >>> pack_ternary_bits(np.array([[0.3, 0.0], [-2.0, 5.0]])).shape
    (2, 2)
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"x must be 2-D, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"x must be a real array, got {describe(x)}")
    if arr.dtype.kind == "f":
        check_no_nan(arr, "x")  # an infinity has a sign; a NaN has none
    sign = pack_bits(arr > 0, n_threads=n_threads)
    nonzero = pack_bits(arr != 0, n_threads=n_threads)
    return TernaryBits._trusted(
        np.array(sign.words, copy=True), np.array(nonzero.words, copy=True), arr.shape[1]
    )


def _valid_mask(words_shape, n_bits):
    mask = np.zeros(words_shape, dtype=np.uint64)
    full = n_bits // 64
    mask[:, :full] = np.uint64(0xFFFFFFFFFFFFFFFF)
    if n_bits % 64:
        mask[:, full] = np.uint64((1 << (n_bits % 64)) - 1)
    return mask


def ternary_gemm(
    a: TernaryBits,
    b: TernaryBits | PackedBits,
    *,
    out: NDArray[np.int32] | None = None,
    n_threads: int | None = None,
) -> NDArray[np.int32]:
    r"""Exact product of ternary rows with ternary or binary rows, from popcounts.

    .. math::

        C_{ij} = \sum_k a_{ik} b_{jk}
               = \mathrm{popcount}(z_a \wedge z_b)
                 - 2\,\mathrm{popcount}(z_a \wedge z_b \wedge (s_a \oplus s_b))

    Parameters
    ----------
    a : TernaryBits, shape (M, K)
        Left operand (e.g. ternary activations).
    b : TernaryBits or PackedBits, shape (N, K)
        Right operand in the weight layout (rows are the outputs); a
        :class:`PackedBits` is +-1 (its non-zero plane is all ones).
    out : ndarray of int32, shape (M, N), optional
        C-contiguous, writeable array for the result.
    n_threads : int, optional
        Threads (rows of C are split between them); by default all usable CPUs
        for at least 2**26 MACs, one below. The result does not depend on it.

    Returns
    -------
    C : ndarray of int32, shape (M, N)
        ``out`` if given.

    Raises
    ------
    TypeError
        If ``a`` or ``b`` has the wrong type, or ``out`` is not int32.
    ValueError
        If the K differ, ``K > MAX_BITS``, or ``out`` has the wrong shape or layout.

    See Also
    --------
    pack_ternary_bits, xnor_gemm

    Notes
    -----
    Two popcounts per pair of 64-bit words (AVX-512 ``vpopcntq`` with one
    ``vpternlogq`` for the masked xor; AVX2 ``vpshufb`` nibble tables,
    ``popcount(m) + 4 - 2 popcount(d)`` per nibble in one byte counter; scalar
    POPCNT; NEON ``vcnt``); the padding bits are zero in the non-zero planes, so
    they never count. The kernel family is ``bitops.ternary`` in
    :func:`qtoolkit.show_runtime`.

    References
    ----------
    .. [1] F. Li, B. Zhang, B. Liu, "Ternary Weight Networks", arXiv:1605.04711, 2016.
    .. [2] H. Alemdar, V. Leroy, A. Prost-Boucle, F. Petrot, "Ternary Neural
       Networks for Resource-Efficient AI Applications", IJCNN 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_bits, pack_ternary_bits, ternary_gemm
    >>> a = pack_ternary_bits(np.array([[1, 0, -1], [1, 1, 1]]))
    >>> ternary_gemm(a, pack_ternary_bits(np.array([[1, 1, 1]])))
    array([[0],
           [3]], dtype=int32)
    >>> ternary_gemm(a, pack_bits(np.array([[1.0, -1.0, -1.0]])))
    array([[ 2],
           [-1]], dtype=int32)
    """
    if not isinstance(a, TernaryBits):
        raise TypeError(f"a must be a TernaryBits (see pack_ternary_bits), got {describe(a)}")
    if isinstance(b, TernaryBits):
        bs, bz = b.sign, b.nonzero
    elif isinstance(b, PackedBits):
        if b.ndim != 2:
            raise ValueError(f"b must be 2-D, got shape {b.shape}")
        bs = b.words
        bz = _valid_mask(bs.shape, b.n_bits)
    else:
        raise TypeError(f"b must be a TernaryBits or a PackedBits, got {describe(b)}")
    if a.n_bits != b.n_bits:
        raise ValueError(f"a and b must have the same K, got {a.n_bits} and {b.n_bits}")
    k = a.n_bits
    if k > MAX_BITS:
        raise ValueError(f"K={k} exceeds MAX_BITS={MAX_BITS} (the int32 output range)")
    m, n = a.shape[0], bs.shape[0]
    out = _output_buffer(out, (m, n), np.int32)
    if m == 0 or n == 0:
        return out
    nw = -(-k // 64)
    if nw == 0:
        out[...] = 0
        return out
    threads = _resolve_threads(n_threads, m * n * k, _THREAD_MIN_MACS)
    _lowbit.ternary_gemm(a.sign, a.nonzero, bs, bz, nw, out, _level_id(TERNARY), threads)
    return out
