"""Shared machinery of the rounding schemes: validation, scale axes, rounding modes.

Prior validation of data is assumed in every helper whose name starts with an
underscore and is not ``_check_weights``; the public functions call
``_check_weights`` once, at the boundary.

Scale axes. ``axis`` names the axes that *keep* separate scales (the output
channel of a weight tensor, say): statistics are reduced over every other
axis, with ``keepdims=True`` so that a scale broadcasts against the tensor.
``axis=None`` gives one scale for the whole tensor. With ``group_size=g`` the
last axis is split into blocks of ``g`` consecutive entries, and each block
gets its own scale as well.
"""
import math
import numbers

import numpy as np
from array_api_compat import device as _device
from array_api_compat import is_dask_array, is_numpy_namespace

from .._array import array_namespace, check_axis, check_int, describe

ROUNDING_MODES = ("half_even", "half_away")


def _check_weights(w, name="w", *, allow_empty=False):
    """Validate a real floating array of any Array API namespace; return ``(w, xp)``."""
    if isinstance(w, (list, tuple, numbers.Number)) or not hasattr(w, "dtype"):
        raise TypeError(f"{name} must be an Array API array (numpy, torch, dask, ...), "
                        f"got {describe(w)}")
    try:
        xp = array_namespace(w)
    except TypeError as exc:
        raise TypeError(f"{name} must be an Array API array, got {describe(w)}") from exc
    if not xp.isdtype(w.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating array (float16/32/64), "
                        f"got {describe(w)}")
    if not allow_empty and math.prod(w.shape) == 0:
        raise ValueError(f"{name} must not be empty, got {describe(w)}")
    return w, xp


def _check_finite_scale_input(w, xp, name="w"):
    """Reject NaN/Inf where a scale is estimated from ``w`` (skipped for Dask)."""
    if is_dask_array(w):
        return
    if not bool(xp.all(xp.isfinite(w))):
        raise ValueError(f"{name} contains NaN or Inf; a scale cannot be estimated from it")


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_positive_float(value, name, *, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


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
            raise ValueError("group_size needs an array with at least one dimension, "
                             "got a 0-d array")
        last = w.ndim - 1
        if axis is not None and last in axis:
            raise ValueError(f"group_size splits the last axis into blocks, so axis must not "
                             f"contain it; got axis={axis} for an array of dimension {w.ndim}")
        if w.shape[-1] % group_size:
            raise ValueError(f"group_size={group_size} does not divide the last axis "
                             f"of length {w.shape[-1]}")
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
    view = xp.reshape(w, shape[:-1] + (shape[-1] // group_size, group_size))
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


def _uniform_noise(rng, like, xp):
    """U[0, 1) noise of ``like``'s shape, namespace and device, drawn from ``rng``.

    Float16 arrays get float32 noise (NumPy draws no float16), so the caller
    compares against it in float32. A Dask array gets lazy Dask noise, seeded
    from ``rng`` and chunked like ``like``.
    """
    dtype = np.float32 if like.dtype in (xp.float16, xp.float32) else np.float64
    shape = tuple(like.shape)
    if is_dask_array(like):
        import dask.array as da

        seed = int(rng.integers(0, 2**63 - 1))
        return da.random.default_rng(seed).random(shape, dtype=dtype, chunks=like.chunks)
    u = rng.random(shape, dtype=dtype)
    if _is_numpy(xp):
        return u
    target = xp.float32 if dtype == np.float32 else xp.float64
    return xp.asarray(u, dtype=target, device=_device(like))


def _as_numpy(x):
    """A NumPy copy of ``x`` for storage (Dask is computed, others go through DLPack/buffer)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return x
    if is_dask_array(x):
        return np.asarray(x.compute())
    try:
        return np.asarray(x)
    except (TypeError, RuntimeError):
        return np.from_dlpack(x)
