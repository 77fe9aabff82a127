"""The per-rollout record and the advantages the trainer takes from it, computed by hand."""
from __future__ import annotations

import pytest

from exprl.rewards.config import RewardConfig
from exprl.rewards.record import Judgment, Rollout, advantages, tokens_per_step
from exprl.rewards.steps import split_steps, token_step_ids

OK = Judgment("ok", cached=False, latency_s=0.1)


def test_tokens_per_step_counts_the_token_map_and_each_token_gets_its_steps_advantage():
    text = "a\n### bb\n### c"
    steps = split_steps(text)
    offsets = [(i, i + 1) for i in range(len(text))] + [(len(text), len(text))]  # one char a token, then EOS
    counts = tokens_per_step(token_step_ids(steps, offsets), len(steps))
    assert counts == [len(s.text) for s in steps[:-1]] + [len(steps[-1].text) + 1]  # EOS joins the last step
    rollout = Rollout(overlong=False, correct=0.0, step_rewards=[0.5, 0.25, 1.0], tokens_per_step=counts)
    per_token = rollout.token_advantages([0.5, -0.25, 0.75])
    assert per_token == [0.5] * counts[0] + [-0.25] * counts[1] + [0.75] * counts[2]
    with pytest.raises(ValueError, match="2 step advantages for 3 steps"):
        rollout.token_advantages([0.5, -0.25])


def test_a_step_with_no_token_of_its_own_and_a_map_that_goes_back():
    assert tokens_per_step([0, 0, 2, 2], 3) == [2, 0, 2]
    assert Rollout(False, 0.0, tokens_per_step=[2, 0, 2]).token_advantages([1.0, 9.0, -1.0]) == [1.0, 1.0, -1.0, -1.0]
    with pytest.raises(ValueError, match="earlier step"):
        tokens_per_step([0, 1, 0], 2)


def test_dense_reward_is_the_last_steps_unless_any_judgment_failed():
    assert Rollout(False, 0.0, step_rewards=[0.25, 0.75]).dense_reward == 0.75
    assert Rollout(False, 0.0, step_rewards=[None, 0.75]).dense_reward is None
    assert Rollout(False, 1.0).dense_reward is None  # not judged (sparse GRPO)


def test_outcome_advantages_from_the_judges_rewards_with_the_overlong_policy():
    rollouts = [Rollout(False, 0.0, [1.0], [OK]), Rollout(False, 1.0, [0.5], [OK]),
                Rollout(True, 0.0, [0.0]),  # cut, not asked (overlong: zero)
                Rollout(False, 0.0, [None], [Judgment("timeout", False, 2.0)])]
    got = advantages(rollouts, [0, 0, 0, 0], "outcome", RewardConfig(outcome_normalize="mean"))
    mean = (1.0 + 0.5 + 0.0) / 3
    assert got[:3] == pytest.approx([1.0 - mean, 0.5 - mean, 0.0 - mean]) and got[3] is None
    masked = advantages(rollouts, [0, 0, 0, 0], "outcome", RewardConfig(outcome_normalize="mean", overlong="mask"))
    assert masked[:2] == pytest.approx([0.25, -0.25]) and masked[2] is None and masked[3] is None


def test_sparse_advantages_come_from_the_verifier_not_the_judge():
    rollouts = [Rollout(False, 1.0), Rollout(False, 0.0), Rollout(False, 0.0), Rollout(False, 1.0)]
    assert advantages(rollouts, [0, 0, 1, 1], "sparse", RewardConfig(outcome_normalize="mean")) == [0.5, -0.5, -0.5, 0.5]


def test_process_advantages_per_step_with_delta_norm_and_single_step_rollouts():
    rollouts = [Rollout(False, 0.0, [0.25, 0.75, 0.5]), Rollout(False, 0.0, [1.0]),
                Rollout(False, 0.0, [0.5, None]), Rollout(True, 0.0, [0.0, 0.0])]
    got = advantages(rollouts, [0, 0, 0, 0], "process", RewardConfig(single_step="raw"))
    assert got[0] == pytest.approx([0.25 - 0.5, 0.75 - 0.25, 0.5 - 0.75])  # A_1 = s_1 - s_T, A_t = s_t - s_t-1
    assert got[1] == [1.0] and got[2] is None and got[3] == [0.0, 0.0]
    with pytest.raises(ValueError, match="signal"):
        advantages(rollouts, [0, 0, 0, 0], "dense", RewardConfig())  # type: ignore[arg-type]
