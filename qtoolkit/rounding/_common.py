"""Shared machinery of the rounding schemes: validation, scale axes, rounding modes.

Prior validation of data is assumed in every helper whose name starts with an
underscore; the public functions validate once, at the boundary, with the
helpers of :mod:`qtoolkit._validation` (``check_array``, ``check_finite``, ...).

Scale axes. ``axis`` names the axes that *keep* separate scales (the output
channel of a weight tensor, say): statistics are reduced over every other
axis, with ``keepdims=True`` so that a scale broadcasts against the tensor.
``axis=None`` gives one scale for the whole tensor.

Groups. With ``group_size=g`` the last axis is split into blocks of ``g``
consecutive entries *within each row of the leading axes*, and each (row,
block) pair gets its own scale, as GPTQ, AWQ and llama.cpp mean it. For a
``(4, 8)`` matrix and ``group_size=4`` the scales form a ``(4, 2)`` grid::

    columns   0 1 2 3 | 4 5 6 7
    row 0     s[0, 0] | s[0, 1]
    row 1     s[1, 0] | s[1, 1]
    row 2     s[2, 0] | s[2, 1]
    row 3     s[3, 0] | s[3, 1]

With ``group_size`` set, ``axis=None`` means "every leading axis keeps its
scales"; an explicit ``axis`` (which must not contain the last axis) names the
leading axes that keep them, and the others are shared: ``axis=()`` gives one
scale per block of columns shared by all rows.
"""

import math
import sys

import numpy as np
from array_api_compat import device as _device
from array_api_compat import is_dask_array, is_numpy_namespace

from .._array import check_axis, check_int, is_lazy

ROUNDING_MODES = ("half_even", "half_away")


def _check_finite_result(out, xp, what):
    """``ValueError`` if a result computed from finite input is NaN or Inf (eager arrays only).

    A result that overflows its dtype is refused, never returned silently.
    """
    if is_lazy(out):
        return out
    if not bool(xp.all(xp.isfinite(out))):
        raise ValueError(f"{what} overflows {out.dtype} for this input")
    return out


def _is_numpy(xp):
    return is_numpy_namespace(xp)


def _reduce_axes(ndim, axis):
    """The axes a statistic is reduced over when ``axis`` keeps separate scales."""
    if axis is None:
        return None
    return tuple(ax for ax in range(ndim) if ax not in axis)


def _check_scale_axes(w, axis, group_size):
    """Normalise ``axis`` and ``group_size`` against ``w``; return ``(axis, group_size)``."""
    axis = check_axis(axis, w.ndim)
    group_size = check_int(group_size, "group_size", low=1, allow_none=True)
    if group_size is not None:
        if w.ndim == 0:
            raise ValueError(
                "group_size needs an array with at least one dimension, got a 0-d array"
            )
        last = w.ndim - 1
        if axis is not None and last in axis:
            raise ValueError(
                f"group_size splits the last axis into blocks, so axis must not "
                f"contain it; got axis={axis} for an array of dimension {w.ndim}"
            )
        if w.shape[-1] % group_size:
            raise ValueError(
                f"group_size={group_size} does not divide the last axis of length {w.shape[-1]}"
            )
        if axis is None:
            # one scale per row of the leading axes and per block of the row
            axis = tuple(range(w.ndim - 1))
    return axis, group_size


def _to_groups(w, xp, axis, group_size):
    """Reshape ``w`` so that groups become a kept axis.

    Returns ``(view, kept_axes)``: ``view`` has shape ``(..., n // g, g)``
    when ``group_size`` is set (and is ``w`` otherwise), and statistics must be
    reduced over the axes not in ``kept_axes`` with ``keepdims=True``.
    """
    if group_size is None:
        return w, axis
    shape = tuple(w.shape)
    view = xp.reshape(w, (*shape[:-1], shape[-1] // group_size, group_size))
    kept = (tuple(axis) if axis is not None else ()) + (w.ndim - 1,)
    return view, kept


def _from_groups(v, xp, shape, group_size):
    if group_size is None:
        return v
    return xp.reshape(v, tuple(shape))


def _reduce(fn, x, kept, *, ndim=None):
    """Apply a reduction ``fn(x, axis=..., keepdims=True)`` over the non-kept axes."""
    ndim = x.ndim if ndim is None else ndim
    red = _reduce_axes(ndim, kept)
    if red is None:
        return fn(x, axis=None, keepdims=True) if x.ndim else fn(x)
    if not red:
        return x
    return fn(x, axis=red, keepdims=True)


def _max_abs(x, xp, kept):
    return _reduce(xp.max, xp.abs(x), kept)


def _mean_abs(x, xp, kept):
    return _reduce(xp.mean, xp.abs(x), kept)


def _round(x, xp, rounding):
    """Round to the nearest integer, ties to even or away from zero."""
    if rounding == "half_even":
        return xp.round(x)
    r = xp.trunc(x)
    frac = xp.abs(x - r)
    return xp.where(frac >= 0.5, r + xp.sign(x), r)


def _sign(x, xp):
    """sign with sign(0) = +1 (the convention of every binary scheme)."""
    one = xp.ones_like(x)
    return xp.where(x >= 0, one, -one)


def _asarray_like(value, like, xp):
    """``value`` (a Python number or array-like) in ``like``'s namespace, dtype and device."""
    return xp.asarray(value, dtype=like.dtype, device=_device(like))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _noise_key(rng):
    """One 64-bit stream key drawn from ``rng`` (so successive calls differ)."""
    return np.uint64(rng.integers(0, 2**64, dtype=np.uint64))


def _counter_uniform(key, index, dtype):
    """U[0, 1) for the entries ``index`` (uint64 array) from the SplitMix64 stream ``key``.

    float32 entries ``2j`` and ``2j + 1`` share output ``j`` (its top 24 bits
    and bits 8..31); float64 entry ``i`` uses the top 53 bits of output ``i``.

    The compiled NumPy kernels compute the same values, so every namespace,
    Dask included, gets the same noise for the same seed.
    """
    counter = index >> np.uint64(1) if dtype == np.float32 else index
    z = key + _GOLDEN * (counter + np.uint64(1))
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    if dtype == np.float32:
        # two entries per 64-bit output: the top 24 bits, then bits 8..31
        bits = np.where(
            index & np.uint64(1), (z >> np.uint64(8)) & np.uint64(0xFFFFFF), z >> np.uint64(40)
        )
        return bits.astype(np.float32) * np.float32(2.0**-24)
    return (z >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def _dask_block_noise(block, key, shape, dtype, block_info=None):
    loc = block_info[0]["array-location"]
    strides = [math.prod(shape[k + 1 :]) for k in range(len(shape))]
    index = np.zeros((), dtype=np.uint64)
    for k, (start, stop) in enumerate(loc):
        ax = np.arange(start, stop, dtype=np.uint64) * np.uint64(strides[k])
        index = np.add.outer(index, ax) if index.ndim else ax + index
    return _counter_uniform(key, np.asarray(index, dtype=np.uint64).reshape(block.shape), dtype)


def _host_noise(rng, shape, dtype, xp=None, device=None):
    """The counter-based noise of :func:`_uniform_noise` as a NumPy array (or in ``xp``)."""
    key = _noise_key(rng)
    u = _counter_uniform(key, np.arange(math.prod(shape), dtype=np.uint64), dtype).reshape(shape)
    if xp is None:
        return u
    target = xp.float32 if dtype == np.float32 else xp.float64
    return xp.asarray(u, dtype=target, device=device)


def _uniform_noise(rng, like, xp):
    """U[0, 1) noise of ``like``'s shape, namespace and device, drawn from ``rng``.

    Entry ``i`` (C order) gets the ``i``-th value of a SplitMix64 stream
    keyed by one draw of ``rng``, so the same seed gives the same noise in
    every namespace, and a Dask array gets it lazily, block by block.
    Float16 arrays get float32 noise, so the caller compares in float32.
    """
    dtype = np.float64 if like.dtype == xp.float64 else np.float32
    shape = tuple(like.shape)
    if is_dask_array(like):
        return like.map_blocks(_dask_block_noise, _noise_key(rng), shape, dtype, dtype=dtype)
    if _is_numpy(xp):
        return _host_noise(rng, shape, dtype)
    if is_lazy(like) and type(like).__module__.startswith("torch"):
        # torch.compile cannot trace the NumPy uint64 operations as tensors: they run
        # eagerly (a graph break) and only the finished noise tensor enters the graph.
        return sys.modules["torch"].compiler.disable(_host_noise)(
            rng, shape, dtype, xp, _device(like)
        )
    return _host_noise(rng, shape, dtype, xp, _device(like))
