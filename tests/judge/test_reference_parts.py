"""The reference judge's parts that its end-to-end tests (test_reference.py) reach only through a
score: the arithmetic helpers, computations as written, the answer key and `assess`'s statuses."""
from __future__ import annotations

from fractions import Fraction

from exprl.judge.backends.reference import ReferenceBackend
from exprl.judge.reference.arithmetic import (as_number, distinct_values, format_number, is_computation, operands_of,
                                              symbol_vocabulary, token_value)
from exprl.judge.reference.checkpoints import answer_key, assess, spread_evenly
from exprl.judge.reference.statements import stated_computations
from exprl.judge.types import JudgeConfig, JudgeRequest

# 18 is computed from 9, and 19 from 18: the prerequisites a trace must state first.
CHAIN = r"16 - 3 - 4 = 9, 9 * 2 = 18, 18 + 1 = 19, so \boxed{19}"


def key(reference: str = CHAIN, problem: str = "Start at 16. Take 3, then 4. Double it. Add 1."):
    return answer_key(JudgeRequest(problem=problem, reference=reference, trace=""))


def test_numbers_fractions_and_percentages_are_read_exactly():
    assert as_number(r"\frac{3}{4}") == Fraction(3, 4) and as_number("-3/6") == Fraction(-1, 2)
    assert as_number("2.50") == Fraction(5, 2)
    assert as_number("x") is None and as_number("1/0") is None
    assert token_value("50%") == Fraction(1, 2) and token_value("2.5") == Fraction(5, 2) and token_value("12") == 12
    assert format_number(Fraction(6, 4)) == "3/2" and format_number(Fraction(8)) == "8"


def test_a_computation_needs_an_operation():
    assert is_computation("9 * 2") and is_computation("16 - 3") and is_computation(r"3 \cdot 4")
    assert not is_computation("18") and not is_computation("-5") and not is_computation("x + 1")


def test_the_operands_of_a_computation_include_the_fractions_it_writes():
    assert operands_of("11/18 * 162") == ("11", "18", "162", "11/18")
    assert operands_of(r"\frac{1}{2} + 50%") == ("1", "2", "1/2")  # 50% is 1/2 too: one operand
    assert operands_of("3 x 4") == ("3", "4")


def test_distinct_values_keeps_the_first_spelling_of_each_value():
    values = ["12", "12.0", r"\frac{1}{2}", "1/2", r"\sqrt{8}", r"2\sqrt{2}", "x"]
    assert distinct_values(values) == ["12", r"\frac{1}{2}", r"\sqrt{8}", "x"]


def test_symbols_and_functions_exclude_layout_commands():
    assert symbol_vocabulary(r"2\sqrt{2}+x") == {"sqrt", "x"}
    assert symbol_vocabulary(r"\frac{3}{4}\cdot 2") == frozenset()


def test_spread_evenly_keeps_the_ends():
    assert spread_evenly(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread_evenly([1, 2], 5) == [1, 2] and spread_evenly([1, 2, 3], 1) == [3] and spread_evenly([1], 0) == []


def test_stated_computations_are_read_right_or_wrong_with_their_offsets():
    text = "So 84 / 12 = 7 eggs, and 9 * 2 = $25. Then x = 3 + 4."
    right, wrong = stated_computations(text)
    assert (right.expression, right.result, right.value) == ("84 / 12", "7", 7)
    assert (wrong.expression, wrong.result, wrong.value) == ("9 * 2", "25", 18)  # the currency sign left out
    assert text[wrong.start:wrong.end] == "9 * 2 = $25" and text[wrong.result_start:wrong.end] == "25"


def test_the_answer_key_holds_checkpoints_prerequisites_and_what_the_problem_gives():
    answer = key()
    assert answer.checkpoints == ("9", "18", "19") and answer.final == "19"
    assert answer.prerequisites == (frozenset(), frozenset({0}), frozenset({1}))
    assert {16, 3, 4, 1} <= answer.given and answer.budget == 7  # value_budget(3)


def test_assess_statuses():
    answer = key()
    assert assess(r"9, then 9 * 2 = 18, and 18 + 1 = 19: \boxed{19}", answer).status == ["reached"] * 3
    # 18 before the 9 it is computed from: a coincidence, not progress.
    early = assess(r"x = 18. Then 16 - 3 - 4 = 9. \boxed{19}", answer)
    assert early.status == ["reached", "out of order", "reached"]
    wrong = assess(r"16 - 3 - 4 = 9, \boxed{20}", answer)
    assert wrong.wrong_final and wrong.declared == "20" and wrong.status == ["reached", "missing", "missing"]
    hedged = assess(r"\boxed{19} or \boxed{20}", answer)
    assert hedged.hedged and hedged.wrong_final
    listed = assess(", ".join(f"= {i}" for i in range(20, 40)) + r", = 9, = 18, \boxed{19}", answer)
    assert listed.status == ["over budget", "over budget", "reached"]  # the declared answer counts last
    assert listed.values > answer.budget and "over the budget" in listed.notes[0]


def test_the_backend_reports_its_checkpoints_and_matching():
    backend, chain = ReferenceBackend(), ReferenceBackend(JudgeConfig(reference_matching="chain"))
    assert backend.checkpoints_for(JudgeRequest(problem="p", reference=None, trace="t", answer="5")) == ("5",)
    assert backend.checkpoints_for(JudgeRequest(problem="p", reference=None, trace="t")) == ()
    assert backend.reached(["36", "12"], ["12", "36"]) == [True, True]
    assert chain.reached(["36", "12"], ["12", "36"]) == [True, False]
    assert chain.name.endswith(":chain") and backend.requests_per_call == 1
