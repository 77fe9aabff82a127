"""The reward path per rollout, for any trainer: which rollouts hit the length cap, which the judge
is asked about, and the record each rollout gets from the judge's answers.

A judge score's whole way to a token's advantage, in the order a trainer calls it (the TRL trainer,
`exprl.train.trainer`, and the verl adapter, `exprl.integrations.verl.reward_manager`, alike):

    overlong_flags(completion ids)                    which rollouts the length cap cut     (here)
    asked_rollouts(overlong, RewardConfig)            which of them the judge is asked about (here)
    exprl.judge.requests.judge_requests(...)          what it is asked: the whole trace, or one request per
                                                      step, and how many tokens each step holds (judge layer)
    Judge.judge_many(requests of the asked rollouts)  JudgeResult per request; .reward = score_reward(score)
    record_rollouts(overlong, correct, ..., results)  one exprl.rewards.record.Rollout per rollout (here)
    exprl.rewards.record.advantages(rollouts, ...)    advantage per rollout, or per step (process)
    Rollout.token_advantages(step advantages)         each token gets its step's advantage

Building the requests is the judge layer's (`JudgeRequest` is its type, and the process views are
its to define); this module sits below the judge, so it reads a judgment through `Verdict`, the
three fields it needs, and never imports the judge (docs/architecture.md, "Layers").
"""
from __future__ import annotations

import enum
from typing import Protocol, Sequence, Sized, get_args

from exprl.rewards.config import OverlongRule, RewardConfig
from exprl.rewards.record import Judgment, Rollout


class Verdict(Protocol):
    """What a rollout's record reads of one judgment (`exprl.judge.types.JudgeResult` is one)."""

    @property
    def reward(self) -> float | None: ...    # None: unscorable
    @property
    def status(self) -> enum.Enum: ...       # its value is the status string the record keeps
    @property
    def cached(self) -> bool: ...
    @property
    def latency_s(self) -> float: ...


def overlong_flags(completion_ids: Sequence[Sequence[int]], stop_ids: set[int], max_length: int,
                   rule: OverlongRule = "unfinished") -> list[bool]:
    """Whether each rollout hit the completion-length cap: without an end token (`unfinished`), or
    at all, its end token counted (`at-cap`, the official code's test; `RewardConfig.overlong_rule`)."""
    if rule == "at-cap":
        return [len(ids) >= max_length for ids in completion_ids]
    if rule not in get_args(OverlongRule):
        raise ValueError(f"overlong rule must be one of {', '.join(get_args(OverlongRule))}, got {rule!r}")
    return [len(ids) >= max_length and (not ids or ids[-1] not in stop_ids) for ids in completion_ids]


def asked_rollouts(overlong: Sequence[bool], reward: RewardConfig) -> list[bool]:
    """Which rollouts the judge is asked about: under `overlong: zero` a cut rollout's verdict does
    not matter, so it is not asked (under `zero-after-judge` it is: an unscorable verdict drops it)."""
    return [not (cut and reward.overlong == "zero") for cut in overlong]


def record_rollouts(overlong: Sequence[bool], correct: Sequence[float],
                    requests: Sequence[Sized] | None = None, step_tokens: Sequence[list[int]] | None = None,
                    asked: Sequence[bool] | None = None, results: Sequence[Verdict] = ()) -> list[Rollout]:
    """One record per rollout. Without a judge (`requests` None): the overlong flag and the
    verifier's verdict alone. With one: `requests` are each rollout's judge requests (only how many
    is read), `step_tokens` its tokens per step, and `results` answer the asked rollouts' requests,
    in order; a rollout not asked gets reward 0.0 for each of its steps."""
    if len(overlong) != len(correct):
        raise ValueError(f"{len(overlong)} overlong flags for {len(correct)} verifier verdicts")
    rollouts = [Rollout(overlong=cut, correct=c) for cut, c in zip(overlong, correct)]
    if requests is None or step_tokens is None or asked is None:
        return rollouts
    if not len(requests) == len(step_tokens) == len(asked) == len(rollouts):
        raise ValueError(f"{len(rollouts)} rollouts, but {len(requests)} request lists, {len(step_tokens)} "
                         f"step-token lists and {len(asked)} asked flags")
    expected = sum(len(mine) for mine, ask in zip(requests, asked) if ask)
    if len(results) != expected:
        # A result taken by the wrong rollout would train on another rollout's score.
        raise ValueError(f"{len(results)} judge results for the {expected} requests of the asked rollouts")
    judged = iter(results)
    for rollout, mine, counts, ask in zip(rollouts, requests, step_tokens, asked):
        rollout.tokens_per_step = counts
        if not ask:
            rollout.step_rewards = [0.0] * len(mine)
            continue
        answers = [next(judged) for _ in range(len(mine))]
        rollout.step_rewards = [result.reward for result in answers]
        rollout.judgments = [Judgment(result.status.value, result.cached, result.latency_s) for result in answers]
    return rollouts
