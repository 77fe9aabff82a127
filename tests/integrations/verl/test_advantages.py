"""exprl's advantages through verl's own advantage step equal exprl's core functions.

Each random case is a batch of rollout records as the reward manager writes them (JSON in
`reward_extra_info`), with random groups, step rewards (unscorable ones included), step lengths,
overlong flags and reward settings. They go through the adapter (`batch_scores`), then through
verl's v1 advantage step (`compute_advantage_for_multi_trajectories`, the function
`PPOTrainer._compute_advantage` calls) with `algorithm.adv_estimator: exprl`. The advantages verl
returns must equal, token for token, what exprl's core functions give on the raw rewards
(`apply_overlong` + `outcome_advantages`, `apply_overlong_steps` + `process_advantages`), and every
rollout those functions leave out must have its response mask zeroed.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from exprl.integrations.verl.advantages import ESTIMATOR, batch_scores, pass_through
from exprl.integrations.verl.records import RECORD_KEY, dump_record
from exprl.rewards.advantages import apply_overlong, apply_overlong_steps, outcome_advantages, process_advantages
from exprl.rewards.config import RewardConfig
from exprl.rewards.record import Judgment, Rollout

REWARDS = [0.0, 0.25, 0.5, 0.75, 1.0]


def random_case(rng: random.Random, signal: str):
    reward = RewardConfig(overlong=rng.choice(["zero", "mask", "keep"]), outcome_normalize=rng.choice(["std", "mean"]),
                          process_mode=rng.choice(["delta", "end", "group"]),
                          single_step=rng.choice(["outcome", "zero", "raw"]))
    rollouts, uids = [], []
    for group in range(rng.randint(1, 4)):
        for _ in range(rng.randint(1, 6)):
            steps = rng.randint(1, 5) if signal == "process" else 1
            cut = rng.random() < 0.15
            if cut and reward.overlong == "zero":  # not asked (exprl.rewards.rollouts.asked_rollouts)
                step_rewards, judgments = [0.0] * steps, []
            else:
                step_rewards = [None if rng.random() < 0.08 else rng.choice(REWARDS) for _ in range(steps)]
                judgments = [Judgment("ok" if r is not None else "timeout", False, 0.0) for r in step_rewards]
            counts = [rng.randint(1, 6) for _ in range(steps)] if signal == "process" else []
            rollouts.append(Rollout(overlong=cut, correct=float(rng.random() < 0.3), step_rewards=step_rewards,
                                    judgments=judgments, tokens_per_step=counts))
            uids.append(f"uid{group}")
    lengths = [sum(r.tokens_per_step) if signal == "process" else rng.randint(1, 12) for r in rollouts]
    return reward, rollouts, uids, lengths


def expected_rows(reward, rollouts, uids, lengths, signal):
    """exprl's core functions on the raw rewards, spread over the tokens; None = out of the loss."""
    overlong = [r.overlong for r in rollouts]
    if signal == "outcome":
        dense = [None if any(s is None for s in r.step_rewards) else r.step_rewards[-1] for r in rollouts]
        found = outcome_advantages(apply_overlong(dense, overlong, reward.overlong), uids, reward.outcome_normalize)
        return [None if a is None else [a] * n for a, n in zip(found, lengths)]
    found = process_advantages(apply_overlong_steps([r.step_rewards for r in rollouts], overlong, reward.overlong),
                               uids, mode=reward.process_mode, single_step=reward.single_step)
    return [None if a is None else [v for v, c in zip(a, r.tokens_per_step) for _ in range(c)]
            for a, r in zip(found, rollouts)]


def through_verl(reward, rollouts, uids, lengths, signal):
    """The adapter's scores, then verl's v1 advantage step with the `exprl` estimator."""
    from verl import DataProto
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    extra = [{"reward_extra_info": {RECORD_KEY: dump_record(r)}} for r in rollouts]
    masks = [torch.ones(n, dtype=torch.int64) for n in lengths]
    scores, new_masks, *_ = batch_scores(extra, uids, masks, [False] * len(rollouts), signal, reward)
    width = max(lengths) + 3  # verl pads every row to the batch's width
    pad = lambda rows, dtype: torch.stack([torch.cat([row.to(dtype), torch.zeros(width - len(row), dtype=dtype)])
                                           for row in rows])
    data = DataProto.from_dict(tensors={"token_level_rewards": pad(scores, torch.float32),
                                        "response_mask": pad(new_masks, torch.int64)},
                               non_tensors={"uid": np.array(uids, dtype=object)})
    keys = [f"{uid}_0_{i}" for i, uid in enumerate(uids)]
    data = compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=ESTIMATOR,
                                                    config=AlgoConfig(adv_estimator=ESTIMATOR))
    return data.batch["advantages"], data.batch["response_mask"]


@pytest.mark.parametrize("signal", ["outcome", "process"])
def test_advantages_verl_computes_equal_exprls_core_on_random_batches(signal):
    rng = random.Random(f"verl-{signal}")
    masked = 0
    for case in range(300):
        reward, rollouts, uids, lengths = random_case(rng, signal)
        advantages, mask = through_verl(reward, rollouts, uids, lengths, signal)
        for i, (want, n) in enumerate(zip(expected_rows(reward, rollouts, uids, lengths, signal), lengths)):
            where = f"case {case}, rollout {i}, {reward}"
            if want is None:
                masked += 1
                assert not mask[i].any() and not advantages[i].any(), where
                continue
            assert mask[i, :n].all() and not mask[i, n:].any(), where
            torch.testing.assert_close(advantages[i, :n], torch.tensor(want, dtype=torch.float32),
                                       rtol=0, atol=1e-6, msg=where)
            assert not advantages[i, n:].any(), where
    assert masked > 50  # the cases exercise the mask, not only the arithmetic


def test_an_unscorable_rollout_leaves_the_loss_and_its_groups_statistics():
    """One group of three; the judge could not score the second rollout. It gets a zero mask (not
    a reward of 0), and the group is normalised over the two scored rollouts."""
    rollouts = [Rollout(overlong=False, correct=0.0, step_rewards=[s]) for s in (1.0, None, 0.0)]
    extra = [{"reward_extra_info": {RECORD_KEY: dump_record(r)}} for r in rollouts]
    masks = [torch.ones(4, dtype=torch.int64)] * 3
    scores, new_masks, _, _, found = batch_scores(extra, ["u"] * 3, masks, [False] * 3, "outcome", RewardConfig())
    assert [m.tolist() for m in new_masks] == [[1] * 4, [0] * 4, [1] * 4]
    assert found[1] is None and found[0] == pytest.approx(-found[2])
    # (1 - 0.5) / (std([1, 0]) + 1e-6), the unbiased std of the two scored rewards
    assert scores[0].tolist() == pytest.approx([0.5 / (2 ** -0.5 + 1e-6)] * 4)
    assert not scores[1].any()
    zero_instead = outcome_advantages([1.0, 0.0, 0.0], ["u"] * 3)
    assert zero_instead[0] != pytest.approx(found[0])  # counting it as 0 would have changed the others


def test_padding_rollouts_keep_their_zero_mask_and_need_no_record():
    rollout = Rollout(overlong=False, correct=0.0, step_rewards=[0.5])
    extra = [{"reward_extra_info": {RECORD_KEY: dump_record(rollout)}}, {}]
    masks = [torch.ones(2, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)]
    scores, new_masks, rollouts, groups, _ = batch_scores(extra, ["a", "pad"], masks, [False, True], "outcome",
                                                          RewardConfig())
    assert [s.tolist() for s in scores] == [[0.0, 0.0], [0.0]] and new_masks[1].tolist() == [0]
    assert groups == ["a"] and len(rollouts) == 1


def test_a_rollout_without_a_record_names_the_reward_manager_it_needs():
    with pytest.raises(ValueError, match="rollout 0 .*ExpRLRewardManager"):
        batch_scores([{"reward_extra_info": {"acc": 1.0}}], ["u"], [torch.ones(2)], [False], "outcome",
                     RewardConfig())


def test_step_token_counts_that_do_not_fill_the_response_are_refused():
    rollout = Rollout(overlong=False, correct=0.0, step_rewards=[0.5, 1.0], tokens_per_step=[2, 2])
    extra = [{"reward_extra_info": {RECORD_KEY: dump_record(rollout)}}]
    with pytest.raises(ValueError, match="rollout 0: its steps hold 4 tokens but its response has 5"):
        batch_scores(extra, ["u"], [torch.ones(5)], [False], "process", RewardConfig())


def test_the_estimator_passes_token_level_scores_through_inside_the_mask():
    scores = torch.randn(5, 7)
    mask = (torch.rand(5, 7) > 0.3).long()
    advantages, returns = pass_through(token_level_rewards=scores, response_mask=mask, config=None, index=None)
    assert torch.equal(advantages, scores * mask) and torch.equal(returns, advantages)
