"""Bit operations: bit packing and binary matrix products.

Background
----------
Binarized networks (BinaryConnect, XNOR-Net) replace the multiply-accumulate of
a dot product between +-1 vectors by bitwise logic: with the signs stored one
bit each, ``a . b = K - 2 popcount(a XOR b)``. This subpackage packs signs into
64-bit words (:func:`pack_bits`) and multiplies packed matrices with a blocked,
multi-threaded xnor-popcount GEMM (:func:`xnor_gemm`) whose inner kernel is
chosen at import from the CPU's instruction sets (:func:`show_runtime`). Dense
storage of 1-, 2-, 4- and 8-bit integer codes is in :func:`pack_codes` /
:func:`unpack_codes`.
"""

from ._codes import PACKABLE_BITS, pack_codes, unpack_codes
from ._dispatch import (
    available_simd_levels,
    get_simd_level,
    set_simd_level,
    show_runtime,
    simd_level,
)
from ._gemm import MAX_BITS, binary_matmul, xnor_gemm
from ._packing import PackedBits, pack_bits, unpack_bits

__all__ = [
    "MAX_BITS",
    "PACKABLE_BITS",
    "PackedBits",
    "available_simd_levels",
    "binary_matmul",
    "get_simd_level",
    "pack_bits",
    "pack_codes",
    "set_simd_level",
    "show_runtime",
    "simd_level",
    "unpack_bits",
    "unpack_codes",
    "xnor_gemm",
]
