"""Hand-computed advantages for every normalisation, process mode, single-step and overlong policy."""
from __future__ import annotations

import math

import pytest
import torch

from exprl.rewards.advantages import (
    EPSILON,
    apply_overlong,
    apply_overlong_steps,
    outcome_advantages,
    process_advantages,
)


def approx(values, expected):
    assert len(values) == len(expected)
    for v, e in zip(values, expected):
        if e is None:
            assert v is None
        elif isinstance(e, list):
            assert v == pytest.approx(e)
        else:
            assert v == pytest.approx(e, abs=1e-9)


def test_outcome_std_matches_torch_unbiased_std_per_group():
    rewards = [1.0, 0.5, 0.0, 0.25, 0.75, 0.75]
    groups = ["a", "a", "a", "b", "b", "b"]
    got = outcome_advantages(rewards, groups)
    for g in ("a", "b"):
        idx = [i for i, x in enumerate(groups) if x == g]
        t = torch.tensor([rewards[i] for i in idx], dtype=torch.float64)
        expected = ((t - t.mean()) / (t.std() + EPSILON)).tolist()
        approx([got[i] for i in idx], expected)
    # group a by hand: mean 0.5, std 0.5
    approx(got[:3], [0.5 / (0.5 + EPSILON), 0.0, -0.5 / (0.5 + EPSILON)])


def test_outcome_mean_only():
    approx(outcome_advantages([1.0, 0.5, 0.0], [0, 0, 0], normalize="mean"), [0.5, 0.0, -0.5])


def test_outcome_all_equal_group_and_single_scorable_sample_get_zero():
    got = outcome_advantages([0.75, 0.75, 0.75, 0.5, None, None], [1, 1, 1, 2, 2, 2])
    approx(got, [0.0, 0.0, 0.0, 0.0, None, None])


def test_outcome_unscorable_is_excluded_from_group_stats():
    with_none = outcome_advantages([1.0, None, 0.0, 0.5], [0, 0, 0, 0])
    without = outcome_advantages([1.0, 0.0, 0.5], [0, 0, 0])
    approx(with_none, [without[0], None, without[1], without[2]])


def test_outcome_rejects_mismatched_lengths_and_bad_mode():
    with pytest.raises(ValueError):
        outcome_advantages([1.0], [0, 0])
    with pytest.raises(ValueError):
        outcome_advantages([1.0], [0], normalize="minmax")


def test_delta_norm_by_hand_and_telescopes_to_zero():
    got = process_advantages([[0.25, 0.75, 0.5], [0.0, 1.0]], [0, 0], mode="delta")
    approx(got, [[0.25 - 0.5, 0.5, -0.25], [-1.0, 1.0]])
    for adv in got:
        assert sum(adv) == pytest.approx(0.0)


def test_delta_telescopes_for_many_random_traces():
    gen = torch.Generator().manual_seed(0)
    traces = [torch.randint(0, 5, (int(n),), generator=gen).div(4).tolist()
              for n in torch.randint(2, 12, (50,), generator=gen)]
    for adv in process_advantages(traces, list(range(50)), mode="delta"):
        assert math.isclose(sum(adv), 0.0, abs_tol=1e-12)


def test_end_norm_by_hand():
    approx(process_advantages([[0.25, 0.75, 0.5]], [0], mode="end"), [[-0.25, 0.25, 0.5]])


def test_group_norm_subtracts_group_mean_of_per_trace_means():
    # trace means: 0.5 and 0.25 -> baseline 0.375; group 1 alone: baseline 1.0
    got = process_advantages([[0.25, 0.75], [0.25], [1.0, 1.0]], ["g", "g", "h"], mode="group")
    approx(got, [[-0.125, 0.375], [-0.125], [0.0, 0.0]])


def test_single_step_policies():
    steps = [[0.75], [0.25, 0.5], [1.0, 0.0, 0.25]]  # final-step scores 0.75, 0.5, 0.25
    groups = [0, 0, 0]
    got = process_advantages(steps, groups, mode="delta", single_step="outcome")
    # the centred outcome reward, 0.75 - mean(0.75, 0.5, 0.25): reward units, like DeltaNorm's steps
    assert got[0] == pytest.approx(outcome_advantages([0.75, 0.5, 0.25], groups, "mean")[:1])
    assert got[0][0] == pytest.approx(0.25)
    approx(got[1:], [[-0.25, 0.25], [0.75, -1.0, 0.25]])
    assert process_advantages(steps, groups, single_step="zero")[0] == [0.0]
    assert process_advantages(steps, groups, single_step="raw")[0] == [0.75]
    # EndNorm with T = 1 follows the same single-step policy
    assert process_advantages(steps, groups, mode="end", single_step="zero")[0] == [0.0]


def test_single_step_outcome_alone_in_group_gets_zero():
    assert process_advantages([[0.75]], [0], single_step="outcome") == [[0.0]]


def test_unscorable_step_drops_the_whole_trace_and_its_stats():
    steps = [[0.5, None], [1.0], [0.0], None]
    got = process_advantages(steps, [0, 0, 0, 0], mode="delta", single_step="outcome")
    assert got[0] is None and got[3] is None
    # only [1.0] and [0.0] enter the outcome group mean, 0.5
    approx(got[1:3], [[0.5], [-0.5]])
    got = process_advantages(steps, [0, 0, 0, 0], mode="group")
    approx(got, [None, [0.5], [-0.5], None])


def test_overlong_outcome_zero_and_mask():
    rewards = [1.0, 0.75, None, 0.5]
    cut = [True, False, True, False]
    assert apply_overlong(rewards, cut, "zero") == [0.0, 0.75, 0.0, 0.5]
    assert apply_overlong(rewards, cut, "mask") == [None, 0.75, None, 0.5]
    assert apply_overlong(rewards, cut, "keep") == rewards  # a correct answer before the cap still pays
    # zero: the cut rollout enters the group with 0 and gets a negative advantage
    adv = outcome_advantages(apply_overlong([1.0, 0.5], [True, False], "zero"), [0, 0])
    assert adv[0] < 0 < adv[1]
    with pytest.raises(ValueError):
        apply_overlong(rewards, cut, "clip")
    with pytest.raises(ValueError):
        apply_overlong(rewards, cut[:2], "zero")


def test_overlong_process_zero_gives_no_gradient_and_mask_drops():
    steps = [[1.0, 0.5, 0.75], [0.25, 0.5]]
    zeroed = apply_overlong_steps(steps, [True, False], "zero")
    assert zeroed == [[0.0, 0.0, 0.0], [0.25, 0.5]]
    assert process_advantages(zeroed, [0, 0], mode="delta")[0] == [0.0, 0.0, 0.0]
    assert apply_overlong_steps(steps, [True, False], "mask") == [None, [0.25, 0.5]]
    assert apply_overlong_steps(steps, [True, False], "keep") == steps
    assert apply_overlong_steps([[None, 0.5]], [True], "zero") == [[0.0, 0.0]]


def test_unscorable_rollouts_count_as_zero_in_group_statistics_when_asked():
    rewards, groups = [1.0, None, 0.5, 0.0], [0, 0, 0, 0]
    left_out = outcome_advantages(rewards, groups, "mean")
    approx(left_out, [0.5, None, 0.0, -0.5])
    zero = outcome_advantages(rewards, groups, "mean", "zero-in-group")  # mean over 4: 0.375
    approx(zero, [0.625, None, 0.125, -0.375])
    # a group whose only scored member sits among failures is compared with zeros
    approx(outcome_advantages([None, 0.5], [0, 0], "mean", "zero-in-group"), [None, 0.25])
    approx(outcome_advantages([None, 0.5], [0, 0], "mean"), [None, 0.0])
    approx(process_advantages([[0.5, 1.0], None], [0, 0], mode="group", unscorable="zero-in-group"),
           [[0.125, 0.625], None])
    with pytest.raises(ValueError, match="unscorable"):
        outcome_advantages(rewards, groups, "mean", "drop")


def test_zero_after_judge_zeroes_cut_rollouts_but_keeps_an_unscorable_verdict():
    assert apply_overlong([None, 0.75, None, 0.5], [True, True, False, False], "zero-after-judge") == \
        [None, 0.0, None, 0.5]
    assert apply_overlong_steps([[None, 0.5], [0.25, 0.5], [0.75]], [True, True, False], "zero-after-judge") == \
        [None, [0.0, 0.0], [0.75]]
