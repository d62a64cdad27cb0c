"""Dense packing of 1-, 2-, 4- and 8-bit integer codes into bytes.

Codes are packed little-endian within each byte: with ``b`` bits per code and
``p = 8 // b`` codes per byte, code ``i`` occupies bits
``b * (i % p) ... b * (i % p) + b - 1`` of byte ``i // p``. Two int4 codes
share one byte, four 2-bit codes, eight 1-bit codes.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._typing import ArrayLike, NDArray

__all__ = ["PACKABLE_BITS", "pack_codes", "unpack_codes"]

PACKABLE_BITS = (1, 2, 4, 8)


def _check_bits(bits):
    if isinstance(bits, bool) or not isinstance(bits, (numbers.Integral, np.integer)):
        raise TypeError(f"bits must be an integer in {PACKABLE_BITS}, got {bits!r}")
    if int(bits) not in PACKABLE_BITS:
        raise ValueError(f"bits must be one of {PACKABLE_BITS}, got {bits}")
    return int(bits)


def pack_codes(codes: ArrayLike, bits: int) -> NDArray[np.uint8]:
    """Pack non-negative integer codes of ``bits`` bits densely into bytes.

    Parameters
    ----------
    codes : array_like of int, any shape
        Codes in ``[0, 2**bits - 1]``; flattened in C order.
    bits : {1, 2, 4, 8}
        Bits per code.

    Returns
    -------
    packed : ndarray of uint8, shape (ceil(codes.size * bits / 8),)
        The packed bytes; unused high bits of the last byte are zero.

    Raises
    ------
    TypeError
        If ``codes`` is not an integer array or ``bits`` is not an integer.
    ValueError
        If ``bits`` is not 1, 2, 4 or 8, or a code is out of range.

    See Also
    --------
    unpack_codes : The exact inverse.
    numpy.packbits : The 1-bit case.

    Notes
    -----
    With :math:`p = 8/b` codes per byte,

    .. math::

        \\text{byte}_j = \\sum_{r=0}^{p-1} c_{jp + r}\\, 2^{b r}.

    References
    ----------
    .. [1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep
       Neural Networks with Pruning, Trained Quantization and Huffman
       Coding", ICLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops._codes import pack_codes
    >>> pack_codes(np.array([1, 2, 15]), bits=4)
    array([33, 15], dtype=uint8)
    """
    bits = _check_bits(bits)
    c = np.asarray(codes)
    if c.dtype.kind not in "iub":
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    c = c.reshape(-1)
    if c.size and (int(c.min()) < 0 or int(c.max()) > 2**bits - 1):
        raise ValueError(
            f"codes must lie in [0, {2**bits - 1}] for bits={bits}, got values "
            f"in [{int(c.min())}, {int(c.max())}]"
        )
    c = c.astype(np.uint8)
    if bits == 8:
        return c.copy()
    if bits == 1:
        return np.packbits(c, bitorder="little")
    per = 8 // bits
    n = c.size
    pad = (-n) % per
    if pad:
        c = np.concatenate([c, np.zeros(pad, dtype=np.uint8)])
    c = c.reshape(-1, per)
    out = c[:, 0].copy()
    for r in range(1, per):
        out |= c[:, r] << np.uint8(bits * r)
    return out


def unpack_codes(packed: ArrayLike, bits: int, count: int) -> NDArray[np.uint8]:
    """Unpack ``count`` codes of ``bits`` bits from bytes written by :func:`pack_codes`.

    Parameters
    ----------
    packed : array_like of uint8, shape (n_bytes,)
        Packed bytes.
    bits : {1, 2, 4, 8}
        Bits per code.
    count : int
        Number of codes to read, at most ``n_bytes * 8 // bits``.

    Returns
    -------
    codes : ndarray of uint8, shape (count,)

    Raises
    ------
    TypeError
        If ``packed`` is not uint8 or ``count`` is not an integer.
    ValueError
        If ``bits`` is not 1, 2, 4 or 8, or ``count`` is negative or exceeds
        what ``packed`` holds.

    See Also
    --------
    pack_codes : The packer.
    numpy.unpackbits : The 1-bit case.

    Notes
    -----
    .. math::

        c_i = \\big\\lfloor \\text{byte}_{\\lfloor i/p \\rfloor} / 2^{b\\,(i \\bmod p)}
        \\big\\rfloor \\bmod 2^b.

    References
    ----------
    .. [1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep
       Neural Networks with Pruning, Trained Quantization and Huffman
       Coding", ICLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops._codes import unpack_codes
    >>> unpack_codes(np.array([33, 15], dtype=np.uint8), bits=4, count=3)
    array([ 1,  2, 15], dtype=uint8)
    """
    bits = _check_bits(bits)
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed must be a uint8 array, got dtype {p.dtype}")
    p = p.reshape(-1)
    if isinstance(count, bool) or not isinstance(count, (numbers.Integral, np.integer)):
        raise TypeError(f"count must be an integer, got {count!r}")
    count = int(count)
    capacity = p.size * 8 // bits
    if count < 0 or count > capacity:
        raise ValueError(
            f"count must be in [0, {capacity}] for {p.size} bytes of {bits}-bit codes, got {count}"
        )
    if bits == 8:
        return p[:count].copy()
    if bits == 1:
        return np.unpackbits(p, count=count, bitorder="little")
    per = 8 // bits
    shifts = np.arange(per, dtype=np.uint8) * np.uint8(bits)
    mask = np.uint8(2**bits - 1)
    out = (p[:, None] >> shifts[None, :]) & mask
    return out.reshape(-1)[:count]
