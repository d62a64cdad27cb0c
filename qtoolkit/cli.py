"""Command-line interface: ``qtoolkit <command>`` or ``python -m qtoolkit <command>``."""
import argparse
import sys


def _cmd_runtime(args):
    from .bitops import show_runtime

    show_runtime()
    return 0


def build_parser():
    """Return the argument parser of the ``qtoolkit`` command."""
    parser = argparse.ArgumentParser(
        prog="qtoolkit", description="qtoolkit: quantized neural networks as a NumPy toolkit.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"qtoolkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("runtime", help="print the CPU features found and the bit kernel chosen")
    p.set_defaults(func=_cmd_runtime)
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
