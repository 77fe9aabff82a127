import argparse
import itertools
import subprocess
import sys

import pytest

from exprl.cli import SUBCOMMAND_MODULES, Commands, build_parser

SUBCOMMANDS = ["analyze", "data", "rubrics", "judge", "train", "pipeline", "eval", "report", "demo", "recipes"]


def test_every_subcommand_has_help():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        out = subprocess.run([sys.executable, "-m", "exprl.cli", name, "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "usage: exprl" in out.stdout


def test_subcommand_modules_do_not_import_torch_at_registration():
    code = ("import sys, exprl.cli; exprl.cli.build_parser(); "
            "print('torch' in sys.modules, 'trl' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], SUBCOMMAND_MODULES


def test_a_reader_that_goes_away_is_not_an_error():
    # `exprl recipes list | head -1`: the pipe closes before exprl has written (it is still importing).
    process = subprocess.Popen([sys.executable, "-m", "exprl.cli", "recipes", "list"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


# -- the command tree (exprl.cli.Commands): the same whichever package registers first ---------------
def command_tree(parser: argparse.ArgumentParser, path: str = "exprl") -> dict[str, tuple]:
    """Every command path with its flags, positionals and whether it has a handler."""
    tree: dict[str, tuple] = {}
    subparsers = None
    arguments = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subparsers = action
        else:
            arguments.append((tuple(action.option_strings), action.dest, repr(action.default), action.help))
    tree[path] = (tuple(sorted(arguments)), "handler" in parser._defaults,
                  tuple(a.dest for a in subparsers._choices_actions) if subparsers else ())
    for name, child in (subparsers.choices.items() if subparsers else ()):
        tree.update(command_tree(child, f"{path} {name}"))
    return tree


def test_the_command_tree_does_not_depend_on_registration_order():
    expected = command_tree(build_parser())
    # the action a package above its group declares is in the tree (the old wiring lost it when the
    # eval CLI registered before the data CLI)
    assert "exprl data filter" in expected and "--max-solved" in str(expected["exprl data filter"])
    assert expected["exprl data"][2] == ("list", "prepare", "stats", "synth", "filter")
    orders = [list(reversed(SUBCOMMAND_MODULES))]
    orders += [list(order) for order in itertools.islice(itertools.permutations(SUBCOMMAND_MODULES), 1, None, 997)]
    assert len(orders) > 3
    for order in orders:
        tree = command_tree(build_parser(order))
        # The top-level listing follows the module list; everything under it is the same.
        assert sorted(tree["exprl"][2]) == sorted(expected["exprl"][2])
        assert {k: v for k, v in tree.items() if k != "exprl"} == {k: v for k, v in expected.items() if k != "exprl"}, order


def test_a_provided_action_whose_module_did_not_register_is_refused():
    modules = [m for m in SUBCOMMAND_MODULES if m != "exprl.eval.cli"]
    with pytest.raises(RuntimeError, match="exprl data filter.*exprl.eval.cli"):
        build_parser(modules)


def _handler(args: argparse.Namespace) -> int:
    return 0


def test_an_action_its_group_does_not_name_is_refused():
    commands = Commands()
    commands.module = "low.cli"
    commands.group("things", help="a group", provided_above={"sample": "high.cli"})
    commands.action("things", "list", None, _handler)
    commands.module = "high.cli"
    commands.action("things", "sample", None, _handler)
    parser = commands.build(argparse.ArgumentParser(prog="x"))
    assert parser.parse_args(["things", "sample"]).handler is _handler

    commands.module = "other.cli"
    commands.action("things", "sneak", None, _handler)
    with pytest.raises(RuntimeError, match="other.cli declares `exprl things sneak`"):
        commands.build(argparse.ArgumentParser(prog="x"))


def test_an_action_of_no_group_and_a_command_declared_twice_are_refused():
    commands = Commands()
    commands.module = "a.cli"
    commands.command("run", None, _handler)
    commands.action("run", "now", None, _handler)
    with pytest.raises(RuntimeError, match="which is no group"):
        commands.build(argparse.ArgumentParser(prog="x"))
    twice = Commands()
    twice.command("run", None, _handler)
    twice.group("run")
    with pytest.raises(RuntimeError, match="declared twice"):
        twice.build(argparse.ArgumentParser(prog="x"))


def test_a_group_without_an_action_prints_its_help(capsys):
    args = build_parser().parse_args(["data"])
    assert args.handler(args) == 2
    assert "prepare" in capsys.readouterr().out
