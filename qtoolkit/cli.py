"""Command-line interface: ``qtoolkit <command>`` or ``python -m qtoolkit <command>``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_runtime(args):
    from .bitops import show_runtime

    show_runtime()
    return 0


def _cmd_reproduce(args):
    from .analysis import reproduce
    from .analysis._reproduce import MAIN_FIGURE

    paths = reproduce(args.out, quick=args.quick, rng=args.seed, progress=not args.no_progress)
    print(f"wrote {len(paths)} files to {args.out} (main figure: {MAIN_FIGURE}.png)")
    return 0


def _cmd_quantize(args):
    import os

    from .network import CheckpointError, quantize
    from .network._format import atomic_path

    prog = "qtoolkit quantize"
    try:
        from .network._recipe import load_recipe

        rules = load_recipe(args.recipe)
    except (TypeError, ValueError) as err:
        print(f"{prog}: error: bad recipe {args.recipe}: {err}", file=sys.stderr)
        return 2
    recipe = [r.spec for r in rules]
    try:
        net = quantize(
            args.input,
            recipe,
            calibration=args.calibration,
            budget=args.budget,
            progress=not args.no_progress,
        )
        net.save(args.out, format=args.format)
        if args.report:
            os.makedirs(args.report, exist_ok=True)
            rep = net.report
            for fname, text in (
                ("report.md", rep.to_markdown()),
                ("report.csv", rep.to_csv()),
                ("report.json", rep.to_json()),
            ):
                with (
                    atomic_path(os.path.join(args.report, fname)) as tmp,
                    open(tmp, "w", encoding="utf-8") as fh,
                ):
                    fh.write(text)
            if rep.pareto:
                import matplotlib

                matplotlib.use("Agg")
                ax = rep.plot_pareto()
                with atomic_path(os.path.join(args.report, "pareto.png")) as tmp:
                    ax.figure.savefig(tmp, dpi=120, format="png")
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; nothing written to {args.out}", file=sys.stderr)
        return 130
    except (CheckpointError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 3
    except (TypeError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(net.report.to_markdown(), end="")
    print(f"wrote {args.out} ({args.format})")
    return 0


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``qtoolkit`` command."""
    parser = argparse.ArgumentParser(
        prog="qtoolkit", description="qtoolkit: quantized neural networks as a NumPy toolkit."
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"qtoolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("runtime", help="print the CPU features found and the bit kernel chosen")
    p.set_defaults(func=_cmd_runtime)
    p = sub.add_parser(
        "reproduce",
        help="regenerate every theory figure (PNG and SVG) and the theory-vs-measurement table",
        description="Regenerate every theory figure (PNG and SVG) and the table of theory "
        "against measurement (CSV and Markdown) into --out.",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (created if missing)"
    )
    p.add_argument("--quick", action="store_true", help="smaller experiments (under 30 s)")
    p.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        metavar="S",
        help="seed of every random draw (default 0)",
    )
    p.add_argument("--no-progress", action="store_true", help="do not print the progress bar")
    p.set_defaults(func=_cmd_reproduce)
    p = sub.add_parser(
        "quantize",
        help="quantize a whole network (.safetensors or .npz) by a JSON recipe",
        description="Quantize every tensor of a checkpoint by a recipe and write one packed "
        "file. Exit status: 0 success, 2 bad arguments, recipe or calibration, 3 unreadable or "
        "corrupt file, 130 interrupted (no output is left behind).",
    )
    p.add_argument("input", metavar="IN", help="checkpoint: .safetensors or .npz")
    p.add_argument("--recipe", required=True, metavar="R.json", help="JSON list of rules")
    p.add_argument("--out", required=True, metavar="OUT", help="output file")
    p.add_argument("--calibration", metavar="CAL.npz", help="inputs of each layer, by weight name")
    p.add_argument("--budget", type=_positive_float, metavar="BITS", help="average bits per weight")
    p.add_argument("--report", metavar="DIR", help="write report.md/.csv/.json (and pareto.png)")
    p.add_argument("--format", choices=("safetensors", "gguf"), default="safetensors")
    p.add_argument("--no-progress", action="store_true", help="do not print the progress bar")
    p.set_defaults(func=_cmd_quantize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
