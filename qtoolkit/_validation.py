"""Input validation shared by every module: one rule per fault, one exception type per fault.

Validation happens once, in the public layer, through the helpers here; private
helpers assume valid input. Every error names the argument, the expected form and
what was received. The rules:

- wrong *type* (not an array, not an integer, not a real number, not a bool, a
  non-floating array where floats are needed): :class:`TypeError`;
- right type, wrong *value* (out of range, NaN or Inf, empty, unknown option,
  wrong number of dimensions): :class:`ValueError`.

One helper per kind of argument: :func:`check_array` (an array of real floats,
any Array API namespace), :func:`check_int` / :func:`check_bits`,
:func:`check_real` (a real number; :func:`check_tol` is its one rule for every
``tol``), :func:`check_bool`, :func:`check_choice` (one of some options),
:func:`check_axis`, :func:`check_random_state`, :func:`check_n_threads`. Values:
:func:`check_finite` rejects NaN *and* Inf, :func:`check_no_nan` only NaN (for
maps where an infinity has a well-defined result, such as a sign).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Callable

import numpy as np
from array_api_compat import array_namespace

from ._typing import F

__all__ = [
    "MAX_ITER",
    "MAX_THREADS",
    "check_array",
    "check_axis",
    "check_bits",
    "check_bool",
    "check_choice",
    "check_finite",
    "check_int",
    "check_n_threads",
    "check_no_nan",
    "check_random_state",
    "check_real",
    "check_real_floating",
    "check_tol",
    "cpu_count",
    "describe",
    "is_lazy",
    "renamed_parameters",
    "warn_renamed",
]


def describe(value):
    """Short description of ``value`` for error messages."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_random_state(rng, name="rng"):
    """Turn ``rng`` (None, an int seed, or a Generator) into a ``numpy.random.Generator``."""
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng < 0:
            raise ValueError(f"{name} must be a non-negative seed, got {rng}")
        if isinstance(rng, bool):
            raise TypeError(
                f"{name} must be None, an int seed or a numpy.random.Generator, got {rng!r}"
            )
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        return np.random.default_rng(rng.randint(0, 2**63 - 1, dtype=np.int64))
    raise TypeError(
        f"{name} must be None, an int seed or a numpy.random.Generator, got {describe(rng)}"
    )


def check_int(value, name, *, low=None, high=None, allow_none=False):
    """Validate an integer parameter in ``[low, high]`` and return it as ``int``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {describe(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def cpu_count():
    """Number of CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


MAX_ITER = 10**6
"""Largest iteration count (``max_iter``, ``n_iter``, inner steps) any function accepts."""

MAX_THREADS = 1 << 12
"""Largest ``n_threads`` accepted anywhere (larger values are rejected, not capped)."""


def check_n_threads(n_threads, name="n_threads", *, default=None, work=None):
    """Validate a thread count and return the number of threads to start.

    ``n_threads`` is None or an int in ``[1, MAX_THREADS]``; None means
    ``default`` (every usable CPU if ``default`` is None). The result is
    capped at the usable CPUs (:func:`cpu_count`) and, when ``work`` is
    given, at the number of independent work items (at least 1), so no call
    starts more OS threads than it can use. Values above ``MAX_THREADS`` are a
    ``ValueError``; non-integers a ``TypeError``.
    """
    if n_threads is None:
        n = None if default is None else check_int(default, "default", low=1)
    else:
        n = check_int(n_threads, name, low=1, high=MAX_THREADS)
    if n == 1:  # one thread whatever the CPUs and the work: no need to ask the OS
        return 1
    ncpu = cpu_count()
    n = min(ncpu if n is None else n, ncpu, MAX_THREADS)
    if work is not None:
        n = min(n, max(int(work), 1))
    return max(n, 1)


def check_bits(bits, name="bits", *, low=1, high=32):
    """Validate a bit width."""
    return check_int(bits, name, low=low, high=high)


def check_axis(axis, ndim, name="axis"):
    """Normalise ``axis`` (None, int or tuple of ints) against ``ndim``.

    Returns None or a sorted tuple of non-negative, distinct axes.
    """
    if axis is None:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (numbers.Integral, np.integer)):
            raise TypeError(f"{name} must be None, an int or a tuple of ints, got {axis!r}")
        ax = int(ax)
        if not -ndim <= ax < ndim:
            raise ValueError(f"{name}={axis!r} is out of bounds for an array of dimension {ndim}")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return tuple(sorted(out))


def check_real(
    value,
    name,
    *,
    low=None,
    high=None,
    low_inclusive=True,
    high_inclusive=True,
    allow_none=False,
):
    """Validate a real number (a Python or NumPy real, not a bool) and return it as ``float``.

    Not a real number: ``TypeError``. NaN, Inf, or outside ``[low, high]`` (open
    ends where ``low_inclusive`` / ``high_inclusive`` is False): ``ValueError``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating)):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    value = float(value)
    below = low is not None and (value < low if low_inclusive else value <= low)
    above = high is not None and (value > high if high_inclusive else value >= high)
    if not math.isfinite(value) or below or above:
        if high is None and low is not None:
            bound = f" {'>=' if low_inclusive else '>'} {low:g}"
        elif low is None and high is not None:
            bound = f" {'<=' if high_inclusive else '<'} {high:g}"
        elif low is not None:
            lo = ("[" if low_inclusive else "(") + f"{low:g}"
            bound = f" in {lo}, {high:g}" + ("]" if high_inclusive else ")")
        else:
            bound = ""
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return value


def check_tol(tol, name="tol"):
    """The one rule for every convergence tolerance: a finite real number ``>= 0``."""
    return check_real(tol, name, low=0.0)


def check_bool(value, name):
    """Require a bool (Python or NumPy); ``TypeError`` otherwise. Returns a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {describe(value)}")
    return bool(value)


def check_choice(value, name, choices):
    """Require one of ``choices`` (strings by value, other options by identity: None, True).

    Any value that is not one of the options, whatever its type, is a wrong
    value: the message lists the options.
    """
    ok = any(
        value is c or (isinstance(value, str) and isinstance(c, str) and value == c)
        for c in choices
    )
    if not ok:
        got = repr(value) if isinstance(value, str) else describe(value)
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {got}")
    return value


def check_array(x, name="x", *, ndim=None, allow_empty=False, finite=False):
    """Require a real floating array of any Array API namespace; return ``(x, xp)``.

    Not an array (a list, a number, a string) or not of a real floating dtype:
    ``TypeError``. Another number of dimensions than ``ndim`` (an int or a tuple
    of accepted counts), no entries (unless ``allow_empty``), or, with
    ``finite=True``, a NaN or an Inf (see :func:`check_finite`): ``ValueError``.
    """
    if isinstance(x, (list, tuple, numbers.Number, str, bytes)) or not hasattr(x, "dtype"):
        raise TypeError(
            f"{name} must be an Array API array (numpy, torch, dask, ...), got {describe(x)}"
        )
    try:
        xp = array_namespace(x)
    except TypeError as exc:
        raise TypeError(f"{name} must be an Array API array, got {describe(x)}") from exc
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating array (float16/32/64), got {describe(x)}")
    if ndim is not None:
        accepted = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in accepted:
            want = " or ".join(f"{n}-D" for n in accepted)
            raise ValueError(f"{name} must be {want}, got {describe(x)}")
    if not allow_empty and math.prod(x.shape) == 0:
        raise ValueError(f"{name} must not be empty, got {describe(x)}")
    if finite:
        check_finite(x, name, xp)
    return x, xp


def check_real_floating(x, name="x"):
    """Require a real floating array of any Array API namespace; return (x, xp)."""
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name} must be a real floating array (float16/32/64), got {describe(x)}")
    return x, xp


def check_finite(x, name="x", xp=None):
    """Raise ``ValueError`` if ``x`` holds NaN or Inf.

    For lazy or traced arrays (see :func:`is_lazy`) the check is skipped and
    the caller documents that non-finite values propagate.
    """
    xp = array_namespace(x) if xp is None else xp
    if is_lazy(x):
        return x
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def check_no_nan(x, name="x", xp=None):
    """Raise ``ValueError`` if ``x`` holds a NaN (infinities pass; see :func:`check_finite`).

    Skipped for lazy or traced arrays, as :func:`check_finite`.
    """
    xp = array_namespace(x) if xp is None else xp
    if is_lazy(x):
        return x
    if bool(xp.any(xp.isnan(x))):
        raise ValueError(f"{name} contains NaN")
    return x


def is_lazy(x):
    """True for arrays whose values cannot be read while the function runs.

    These are Dask arrays (values not computed yet), JAX tracers (inside
    ``jax.jit``, ``jax.grad``, ``jax.vmap``...) and PyTorch tensors while
    ``torch.compile`` traces the function (or fake tensors). Data-dependent
    checks (NaN/Inf, all-zero input) are skipped for them: reading a value
    would compute a Dask graph, fail on a tracer, or break a compiled graph.
    Shape, dtype and parameter checks still run, since those are static.
    Only modules already imported are consulted, so this imports nothing.
    """
    mod = type(x).__module__
    if mod.startswith("dask"):
        try:
            from array_api_compat import is_dask_array
        except ImportError:  # pragma: no cover - old array-api-compat
            return False
        return is_dask_array(x)
    if mod.startswith("jax"):
        core = getattr(sys.modules.get("jax"), "core", None)
        return core is not None and isinstance(x, core.Tracer)
    if mod.startswith("torch"):
        torch = sys.modules.get("torch")
        compiler = getattr(torch, "compiler", None)
        if compiler is not None and compiler.is_compiling():
            return True
        return type(x).__name__ in ("FakeTensor", "FunctionalTensor")
    return False


def warn_renamed(old, new, *, since="0.2.0", stacklevel=3):
    """Emit the ``DeprecationWarning`` of a renamed public name (kept for one release)."""
    import warnings

    warnings.warn(
        f"{old} is deprecated since qtoolkit {since} and will be removed in the next "
        f"release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_parameters(mapping: dict[str, str], *, since: str = "0.2.0") -> Callable[[F], F]:
    """Decorator: accept the old keyword names of ``mapping`` ({old: new}) with a warning.

    The wrapped function keeps its new signature (``inspect.signature`` follows
    ``__wrapped__``); passing both names is a ``TypeError``.
    """
    import functools

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in mapping.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{func.__name__}() got both {old!r} (deprecated) and {new!r}"
                        )
                    where = func.__qualname__.replace(".__init__", "")
                    warn_renamed(f"{where}({old}=...)", f"{new}=...", since=since)
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__renamed_parameters__ = dict(mapping)
        return wrapper

    return decorate
