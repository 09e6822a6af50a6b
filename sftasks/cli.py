"""`sftasks` command line: one subcommand module per job under sftasks/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import Error

# Each module defines add_parser(subparsers) and run(args) -> int.
COMMANDS = ("generate", "publish", "score", "compare", "submit_check", "leaderboard", "eval")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line with exit code 2."""

    def error(self, message: str):
        self.exit(2, f"sftasks: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sftasks",
        description="Generate long-context tasks at exact token lengths, evaluate sparse attention, score.",
    )
    parser.add_argument("--version", action="version", version=f"sftasks {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"sftasks.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except Error as exc:
        print(f"sftasks: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sftasks: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
