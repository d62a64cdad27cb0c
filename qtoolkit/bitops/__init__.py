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

Low-bit inference kernels: weights of 1, 2, 3 or 4 bits, ternary, binary or
16-entry codebook weights (:class:`LowBitWeights`, built by
:func:`pack_weights`, :func:`pack_ternary`, :func:`pack_binary`,
:func:`pack_codebook`, :func:`pack_quantized`) times dynamically quantized int8
activations (:func:`quantize_activations`) in :func:`lowbit_matmul` (exact
integer form :func:`lowbit_gemm_int`), and ternary x ternary / ternary x binary
products from popcounts over sign and non-zero planes (:func:`ternary_gemm`).
Outputs of 256 KiB or more are 64-byte aligned and reuse freed buffers of the same
size (:func:`set_buffer_cache`, :func:`buffer_cache_info`).
"""

from ._buffers import BufferCacheInfo, buffer_cache_info, set_buffer_cache
from ._codes import PACKABLE_BITS, pack_codes, unpack_codes
from ._dispatch import (
    available_simd_levels,
    get_simd_level,
    set_simd_level,
    show_runtime,
    simd_level,
)
from ._gemm import MAX_BITS, binary_matmul, xnor_gemm
from ._lowbit_gemm import (
    QuantizedActivations,
    lowbit_gemm_int,
    lowbit_matmul,
    quantize_activations,
)
from ._lowbit_weights import (
    LOWBIT_BITS,
    LowBitFormatError,
    LowBitWeights,
    load_lowbit_weights,
    pack_binary,
    pack_codebook,
    pack_quantized,
    pack_ternary,
    pack_weights,
    save_lowbit_weights,
)
from ._packing import PackedBits, pack_bits, unpack_bits
from ._ternary_gemm import TernaryBits, pack_ternary_bits, ternary_gemm

__all__ = [
    "LOWBIT_BITS",
    "MAX_BITS",
    "PACKABLE_BITS",
    "BufferCacheInfo",
    "LowBitFormatError",
    "LowBitWeights",
    "PackedBits",
    "QuantizedActivations",
    "TernaryBits",
    "available_simd_levels",
    "binary_matmul",
    "buffer_cache_info",
    "get_simd_level",
    "load_lowbit_weights",
    "lowbit_gemm_int",
    "lowbit_matmul",
    "pack_binary",
    "pack_bits",
    "pack_codebook",
    "pack_codes",
    "pack_quantized",
    "pack_ternary",
    "pack_ternary_bits",
    "pack_weights",
    "quantize_activations",
    "save_lowbit_weights",
    "set_buffer_cache",
    "set_simd_level",
    "show_runtime",
    "simd_level",
    "ternary_gemm",
    "unpack_bits",
    "unpack_codes",
    "xnor_gemm",
]
