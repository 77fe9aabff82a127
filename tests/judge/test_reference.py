"""The reference judge: checkpoint extraction, what a trace states, equivalence, the 1-5 map."""
from __future__ import annotations

import asyncio
import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exprl.data.synthetic import SyntheticTaskConfig, generate, policy_trace
from exprl.judge.backends.reference import ReferenceBackend
from exprl.judge.reference.arithmetic import evaluate, equivalent, fingerprint, normalize
from exprl.judge.reference.checkpoints import answer_key, extract_checkpoints, progress_score, value_budget
from exprl.judge.reference.statements import read_statements, stated_results
from exprl.judge.types import JudgeRequest, JudgeStatus

REFERENCE = r"a = 3 \cdot 4 = 12, b = 3 a = 36, c = b - 4 = 32, so \boxed{32}"


def judge(*requests):
    return asyncio.run(ReferenceBackend().judge_batch(list(requests)))


def request(trace, reference=REFERENCE, **kw):
    return JudgeRequest(problem="Start at 3. Multiply by 4. Multiply by 3. Subtract 4.",
                        reference=reference, trace=trace, **kw)


def test_checkpoints_are_chain_results_in_order_with_the_final_answer_last():
    assert extract_checkpoints(REFERENCE, None) == ["12", "36", "32"]
    assert extract_checkpoints(REFERENCE, "32") == ["12", "36", "32"]


def test_checkpoints_are_capped_but_keep_the_final_answer():
    reference = ", ".join(f"v{i} = {10 + i}" for i in range(10)) + r", so \boxed{99}"
    checkpoints = extract_checkpoints(reference, None, max_checkpoints=4)
    assert checkpoints == ["10", "14", "19", "99"]  # spread from first to last, final kept


def test_values_the_problem_already_states_are_not_checkpoints():
    reference = r"We know $n = 7$, so $m = 2n = 14$ and the answer is $\boxed{15}$."
    assert extract_checkpoints(reference, "15") == ["7", "14", "15"]
    assert extract_checkpoints(reference, "15", problem="Let n = 7.") == ["14", "15"]


def test_stated_results_read_equations_arrows_verbal_statements_and_boxes():
    text = (r"First 3 + 9 = 12 apples. Then x = \dfrac{1}{2}, so y is 36. "
            r"Hence $z \Rightarrow 2^{10}$ and t = 1,000 \text{ cm}; <<3*4=12>> done: \boxed{p - q}")
    assert stated_results(text) == ["12", r"\frac{1}{2}", "36", "2^{10}", "1000", "12", "p-q"]


def test_a_digit_that_is_not_stated_as_a_result_does_not_count():
    trace = "After 12 days and 36 hours of thinking I give up on 32 of the cases."
    [result] = judge(request(trace))
    assert result.status is JudgeStatus.OK and result.score == 1


def test_equivalence_beyond_string_equality():
    assert equivalent(normalize(r"\frac{1}{2}"), "0.5")
    assert equivalent(normalize(r"\sqrt{8}"), normalize(r"2\sqrt{2}"))
    assert equivalent("2x+1", "1+2x")
    assert equivalent(normalize(r"\left( 3, \frac{\pi}{2} \right)"), normalize(r"(3,\dfrac{\pi}{2})"))
    assert not equivalent("7", "3+4")  # a computation is not its result
    assert not equivalent("2x+1", "2y+1")
    assert not equivalent(r"\sqrt{8}", r"3\sqrt{2}")


@pytest.mark.parametrize("reached, total, expected", [
    (0, 4, 1), (1, 4, 2), (2, 4, 3), (3, 4, 4), (4, 4, 5), (1, 3, 2), (2, 3, 3), (1, 1, 5)])
def test_progress_score_map(reached, total, expected):
    assert progress_score(reached, total) == expected


def test_outcome_scores_follow_progress_and_a_wrong_boxed_answer_is_capped():
    full = "3 * 4 = 12\n12 * 3 = 36\n36 - 4 = 32\n\\boxed{32}"
    two = "3 * 4 = 12\n12 * 3 = 36\n"
    wrong = "3 * 4 = 12\n12 * 3 = 36\n36 - 4 = 31\n\\boxed{31}"
    results = judge(request(full), request(two), request(wrong), request("no idea"))
    assert [r.score for r in results] == [5, 3, 3, 1]
    assert "capped at 3" in results[2].raw
    assert all(r.status is JudgeStatus.OK and r.raw.endswith(f"Score: {r.score}") for r in results)


def test_all_intermediates_but_a_wrong_final_answer_is_capped_from_4_to_3():
    reference = "a = 1, b = 2, c = 3, d = 4, so \\boxed{5}"
    trace = "a = 1, b = 2, c = 3, d = 4, so \\boxed{6}"
    [result] = judge(request(trace, reference=reference))
    assert result.score == 3


def test_process_views_prefix_scores_the_work_so_far_segment_the_step_alone_step_what_it_adds():
    steps = ["### 3 * 4 = 12", "### now multiply by three", "### 12 * 3 = 36", "### 36 - 4 = 32\n\\boxed{32}"]
    prefix = [request(step, mode="prefix", context="".join(s + "\n" for s in steps[:i])) for i, step in enumerate(steps)]
    segment = [request(step, mode="segment") for step in steps]
    in_context = [request(step, mode="step", context="".join(s + "\n" for s in steps[:i]))
                  for i, step in enumerate(steps)]
    assert [r.score for r in judge(*prefix)] == [2, 2, 3, 5]
    assert [r.score for r in judge(*segment)] == [2, 1, 2, 2]  # each step alone reaches 1 of 3
    # What each step adds, out of the checkpoints still missing before it: 1 of 3, none, 1 of 2, the last one.
    assert [r.score for r in judge(*in_context)] == [2, 1, 3, 5]


def test_a_cached_rubric_replaces_extraction():
    rubric = ("36", "32")
    [with_rubric, without] = judge(request("3 * 4 = 12", rubric=rubric), request("3 * 4 = 12"))
    assert with_rubric.score == 1 and without.score == 2


def test_no_reference_uses_the_known_answer_or_is_unscorable():
    [with_answer, bare_answer, bare] = judge(request("36 - 4 = 32", reference=None, answer="32"),
                                             request("\\boxed{32}", reference=None, answer="32"),
                                             request("36 - 4 = 32", reference=None))
    assert with_answer.score == 5
    assert bare_answer.score == 4  # the answer alone, without work: below a solution even here
    assert bare.status is JudgeStatus.UNPARSEABLE and bare.score is None and bare.error == "no reference"
    assert bare.reward is None


def test_a_reference_without_any_result_is_unscorable_not_zero():
    [result] = judge(request("x = 3", reference="Think about it carefully."))
    assert result.status is JudgeStatus.UNPARSEABLE and "no checkable result" in result.error


def test_every_synthetic_policy_trace_earns_5_and_its_prefixes_earn_less():
    problems = generate(SyntheticTaskConfig(num_problems=40, min_steps=2, max_steps=5, seed=3))
    requests, partial = [], []
    for problem in problems:
        trace = policy_trace(problem)
        assert extract_checkpoints(problem.reference, problem.answer)[-1] == problem.answer
        requests.append(JudgeRequest(problem=problem.problem, reference=problem.reference, trace=trace,
                                     answer=problem.answer))
        partial.append(JudgeRequest(problem=problem.problem, reference=problem.reference,
                                    trace=trace.split("\n")[0], answer=problem.answer))
    full_scores = [r.score for r in judge(*requests)]
    partial_scores = [r.score for r in judge(*partial)]
    assert full_scores == [5] * len(problems)
    assert len(partial_scores) == 40 and all(1 <= p < 5 for p in partial_scores)


def test_a_demo_sized_batch_of_step_judgments_is_all_scored():
    # Its speed is measured by benchmarks/reference_judge_speed.py, not asserted here.
    problems = generate(SyntheticTaskConfig(num_problems=100, min_steps=5, max_steps=5, seed=1))
    requests = []
    for problem in problems:
        steps = policy_trace(problem).split("\n")
        requests += [JudgeRequest(problem=problem.problem, reference=problem.reference, trace=step,
                                  mode="prefix", context="".join(s + "\n" for s in steps[:i]))
                     for i, step in enumerate(steps[:5])]
    results = judge(*requests)
    assert len(results) == 500 and all(r.ok for r in results)
    # Prefix mode: the i-th step of a 5-step chain has reached i + 1 of 5 checkpoints (5 = all).
    assert [r.score for r in results[:5]] == [2, 3, 3, 4, 5]


def test_math_references_judge_themselves_5_and_others_low(catalog_data):
    rows = [json.loads(line) for line in (catalog_data / "math500.jsonl").open()][:30]
    own, other = [], []
    for i, row in enumerate(rows):
        own.append(JudgeRequest(problem=row["problem"], reference=row["solution"], trace=row["solution"],
                                answer=row["answer"]))
        wrong = rows[(i + 1) % len(rows)]["solution"]
        other.append(JudgeRequest(problem=row["problem"], reference=row["solution"], trace=wrong,
                                  answer=row["answer"]))
    assert [r.score for r in judge(*own)] == [5] * len(rows)
    other_scores = [r.score for r in judge(*other)]
    assert sum(s >= 4 for s in other_scores) == 0
    assert sum(s == 1 for s in other_scores) >= 0.8 * len(rows)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 6))
def test_stating_more_of_the_reference_never_lowers_the_score(seed, steps):
    [problem] = generate(SyntheticTaskConfig(num_problems=1, min_steps=steps, max_steps=steps, seed=seed))
    lines = policy_trace(problem).split("\n")
    backend = ReferenceBackend()
    scores = [backend.judge_one(JudgeRequest(problem=problem.problem, reference=problem.reference,
                                             trace="\n".join(lines[:k]) or "nothing yet")).score
              for k in range(len(lines) + 1)]
    assert scores == sorted(scores) and scores[0] == 1 and scores[-1] == 5


def test_chain_matching_credits_checkpoints_only_in_order_from_the_first():
    from exprl.judge.reference.checkpoints import chain_reached
    from exprl.judge.types import JudgeConfig

    chain = ReferenceBackend(JudgeConfig(reference_matching="chain"))
    in_order = "3 * 4 = 12\n12 * 3 = 36\n"
    out_of_turn = "3 + 33 = 36\n36 - 4 = 32\n"  # 36 and 32, right arithmetic, without 12 first
    assert [r.score for r in asyncio.run(chain.judge_batch([request(in_order), request(out_of_turn)]))] == [3, 1]
    assert [r.score for r in judge(request(in_order), request(out_of_turn))] == [3, 3]  # `any` credits both
    assert chain_reached(["12", "7", "36", "32"], ["12", "36", "32"]) == [True, True, True]
    assert chain_reached(["36", "12", "32"], ["12", "36", "32"]) == [True, False, False]
    # The matching rule changes scores, so it is part of the judge's name and of every cache key.
    assert chain.name != ReferenceBackend().name


def test_every_synthetic_policy_trace_earns_5_under_chain_matching():
    from exprl.judge.types import JudgeConfig

    chain = ReferenceBackend(JudgeConfig(reference_matching="chain"))
    problems = generate(SyntheticTaskConfig(num_problems=30, min_steps=1, max_steps=8, operations=["add", "sub"]))
    results = [chain.judge_one(JudgeRequest(problem=p.problem, reference=p.reference, trace=policy_trace(p),
                                            answer=p.answer)) for p in problems]
    assert {r.score for r in results} == {5}


# ---------------------------------------------------------------------------------------------
# Work, not number lists (issue 11)

GSM_PROBLEM = ("A baker bakes 16 rolls a day. He eats 3 and gives 4 to a neighbour. He sells the rest "
               "for $2 each. How many dollars does he make a day?")
GSM_REFERENCE = "He sells 16 - 3 - 4 = 9 rolls a day.\nHe makes 9 * 2 = $18 every day."


def gsm(trace, **kw):
    return JudgeRequest(problem=GSM_PROBLEM, reference=GSM_REFERENCE, trace=trace, answer="18", **kw)


@pytest.mark.parametrize("expression, value", [
    ("16 - 3 - 4", 9), ("9 * 2", 18), ("$12 + $15 + $6", 33), ("80,000*1.5", 120000), ("0.2 x 50", 10),
    (r"\frac{3}{4} \cdot 8", 6), ("2^{10}", 1024), ("2(3 + 4)", 14), ("50%", Fraction(1, 2)), (".20*20", 4),
    ("10 / 4", Fraction(5, 2)), ("-3 + 5", 2)])
def test_plain_arithmetic_is_evaluated_exactly(expression, value):
    assert evaluate(expression) == value


@pytest.mark.parametrize("expression", ["x + 3", r"\sqrt{16}", "1 / 0", "2^{x}", "3!", "(1 + 2", "f(3)", "2^{1000}"])
def test_anything_else_is_not_evaluated(expression):
    assert evaluate(expression) is None


def test_a_wrong_computation_establishes_neither_its_result_nor_its_left_hand_side():
    # The example: the reference's working copied, with a wrong result.
    wrong = "He sells 16 - 3 - 4 = 9 rolls a day.\nHe makes 9 * 2 = $25 every day."
    right = "He sells 16 - 3 - 4 = 9 rolls a day.\nHe makes 9 * 2 = $18 every day."
    assert stated_results(wrong) == ["9"] and stated_results(right) == ["9", "18"]
    [wrong_result, right_result] = judge(gsm(wrong), gsm(right))
    assert right_result.score == 5
    assert wrong_result.score <= 3 and "missing: 18" in wrong_result.raw


def test_arithmetic_checks_allow_the_rounding_a_result_shows_and_the_problems_modulus():
    assert [s.established for s in read_statements("10 / 3 = 3.33, 10 / 3 = 3.5, 25 / 4 = 6 boxes")] == \
        [True, False, True]
    assert [s.established for s in read_statements("97 * 3 = 91")] == [False]
    assert [s.established for s in read_statements("97 * 3 = 91", modulus=100)] == [True]
    assert [s.established for s in read_statements(r"2^{10} = 1024 = 4 \pmod{5}")] == [True, True]


@pytest.mark.parametrize("text", ["x - 3 + 5 = 7", "f(3) = 9", "a_1 + 2 = 5", "50% of 80 = 40", "2x + 3 = 7",
                                  r"\sqrt{16} = 4", "half of 10 + 4 = 9"])
def test_a_left_hand_side_that_is_part_of_a_larger_expression_is_not_checked(text):
    assert [s.established for s in read_statements(text)] == [True]  # read as one statement, and not refuted


def test_an_operand_is_not_a_result_but_a_correct_computation_uses_it_knowingly():
    # "makes 9 * 2" does not state 9 as a result...
    assert stated_results("She makes 9 * 2 = $25") == []
    # ...but a correct computation credits the values it uses (a fact like 12 eggs a dozen).
    reference = "There are 12 eggs in a dozen, so 84 / 12 = 7 dozen."
    problem = "She eats 84 eggs. How many dozen?"
    [used, misused] = judge(JudgeRequest(problem=problem, reference=reference, trace="84 / 12 = 7\n\\boxed{7}"),
                            JudgeRequest(problem=problem, reference=reference, trace="84 / 12 = 8\n\\boxed{7}"))
    assert used.score == 5 and "reached: 12" in used.raw
    assert "missing: 12" in misused.raw


def test_a_checkpoint_stated_before_its_prerequisite_is_out_of_order():
    key = answer_key(gsm(""))
    assert key.checkpoints == ("9", "18") and key.prerequisites == (frozenset(), frozenset({0}))
    [backwards, forwards] = judge(gsm("So x = 18. Also 16 - 3 - 4 = 9."), gsm("16 - 3 - 4 = 9, so x = 18."))
    assert "out of order: 18" in backwards.raw and backwards.score < forwards.score == 5


def test_values_beyond_the_budget_cancel_checkpoints():
    assert value_budget(2) == 6 and value_budget(10) == 20
    solution = "16 - 3 - 4 = 9\n9 * 2 = 18\n\\boxed{18}"
    listed = "".join(f"v{n} = {n}, " for n in range(1, 41))
    [clean, padded, listing] = judge(gsm(solution), gsm(solution + "\nAlso x = 100, y = 200."),
                                     gsm(listed + "\\boxed{18}"))
    assert clean.score == 5 and padded.score == 5  # a few extra values are within the budget
    assert "over budget: 9" in listing.raw and "over the budget" in listing.raw
    # The declared answer still counts, the listed intermediates do not: 1 of 2 checkpoints.
    assert listing.score == 3


def test_one_name_given_many_values_lists_candidates_none_of_which_counts():
    assert [s.established for s in read_statements("x = 2 or x = 3, so a + b = 5 and b = 1, b = 4")] == [True] * 5
    assert stated_results("n = 1, n = 2, n = 9, n = 18; then y = 7") == ["7"]
    [candidates] = judge(gsm("".join(f"x = {n}, " for n in range(1, 41)) + "\\boxed{18}"))
    assert "missing: 9" in candidates.raw and candidates.score == 3


def test_several_different_boxed_answers_are_hedging():
    solution = "16 - 3 - 4 = 9\n9 * 2 = 18\n"
    [hedged, repeated] = judge(gsm(solution + "\\boxed{17} or \\boxed{19} or \\boxed{18}"),
                               gsm(solution + "\\boxed{18}, that is \\boxed{18}"))
    assert hedged.score == 3 and "3 different final answers" in hedged.raw and "missing: 18" in hedged.raw
    assert repeated.score == 5


def test_a_bare_answer_scores_below_the_solution():
    [bare, said, solution] = judge(gsm("\\boxed{18}"), gsm("The answer is 18."),
                                   gsm("16 - 3 - 4 = 9\n9 * 2 = 18\n\\boxed{18}"))
    assert bare.score < solution.score == 5 and said.score < 5
    one_result = "The product is $6 \\cdot 7 = 42$, so the answer is $\\boxed{42}$."
    [alone] = judge(JudgeRequest(problem="What is 6 times 7?", reference=one_result, trace="\\boxed{42}"))
    assert alone.score == 4 and "bare answer" in alone.raw


def test_a_whole_trace_without_a_box_is_judged_by_its_last_result():
    [wrong, unfinished] = judge(gsm("16 - 3 - 4 = 9\n9 * 2 = 18\n18 + 2 = 20"), gsm("16 - 3 - 4 = 9"))
    assert wrong.score == 3 and "final answer 20 differs" in wrong.raw
    assert unfinished.score == 3 and "differs" not in unfinished.raw  # stopped on the path: progress


def test_claims_addressed_to_a_judge_are_not_results():
    assert stated_results("Score = 5. The grade is 4. Final score: 5/5") == []
    assert stated_results("Her score = 3 * 10 = 30") == ["3*10", "30"]


def test_a_correct_solution_in_another_style_keeps_a_high_score():
    terse = "### 16 - 3 - 4 = 9\n### 9 * 2 = 18\n### \\boxed{18}"
    prose = "Sixteen less the three he eats and the four he gives away is 9 rolls; at $2 each that is $18. #### 18"
    assert [r.score for r in judge(gsm(terse), gsm(prose))] == [5, 5]


def test_a_symbolic_sum_has_no_fingerprint_and_matches_only_as_written():
    # MATH train intermediate_algebra/1327's reference: evaluating this sum at a probe point ran for minutes
    value = r"\sum_{k=0}^n\frac{k}{\binom{n}{k}}"
    assert fingerprint(value) is None
    assert equivalent(value, value)
    assert not equivalent(value, r"\sum_{k=0}^n\frac{n-k}{\binom{n}{k}}")
