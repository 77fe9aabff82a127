"""The demo's step judge: one step alone, credited when it is the reference's step t."""
from __future__ import annotations

import asyncio
import random
import re

import pytest

from exprl.data.synthetic import SyntheticTaskConfig, chain_of, generate, policy_trace, step_right_alone
from exprl.demo.config import DemoConfig
from exprl.demo.oracle import OracleJudge
from exprl.demo.runner import method_judge
from exprl.demo.step_judge import StepJudge
from exprl.errors import ConfigError
from exprl.judge.types import JudgeRequest, JudgeStatus, process_requests
from exprl.rewards.steps import split_steps

PROBLEM = generate(SyntheticTaskConfig(num_problems=1, min_steps=5, max_steps=5, modulus=97, last_first=True,
                                       split="step-judge"))[0]
LINES = policy_trace(PROBLEM).split("\n")


def trace_with(k: int, line: str) -> str:
    return "\n".join(LINES[:k] + [line] + LINES[k + 1:])


def rewards(trace: str, judge=None, problem=PROBLEM) -> list[float]:
    requests = process_requests(trace, split_steps(trace), "segment", problem=problem.problem,
                                reference=problem.reference, answer=problem.answer)
    results = asyncio.run((judge or StepJudge()).judge_many(requests))
    assert all(r.status is JudgeStatus.OK for r in results)
    return [r.reward for r in results]


def test_each_step_is_graded_alone_against_the_reference_values():
    assert rewards(policy_trace(PROBLEM)) == [1.0] * 5
    head, result = LINES[2].rsplit("= ", 1)
    wrong_result = trace_with(2, f"{head}= {(int(result) + 1) % 97}")
    # Later steps start from the reference's value again, so each is right by itself.
    assert rewards(wrong_result) == [1.0, 1.0, 0.0, 1.0, 1.0]
    left = re.match(r"### \w+: (\d+)", LINES[3]).group(1)
    wrong_input = trace_with(3, LINES[3].replace(f": {left} ", f": {(int(left) + 1) % 97} ", 1))
    assert rewards(wrong_input) == [1.0, 1.0, 1.0, 0.0, 1.0]


def test_right_input_and_result_with_arithmetic_that_does_not_hold_is_not_credited():
    chain = chain_of(PROBLEM)
    before, after = chain.values[0], chain.values[1]
    # b's input and result as the reference's, joined by an operation that does not give it.
    line = f"### b: {before} + 1 = {after}" if (before + 1) % 97 != after else f"### b: {before} + 2 = {after}"
    assert rewards(trace_with(1, line))[1] == 0.0


def test_a_step_past_the_chain_and_text_that_is_no_step_score_zero():
    past = "\n".join(LINES[:-1] + [f"### f: {chain_of(PROBLEM).values[-1]} + 2 = "
                                   f"{(chain_of(PROBLEM).values[-1] + 2) % 97}", LINES[-1]])
    assert rewards(past) == [1.0] * 5 + [0.0]
    assert rewards("I do not know. \\boxed{3}") == [0.0]


def test_it_agrees_with_the_oracle_on_traces_with_random_errors():
    problems = generate(SyntheticTaskConfig(num_problems=20, min_steps=4, max_steps=8, modulus=97,
                                            last_first=True, split="agree"))
    rng = random.Random(0)
    compared = 0
    for problem in problems:
        lines = policy_trace(problem).split("\n")
        for k in rng.sample(range(len(lines) - 1), 2):
            head, result = lines[k].rsplit("= ", 1)
            lines[k] = f"{head}= {(int(result) + rng.randint(1, 96)) % 97}"
        trace = "\n".join(lines)
        step = rewards(trace, problem=problem)
        oracle = rewards(trace, OracleJudge(), problem=problem)
        alone = [float(step_right_alone(chain_of(problem), s.text)) for s in split_steps(trace)]
        assert step == oracle == alone
        assert 0.0 in step and 1.0 in step  # the check compares both kinds of step
        compared += len(step)
    assert compared > 100


def test_a_wrong_operation_that_lands_on_the_right_value_is_credited_unlike_the_oracle():
    # What the reference's values cannot tell apart (5 * 2 = 5 + 5): the coincidence the benchmark counts.
    problem = "Start at 5. (b) Stop. (a) Add 5. Work modulo 97."
    segment = "### a: 5 * 2 = 10"
    [step] = asyncio.run(StepJudge().judge_many([JudgeRequest(problem=problem, reference="a = 10, so \\boxed{10}",
                                                              trace=segment, mode="segment")]))
    [oracle] = asyncio.run(OracleJudge().judge_many([JudgeRequest(problem=problem, reference=None, trace=segment,
                                                                  mode="segment")]))
    assert (step.reward, oracle.reward) == (1.0, 0.0)


def test_an_outcome_request_is_an_error_not_a_zero():
    [result] = asyncio.run(StepJudge().judge_many([JudgeRequest(problem=PROBLEM.problem, reference=PROBLEM.reference,
                                                                trace=policy_trace(PROBLEM))]))
    assert result.status is JudgeStatus.ERROR and result.reward is None


def test_the_demo_trains_exprl_process_only_with_it_and_only_under_the_segment_view():
    config = DemoConfig(judge="step", judge_process_view="segment")
    assert isinstance(method_judge(config, "exprl-process"), StepJudge)
    assert method_judge(config, "exprl-outcome") is None  # the reference judge its TrainConfig declares
    assert isinstance(method_judge(DemoConfig(judge="oracle"), "exprl-outcome"), OracleJudge)
    with pytest.raises(ConfigError, match="segment"):
        DemoConfig(judge="step")


def test_a_step_from_another_input_is_not_credited_even_when_its_arithmetic_lands_on_the_value():
    problem = "Start at 10. (b) Stop. (a) Add 2. Work modulo 97."
    [result] = asyncio.run(StepJudge().judge_many([JudgeRequest(problem=problem, reference="a = 12, so \\boxed{12}",
                                                                trace="### a: 6 * 2 = 12", mode="segment")]))
    assert result.reward == 0.0
