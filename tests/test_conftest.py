"""The suite's own rule, from tests/conftest.py: a test not marked slow that takes longer than the declared
limit fails. Checked on a throwaway suite run by pytest in its own process, under tests/conftest.py."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SUITE = '''
import time
import pytest

@pytest.fixture()
def slow_setup():
    time.sleep(0.5)

def test_unmarked_and_slow():
    time.sleep(0.5)

def test_unmarked_with_a_slow_fixture(slow_setup):
    pass

@pytest.mark.slow
def test_marked_and_slow():
    time.sleep(0.5)

def test_unmarked_and_fast():
    pass

def test_unmarked_slow_and_failing():
    time.sleep(0.5)
    assert False, "its own failure"
'''


def run_suite(tmp_path: Path, limit: str | None) -> dict[str, str]:
    """test name -> outcome of the throwaway suite, under a copy of the suite's conftest."""
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_timed.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    env = {k: v for k, v in os.environ.items() if k != "EXPRL_FAST_TEST_LIMIT_S"}
    if limit is not None:
        env["EXPRL_FAST_TEST_LIMIT_S"] = limit
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    outcomes = {}
    for line in done.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            outcomes[rest.split("::")[1].split()[0]] = word
    assert len(outcomes) == 5, done.stdout + done.stderr
    return outcomes | {"stdout": done.stdout}


def test_a_test_not_marked_slow_over_the_limit_fails_naming_the_rule(tmp_path):
    outcomes = run_suite(tmp_path, "0.25")
    # Which tests the rule named, not how often its words appear: pytest repeats a failure's text in the short
    # summary when the terminal (COLUMNS) is wide enough, as on CI.
    named = set(re.findall(r"test_timed\.py::(\w+) took [\d.]+ s \(setup [\d.]+ s\), over the 0\.25 s a test not "
                           r"marked slow may take", outcomes.pop("stdout")))
    assert named == {"test_unmarked_and_slow", "test_unmarked_with_a_slow_fixture"}
    assert outcomes == {"test_unmarked_and_slow": "FAILED", "test_unmarked_with_a_slow_fixture": "FAILED",
                        "test_marked_and_slow": "PASSED", "test_unmarked_and_fast": "PASSED",
                        "test_unmarked_slow_and_failing": "FAILED"}


def test_the_limit_is_the_declared_one_unless_raised_or_turned_off(tmp_path):
    for limit in (None, "0"):  # the declared limit (FAST_TEST_LIMIT_S) is well above 0.5 s
        outcomes = run_suite(tmp_path, limit)
        outcomes.pop("stdout")
        assert outcomes == {"test_unmarked_and_slow": "PASSED", "test_unmarked_with_a_slow_fixture": "PASSED",
                            "test_marked_and_slow": "PASSED", "test_unmarked_and_fast": "PASSED",
                            "test_unmarked_slow_and_failing": "FAILED"}, limit
