"""The bit kernels' place in qtoolkit's one CPU dispatch (:mod:`qtoolkit._dispatch`).

The public level functions are re-exported from :mod:`qtoolkit.bitops`; this module
registers the two bitops kernel families and hands each kernel call its level id.
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
from . import _bitops

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


def _level_id(family=GEMM):
    return kernel_level(family)[1]


def _resolve_threads(n_threads, work, threshold, items=None):
    """Validate ``n_threads``; for None, one thread below ``threshold`` work units, else all CPUs.

    The count is capped at the usable CPUs and at ``items``, the number of
    pieces the kernel splits between threads (see ``check_n_threads``).
    """
    return check_n_threads(n_threads, default=1 if work < threshold else None, work=items)
