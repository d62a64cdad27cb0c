"""Shared timing harness for the side-by-side benchmark runners.

Every runner measures qtoolkit and its peers in one process, in interleaved
rounds (each round times every method once, in the same order), and reports
the median time of each method and the median of the per-round ratios, which
are far more stable than absolute times on a shared machine.
"""

import gc
import platform
import statistics
import sys
import time


def time_once(fn):
    """Wall-clock seconds of one call of ``fn``."""
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def interleaved(methods, rounds, warmup=1, min_time=0.05):
    """Time every method once per round; return {name: [seconds per call, one per round]}.

    ``methods`` is a list of ``(name, fn)`` or ``(name, fn, prepare)``; ``prepare()``
    (e.g. setting thread pools) runs before each sample, outside the timed region.
    Each sample calls ``fn`` enough times (fixed during warm-up) to last about
    ``min_time`` seconds, and reports the time per call.
    """
    methods = [m if len(m) == 3 else (m[0], m[1], None) for m in methods]
    number = {}
    for name, fn, prepare in methods:
        if prepare is not None:
            prepare()
        for _ in range(warmup):
            fn()
        t = max(time_once(fn), 1e-7)
        number[name] = max(1, int(min_time / t))
    times = {name: [] for name, _, _ in methods}
    for _ in range(rounds):
        for name, fn, prepare in methods:
            if prepare is not None:
                prepare()
            k = number[name]
            times[name].append(time_once(lambda fn=fn, k=k: [fn() for _ in range(k)]) / k)
    return times


def median(xs):
    return statistics.median(xs)


def ratio(times, slow, fast):
    """Median over rounds of times[slow] / times[fast] (how many times faster `fast` is)."""
    return statistics.median(s / f for s, f in zip(times[slow], times[fast]))


def markdown_table(header, rows):
    """Render rows (lists of already formatted cells) as a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line():
    import os

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    return f"{cpu}, {ncpu} CPUs, Python {platform.python_version()}"


_CONTROLLER = None


def thread_limiter(n):
    """A `prepare` step for :func:`interleaved` that holds every BLAS/OpenMP pool at n threads.

    PyTorch's intra-op pool is set too when PyTorch is imported.
    """
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()

    def prepare():
        for lib in _CONTROLLER.lib_controllers:
            lib.set_num_threads(n)
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(n)

    return prepare
