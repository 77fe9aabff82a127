"""The oracle dense reward: exactly how much of a chain a trace gets right, with no judge.

It is not a judge of the paper's method; it checks the machinery. If even the exact dense reward
cannot beat sparse GRPO on the demo's task at the demo's budget, then the task or the training
settings cannot show a dense-reward effect at all, whatever a judge does (issue 12). It speaks the
judge protocol (`exprl.judge.types.Judge`), so `run_training(..., judge=OracleJudge())` and
`run_pipeline(..., judge=...)` train with it exactly as with a judge.

It recomputes the chain from the problem text (`exprl.data.synthetic.parse_problem_text`); the
reference is not used. Steps are checked on operation, input and arithmetic
(`exprl.data.synthetic.check_steps`). What a score is, per request mode (the process views of
`exprl.judge.types.JudgeMode`):

- outcome, prefix: the right prefix of the text judged (the trace; under prefix, the steps so far)
  over the chain's length: the exact share of the chain done right, in [0, 1], with no Likert
  rounding. Under prefix, s_t - s_{t-1} is 1/L for a step that extends the right prefix, else 0.
- segment: 1 when the step shown alone is right by itself (`step_right_alone`), else 0.
- step: 1 when the step extends the right prefix of the steps before it, else 0.

That value v reaches the reward through the one score -> reward conversion every judge's score goes
through (`exprl.rewards.record.score_reward`): the oracle's score is 1 + 4v, exact rather than a
Likert integer, so its reward (score - 1) / 4 is v again.
"""
from __future__ import annotations

import time
from typing import Sequence

from exprl.data.synthetic import located_step_checks, parse_problem_text, right_prefix, step_right_alone
from exprl.errors import ConfigError
from exprl.judge.types import JudgeRequest, JudgeResult, JudgeStatus

ORACLE_VERSION = "oracle-v1"


class OracleJudge:
    """Exact share of right steps (module docstring); implements `exprl.judge.types.Judge`."""

    name = f"oracle:synthetic-steps:{ORACLE_VERSION}"

    def judge_one(self, request: JudgeRequest) -> JudgeResult:
        started = time.monotonic()
        try:
            chain = parse_problem_text(request.problem)
        except ConfigError as exc:
            return JudgeResult(score=None, status=JudgeStatus.ERROR, error=str(exc))
        if request.mode == "segment":
            value = float(step_right_alone(chain, request.trace))
        else:
            text = request.context + request.trace
            located = located_step_checks(chain, text)
            done = min(right_prefix([check for _, check in located]), len(chain.steps))
            if request.mode == "step":
                # The judged step is the one whose body lies in `trace`; it counts when every step up
                # to and including it is right.
                judged = [i for i, (body, _) in enumerate(located) if len(request.context) <= body < len(text)]
                value = float(bool(judged) and done > judged[-1])
            else:
                value = done / len(chain.steps)
        return JudgeResult(score=1 + 4 * value, status=JudgeStatus.OK, raw=f"oracle {value:.4f}",
                           latency_s=time.monotonic() - started)

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return [self.judge_one(request) for request in requests]
