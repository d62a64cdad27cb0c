"""The bit kernels' place in qtoolkit's one CPU dispatch (:mod:`qtoolkit._dispatch`).

The public level functions are re-exported from :mod:`qtoolkit.bitops`; this module
registers the bitops kernel families and hands each kernel call its level id.
"""

from .._dispatch import (
    LEVELS,
    available_simd_levels,
    get_simd_level,
    kernel_level,
    level_id,
    register_kernel_family,
    set_simd_level,
    show_runtime,
    simd_level,
)
from .._validation import check_n_threads
from . import _bitops, _lowbit

__all__ = [
    "available_simd_levels",
    "get_simd_level",
    "set_simd_level",
    "show_runtime",
    "simd_level",
]

_OPENMP = _bitops.openmp_enabled()
GEMM = register_kernel_family(
    "bitops.gemm",
    [lv for lv in LEVELS if _bitops.level_usable(level_id(lv))] + ["generic"],
    "xnor-popcount GEMM micro-kernel (xnor_gemm, binary_matmul)",
    openmp=_OPENMP,
)
# the packing loop has a generic and an AVX2 implementation (qt_pack.h)
PACK = register_kernel_family(
    "bitops.pack",
    ("generic", "avx2"),
    "sign-bit packing (pack_bits)",
    openmp=_OPENMP,
)


def _lowbit_levels(which):
    """Levels with their own low-bit kernel here (``which``: 0 k-bit x int8, 1 ternary)."""
    return [lv for lv in LEVELS if lv == "generic" or _lowbit.kernel_names(level_id(lv))[which]]


# k-bit x int8 (qt_lowbit_*.h): scalar C at generic (and popcnt), vpmaddubsw at avx2,
# vpdpbusd at avx512 where the CPU has AVX-512 VNNI (else the AVX2 kernel), neon
LOWBIT = register_kernel_family(
    "bitops.lowbit",
    [lv for lv in _lowbit_levels(0) if lv != "popcnt"],
    "k-bit weights x int8 GEMM/GEMV (lowbit_matmul, lowbit_gemm_int)",
    openmp=_lowbit.openmp_enabled(),
)
# ternary popcounts (qt_tern_*.h): SWAR, POPCNT, AVX2 nibble-LUT vpshufb, VPOPCNTDQ, NEON
TERNARY = register_kernel_family(
    "bitops.ternary",
    _lowbit_levels(1),
    "ternary popcount GEMM (ternary_gemm)",
    openmp=_lowbit.openmp_enabled(),
)


def _level_id(family=GEMM):
    return kernel_level(family)[1]


def _resolve_threads(n_threads, work, threshold, items=None):
    """Validate ``n_threads``; for None, one thread below ``threshold`` work units, else all CPUs.

    The count is capped at the usable CPUs and at ``items``, the number of
    pieces the kernel splits between threads (see ``check_n_threads``).
    """
    return check_n_threads(n_threads, default=1 if work < threshold else None, work=items)
