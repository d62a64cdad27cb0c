"""Array-namespace helpers (array-api-compat) and the re-exported validation helpers.

The validation helpers live in :mod:`qtoolkit._validation`; they are re-exported here so
that ``from qtoolkit._array import check_int`` keeps working.
"""

from array_api_compat import array_namespace, is_numpy_array

from ._validation import (
    MAX_ITER,
    MAX_THREADS,
    check_axis,
    check_bits,
    check_finite,
    check_int,
    check_n_threads,
    check_random_state,
    check_real_floating,
    cpu_count,
    describe,
    is_lazy,
)

__all__ = [
    "MAX_ITER",
    "MAX_THREADS",
    "array_namespace",
    "check_axis",
    "check_bits",
    "check_finite",
    "check_int",
    "check_n_threads",
    "check_random_state",
    "check_real_floating",
    "cpu_count",
    "describe",
    "is_lazy",
    "is_numpy_array",
]
