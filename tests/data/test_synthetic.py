"""The synthetic coverage task: determinism, and the properties checkable without training."""
from __future__ import annotations

import re

import pytest

from exprl.data.answers import last_boxed
from exprl.data.synthetic import (
    OPERATIONS,
    STEP_LABELS,
    SyntheticTaskConfig,
    chain_of,
    check_steps,
    every_step_right,
    generate,
    parse_problem_text,
    policy_trace,
    right_prefix,
)
from exprl.errors import ConfigError


def test_same_config_same_problems_and_seed_changes_them():
    config = SyntheticTaskConfig(num_problems=50, seed=3)
    assert generate(config) == generate(SyntheticTaskConfig(num_problems=50, seed=3))
    other = generate(SyntheticTaskConfig(num_problems=50, seed=4))
    assert [p.problem for p in other] != [p.problem for p in generate(config)]


def test_split_name_changes_the_stream_and_exclude_keeps_splits_disjoint():
    train = generate(SyntheticTaskConfig(num_problems=200, max_steps=2, split="train"))
    test = generate(SyntheticTaskConfig(num_problems=200, max_steps=2, split="test"),
                    exclude={p.problem for p in train})
    assert not {p.problem for p in train} & {p.problem for p in test}
    assert len({p.id for p in train + test}) == 400


def test_difficulty_is_chain_length():
    easy = generate(SyntheticTaskConfig(num_problems=100, min_steps=1, max_steps=3))
    hard = generate(SyntheticTaskConfig(num_problems=100, min_steps=5, max_steps=6, split="hard"))
    assert {p.meta["steps"] for p in easy} == {1, 2, 3}
    assert {p.meta["steps"] for p in hard} == {5, 6}
    for p in easy + hard:
        assert len(re.findall(r"\(\w+\) (Add|Subtract|Multiply by) \d+\.", p.problem)) == p.meta["steps"]


def test_answers_follow_the_arithmetic():
    for p in generate(SyntheticTaskConfig(num_problems=100, min_steps=1, max_steps=6)):
        chain = chain_of(p)
        value = chain.start
        for name, operand in chain.steps:
            value = {"add": value + operand, "sub": value - operand, "mul": value * operand}[name] % 100
        assert p.answer == str(value) == last_boxed(p.reference) == last_boxed(policy_trace(p))


def test_reference_states_every_intermediate_result_as_an_equation():
    for p in generate(SyntheticTaskConfig(num_problems=50, min_steps=5, max_steps=6)):
        stated = [int(v) for v in re.findall(r"=\s*(\d+)", p.reference)]
        assert stated == p.meta["values"]


def test_reference_style_differs_from_policy_trace_style():
    for p in generate(SyntheticTaskConfig(num_problems=50, min_steps=2, max_steps=6)):
        trace = policy_trace(p)
        assert trace.count("###") == p.meta["steps"]
        assert "###" not in p.reference and "\n" not in p.reference
        # The trace shows the working (`12 * 3 = 36`); the reference only names results (`b = 36`).
        assert re.search(r"\d+ [-+*] \d+ = \d+", trace)
        assert not re.search(r"\d+ [-+*] \d+", p.reference)
        assert len(p.reference) < len(trace)


def test_reference_never_appears_in_the_problem_text():
    for p in generate(SyntheticTaskConfig(num_problems=50, min_steps=5, max_steps=6)):
        assert p.reference not in p.problem and "boxed" not in p.problem
        assert f"= {p.answer}" not in p.problem


@pytest.mark.parametrize("bad", [dict(min_steps=0), dict(min_steps=4, max_steps=3), dict(modulus=1),
                                 dict(operations=["pow"]), dict(operations=[]), dict(num_problems=-1),
                                 dict(min_operand=5, max_operand=2), dict(step_labels="roman"),
                                 dict(max_steps=26, last_first=True)])
def test_bad_config_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        SyntheticTaskConfig(**bad)


def test_asking_for_more_distinct_problems_than_exist_is_an_error():
    with pytest.raises(ConfigError, match="distinct"):
        generate(SyntheticTaskConfig(num_problems=10_000, min_steps=1, max_steps=1, modulus=5))


def test_the_reference_judge_reads_the_references_results_and_credits_partial_traces():
    from exprl.judge.backends.reference import ReferenceBackend
    from exprl.judge.reference.checkpoints import extract_checkpoints
    from exprl.judge.types import JudgeRequest

    judge = ReferenceBackend()
    for p in generate(SyntheticTaskConfig(num_problems=30, min_steps=5, max_steps=6, split="judge")):
        checkpoints = extract_checkpoints(p.reference, p.answer, problem=p.problem)
        # Every checkpoint is one of the chain's results, and the final answer comes last.
        assert set(checkpoints) <= {str(v) for v in p.meta["values"]} and checkpoints[-1] == p.answer
        lines = policy_trace(p).split("\n")
        scores = []
        for k in range(len(lines)):  # the first k steps, with no answer yet (process-style prefixes)
            request = JudgeRequest(problem=p.problem, reference=p.reference, trace="\n".join(lines[:k]),
                                   answer=p.answer)
            scores.append(judge.judge_one(request).score)
        assert scores == sorted(scores) and scores[0] == 1 and scores[-1] >= 4
        full = judge.judge_one(JudgeRequest(problem=p.problem, reference=p.reference,
                                            trace=policy_trace(p), answer=p.answer))
        assert full.score == 5


@pytest.mark.parametrize("labels", STEP_LABELS)
def test_operations_and_steps_carry_the_same_label_and_the_text_gives_back_the_chain(labels):
    for p in generate(SyntheticTaskConfig(num_problems=40, min_steps=1, max_steps=14, step_labels=labels,
                                          operations=["add", "sub", "mul"])):
        chain = chain_of(p)
        found = re.findall(r"\((\w+)\) ", p.problem)
        assert found == re.findall(r"### (\w+): ", policy_trace(p)) == [chain.label(i) for i in range(1, len(found) + 1)]
        if labels == "letters":
            assert found == list("abcdefghijklmn"[:len(found)])
        assert parse_problem_text(p.problem) == chain


def test_last_first_lists_the_stop_then_the_steps_so_step_k_sits_as_far_from_the_end_in_every_problem():
    easy = generate(SyntheticTaskConfig(num_problems=30, min_steps=1, max_steps=3, last_first=True))
    hard = generate(SyntheticTaskConfig(num_problems=30, min_steps=13, max_steps=14, last_first=True, split="hard"))
    for p in easy + hard:
        chain = chain_of(p)
        items = re.findall(r"\((\w+)\) ([A-Za-z ]+?)(?: (\d+))?\.", p.problem)
        assert items[0][1] == "Stop" and items[0][0] == chain.label(len(chain.steps) + 1)
        listed = [(label, int(operand)) for label, _, operand in items[1:]][::-1]
        assert listed == [(chain.label(k), operand) for k, (_, operand) in enumerate(chain.steps, 1)]
        # what follows step a's operation is the same text in every problem: the lookup is one distance
        assert p.problem.endswith(f"(a) {OPERATIONS[chain.steps[0][0]][0]} {chain.steps[0][1]}. Work modulo 100.")
        assert parse_problem_text(p.problem) == chain and every_step_right(p, policy_trace(p))


def test_a_text_that_is_not_a_chain_problem_is_a_config_error():
    for text in ("Start at 5. (a) Raise to 3. Work modulo 10.", "Start at 5. (b) Add 3. Work modulo 10.",
                 "Start at 5. (a) Stop. (b) Add 3. Work modulo 10.", "What is 2 + 2?"):
        with pytest.raises(ConfigError, match="not a synthetic chain problem"):
            parse_problem_text(text)


def test_step_checks_find_each_kind_of_mistake_and_where_the_right_prefix_ends():
    p = generate(SyntheticTaskConfig(num_problems=1, min_steps=5, max_steps=5, operations=["add", "sub"]))[0]
    lines = policy_trace(p).split("\n")
    assert [c.right for c in check_steps(p, policy_trace(p))] == [True] * 5
    assert every_step_right(p, policy_trace(p))

    def with_line(k: int, line: str) -> str:
        return "\n".join(lines[:k] + [line] + lines[k + 1:])

    label, body = lines[2].split(": ", 1)
    left, symbol, operand, _, result = body.split(" ")
    other = "-" if symbol == "+" else "+"
    wrong = {
        "operation": f"{label}: {left} {other} {operand} = {result}",
        "input": f"{label}: {(int(left) + 1) % 100} {symbol} {operand} = {result}",
        "arithmetic": f"{label}: {left} {symbol} {operand} = {(int(result) + 1) % 100}",
        "in_turn": f"### a: {left} {symbol} {operand} = {result}",
    }
    for kind, line in wrong.items():
        checks = check_steps(p, with_line(2, line))
        assert not getattr(checks[2], kind), kind
        assert right_prefix(checks) == 2, kind
        assert not every_step_right(p, with_line(2, line))
    # A step that is not of the form `### c: 7 + 5 = 12` is wrong on every count.
    checks = check_steps(p, with_line(1, "### b: I am not sure"))
    assert not any([checks[1].operation, checks[1].input, checks[1].arithmetic]) and right_prefix(checks) == 1
    # Later steps are checked on their own inputs: after a wrong result, a step that builds on it is
    # right in itself, yet the prefix stops at the mistake.
    checks = check_steps(p, with_line(2, wrong["arithmetic"]))
    assert not checks[3].input and checks[4].input and checks[4].arithmetic
    # Every step right but one missing, or a wrong box: not every step right.
    assert not every_step_right(p, "\n".join(lines[:4] + lines[5:]))
    assert not every_step_right(p, "\n".join(lines[:-1] + ["\\boxed{101}"]))


