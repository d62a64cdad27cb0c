"""Runtime selection of the SIMD level of the bit kernels.

The CPU is probed once, when :mod:`qtoolkit.bitops` is imported, and the best
level it supports becomes the default. The environment variable
``QTOOLKIT_SIMD`` (read at import) caps the level, e.g. ``QTOOLKIT_SIMD=avx2``
on an AVX-512 machine, and :func:`set_simd_level` / :func:`simd_level` change it
at run time so that tests can run every level.
"""

import contextlib
import os
import platform
import sys
import warnings

from .._array import check_n_threads, cpu_count
from . import _bitops

__all__ = [
    "available_simd_levels",
    "get_simd_level",
    "set_simd_level",
    "show_runtime",
    "simd_level",
]

_NAMES = _bitops.LEVEL_NAMES  # index = C level id
# Preference order on each architecture, lowest first.
_ORDER = ("generic", "popcnt", "avx2", "avx512", "neon")
_ENV = "QTOOLKIT_SIMD"


def available_simd_levels():
    """Return the SIMD levels this CPU can run, from the lowest to the best.

    Returns
    -------
    levels : tuple of str
        Level names among ``"generic"`` (portable C), ``"popcnt"`` (x86-64
        scalar POPCNT), ``"avx2"``, ``"avx512"`` (AVX-512F with VPOPCNTDQ)
        and ``"neon"`` (aarch64). ``"generic"`` is always present.

    See Also
    --------
    get_simd_level, set_simd_level, show_runtime

    Examples
    --------
    >>> from qtoolkit.bitops import available_simd_levels
    >>> available_simd_levels()[0]
    'generic'
    """
    return tuple(name for name in _ORDER if _bitops.level_usable(_NAMES.index(name)))


def _best_level(cap=None):
    levels = available_simd_levels()
    if cap is None:
        return levels[-1]
    allowed = _ORDER[: _ORDER.index(cap) + 1]
    usable = [lv for lv in levels if lv in allowed]
    return usable[-1]


def _initial_level():
    cap = os.environ.get(_ENV, "").strip().lower()
    if not cap:
        return _best_level()
    if cap not in _ORDER:
        warnings.warn(
            f"{_ENV}={cap!r} is not one of {_ORDER}; using the best level",
            RuntimeWarning,
            stacklevel=2,
        )
        return _best_level()
    return _best_level(cap)


_state = {"level": _initial_level()}


def get_simd_level():
    """Return the SIMD level the bit kernels use now.

    Returns
    -------
    level : str
        One of :func:`available_simd_levels`.

    See Also
    --------
    set_simd_level, simd_level

    Examples
    --------
    >>> from qtoolkit.bitops import available_simd_levels, get_simd_level
    >>> get_simd_level() in available_simd_levels()
    True
    """
    return _state["level"]


def _check_level(level):
    if not isinstance(level, str):
        raise TypeError(f"level must be a str, got {level!r}")
    name = level.strip().lower()
    if name not in _ORDER:
        raise ValueError(f"level must be one of {_ORDER}, got {level!r}")
    if name not in available_simd_levels():
        raise ValueError(
            f"level {name!r} cannot run on this CPU; available: {available_simd_levels()}"
        )
    return name


def set_simd_level(level):
    """Make the bit kernels use ``level``; return the level used before.

    Parameters
    ----------
    level : str
        One of :func:`available_simd_levels`.

    Returns
    -------
    previous : str
        The level in use before the call.

    Raises
    ------
    ValueError
        If ``level`` is not a known level or this CPU cannot run it.
    TypeError
        If ``level`` is not a string.

    See Also
    --------
    simd_level : the same as a context manager.

    Examples
    --------
    >>> from qtoolkit.bitops import set_simd_level
    >>> previous = set_simd_level("generic")
    >>> _ = set_simd_level(previous)
    """
    name = _check_level(level)
    previous = _state["level"]
    _state["level"] = name
    return previous


@contextlib.contextmanager
def simd_level(level):
    """Context manager that runs the bit kernels at ``level`` inside a ``with`` block.

    Parameters
    ----------
    level : str
        One of :func:`available_simd_levels`.

    Yields
    ------
    level : str
        The level now in use.

    See Also
    --------
    set_simd_level

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_bits, simd_level, xnor_gemm
    >>> a = pack_bits(np.array([[1.0, -1.0, 1.0]]))
    >>> with simd_level("generic"):
    ...     xnor_gemm(a, a)
    array([[3]], dtype=int32)
    """
    previous = set_simd_level(level)
    try:
        yield _state["level"]
    finally:
        _state["level"] = previous


def _level_id():
    return _NAMES.index(_state["level"])


def show_runtime(file=None):
    """Print the CPU features found and the bit kernel chosen.

    Parameters
    ----------
    file : file-like, optional
        Where to print; standard output by default.

    See Also
    --------
    available_simd_levels, get_simd_level

    Examples
    --------
    >>> import io
    >>> from qtoolkit import show_runtime
    >>> buf = io.StringIO()
    >>> show_runtime(file=buf)
    >>> "kernel in use" in buf.getvalue()
    True
    """
    from .._version import __version__

    file = sys.stdout if file is None else file
    usable = available_simd_levels()
    lines = [
        f"qtoolkit {__version__} on {platform.machine()} ({platform.python_implementation()} "
        f"{platform.python_version()})",
        "CPU features probed at import:",
    ]
    for name in _ORDER:
        lvl = _NAMES.index(name)
        if _bitops.cpu_has(lvl) or name == "generic":
            compiled = "yes" if _bitops.level_usable(lvl) else "not compiled in"
            lines.append(f"  {name:<8} supported (kernel: {compiled})")
        else:
            lines.append(f"  {name:<8} not supported")
    env = os.environ.get(_ENV)
    lines.append(f"levels available: {', '.join(usable)}")
    lines.append(
        f"kernel in use: {_state['level']} (best: {usable[-1]}; {_ENV}={env if env else '<unset>'})"
    )
    lines.append(
        f"OpenMP: {'yes' if _bitops.openmp_enabled() else 'no (serial build)'}; "
        f"CPUs usable: {cpu_count()}"
    )
    print("\n".join(lines), file=file)


def _resolve_threads(n_threads, work, threshold, items=None):
    """Validate ``n_threads``; for None, one thread below ``threshold`` work units, else all CPUs.

    The count is capped at the usable CPUs and at ``items``, the number of
    pieces the kernel splits between threads (see ``check_n_threads``).
    """
    return check_n_threads(n_threads, default=1 if work < threshold else None, work=items)
