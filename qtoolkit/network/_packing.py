"""Dense storage of integer codes of any width from 1 to 8 bits (and 16 or 32 beyond)."""

import numpy as np

from ..bitops import PACKABLE_BITS, pack_codes, unpack_codes

DENSE_BITS = (1, 2, 3, 4, 5, 6, 7, 8)
WIDE_BITS = (16, 32)


def storage_bits(span):
    """The narrowest storage width for codes in ``[0, span]``."""
    need = max(1, int(span).bit_length())
    if need <= 8:
        return need
    return 16 if need <= 16 else 32


def packed_nbytes(count, bits):
    """Bytes that ``count`` codes of ``bits`` bits occupy."""
    if bits in WIDE_BITS:
        return count * (bits // 8)
    return -(-count * bits // 8)


def pack(codes, bits):
    """Pack non-negative ``codes`` (flattened) with ``bits`` bits each; returns a 1-D array.

    1, 2, 4 and 8 bits use :func:`qtoolkit.bitops.pack_codes`; 3, 5, 6 and 7 bits
    form one little-endian bit stream (code ``i`` at bits ``b i .. b i + b - 1``);
    16 and 32 bits are stored as unsigned integers of that width.
    """
    c = np.asarray(codes).reshape(-1)
    if bits in PACKABLE_BITS:
        return pack_codes(c, bits)
    if bits in WIDE_BITS:
        return c.astype(np.uint16 if bits == 16 else np.uint32)
    c8 = c.astype(np.uint8)
    bitplanes = np.unpackbits(c8[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(bitplanes.reshape(-1), bitorder="little")


def unpack(packed, bits, count):
    """Inverse of :func:`pack`: ``count`` codes as a 1-D array (uint8, uint16 or uint32)."""
    if bits in PACKABLE_BITS:
        return unpack_codes(packed, bits, count)
    if bits in WIDE_BITS:
        return np.asarray(packed)[:count].copy()
    stream = np.unpackbits(packed, count=count * bits, bitorder="little").reshape(count, bits)
    weights = (1 << np.arange(bits, dtype=np.uint16)).astype(np.uint16)
    return (stream.astype(np.uint16) @ weights).astype(np.uint8)
