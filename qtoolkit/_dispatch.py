"""One CPU dispatch for every compiled kernel family of qtoolkit.

The CPU is probed once (``qtoolkit._cpu``, which wraps ``qt_cpu.h``). The levels form
one chain per architecture, each implying the ones below it::

    x86-64   generic < sse41 < popcnt < avx2 < avx512
    aarch64  generic < neon

(``avx512`` means AVX-512F with VPOPCNTDQ and the OS saving the zmm state.) The best
level the CPU has is the default; ``QTOOLKIT_SIMD=<level>``, read once at import, caps
it. :func:`set_simd_level` changes the process-wide default, and the context manager
:func:`simd_level` changes the level of the calling thread only, so that overlapping
``with simd_level(...)`` blocks in two threads never disturb each other or the default.

A kernel family (a compiled loop with one implementation per level) registers the
levels it has code for with :func:`register_kernel_family`, and asks
:func:`kernel_level` at each call for the best of them at or below the current level;
the level id (``QT_LEVEL_*`` of ``qt_cpu.h``) is passed to the C code, which switches on
it. :func:`show_runtime` reports every registered family.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import TextIO

from . import _cpu
from ._version import __version__

__all__ = [
    "CHAINS",
    "LEVELS",
    "available_simd_levels",
    "get_simd_level",
    "kernel_families",
    "kernel_level",
    "register_kernel_family",
    "set_simd_level",
    "show_runtime",
    "simd_level",
]

ENV = "QTOOLKIT_SIMD"
#: Every level name, in the order :func:`show_runtime` lists them.
LEVELS = ("generic", "sse41", "popcnt", "avx2", "avx512", "neon")
#: The chain of each architecture family, lowest first.
CHAINS = {
    "x86": ("generic", "sse41", "popcnt", "avx2", "avx512"),
    "arm": ("generic", "neon"),
}
_ID = {name: _cpu.LEVEL_NAMES.index(name) for name in LEVELS}


def _chain_of(level):
    for chain in CHAINS.values():
        if level in chain and level != "generic":
            return chain
    return ("generic",)


def _probe():
    """The levels this CPU runs, lowest first: a level needs every level below it."""
    out = ["generic"]
    for chain in CHAINS.values():
        for name in chain[1:]:
            if not _cpu.cpu_has(_ID[name]):
                break
            out.append(name)
    return tuple(out)


_AVAILABLE = _probe()


def available_simd_levels() -> tuple[str, ...]:
    """Return the SIMD levels this CPU can run, from the lowest to the best.

    Returns
    -------
    levels : tuple of str
        Level names among ``"generic"`` (portable C), ``"sse41"``, ``"popcnt"``
        (x86-64 with SSE4.1 and POPCNT), ``"avx2"``, ``"avx512"`` (AVX-512F with
        VPOPCNTDQ) and ``"neon"`` (aarch64). ``"generic"`` is always present; each
        level implies the ones before it on its architecture.

    See Also
    --------
    get_simd_level, set_simd_level, show_runtime

    Examples
    --------
    >>> from qtoolkit.bitops import available_simd_levels
    >>> available_simd_levels()[0]
    'generic'
    """
    return _AVAILABLE


def _check_level(level):
    if not isinstance(level, str):
        raise TypeError(f"level must be a str, got {level!r}")
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if name not in _AVAILABLE:
        raise ValueError(f"level {name!r} cannot run on this CPU; available: {_AVAILABLE}")
    return name


def _capped(cap):
    """The best available level at or below ``cap`` in ``cap``'s chain."""
    chain = _chain_of(cap)
    allowed = chain[: chain.index(cap) + 1]
    return [lv for lv in _AVAILABLE if lv in allowed][-1]


def _initial_level():
    cap = os.environ.get(ENV, "").strip().lower()
    if not cap:
        return _AVAILABLE[-1]
    if cap not in LEVELS:
        warnings.warn(
            f"{ENV}={cap!r} is not one of {LEVELS}; using the best level",
            RuntimeWarning,
            stacklevel=2,
        )
        return _AVAILABLE[-1]
    return _capped(cap)


_lock = threading.Lock()
_default = {"level": _initial_level()}
_local = threading.local()  # .level: this thread's level inside simd_level(), else unset


def get_simd_level() -> str:
    """Return the SIMD level the compiled kernels use now, in this thread.

    Returns
    -------
    level : str
        One of :func:`available_simd_levels`: the level of the innermost
        :func:`simd_level` block of this thread, else the process default.

    See Also
    --------
    set_simd_level, simd_level

    Examples
    --------
    >>> from qtoolkit.bitops import available_simd_levels, get_simd_level
    >>> get_simd_level() in available_simd_levels()
    True
    """
    level = getattr(_local, "level", None)
    return _default["level"] if level is None else level


def set_simd_level(level: str) -> str:
    """Make every compiled kernel use ``level`` by default; return the previous default.

    Parameters
    ----------
    level : str
        One of :func:`available_simd_levels`.

    Returns
    -------
    previous : str
        The process default before the call.

    Raises
    ------
    ValueError
        If ``level`` is not a known level or this CPU cannot run it.
    TypeError
        If ``level`` is not a string.

    See Also
    --------
    simd_level : A level for one thread, inside a ``with`` block.

    Notes
    -----
    The default is process-wide; a thread inside a :func:`simd_level` block keeps
    the level of that block.

    Examples
    --------
    >>> from qtoolkit.bitops import set_simd_level
    >>> previous = set_simd_level("generic")
    >>> _ = set_simd_level(previous)
    """
    name = _check_level(level)
    with _lock:
        previous = _default["level"]
        _default["level"] = name
    return previous


@contextlib.contextmanager
def simd_level(level: str) -> Iterator[str]:
    """Context manager that runs the compiled kernels at ``level`` inside a ``with`` block.

    Parameters
    ----------
    level : str
        One of :func:`available_simd_levels`.

    Yields
    ------
    level : str
        The level now in use.

    Raises
    ------
    ValueError
        If ``level`` is not a known level or this CPU cannot run it.
    TypeError
        If ``level`` is not a string.

    See Also
    --------
    set_simd_level : Change the process default.

    Notes
    -----
    The level is thread-local: it applies to the kernels called from the thread
    that entered the block (their OpenMP threads included), blocks nest, and the
    previous level of the thread is restored on exit, so overlapping blocks in
    several threads neither see each other's level nor change the default.

    Examples
    --------
    >>> import numpy as np
    >>> from qtoolkit.bitops import pack_bits, simd_level, xnor_gemm
    >>> a = pack_bits(np.array([[1.0, -1.0, 1.0]]))
    >>> with simd_level("generic"):
    ...     xnor_gemm(a, a)
    array([[3]], dtype=int32)
    """
    name = _check_level(level)
    previous = getattr(_local, "level", None)
    _local.level = name
    try:
        yield name
    finally:
        _local.level = previous


# name -> {"levels": implemented levels usable here (lowest first), "description": str}
_FAMILIES = {}
# kernel_level's answers by (family, level), cleared when a family is (re)registered
_KERNEL_LEVELS: dict = {}


def register_kernel_family(
    name: str, levels: Iterable[str], description: str, *, openmp: bool = False
) -> str:
    """Declare a compiled kernel family and the levels it has an implementation for.

    Parameters
    ----------
    name : str
        ``"<subpackage>.<kernel>"``, e.g. ``"bitops.gemm"``.
    levels : iterable of str
        The levels with their own implementation that are compiled in (names of
        :data:`LEVELS`; ``"generic"`` must be among them). Levels the CPU lacks are
        dropped here.
    description : str
        One line for :func:`show_runtime`.
    openmp : bool, default=False
        Whether the family's extension was built with OpenMP threads.

    Returns
    -------
    name : str
        The family name, for :func:`kernel_level`.
    """
    levels = tuple(levels)
    if "generic" not in levels or any(lv not in LEVELS for lv in levels):
        raise ValueError(f"levels must be names of {LEVELS} including 'generic', got {levels}")
    usable = tuple(lv for lv in _AVAILABLE if lv in levels)
    with _lock:
        _FAMILIES[name] = {
            "levels": usable,
            "description": str(description),
            "openmp": bool(openmp),
        }
        _KERNEL_LEVELS.clear()
    return name


def kernel_families() -> dict[str, tuple[tuple[str, ...], str]]:
    """The registered families: ``{name: (levels usable here, description)}``."""
    return {k: (v["levels"], v["description"]) for k, v in _FAMILIES.items()}


def _best_for(levels, current):
    chain = _chain_of(current)
    allowed = chain[: chain.index(current) + 1] if current in chain else ("generic",)
    return [lv for lv in levels if lv in allowed][-1]


def kernel_level(family: str, level: str | None = None) -> tuple[str, int]:
    """The implementation of ``family`` to run now: ``(level name, C level id)``.

    The best implemented level at or below ``level`` (default: the current level of
    this thread, :func:`get_simd_level`). Prior validation assumed: ``family`` is
    registered.
    """
    current = get_simd_level() if level is None else level
    key = (family, current)
    hit = _KERNEL_LEVELS.get(key)
    if hit is None:
        name = _best_for(_FAMILIES[family]["levels"], current)
        hit = _KERNEL_LEVELS[key] = (name, _ID[name])
    return hit


def level_id(name: str) -> int:
    """The C id (``QT_LEVEL_*``) of a level name."""
    return _ID[name]


def show_runtime(file: TextIO | None = None) -> None:
    """Print the CPU features found and the level every compiled kernel family uses.

    Parameters
    ----------
    file : file-like, optional
        Where to print; standard output by default.

    See Also
    --------
    available_simd_levels, get_simd_level, set_simd_level

    Notes
    -----
    One line per registered kernel family (bit packing and the xnor-popcount GEMM,
    the stochastic-rounding loop, the product-quantization search, ...) with the
    levels it implements and the one it uses at the current level.

    Examples
    --------
    >>> import io
    >>> from qtoolkit import show_runtime
    >>> buf = io.StringIO()
    >>> show_runtime(file=buf)
    >>> "kernel in use" in buf.getvalue()
    True
    """
    from ._validation import cpu_count

    file = sys.stdout if file is None else file
    current = get_simd_level()
    lines = [
        f"qtoolkit {__version__} on {platform.machine()} ({platform.python_implementation()} "
        f"{platform.python_version()})",
        "CPU features probed at import:",
    ]
    for name in LEVELS:
        ok = name == "generic" or _cpu.cpu_has(_ID[name])
        lines.append(f"  {name:<8} {'supported' if ok else 'not supported'}")
    env = os.environ.get(ENV)
    lines.append(f"levels available: {', '.join(_AVAILABLE)}")
    lines.append(
        f"kernel in use: {current} (best: {_AVAILABLE[-1]}; {ENV}={env if env else '<unset>'})"
    )
    lines.append("kernel families (level used now; levels implemented here):")
    for fam in sorted(_FAMILIES):
        info = _FAMILIES[fam]
        used = _best_for(info["levels"], current)
        omp = ", OpenMP" if info["openmp"] else ""
        lines.append(
            f"  {fam:<26} {used:<8} ({', '.join(info['levels'])}{omp}) {info['description']}"
        )
    omp = any(info["openmp"] for info in _FAMILIES.values())
    lines.append(f"OpenMP: {'yes' if omp else 'no (serial build)'}; CPUs usable: {cpu_count()}")
    print("\n".join(lines), file=file)
