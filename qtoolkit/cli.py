"""Command-line interface: ``qtoolkit <command>`` or ``python -m qtoolkit <command>``."""

import argparse
import sys


def _cmd_runtime(args):
    from .bitops import show_runtime

    show_runtime()
    return 0


def _cmd_reproduce(args):
    from .analysis import reproduce
    from .analysis._reproduce import MAIN_FIGURE

    paths = reproduce(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    print(f"wrote {len(paths)} files to {args.out} (main figure: {MAIN_FIGURE}.png)")
    return 0


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def build_parser():
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
    return parser


def main(argv=None):
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
