"""`nst <command>`: thin wrappers that parse arguments, call a library function and print.

Each command lives in its own module with `HELP`, `add_arguments(parser)` and `run(args)`.
User errors (NstError) are printed as one line on stderr with exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from nst import NstError, __version__

#: the subcommands, each a module nst.cli.<name>
COMMANDS = (
    "transfer",
    "strotss",
    "demo",
    "reconstruct",
    "fetch",
    "weights",
    "report",
    "evaluate",
    "study",
    "ui",
    "train",
    "apply",
    "export",
    "methods",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst", description="Neural style transfer research harness."
    )
    parser.add_argument("--version", action="version", version=f"nst {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"nst.cli.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    # one-line warnings for this command only: the process's warning machinery is restored after
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.run(args) or 0)
        except NstError as err:
            print(f"nst {args.command}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"nst {args.command}: interrupted", file=sys.stderr)
            return 130


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    # through tqdm, so a warning does not land on a progress bar's line
    from tqdm import tqdm

    tqdm.write(f"WARNING ({category.__name__}): {message}", file=file or sys.stderr)
