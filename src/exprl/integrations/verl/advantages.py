"""exprl's advantages as verl's token-level scores, and the estimator that passes them through.

`token_advantages` is the whole of the advantage step: the batch's records and group ids in,
`exprl.rewards.record.advantages` (the same call the TRL trainer makes: the overlong policy, then
`outcome_advantages` or `process_advantages` under the recipe's `RewardConfig`), and one row of
per-token advantages per rollout out, with whether the rollout stays in the loss. The trainer mode
(`trainer.py`) writes those rows as `rm_scores`; verl copies them to `token_level_scores` and, with
the KL as a loss (`algorithm.use_kl_in_reward: false`, the paper's), to `token_level_rewards`; the
estimator registered here as `exprl` returns them as the advantages, unchanged.

ExpRL-Outcome's group normalisation is exprl's `outcome_advantages`, not verl's `grpo` estimator:
they agree on a group of scorable rewards (mean, unbiased std, epsilon 1e-6; all-equal -> 0) but
not where exprl's rules live: an unscorable rollout is left out of its group's statistics (verl
has no "no score"), a group with one scorable rollout gets 0 (verl's `grpo` gives a one-rollout
group its raw reward), and `reward.outcome_normalize: mean` and `reward.overlong` apply as in
every exprl recipe.
"""
from __future__ import annotations

from typing import Any, Hashable, Sequence

import torch
from verl.trainer.ppo.core_algos import register_adv_est

from exprl.rewards.config import RewardConfig
from exprl.rewards.record import Rollout, Signal, advantages

ESTIMATOR = "exprl"


def token_advantages(rollouts: Sequence[Rollout], group_ids: Sequence[Hashable], response_lengths: Sequence[int],
                     signal: Signal, reward: RewardConfig) -> tuple[list[torch.Tensor], list[bool], list[Any]]:
    """Per rollout: a float32 row of `response_lengths[i]` advantages, whether the rollout stays in
    the loss (False: unscorable, or masked by the overlong policy), and its advantage as
    `exprl.rewards.record.advantages` gives it (a float, a list per step, or None).

    Outcome: every token gets the rollout's advantage. Process: every token of step t gets A_t
    (`Rollout.token_advantages`), so the steps' token counts must add up to the response length.
    A rollout out of the loss gets a row of zeros.
    """
    if not len(rollouts) == len(group_ids) == len(response_lengths):
        raise ValueError(f"{len(rollouts)} records, {len(group_ids)} group ids and {len(response_lengths)} "
                         f"response lengths")
    found = advantages(rollouts, group_ids, signal, reward)
    rows: list[torch.Tensor] = []
    for index, (rollout, advantage, length) in enumerate(zip(rollouts, found, response_lengths)):
        if advantage is None:
            rows.append(torch.zeros(length, dtype=torch.float32))
        elif signal == "process":
            values = rollout.token_advantages(advantage)
            if len(values) != length:
                raise ValueError(f"rollout {index}: its steps hold {len(values)} tokens but its response has "
                                 f"{length}; the record was made from other response ids")
            rows.append(torch.tensor(values, dtype=torch.float32))
        else:
            rows.append(torch.full((length,), float(advantage), dtype=torch.float32))
    return rows, [a is not None for a in found], found


@register_adv_est(ESTIMATOR)
def pass_through(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, config: Any = None,
                 **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's advantage estimator `exprl`: the token-level scores are exprl's advantages already
    (the trainer mode put them there), returned unchanged inside the response mask, as advantages
    and as returns (no critic reads them)."""
    advantages = token_level_rewards * response_mask
    return advantages, advantages


def batch_scores(extra_fields: Sequence[Any], uids: Sequence[Hashable], masks: Sequence[torch.Tensor],
                 padding: Sequence[bool], signal: Signal, reward: RewardConfig
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[Rollout], list[Hashable], list[Any]]:
    """What the trainer mode writes back for a batch read from verl: per rollout its token-level
    scores (exprl's advantages) and its response mask (zeroed when the rollout leaves the loss),
    plus the records, group ids and advantages of the real rollouts, for the metrics.

    `extra_fields`: each rollout's `extra_fields` as verl keeps them (the reward manager's
    `reward_extra_info` inside); `uids`: its prompt's uid (the group); `masks`: its response mask;
    `padding`: verl's synthetic no-op rollouts (`is_padding`), which keep a zero row and their mask.
    """
    from exprl.integrations.verl.records import RECORD_KEY, load_record

    real = [i for i, pad in enumerate(padding) if not pad]
    rollouts = []
    for i in real:
        info = (extra_fields[i] or {}).get("reward_extra_info") if isinstance(extra_fields[i], dict) else None
        if not info or RECORD_KEY not in info:
            raise ValueError(f"rollout {i} (uid {uids[i]}) carries no exprl record: the reward manager must be "
                             f"exprl.integrations.verl.reward_manager.ExpRLRewardManager")
        rollouts.append(load_record(info[RECORD_KEY]))
    groups = [uids[i] for i in real]
    rows, keep, found = token_advantages(rollouts, groups, [int(masks[i].numel()) for i in real], signal, reward)
    scores = [torch.zeros(int(mask.numel()), dtype=torch.float32) for mask in masks]
    new_masks = [mask.clone() for mask in masks]
    for i, row, stays in zip(real, rows, keep):
        scores[i] = row
        if not stays:
            new_masks[i] = torch.zeros_like(masks[i])
    return scores, new_masks, rollouts, groups, found
