"""The oracle dense reward: exact, from the problem text alone, under every request mode."""
from __future__ import annotations

import asyncio

import pytest

from exprl.data.synthetic import SyntheticTaskConfig, generate, policy_trace
from exprl.demo.oracle import OracleJudge
from exprl.judge.types import JudgeRequest, JudgeStatus, process_requests
from exprl.rewards.steps import split_steps

PROBLEM = generate(SyntheticTaskConfig(num_problems=1, min_steps=4, max_steps=4, operations=["add", "sub", "mul"]))[0]
RIGHT = policy_trace(PROBLEM)
LINES = RIGHT.split("\n")


def with_wrong_step(k: int) -> str:
    """The right trace with step k's result off by one (later steps still build on the right values)."""
    head, result = LINES[k].rsplit("= ", 1)
    return "\n".join(LINES[:k] + [f"{head}= {(int(result) + 1) % 100}"] + LINES[k + 1:])


def rewards(trace: str, mode: str) -> list[float]:
    judge = OracleJudge()
    common = dict(problem=PROBLEM.problem, reference=None)
    if mode == "outcome":
        requests = [JudgeRequest(trace=trace, **common)]
    else:
        requests = process_requests(trace, split_steps(trace), mode, **common)
    results = asyncio.run(judge.judge_many(requests))
    assert all(r.status is JudgeStatus.OK for r in results)
    return [r.reward for r in results]


def test_outcome_reward_is_the_exact_share_of_the_chain_done_right():
    assert rewards(RIGHT, "outcome") == [1.0]
    assert rewards(with_wrong_step(2), "outcome") == [0.5]  # steps 1-2 of 4 right in a row
    assert rewards("\n".join(LINES[:1]), "outcome") == [0.25]
    assert rewards("I do not know. \\boxed{3}", "outcome") == [0.0]


def test_process_views_score_what_each_view_means():
    # prefix: the share done right so far, so it only grows along a right trace.
    assert rewards(RIGHT, "prefix") == [0.25, 0.5, 0.75, 1.0]
    assert rewards(with_wrong_step(1), "prefix") == [0.25, 0.25, 0.25, 0.25]
    # segment: each step alone; a step after a mistake can still be right by itself, as here where
    # the later steps restate the right values.
    assert rewards(RIGHT, "segment") == [1.0] * 4
    assert rewards(with_wrong_step(1), "segment") == [1.0, 0.0, 1.0, 1.0]
    # step: the step extends a right prefix; nothing after the first mistake does.
    assert rewards(RIGHT, "step") == [1.0] * 4
    assert rewards(with_wrong_step(1), "step") == [1.0, 0.0, 0.0, 0.0]


def test_the_reward_is_exact_not_a_rounded_likert_score():
    problem = generate(SyntheticTaskConfig(num_problems=1, min_steps=7, max_steps=7, split="seven"))[0]
    lines = policy_trace(problem).split("\n")
    [result] = asyncio.run(OracleJudge().judge_many([JudgeRequest(problem=problem.problem, reference=None,
                                                                  trace="\n".join(lines[:3]))]))
    # A Likert judge would round 1 + 4 x 3/7 to 3, a reward of 0.5.
    assert result.reward == pytest.approx(3 / 7) and result.score == pytest.approx(1 + 4 * 3 / 7)


def test_a_problem_that_is_not_a_chain_is_an_error_result_not_a_zero():
    [result] = asyncio.run(OracleJudge().judge_many([JudgeRequest(problem="What is 2 + 2?", reference=None,
                                                                  trace="### a: 2 + 2 = 4")]))
    assert result.status is JudgeStatus.ERROR and result.reward is None and "not a synthetic chain" in result.error
