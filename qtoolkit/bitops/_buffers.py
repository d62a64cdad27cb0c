"""Output buffers of the bit-operation products: 64-byte aligned, and cached for reuse.

The first write to a freshly mapped page costs a page fault, which the OS serves one at a
time: on the machines this library was measured on, about 1 µs per 4 KiB, so a 2048 x 2048
float32 output (16 MiB) costs 2–4 ms to fault in, a third of the whole ternary product, and
two threads writing it fault no faster than one. glibc returns large freed blocks to the OS,
so a program that keeps several outputs alive (a batch of results, a list of activations)
pays that cost on every call. Products that return a new array of 256 KiB or more therefore
take it from a small cache of freed output buffers, as onnxruntime's arena and TensorFlow's
allocator do: when the last array over a buffer dies, the buffer is kept (up to
:func:`set_buffer_cache`'s limit, 256 MiB by default, oldest dropped first) and the next
output of the same size reuses its pages. The arrays are ordinary NumPy arrays; only their
``base`` is a cache block.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from . import _bitops

__all__ = ["BufferCacheInfo", "buffer_cache_info", "set_buffer_cache"]

#: Below this many bytes a plain NumPy array is returned: one-row products load no tiles and
#: stream nothing, and there the extra view and the cache measured slower.
_ALIGN_MIN_BYTES = 1 << 18
#: Cached capacities are whole pages, so that outputs of nearly equal size share buffers.
_PAGE = 4096
_DEFAULT_LIMIT = 256 << 20

_bitops.cache_set_limit(_DEFAULT_LIMIT)


class BufferCacheInfo(NamedTuple):
    """State of the output buffer cache (:func:`buffer_cache_info`).

    Parameters
    ----------
    hits : int
        New outputs that reused a cached buffer.
    misses : int
        New outputs of 256 KiB or more for which no cached buffer of their size was free.
    max_bytes : int
        The most bytes the cache keeps (:func:`set_buffer_cache`).
    cached_bytes : int
        Bytes kept now, in freed buffers waiting for reuse.
    n_buffers : int
        Freed buffers kept now (at most 64).

    See Also
    --------
    set_buffer_cache, buffer_cache_info

    Examples
    --------
    >>> from qtoolkit.bitops import BufferCacheInfo
    >>> BufferCacheInfo(hits=3, misses=1, max_bytes=1 << 28, cached_bytes=0, n_buffers=0).hits
    3
    """

    hits: int
    misses: int
    max_bytes: int
    cached_bytes: int
    n_buffers: int


def set_buffer_cache(max_bytes: int) -> int:
    """Keep at most ``max_bytes`` of freed output buffers for reuse; return the previous limit.

    The products of :mod:`qtoolkit.bitops` (and the :mod:`qtoolkit.nn` layers built on them)
    return outputs of 256 KiB or more in 64-byte aligned buffers. When the last array over
    such a buffer is freed, the buffer is kept, and a later output of the same size (rounded
    up to 4 KiB) reuses it instead of faulting in fresh pages from the OS. At most 64
    buffers and ``max_bytes`` bytes are kept; the oldest are freed first, and a buffer larger
    than ``max_bytes`` is never kept.

    Parameters
    ----------
    max_bytes : int
        The limit, in bytes, at least 0. ``0`` turns the cache off and frees what it holds;
        the default is 256 MiB.

    Returns
    -------
    previous : int
        The limit before the call.

    Raises
    ------
    TypeError
        If ``max_bytes`` is not an integer.
    ValueError
        If ``max_bytes`` is negative.

    See Also
    --------
    buffer_cache_info : Hits, misses and the bytes kept now.

    Notes
    -----
    Arrays from the cache are ordinary NumPy arrays: views, pickling and ``np.asarray``
    behave as usual, and a buffer goes back to the cache only once no array, view or
    exported buffer over it is left. Memory kept by the cache is not returned to the OS
    until the limit is lowered.

    Examples
    --------
    >>> from qtoolkit.bitops import buffer_cache_info, set_buffer_cache
    >>> previous = set_buffer_cache(0)  # off: every output gets fresh memory
    >>> buffer_cache_info().cached_bytes
    0
    >>> set_buffer_cache(previous)
    0
    """
    if isinstance(max_bytes, bool):
        raise TypeError("max_bytes must be an integer, got bool")
    try:
        limit = operator.index(max_bytes)
    except TypeError:
        raise TypeError(f"max_bytes must be an integer, got {type(max_bytes).__name__}") from None
    if limit < 0:
        raise ValueError(f"max_bytes must be >= 0, got {limit}")
    return int(_bitops.cache_set_limit(min(limit, np.iinfo(np.intp).max)))


def buffer_cache_info() -> BufferCacheInfo:
    """Hits, misses, limit and content of the output buffer cache (:func:`set_buffer_cache`).

    Returns
    -------
    info : BufferCacheInfo
        ``(hits, misses, max_bytes, cached_bytes, n_buffers)``.

    Examples
    --------
    >>> from qtoolkit.bitops import buffer_cache_info
    >>> info = buffer_cache_info()
    >>> info.cached_bytes <= info.max_bytes
    True
    """
    return BufferCacheInfo(*(int(v) for v in _bitops.cache_info()))


def _aligned_empty(shape, dtype, *, zero=False):
    """A new C-contiguous ``dtype`` array of ``shape`` whose data starts on a 64-byte line.

    NumPy aligns only to 16 bytes; the kernels' 64-byte vector and tile rows would then
    straddle two cache lines each (the AMX tile loads ran 1.3x slower), and the streamed
    output stores need whole lines. Below 256 KiB (one-row products, whose kernels load no
    tiles and stream nothing) a plain NumPy array is returned. From 256 KiB on the memory
    comes from the buffer cache when it is on (module docstring).
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _ALIGN_MIN_BYTES:
        return (np.zeros if zero else np.empty)(shape, dtype=dtype)
    cap = -(-nbytes // _PAGE) * _PAGE
    cached = _bitops.cache_info()[2] >= cap
    raw = _bitops.cache_take(cap) if cached else None
    reused = raw is not None
    if not reused:
        raw = (np.zeros if zero else np.empty)(cap + 64, dtype=np.uint8)
    if cached:
        flat = np.frombuffer(_bitops.CachedBlock(raw, nbytes), dtype=np.uint8)
    else:  # the cache is off, or this buffer could never be kept
        start = -raw.ctypes.data % 64
        flat = raw[start : start + nbytes]
    if zero and reused:
        flat.fill(0)
    return flat.view(dtype).reshape(shape)
