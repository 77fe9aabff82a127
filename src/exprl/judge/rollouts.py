"""The reward path's per-rollout steps as plain functions, for any trainer: which rollouts hit the
length cap, which the judge is asked about, what it is asked, and the record each rollout gets.

The TRL trainer (`exprl.train.trainer`) and the verl adapter (`exprl.integrations.verl`) call these
same functions, in this order; `benchmarks/reward_path.py` times them at the paper's batch and
lengths. They sit in the judge layer because they build `JudgeRequest`s and read `JudgeResult`s;
everything after the record (advantages) is `exprl.rewards.record`'s.
"""
from __future__ import annotations

from typing import Any, Sequence

from exprl.judge.types import JudgeRequest, JudgeResult, ProcessView, process_requests
from exprl.rewards.config import RewardConfig
from exprl.rewards.record import Judgment, Rollout, Signal, tokens_per_step
from exprl.rewards.steps import decoded_offsets, trace_steps
from exprl.rewards.verifier import completion_text


def overlong_flags(completion_ids: Sequence[Sequence[int]], stop_ids: set[int], max_length: int,
                   rule: str = "unfinished") -> list[bool]:
    """Whether each rollout hit the completion-length cap: without an end token (`unfinished`), or
    at all, its end token counted (`at-cap`, the official code's test; `RewardConfig.overlong_rule`)."""
    if rule == "at-cap":
        return [len(ids) >= max_length for ids in completion_ids]
    if rule != "unfinished":
        raise ValueError(f"overlong rule must be 'unfinished' or 'at-cap', got {rule!r}")
    return [len(ids) >= max_length and (not ids or ids[-1] not in stop_ids) for ids in completion_ids]


def judge_requests(rows: Sequence[dict[str, Any]], completions: Sequence[Any],
                   completion_ids: Sequence[Sequence[int]], signal: Signal, delimiter: str,
                   process_view: ProcessView, tokenizer: Any, *,
                   segmentation: str = "merged") -> tuple[list[list[JudgeRequest]], list[list[int]]]:
    """Each rollout's judge requests: its whole trace (outcome), or one per step (process: the
    sampled ids decoded and split into steps under `segmentation`), and how many tokens each step
    holds ([] for outcome)."""
    requests: list[list[JudgeRequest]] = []
    step_tokens: list[list[int]] = []
    for row, completion, ids in zip(rows, completions, completion_ids):
        common = dict(problem=row["problem_text"], reference=row["reference"], answer=row["answer"],
                      domain=row["domain"], problem_id=row["problem_id"])
        if signal == "outcome":
            requests.append([JudgeRequest(trace=completion_text(completion), mode="outcome", **common)])
            step_tokens.append([])
            continue
        text, offsets = decoded_offsets(ids, tokenizer)
        steps, token_steps = trace_steps(text, offsets, delimiter, segmentation)
        step_tokens.append(tokens_per_step(token_steps, len(steps)))
        requests.append(process_requests(text, steps, process_view, **common))
    return requests, step_tokens


def asked_rollouts(overlong: Sequence[bool], reward: RewardConfig) -> list[bool]:
    """Which rollouts the judge is asked about: under `overlong: zero` a cut rollout's verdict does
    not matter, so it is not asked (under `zero-after-judge` it is: an unscorable verdict drops it)."""
    return [not (cut and reward.overlong == "zero") for cut in overlong]


def record_rollouts(overlong: Sequence[bool], correct: Sequence[float],
                    requests: Sequence[Sequence[JudgeRequest]] | None = None,
                    step_tokens: Sequence[list[int]] | None = None, asked: Sequence[bool] | None = None,
                    results: Sequence[JudgeResult] = ()) -> list[Rollout]:
    """One record per rollout. With a judge: `results` answer the asked rollouts' requests, in
    order; a rollout not asked gets reward 0.0 for each of its steps."""
    rollouts = [Rollout(overlong=cut, correct=c) for cut, c in zip(overlong, correct)]
    if requests is None or step_tokens is None or asked is None:
        return rollouts
    judged = iter(results)
    for rollout, mine, counts, ask in zip(rollouts, requests, step_tokens, asked):
        rollout.tokens_per_step = counts
        if not ask:
            rollout.step_rewards = [0.0] * len(mine)
            continue
        answers = [next(judged) for _ in mine]
        rollout.step_rewards = [result.reward for result in answers]
        rollout.judgments = [Judgment(result.status.value, result.cached, result.latency_s) for result in answers]
    return rollouts
