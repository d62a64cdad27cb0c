"""Rounding schemes side by side: qtoolkit.rounding against NumPy's copy and sort
and against pychop, in one process.

Usage::

    python benchmarks/bench_rounding.py              # 16M float32 values, 7 rounds
    python benchmarks/bench_rounding.py --n 4000000 --rounds 11

Every method runs once per round, interleaved, on the same ``n`` float32
standard-normal values (fixed seed). The table gives the median time of
each method and the median over rounds of its time divided by the time of
its reference in the same round:

- ``x.copy()`` (the memory-bound floor) for uniform 4-bit
  quantize-dequantize, TWN ternarization and stochastic rounding;
- ``np.sort(np.abs(x))`` for the exact (optimal) ternarization, which sorts
  ``|w|`` once.

Targets: uniform <= 4x copy, stochastic rounding <= 6x copy, optimal ternary
<= 1.5x the sort. pychop's equivalents (``Chopi`` symmetric 4-bit integer
quantize-dequantize, ``Chopf`` fixed point with stochastic rounding,
rmode=5) are timed in the same rounds when pychop is installed; pychop has
no ternary quantizer.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import interleaved, machine_line, markdown_table, median, ratio

from qtoolkit.rounding import stochastic_round, ternarize, uniform

TARGETS = {
    "uniform 4-bit": ("copy", 4.0),
    "stochastic_round": ("copy", 6.0),
    "ternarize optimal": ("sort |w|", 1.5),
}


def _methods(x, with_pychop):
    step = 2.0**-4
    methods = [
        ("copy", lambda: x.copy()),
        ("sort |w|", lambda: np.sort(np.abs(x))),
        ("uniform 4-bit", lambda: uniform(x, bits=4)),
        ("ternarize twn", lambda: ternarize(x)),
        ("ternarize optimal", lambda: ternarize(x, method="optimal")),
        ("stochastic_round", lambda: stochastic_round(x, step=step, rng=0)),
    ]
    refs = {
        "uniform 4-bit": "copy",
        "ternarize twn": "copy",
        "ternarize optimal": "sort |w|",
        "stochastic_round": "copy",
    }
    if with_pychop:
        import pychop

        chopi = pychop.Chopi(bits=4, symmetric=True)
        chopf = pychop.Chopf(ibits=4, fbits=4, rmode=5)
        methods += [
            ("pychop Chopi 4-bit", lambda: chopi(x)),
            ("pychop Chopf stochastic", lambda: chopf(x)),
        ]
        refs.update({"pychop Chopi 4-bit": "copy", "pychop Chopf stochastic": "copy"})
    return methods, refs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16_000_000, help="number of float32 values")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args(argv)

    try:
        import warnings

        warnings.filterwarnings("ignore", message="Current int type not support")
        import pychop  # noqa: F401

        with_pychop = True
    except ImportError:
        with_pychop = False

    x = np.random.default_rng(0).standard_normal(args.n).astype(np.float32)
    methods, refs = _methods(x, with_pychop)
    times = interleaved(methods, rounds=args.rounds, warmup=1)

    rows = []
    for name, _ in methods:
        ref = refs.get(name)
        cell = f"{ratio(times, name, ref):.2f}x {ref}" if ref else "-"
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            r = ratio(times, name, target[0])
            verdict = f"<= {target[1]}x: {'met' if r <= target[1] else 'NOT met'}"
        if name.startswith("pychop"):
            ours = "uniform 4-bit" if "Chopi" in name else "stochastic_round"
            verdict = f"qtoolkit {ratio(times, name, ours):.2f}x faster"
        rows.append([name, f"{median(times[name]) * 1e3:.1f}", cell, verdict])
    print(f"# Rounding, n = {args.n} float32, {args.rounds} interleaved rounds")
    peer = ""
    if with_pychop:
        from importlib.metadata import version

        peer = f", pychop {version('pychop')}"
    print(f"# {machine_line()}, NumPy {np.__version__}{peer}")
    print(
        markdown_table(["method", "median ms", "ratio (median per round)", "target / peer"], rows)
    )
    if not with_pychop:
        print("(pychop not installed: pip install pychop, or the 'bench' extra)")


if __name__ == "__main__":
    main()
