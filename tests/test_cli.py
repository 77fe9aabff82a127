import subprocess
import sys

from exprl.cli import SUBCOMMAND_MODULES, build_parser

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
