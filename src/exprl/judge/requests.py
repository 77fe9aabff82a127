"""What the judge is asked about each rollout of a training batch: its whole trace (outcome), or one
request per step under the judge's process view, and how many sampled tokens each step holds.

One step of the reward path that `exprl.rewards.rollouts` lays out; it sits in the judge layer
because it builds `JudgeRequest`s (`exprl.judge.types.process_requests` decides what a process
judgment is shown). The TRL trainer and the verl adapter call it alike.
"""
from __future__ import annotations

from typing import Any, Sequence, get_args

from exprl.judge.types import JudgeRequest, ProcessView, process_requests
from exprl.rewards.config import Segmentation
from exprl.rewards.record import JudgedSignal, Signal, tokens_per_step
from exprl.rewards.steps import decoded_offsets, trace_steps
from exprl.rewards.verifier import completion_text


def judge_requests(rows: Sequence[dict[str, Any]], completions: Sequence[Any],
                   completion_ids: Sequence[Sequence[int]], signal: Signal, delimiter: str,
                   process_view: ProcessView, tokenizer: Any, *,
                   segmentation: Segmentation = "merged") -> tuple[list[list[JudgeRequest]], list[list[int]]]:
    """Each rollout's judge requests: its whole trace (outcome), or one per step (process: the
    sampled ids decoded and split into steps under `segmentation`), and how many tokens each step
    holds ([] for outcome). `rows` are the dataset rows with the hidden columns the judge reads
    (problem_text, reference, answer, domain, problem_id)."""
    if signal not in get_args(JudgedSignal):
        raise ValueError(f"only the {' and '.join(get_args(JudgedSignal))} signals ask a judge, got {signal!r}")
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
