"""Rewards -> advantages. Pure functions on lists; no trainer and no torch needed.

A reward arrives here already in [0, 1] (`JudgeResult.reward`, the one score -> reward conversion,
or the verifier's 0/1); `exprl.rewards.record.advantages` picks the function a method needs.

Conventions shared by every function here:

* `None` means *unscorable* (a judge failure, or a rollout masked by the overlong policy). It goes
  in as None, comes out as None, and the trainer drops such rollouts from the loss. By default it is
  also left out of every group statistic (`unscorable="leave-out"`); `"zero-in-group"` counts it as a
  reward of 0 there, as the official code does (its reward tensor stays 0 where the judge's answer
  could not be read, and verl's GRPO groups every rollout of a prompt).
* `group_ids[i]` names the prompt rollout `i` was sampled for; statistics are per group.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Hashable, Literal, Sequence, get_args

EPSILON = 1e-6  # added to the group std, as in GRPO / verl

Normalize = Literal["std", "mean"]
ProcessMode = Literal["delta", "end", "group"]
SingleStep = Literal["outcome", "zero", "raw"]
OverlongPolicy = Literal["zero", "zero-after-judge", "mask", "keep"]
Unscorable = Literal["leave-out", "zero-in-group"]
OVERLONG_POLICIES: tuple[str, ...] = get_args(OverlongPolicy)
UNSCORABLE: tuple[str, ...] = get_args(Unscorable)


def _groups(values: Sequence[object], group_ids: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    if len(values) != len(group_ids):
        raise ValueError(f"{len(values)} values but {len(group_ids)} group ids")
    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, group in enumerate(group_ids):
        members[group].append(index)
    return members


def outcome_advantages(rewards: Sequence[float | None], group_ids: Sequence[Hashable],
                       normalize: Normalize = "std", unscorable: Unscorable = "leave-out") -> list[float | None]:
    """GRPO advantages per prompt group.

    std: (s - mean) / (std + 1e-6) with the unbiased std (torch.std's default); mean: s - mean.
    The statistics run over the scorable rewards (`unscorable="leave-out"`), or over every rollout
    with an unscorable one counted as 0 (`"zero-in-group"`, the official code); an unscorable
    rollout's own advantage is None either way. A group whose rewards are all equal gets 0, and so
    does a group with a single member (there is nothing to compare it with).
    """
    if normalize not in get_args(Normalize):
        raise ValueError(f"normalize must be one of {', '.join(get_args(Normalize))}, got {normalize!r}")
    _check_unscorable(unscorable)
    advantages: list[float | None] = [None] * len(rewards)
    for members in _groups(rewards, group_ids).values():
        counted = members if unscorable == "zero-in-group" else [i for i in members if rewards[i] is not None]
        values = [float(rewards[i]) if rewards[i] is not None else 0.0 for i in counted]  # type: ignore[arg-type]
        scored = [(i, v) for i, v in zip(counted, values) if rewards[i] is not None]
        if len(values) < 2 or max(values) == min(values):
            for i, _ in scored:
                advantages[i] = 0.0
            continue
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        for i, value in scored:
            advantages[i] = (value - mean) / (std + EPSILON) if normalize == "std" else value - mean
    return advantages


def _check_unscorable(unscorable: str) -> None:
    if unscorable not in UNSCORABLE:
        raise ValueError(f"unscorable must be one of {', '.join(UNSCORABLE)}, got {unscorable!r}")


def process_advantages(step_rewards: Sequence[Sequence[float | None] | None],
                       group_ids: Sequence[Hashable], mode: ProcessMode = "delta",
                       single_step: SingleStep = "outcome",
                       unscorable: Unscorable = "leave-out") -> list[list[float] | None]:
    """Per-step advantages A_1..A_T for every rollout (paper Eq. 2 and the A.2 ablations).

    delta (DeltaNorm, the paper's main method): A_1 = s_1 - s_T, A_t = s_t - s_{t-1}; they sum to 0.
    end (EndNorm): A_t = s_t - s_T for t < T, A_T = s_T.
    group (GroupNorm): A_t = s_t - b, b = mean over the group's scorable rollouts of each rollout's
    mean step score. No further normalisation in any mode, as in the paper: every advantage is a
    difference of rewards in [0, 1].

    A single-step rollout (T = 1) under delta or end, per `single_step`:
      outcome: its final-step score s_T minus the mean s_T of its group's scorable rollouts (T = 1 or
               not): the centred outcome reward, in the same reward units as DeltaNorm's step
               differences. Under prefix judging s_T is the whole trace's score. Dropping every
               delimiter then earns no more than the trace's standing in its group; a group-std
               z-score here weighed each one-step token several times a multi-step one (on the
               demo task, 10x on the same rollouts: benchmarks/single_step_share.py).
      zero:    0, the letter of Eq. 2 (A_1 = s_1 - s_T = 0).
      raw:     s_1 >= 0, what the official code computes (uncentred): its DeltaNorm writes s_1 - 0
               over the first step, subtracts s_T from the first step once the last is reached,
               then writes the last step's own difference over it, which for T = 1 is s_1 again.
    GroupNorm is centred already, so a T = 1 rollout there follows the GroupNorm formula.

    A rollout with any unscorable step (None) is None: it is dropped whole, as in the paper. Under
    `unscorable="zero-in-group"` it counts as 0 in the group statistics (GroupNorm's baseline,
    single_step outcome's group mean), as in `outcome_advantages`.
    """
    if mode not in get_args(ProcessMode):
        raise ValueError(f"process mode must be one of {', '.join(get_args(ProcessMode))}, got {mode!r}")
    if single_step not in get_args(SingleStep):
        raise ValueError(f"single_step must be one of {', '.join(get_args(SingleStep))}, got {single_step!r}")
    _check_unscorable(unscorable)
    scores: list[list[float] | None] = []
    for steps in step_rewards:
        if steps is None or len(steps) == 0 or any(s is None for s in steps):
            scores.append(None)
        else:
            scores.append([float(s) for s in steps])  # type: ignore[arg-type]
    members = _groups(scores, group_ids)

    advantages: list[list[float] | None] = [None] * len(scores)
    if mode == "group":
        for group in members.values():
            means = [sum(scores[i]) / len(scores[i]) if scores[i] is not None else 0.0  # type: ignore[arg-type]
                     for i in group if scores[i] is not None or unscorable == "zero-in-group"]
            baseline = sum(means) / len(means) if means else 0.0
            for i in group:
                if scores[i] is not None:
                    advantages[i] = [s - baseline for s in scores[i]]  # type: ignore[union-attr]
        return advantages

    outcome = (outcome_advantages([s[-1] if s is not None else None for s in scores], group_ids, "mean", unscorable)
               if single_step == "outcome" else None)
    for i, s in enumerate(scores):
        if s is None:
            continue
        if len(s) == 1:
            advantages[i] = [{"outcome": outcome[i] if outcome else 0.0, "zero": 0.0, "raw": s[0]}[single_step]]
        elif mode == "delta":
            advantages[i] = [s[0] - s[-1]] + [s[t] - s[t - 1] for t in range(1, len(s))]
        else:
            advantages[i] = [s[t] - s[-1] for t in range(len(s) - 1)] + [s[-1]]
    return advantages


def apply_overlong(rewards: Sequence[float | None], overlong: Sequence[bool],
                   policy: OverlongPolicy = "zero") -> list[float | None]:
    """Outcome rewards after the overlong policy.

    zero: a rollout that hit the length cap gets reward 0 and still enters its group's statistics
    (so it usually gets a negative advantage, as in the paper). Its judge verdict does not matter
    (it need not even be asked), so an unscorable cut rollout gets 0 too. zero-after-judge: the
    official code's order: the judge is asked anyway, its score is replaced by 0, but an unscorable
    verdict stays None (the rollout leaves the loss as any unscorable one). mask: it becomes None
    (dropped from the loss and from group statistics). keep: its reward stands (the official Stage
    II and sparse GRPO pay a correct answer written before the cap).
    """
    _check_overlong(rewards, overlong, policy)
    if policy == "keep":
        return list(rewards)
    if policy == "zero-after-judge":
        return [r if not cut or r is None else 0.0 for r, cut in zip(rewards, overlong)]
    return [r if not cut else (0.0 if policy == "zero" else None) for r, cut in zip(rewards, overlong)]


def apply_overlong_steps(step_rewards: Sequence[Sequence[float | None] | None], overlong: Sequence[bool],
                         policy: OverlongPolicy = "zero") -> list[list[float | None] | None]:
    """Process step rewards after the overlong policy: zero sets every step reward of a cut rollout to
    0 (so DeltaNorm gives it zero advantage everywhere: no gradient, as in the paper's code), whatever
    the judge said; zero-after-judge does so only when every step was scored, and makes a cut rollout
    with an unscorable step None (the official order: its NA check comes before the length clip);
    mask makes it None; keep leaves the judge's scores."""
    _check_overlong(step_rewards, overlong, policy)
    result: list[list[float | None] | None] = []
    for steps, cut in zip(step_rewards, overlong):
        if steps is None:
            result.append(None)
        elif not cut or policy == "keep":
            result.append(list(steps))
        elif policy == "mask" or (policy == "zero-after-judge" and any(s is None for s in steps)):
            result.append(None)
        else:
            result.append([0.0] * max(len(steps), 1))
    return result


def _check_overlong(values: Sequence[object], overlong: Sequence[bool], policy: str) -> None:
    if policy not in OVERLONG_POLICIES:
        raise ValueError(f"overlong policy must be one of {', '.join(OVERLONG_POLICIES)}, got {policy!r}")
    if len(values) != len(overlong):
        raise ValueError(f"{len(values)} rollouts but {len(overlong)} overlong flags")
