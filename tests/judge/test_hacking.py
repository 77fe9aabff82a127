"""The red-teaming suite (`testing.hacking`): its clean traces on GSM8K- and MATH-shaped data, the property the
reference judge must have against every attack family (in outcome mode and in every process view),
and the same attacks rendered into the LLM judges' prompts.

The suite's problems: GSM8K test rows 0..GSM8K_ROWS and MATH-500 rows 100..100+MATH_ROWS, of the generated
catalog files (testing/corpora.py) and of the real ones in ../shared/data where present.
benchmarks/judge_hacking.py measures the same property on train rows these tests never use.
"""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from exprl.data.loaders import load_problems
from exprl.data.problem import Problem
from testing.hacking import ATTACK_FAMILIES, attack, calibration_rows, clean_traces, suite, wrong_answer_for
from exprl.judge.prompts import FENCE_TAG, PromptStyle, build_prompt, neutralise_fence
from exprl.judge.backends.reference import ReferenceBackend
from exprl.judge.reference.arithmetic import normalize
from exprl.judge.types import PROCESS_VIEWS, JudgeConfig, JudgeRequest, process_requests
from exprl.rewards.steps import split_steps

GSM8K_ROWS = 24
MATH_ROWS = 12


@pytest.fixture()
def gsm8k(catalog_data) -> list[Problem]:
    return load_problems(catalog_data / "gsm8k_test.jsonl")[:GSM8K_ROWS]


@pytest.fixture()
def math(catalog_data) -> list[Problem]:
    return load_problems(catalog_data / "math500.jsonl")[100:100 + MATH_ROWS]


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


# ---------------------------------------------------------------------------------------------
# The property, for the reference judge: no attack pays


VIEWS = PROCESS_VIEWS


def scores_by_mode(backend: ReferenceBackend, problem: Problem, text: str) -> dict[str, tuple[int, ...]]:
    """The outcome score, and each process view's step scores, of `text` (the real step splitter)."""
    common = dict(problem=problem.problem, reference=problem.reference, answer=problem.answer)
    out = {"outcome": (backend.judge_one(JudgeRequest(trace=text, **common)).score,)}
    steps = split_steps(text)
    for view in VIEWS:
        out[view] = tuple(backend.judge_one(request).score for request in process_requests(text, steps, view, **common))
    return out


@pytest.mark.parametrize("matching", ["any", "chain"])
def test_no_attack_lifts_a_wrong_trace_above_its_clean_one_or_a_right_trace_above_its_clean_one(
        gsm8k, math, matching):
    backend = ReferenceBackend(JudgeConfig(reference_matching=matching))
    problems = {p.id: p for p in gsm8k + math}
    traces = suite(problems.values())
    scored = {(t.problem_id, t.base, t.family): scores_by_mode(backend, problems[t.problem_id], t.text)
              for t in traces}
    lifted = []
    for (problem_id, base, family), scores in scored.items():
        clean = scored[(problem_id, base, "clean")]
        for mode, attacked in scores.items():
            # A process trace is compared by its best step: what the attack could make a step earn.
            if max(attacked) > max(clean[mode]):
                lifted.append((problem_id, base, family, mode, attacked, clean[mode]))
    assert lifted == [], lifted[:3]
    # The attacks are not vacuous: the clean traces are told apart, and the number lists, ranges and
    # repeated boxes carry the reference's values (and its answer) that a looser judge would credit.
    outcomes = {key: scores["outcome"][0] for key, scores in scored.items()}
    if matching == "any":
        assert sum(outcomes[(p, "right", "clean")] == 5 for p in problems) >= len(problems) - 1
    assert all(outcomes[(p, "wrong", "clean")] <= 3 for p in problems)
    assert all(outcomes[(p, base, "bare_answer")] <= 4 for p in problems for base in ("right", "wrong"))
    number_lists = [t for t in traces if t.family == "number_list"]
    repeated_boxes = [t for t in traces if t.family == "repeated_boxes"]
    assert len(number_lists) == len(repeated_boxes) == 2 * len(problems)  # on the right and the wrong trace
    assert all(normalize(problems[t.problem_id].answer) in t.text for t in number_lists)
    assert all(f"\\boxed{{{problems[t.problem_id].answer}}}" in t.text for t in repeated_boxes)


def test_attacks_on_the_synthetic_chains_do_not_pay_under_chain_matching():
    from exprl.data.synthetic import SyntheticTaskConfig, generate

    backend = ReferenceBackend(JudgeConfig(reference_matching="chain"))
    problems = generate(SyntheticTaskConfig(num_problems=12, min_steps=3, max_steps=6, seed=5, split="hack"))
    traces = suite(problems)
    by_id = {p.id: p for p in problems}
    scored = {(t.problem_id, t.base, t.family): scores_by_mode(backend, by_id[t.problem_id], t.text) for t in traces}
    assert all(scored[(p.id, "right", "clean")]["outcome"] == (5,) for p in problems)
    for (problem_id, base, family), scores in scored.items():
        clean = scored[(problem_id, base, "clean")]
        assert all(max(scores[mode]) <= max(clean[mode]) for mode in scores), (problem_id, base, family)


# ---------------------------------------------------------------------------------------------
# The same suite against the LLM judges' prompts: every attack stays inside the untrusted block


_BLOCK = re.compile(rf"<<<{re.escape(FENCE_TAG)} BEGIN ([A-Z ]+)>>>\n(.*?)\n<<<{re.escape(FENCE_TAG)} END \1>>>",
                    re.DOTALL)


def outside_and_inside(prompt) -> tuple[list[str], str]:
    """(the messages with every untrusted block's body taken out, those bodies joined)."""
    outside, inside = [], []
    for message in prompt.messages:
        inside += [match.group(2) for match in _BLOCK.finditer(message["content"])]
        outside.append(message["role"] + ":" + _BLOCK.sub(lambda m: f"[{m.group(1)}]", message["content"]))
    return outside, "\n".join(inside)


@pytest.mark.parametrize("style", [PromptStyle(), PromptStyle(json_mode=True, layout="paper", known_answer=True)],
                         ids=["default", "json-paper-answer"])
def test_every_attack_stays_inside_the_untrusted_block_of_every_prompt(gsm8k, math, style):
    for problem in gsm8k[:4] + math[:2]:
        clean = clean_traces(problem)
        common = dict(problem=problem.problem, reference=problem.reference, answer=problem.answer)
        for base, clean_text, answer in (("right", clean.right, problem.answer),
                                         ("wrong", clean.wrong, clean.wrong_answer)):
            for family in ATTACK_FAMILIES:
                attacked = attack(family, problem, clean_text, answer)
                requests = [JudgeRequest(trace=attacked, **common)]
                for view in VIEWS:
                    requests += process_requests(attacked, split_steps(attacked), view, **common)
                for request in requests:
                    for limit in (None, 600):  # also when the quoted text is cut to a budget
                        rendered = build_prompt(request, style, max_trace_chars=limit)
                        # The same request with the clean trace in the attacked text's place.
                        reference_request = replace(request, trace=clean_text,
                                                    context=clean_text if request.context else "")
                        expected = build_prompt(reference_request, style, max_trace_chars=limit)
                        outside, inside = outside_and_inside(rendered)
                        assert outside == outside_and_inside(expected)[0], (problem.id, base, family, request.mode)
                        # No attack adds a spelling of the tag: every one left is the prompt's own.
                        assert [m["content"].upper().count(FENCE_TAG) for m in rendered.messages] == \
                            [m["content"].upper().count(FENCE_TAG) for m in expected.messages]
                        if limit is None:  # every line of the attacked text is quoted, neutralised
                            for line in neutralise_fence(request.context).splitlines() + \
                                    neutralise_fence(request.trace).splitlines():
                                assert line in inside
