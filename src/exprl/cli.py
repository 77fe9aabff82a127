"""`exprl` command line. Thin: each subcommand lives beside the layer it drives and registers itself.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets `handler` to a
function taking the parsed namespace and returning an exit code. Modules import their heavy
dependencies (torch, trl) inside handlers so that `exprl --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
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


INTERRUPTED_EXIT_CODE = 130  # what a shell reports for a process ended by SIGINT


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user error (`ExprlError`) is one line on stderr and its exit code (2);
    Ctrl-C is one line and 130, with everything finished so far kept; any other exception is a
    bug and keeps its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    command = command_name(args)
    try:
        if getattr(args, "data_dir", None):
            set_data_dir(args.data_dir)
        return int(args.handler(args) or 0)
    except ExprlError as exc:
        print(f"{command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{command}: interrupted; what finished is kept, run the same command again to resume.",
              file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except BrokenPipeError:
        # The reader went away (`exprl data list | head`): not an error of the command. Point stdout
        # at devnull so the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def command_name(args: argparse.Namespace) -> str:
    """`exprl data prepare`: the command and its action, as typed."""
    action = next((value for name, value in vars(args).items()
                   if name.endswith("_command") and isinstance(value, str)), None)
    return " ".join(filter(None, ["exprl", args.command, action]))


if __name__ == "__main__":
    sys.exit(main())
