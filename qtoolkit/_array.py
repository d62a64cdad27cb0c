"""Array-namespace helpers (array-api-compat) and the re-exported validation helpers.

The validation helpers live in :mod:`qtoolkit._validation`; they are re-exported here so
that ``from qtoolkit._array import check_int`` keeps working.
"""

import math

import numpy as np
from array_api_compat import array_namespace, is_dask_array, is_numpy_array

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
    "slice_rows",
    "to_numpy",
]


def slice_rows(x, kept, xp=None):
    """``x`` as ``(n_slices, n)`` rows, one per slice of the ``kept`` axes, and the keepdims
    shape of a per-slice statistic.

    ``kept`` is None (one slice: the whole array) or a tuple of axes (each row holds the
    entries of one index of the kept axes, in C order of the other axes). Reshaping a
    ``(n_slices,)`` statistic to the returned shape broadcasts it against ``x``. Any Array
    API namespace (``xp``, found from ``x`` when None).
    """
    xp = array_namespace(x) if xp is None else xp
    kept = () if kept is None else tuple(kept)
    shape = tuple(x.shape)
    order = kept + tuple(ax for ax in range(len(shape)) if ax not in kept)
    if order != tuple(range(len(shape))):
        x = xp.permute_dims(x, order)
    m = math.prod(shape[ax] for ax in kept)
    stat_shape = tuple(n if ax in kept else 1 for ax, n in enumerate(shape))
    return xp.reshape(x, (m, -1)), stat_shape


def to_numpy(x):
    """A host NumPy array of ``x`` (the one conversion every module uses).

    NumPy arrays pass through; Dask arrays are computed; other Array API arrays go
    through DLPack (no copy when the memory is on the host), then ``numpy.asarray``,
    then ``array_api_compat.to_device(x, "cpu")`` for accelerator arrays. None stays None.
    """
    if x is None or isinstance(x, np.ndarray):
        return x
    if is_dask_array(x):
        return np.asarray(x.compute())
    try:
        return np.from_dlpack(x)
    except (TypeError, AttributeError, RuntimeError, BufferError, ValueError):
        pass
    try:
        return np.asarray(x)
    except (TypeError, RuntimeError, ValueError):
        from array_api_compat import to_device

        return np.asarray(to_device(x, "cpu"))
