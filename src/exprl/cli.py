"""`exprl` command line. Thin: each subcommand lives beside the layer it drives and registers itself.

Every module of `SUBCOMMAND_MODULES` exposes `register(commands)` and declares its part of the
command tree on a `Commands` with three calls, the same in every package:

    commands.command(name, add_arguments, handler, **parser_kwargs)   `exprl NAME [flags]`
    commands.group(name, **parser_kwargs)                             `exprl NAME ACTION ...`
    commands.action(group, name, add_arguments, handler, **kwargs)    one ACTION of a group

`add_arguments(parser)` adds the flags (None: it takes none); `handler(args)` returns the exit code.
Nothing is built until every module has declared, so an action finds its group whichever module
registers first. A group names the actions that a layer above its own provides (`provided_above`):
`exprl data filter` samples a model, so the data layer's CLI names it and exprl.eval.cli, which may
sample, declares it. Modules import their heavy dependencies (torch, trl) inside handlers so that
`exprl --help` stays fast.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from exprl import __version__
from exprl.data.catalog import set_data_dir
from exprl.errors import ExprlError, os_error_reason

SUBCOMMAND_MODULES = [
    "exprl.data.cli",       # data
    "exprl.judge.cli",      # judge, rubrics
    "exprl.train.cli",      # train
    "exprl.pipeline.cli",   # pipeline
    "exprl.eval.cli",       # eval, data filter, analyze, report
    "exprl.demo.cli",       # demo
    "exprl.recipes.cli",    # recipes
]
"""The order of `exprl --help`'s command list; which commands exist does not depend on it."""


@dataclass
class _Declared:
    name: str
    module: str
    parser_kwargs: dict[str, Any]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    handler: Callable[[argparse.Namespace], int] | None = None
    provided_above: dict[str, str] | None = None  # a group's: action -> the module that declares it


class Commands:
    """The command tree as the modules declare it (see the module docstring); `build` makes the parser."""

    def __init__(self) -> None:
        self.module = ""  # the module now registering, set by `build_parser`
        self._top: list[_Declared] = []
        self._actions: list[tuple[str, _Declared]] = []

    def command(self, name: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None,
                handler: Callable[[argparse.Namespace], int], **parser_kwargs: Any) -> None:
        self._top.append(_Declared(name, self.module, parser_kwargs, add_arguments, handler))

    def group(self, name: str, *, provided_above: dict[str, str] | None = None, **parser_kwargs: Any) -> None:
        """`exprl NAME ACTION`; without an action it prints its help. `provided_above`: the group's
        actions that a module of a higher layer declares, each with that module."""
        self._top.append(_Declared(name, self.module, parser_kwargs, provided_above=dict(provided_above or {})))

    def action(self, group: str, name: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None,
               handler: Callable[[argparse.Namespace], int], **parser_kwargs: Any) -> None:
        self._actions.append((group, _Declared(name, self.module, parser_kwargs, add_arguments, handler)))

    def build(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Every declared command under `parser`; a declaration that does not fit the tree (a second
        command of one name, an action of no group, an action declared by a module its group does
        not name, a provided action nobody declared) is a bug of exprl's, raised here."""
        top = {declared.name: declared for declared in self._top}
        if len(top) != len(self._top):
            raise RuntimeError(f"exprl commands declared twice: {sorted(d.name for d in self._top)}")
        actions: dict[str, list[_Declared]] = {name: [] for name in top}
        for group_name, declared in self._actions:
            group = top.get(group_name)
            if group is None or group.provided_above is None:
                raise RuntimeError(f"{declared.module}: action {declared.name!r} of {group_name!r}, which is no group")
            if declared.module != group.module and group.provided_above.get(declared.name) != declared.module:
                raise RuntimeError(f"{declared.module} declares `exprl {group_name} {declared.name}`, which "
                                   f"{group.module} does not name in provided_above")
            actions[group_name].append(declared)
        subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
        for declared in self._top:
            command = subparsers.add_parser(declared.name, **declared.parser_kwargs)
            if declared.provided_above is None:
                if declared.add_arguments is not None:
                    declared.add_arguments(command)
                command.set_defaults(handler=declared.handler)
                continue
            missing = sorted(set(declared.provided_above) - {a.name for a in actions[declared.name]})
            if missing:
                raise RuntimeError(f"`exprl {declared.name} {missing[0]}`: {declared.provided_above[missing[0]]} "
                                   f"is not among the modules that registered")
            command.set_defaults(handler=_help_printer(command))
            subcommands = command.add_subparsers(dest=f"{declared.name}_command", metavar="ACTION")
            # The group's own actions in its order, then those from above in the order it names them:
            # the same help whichever module registered first.
            above = list(declared.provided_above)
            for action in sorted(actions[declared.name], key=lambda a: above.index(a.name) + 1 if a.name in above else 0):
                action_parser = subcommands.add_parser(action.name, **action.parser_kwargs)
                if action.add_arguments is not None:
                    action.add_arguments(action_parser)
                action_parser.set_defaults(handler=action.handler)
        return parser


def _help_printer(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def print_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return print_help


def build_parser(modules: Sequence[str] = SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exprl", description="ExpRL: exploratory RL for LLM mid-training.")
    parser.add_argument("--version", action="version", version=f"exprl {__version__}")
    commands = Commands()
    for module_name in modules:
        commands.module = module_name
        importlib.import_module(module_name).register(commands)
    return commands.build(parser)


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
