"""`exprl` command line. Thin: each subcommand lives beside the layer it drives and registers itself.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets `handler` to a
function taking the parsed namespace and returning an exit code. Modules import their heavy
dependencies (torch, trl) inside handlers so that `exprl --help` stays fast.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from pathlib import Path

from exprl import __version__
from exprl.data.catalog import set_data_dir
from exprl.errors import ExprlError, os_error_reason

SUBCOMMAND_MODULES = [
    "exprl.data.cli",       # data
    "exprl.judge.cli",      # rubrics, judge
    "exprl.train.cli",      # train
    "exprl.pipeline.cli",   # pipeline
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
    Ctrl-C is one line and 130, with everything finished so far kept; the operating system refusing a
    path (full disk, read-only folder, a file where a folder should be) is one line naming the path,
    exit 2 for a path of the user's and 1 for one of exprl's own; any other exception is a bug and
    keeps its traceback."""
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
    except OSError as exc:
        if exc.filename is None or exc.errno not in ENVIRONMENT_ERRNOS:
            raise  # not the machine refusing a path: a bug, with its traceback
        print(f"{command}: error: {exc.filename}: {os_error_reason(exc)}", file=sys.stderr)
        return 2 if is_users_path(exc.filename, argv if argv is not None else sys.argv[1:]) else 1


ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR,
                      errno.EISDIR, errno.ENAMETOOLONG, errno.ENOENT, errno.ELOOP, errno.EEXIST}
"""Operating-system errors that say something about a path and the machine, not about exprl's code."""


def is_users_path(path: str | os.PathLike, argv: list[str]) -> bool:
    """Whether `path` is one the user chose (under the working folder or a path given on the command
    line: exit 2, theirs to fix) rather than one of exprl's own (its cache folder: exit 1)."""
    target = Path(os.path.abspath(path))
    roots = [Path.cwd()] + [Path(os.path.abspath(a.split("=", 1)[-1])) for a in argv if a and not a.startswith("-")]
    return any(target == root or root in target.parents for root in roots)


def command_name(args: argparse.Namespace) -> str:
    """`exprl data prepare`: the command and its action, as typed."""
    action = next((value for name, value in vars(args).items()
                   if name.endswith("_command") and isinstance(value, str)), None)
    return " ".join(filter(None, ["exprl", args.command, action]))


if __name__ == "__main__":
    sys.exit(main())
