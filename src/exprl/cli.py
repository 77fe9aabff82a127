"""`exprl` command line. Thin: each subcommand lives beside the layer it drives and registers itself.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets `handler` to a
function taking the parsed namespace and returning an exit code. Modules import their heavy
dependencies (torch, trl) inside handlers so that `exprl --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from exprl import __version__
from exprl.data.catalog import set_data_dir
from exprl.errors import ExprlError

SUBCOMMAND_MODULES = [
    "exprl.data.cli",       # data
    "exprl.judge.cli",      # rubrics, judge
    "exprl.train.cli",      # train
    "exprl.pipeline",       # pipeline
    "exprl.eval.cli",       # eval, report
    "exprl.demo",           # demo
    "exprl.recipes.cli",    # recipes
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exprl", description="ExpRL: exploratory RL for LLM mid-training.")
    parser.add_argument("--version", action="version", version=f"exprl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "data_dir", None):
            set_data_dir(args.data_dir)
        return int(args.handler(args) or 0)
    except ExprlError as exc:
        print(f"exprl {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"exprl {args.command}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
