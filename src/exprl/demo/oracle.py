"""The oracle dense reward: the exact share of a chain's steps a trace gets right, with no judge.

It is not a judge of the paper's method; it checks the machinery. If even the exact dense reward
cannot beat sparse GRPO on the demo's task at the demo's budget, then the task or the training
settings cannot show a dense-reward effect at all, whatever a judge does (issue 12). It speaks the
judge protocol (`exprl.judge.types.Judge`), so `run_training(..., judge=OracleJudge())` and
`run_pipeline(..., judge=...)` train with it exactly as with a judge.

It recomputes the chain from the problem text (`exprl.data.synthetic.parse_problem_text`); the
reference is not used. The reward of a text is its right prefix (`right_prefix`: steps right in a row
from the first, each checked on operation, input and arithmetic) over the chain's length, a value in
[0, 1] with no Likert rounding. In process mode the text judged is `context + trace`: with the
earlier steps as context (prefix judging) s_t is the share right up to step t; with no context
(segment judging) only a first step can count, as the step alone cannot show its input.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from exprl.data.synthetic import check_steps, parse_problem_text, right_prefix
from exprl.errors import ConfigError
from exprl.judge.types import JudgeRequest, JudgeResult, JudgeStatus

ORACLE_VERSION = "oracle-v1"


@dataclass
class ExactResult(JudgeResult):
    """A JudgeResult whose reward is the exact share, not (score - 1) / 4 of a rounded score."""

    exact_reward: float = 0.0

    @property
    def reward(self) -> float | None:  # type: ignore[override]
        return self.exact_reward if self.ok else None


class OracleJudge:
    """Exact share of right steps (module docstring); implements `exprl.judge.types.Judge`."""

    name = f"oracle:synthetic-steps:{ORACLE_VERSION}"

    def judge_one(self, request: JudgeRequest) -> JudgeResult:
        started = time.monotonic()
        try:
            chain = parse_problem_text(request.problem)
        except ConfigError as exc:
            return JudgeResult(score=None, status=JudgeStatus.ERROR, error=str(exc))
        length = len(chain.steps)
        share = min(right_prefix(check_steps(chain, request.context + request.trace)), length) / length
        return ExactResult(score=1 + round(4 * share), status=JudgeStatus.OK, raw=f"share {share:.4f}",
                           latency_s=time.monotonic() - started, exact_reward=share)

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return [self.judge_one(request) for request in requests]
