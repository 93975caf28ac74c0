"""The ``streamrec`` command line.

Each subcommand lives beside the code it drives, in a module with a ``register(subparsers)``
function that adds its parser and sets ``func`` (a callable ``(args) -> int``). Those modules
import heavy dependencies (torch, onnxruntime) inside their functions, so ``streamrec --help``
and the stream worker stay light.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from streamrec import __version__
from streamrec.core.config import UserError

# subcommand modules, in the order ``--help`` lists them
COMMAND_MODULES = [
    "streamrec.cli.stack",  # up, down
    "streamrec.cli.stream",  # worker, produce, tail, demo
    "streamrec.cli.train",  # train, eval
    "streamrec.cli.serve",  # bench, model
    "streamrec.cli.adapt",  # replay, trainer
    "streamrec.cli.forget",  # forget
    "streamrec.cli.config",  # config
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrec", description="A streaming, real-time recommender."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"streamrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a package not written yet
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # connection failures are reported once, as a one-line user error
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"streamrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
