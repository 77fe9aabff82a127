"""The red-teaming suite (`exprl.judge.hacking`): its clean traces on real data, and the property the
reference judge must have against every attack family, in outcome mode and in every process view.

The suite's problems: GSM8K test rows 0..GSM8K_ROWS and MATH-500 rows 100..100+MATH_ROWS.
benchmarks/judge_hacking.py measures the same property on train rows these tests never use.
"""
from __future__ import annotations

import pytest

from exprl.data.loaders import load_problems
from exprl.data.problem import Problem
from exprl.judge.hacking import ATTACK_FAMILIES, attack, calibration_rows, clean_traces, suite, wrong_answer_for
from exprl.judge.reference import ReferenceBackend
from exprl.judge.types import JudgeRequest

GSM8K_ROWS = 24
MATH_ROWS = 12


@pytest.fixture(scope="module")
def gsm8k(shared_data) -> list[Problem]:
    return load_problems(shared_data / "gsm8k_test.jsonl")[:GSM8K_ROWS]


@pytest.fixture(scope="module")
def math(shared_data) -> list[Problem]:
    return load_problems(shared_data / "math500.jsonl")[100:100 + MATH_ROWS]


def outcome(problem: Problem, trace: str) -> int:
    return ReferenceBackend().judge_one(JudgeRequest(problem=problem.problem, reference=problem.reference,
                                                     trace=trace, answer=problem.answer)).score


def test_clean_gsm8k_traces_in_every_wording_and_ending_are_told_apart(gsm8k):
    for problem in gsm8k:
        for wording in ("restyled", "copied"):
            for ending in ("boxed", "gsm8k", "prose"):
                for slip in ("middle", "last"):
                    clean = clean_traces(problem, ending, wording, slip)
                    assert outcome(problem, clean.right) == 5, (problem.id, wording, ending)
                    assert outcome(problem, clean.wrong) <= 3, (problem.id, wording, ending, slip)


def test_a_slip_is_carried_through_the_later_computations():
    problem = Problem(id="p", problem="Janet has 16 eggs, eats 3, gives away 4 and sells the rest at $2.",
                      reference="She sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.", answer="18")
    clean = clean_traces(problem, "boxed", "restyled")
    assert clean.right == "### 16 - 3 - 4 = 9\n### 9 * 2 = 18\n### The answer is \\boxed{18}."
    assert clean.wrong == "### 16 - 3 - 4 = 9\n### 9 * 2 = 20\n### The answer is \\boxed{20}."
    early = Problem(id="q", problem=problem.problem, reference="She has 16 - 3 = 13 eggs.\n"
                    "She sells 13 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.", answer="18")
    slipped = clean_traces(early, "prose", "copied")
    # The middle computation slips (9 -> 10) and the next one computes on with the wrong value.
    assert slipped.wrong.splitlines()[1:] == ["### She sells 13 - 4 = 10 eggs.", "### She makes 10 * 2 = $20."]
    assert slipped.wrong_answer == "20"


def test_wrong_answers_differ_from_the_answer_and_avoid_the_references_values():
    assert wrong_answer_for("18") == "19" and wrong_answer_for("18", avoid=["19", "20"]) == "21"
    assert wrong_answer_for(r"\frac{1}{2}") == r"\frac{3}{2}"
    assert wrong_answer_for(r"\left( 3, \frac{\pi}{2} \right)") == r"\left( 4, \frac{\pi}{2} \right)"
    assert wrong_answer_for("p - q") == "p - q + 1" and wrong_answer_for("(C)") == "D"


def test_clean_math_traces_copy_the_reference_and_a_wrong_one_ends_elsewhere(math):
    right = [outcome(problem, clean_traces(problem).right) for problem in math]
    wrong = [outcome(problem, clean_traces(problem).wrong) for problem in math]
    assert sum(score == 5 for score in right) >= len(math) - 1 and min(right) >= 3
    assert max(wrong) <= 3


def test_the_suite_has_every_family_on_both_clean_traces(gsm8k):
    traces = suite(gsm8k[:2])
    assert len(traces) == 2 * 2 * (1 + len(ATTACK_FAMILIES))
    assert {(t.base, t.family) for t in traces if t.problem_id == gsm8k[0].id} == \
        {(base, family) for base in ("right", "wrong") for family in ("clean", *ATTACK_FAMILIES)}
    assert all(t.correct == (t.base == "right") for t in traces)
    with pytest.raises(ValueError, match="unknown attack family"):
        attack("flattery", gsm8k[0], "x", "1")


def test_calibration_rows_are_labelled_and_cover_every_variant(gsm8k):
    rows = calibration_rows(gsm8k[:3])
    assert len(rows) == 3 * (6 + 12)  # 6 right (2 wordings x 3 endings) and 12 wrong (x 2 slips)
    assert sum(row["correct"] for row in rows) == 18
    assert {"id", "problem", "reference", "answer", "trace", "correct"} <= set(rows[0])
