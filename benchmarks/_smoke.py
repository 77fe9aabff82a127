"""What every benchmark's `--smoke` mode shares: the smallest inputs that still run a script's whole
code path, so that tests/test_benchmarks.py can run each script on any clone in seconds.

A smoke run prints the script's real output (its table, its JSON line) from tiny inputs: a check that
the script works, never a figure. It writes only under a temporary folder, removed at exit, so it
neither fills `runs/` nor leaves a tiny model in a cache a real run would reuse.

Not a benchmark itself: the leading underscore keeps it out of tests/test_benchmarks.py's glob.
"""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

HELP = ("the smallest inputs that still run the whole script (tiny model, 1-2 steps, a few generated problems, "
        "a temporary folder): a check of the script (tests/test_benchmarks.py), not a figure")

# The demo at seconds per stage on one core: the sizes of tests/demo/test_runner.py's reduced demo, with
# fewer pre-training steps (a smoke run checks the path, not the base's competence).
DEMO_OVERRIDES = [
    "task.num_train_hard=4", "task.num_eval_hard=3", "task.num_eval_easy=3",
    "base.hidden_size=32", "base.num_layers=1", "base.num_heads=2", "base.steps=10", "base.target_easy_greedy=0",
    "base.num_problems=200", "base.batch_size=8", "base.check_problems=4",
    "training.stage1_steps=1", "training.stage2_steps=1", "training.num_generations=2",
    "training.prompts_per_step=2", "training.max_completion_length=24",
    "eval.n=2", "eval.max_tokens=24", "eval.batch_size=16",
]

# Rows per generated train file: the benchmarks that read train files take rows 1000 onwards (problems the
# tests never use), so a smoke file needs a few beyond that.
TRAIN_ROWS = 1010
EVAL_ROWS = 12


def folder(prefix: str = "exprl-smoke-") -> Path:
    """A fresh temporary folder, removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _math_row(split: str, i: int) -> dict:
    """A MATH-shaped row (LaTeX, a boxed answer; every third one a fraction, for the symbolic paths)."""
    a, b, c = 3 + i, 2 + i % 11, 1 + i % 7  # a = 3 + i: no two rows alike
    if i % 3 == 2:
        problem = f"Simplify $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{b}}}$."
        total = a + c
        answer = f"\\frac{{{total}}}{{{b}}}"
        solution = (f"The two fractions share the denominator ${b}$, so we add the numerators: ${a} + {c} = {total}$. "
                    f"Hence the sum is $\\boxed{{{answer}}}$.")
    else:
        problem = f"Let $x = {a}$ and $y = {b}$. Find $x y + {c}$."
        answer = str(a * b + c)
        solution = (f"First we multiply: ${a} \\cdot {b} = {a * b}$. Then we add the constant: "
                    f"${a * b} + {c} = {answer}$. Therefore the value is $\\boxed{{{answer}}}$.")
    return {"id": f"math/{split}/smoke/{i}", "source": "smoke", "problem": problem, "solution": solution,
            "answer": answer, "level": 1 + i % 5, "subject": "Algebra"}


def _gsm8k_row(split: str, i: int) -> dict:
    """A GSM8K-shaped row (plain arithmetic, one computation a line, the answer apart)."""
    a, b, c = 12 + i, 2 + i % 5, 3 + i % 9
    per_day = a * b
    answer = str(per_day + c)
    problem = (f"Mia packs {a} boxes every hour for {b} hours, then {c} more boxes at the end of the day. "
               f"How many boxes does she pack that day?")
    solution = f"In {b} hours she packs {a}*{b} = {per_day} boxes.\nWith the last ones she packs {per_day}+{c} = {answer} boxes."
    return {"id": f"gsm8k/{split}/smoke/{i}", "source": "smoke", "problem": problem, "solution": solution,
            "answer": answer, "level": None, "subject": None}


def catalog_data() -> Path:
    """A temporary data folder with generated files under the catalog's names (the files the benchmarks read
    from $EXPRL_DATA_DIR, else ../shared/data): MATH and GSM8K train, MATH-500, MATH test without it, GSM8K
    test. Each eval file repeats one train problem, so decontamination has something to remove."""
    data = folder("exprl-smoke-data-")
    files = {"math_train.jsonl": [_math_row("train", i) for i in range(TRAIN_ROWS)],
             "gsm8k_train.jsonl": [_gsm8k_row("train", i) for i in range(TRAIN_ROWS)],
                      "math500.jsonl": [_math_row("test", 5000 + i) for i in range(EVAL_ROWS)] + [_math_row("train", 0)],
             "math_test_excl_math500.jsonl": [_math_row("test", 6000 + i) for i in range(EVAL_ROWS)],
             "gsm8k_test.jsonl": [_gsm8k_row("test", 5000 + i) for i in range(EVAL_ROWS)] + [_gsm8k_row("train", 0)]}
    for name, rows in files.items():
        (data / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return data
