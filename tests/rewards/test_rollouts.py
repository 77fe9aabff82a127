"""The reward path's per-rollout functions (`exprl.rewards.rollouts`), shared by the TRL trainer and
the verl adapter: cut rollouts, who is asked, and the record each rollout gets from the answers.

Generated batches (seeded) checked against the rule each function states, computed here another way;
`exprl.judge.requests.judge_requests` (what is asked) is tested in tests/judge/test_requests.py."""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import pytest

from exprl.rewards.advantages import OVERLONG_POLICIES
from exprl.rewards.config import RewardConfig
from exprl.rewards.record import advantages
from exprl.rewards.rollouts import asked_rollouts, overlong_flags, record_rollouts

EOS, PAD = 1, 0
CAP = 6


class Status(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Verdict:
    """A judgment as the record reads it (`exprl.rewards.rollouts.Verdict`), without the judge layer."""

    reward: float | None
    status: Status
    cached: bool = False
    latency_s: float = 0.0


def generated_ids(rng: random.Random, count: int) -> list[list[int]]:
    """Rollouts of every length up to the cap, ending in an end token, a pad, or a plain token."""
    out = []
    for _ in range(count):
        length = rng.choice([0, 1, CAP - 1, CAP, CAP, CAP])
        ids = [rng.randint(2, 9) for _ in range(length)]
        if ids and rng.random() < 0.5:
            ids[-1] = rng.choice([EOS, PAD])
        out.append(ids)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_overlong_flags_at_the_cap_under_each_rule(seed):
    ids = generated_ids(random.Random(seed), 40)
    at_cap = [len(x) == CAP for x in ids]
    ended = [bool(x) and x[-1] in (EOS, PAD) for x in ids]
    assert any(a and e for a, e in zip(at_cap, ended)) and any(a and not e for a, e in zip(at_cap, ended))
    # unfinished: at the cap with no end token; at-cap: at the cap, its end token counted
    assert overlong_flags(ids, {EOS, PAD}, CAP) == [a and not e for a, e in zip(at_cap, ended)]
    assert overlong_flags(ids, {EOS, PAD}, CAP, "at-cap") == at_cap
    # one token short of the cap is never cut, whatever it ends with
    assert not any(overlong_flags([x for x in ids if len(x) == CAP - 1], {EOS, PAD}, CAP, "at-cap"))


def test_overlong_edge_cases():
    assert overlong_flags([[]], {EOS}, max_length=0) == [True]  # a zero cap: an empty rollout is cut
    assert overlong_flags([[5, EOS]], set(), max_length=2) == [True]  # no stop ids: nothing is an end token
    with pytest.raises(ValueError, match="overlong rule"):
        overlong_flags([[5]], {EOS}, 1, "cut")


@pytest.mark.parametrize("policy", OVERLONG_POLICIES)
def test_a_cut_rollout_is_asked_unless_its_verdict_cannot_matter(policy):
    overlong = [False, True, False, True]
    asked = asked_rollouts(overlong, RewardConfig(overlong=policy))
    assert asked == ([True, False, True, False] if policy == "zero" else [True] * 4)


def batch(rng: random.Random, count: int):
    """A generated judged batch: per rollout a step count (0 is a rollout the judge gets one whole-trace
    request for), tokens per step, whether it is asked, and a verdict per request of the asked ones."""
    requests, step_tokens, asked, results, expected = [], [], [], [], []
    for _ in range(count):
        steps = rng.randint(1, 4)
        requests.append([f"request {k}" for k in range(steps)])
        step_tokens.append([rng.randint(1, 5) for _ in range(steps)])
        ask = rng.random() < 0.7
        asked.append(ask)
        if not ask:
            expected.append([0.0] * steps)
            continue
        mine = [Verdict(None, Status.TIMEOUT) if rng.random() < 0.15 else
                Verdict(rng.randint(0, 4) / 4, Status.OK, cached=rng.random() < 0.5, latency_s=rng.random())
                for _ in range(steps)]
        results.extend(mine)
        expected.append([v.reward for v in mine])
    return requests, step_tokens, asked, results, expected


@pytest.mark.parametrize("seed", range(5))
def test_records_take_the_asked_rollouts_results_in_order(seed):
    rng = random.Random(seed)
    requests, step_tokens, asked, results, expected = batch(rng, 24)
    overlong = [not ask or rng.random() < 0.2 for ask in asked]
    correct = [float(rng.random() < 0.5) for _ in asked]
    records = record_rollouts(overlong, correct, requests, step_tokens, asked, results)
    assert [r.step_rewards for r in records] == expected
    assert [(r.overlong, r.correct, r.tokens_per_step) for r in records] == list(zip(overlong, correct, step_tokens))
    verdicts = iter(results)
    for record, ask, mine in zip(records, asked, requests):
        if not ask:
            assert record.judgments == []
            continue
        for judgment, verdict in zip(record.judgments, [next(verdicts) for _ in mine], strict=True):
            assert (judgment.status, judgment.cached, judgment.latency_s) == (
                verdict.status.value, verdict.cached, verdict.latency_s)
    # an unscorable step leaves the whole rollout without a dense reward; a rollout not asked gets 0.0
    assert [r.dense_reward for r in records] == [
        None if any(s is None for s in steps) else steps[-1] for steps in expected]


@pytest.mark.parametrize("seed", range(3))
def test_an_unscorable_rollout_leaves_the_loss_and_a_masked_token_has_no_advantage(seed):
    """From the record to a token's advantage: unscorable rollouts get None (the trainer zeroes their
    mask), every other token gets its step's advantage, and the tokens match the steps' sizes."""
    rng = random.Random(seed)
    requests, step_tokens, asked, results, expected = batch(rng, 16)
    records = record_rollouts([False] * 16, [0.0] * 16, requests, step_tokens, asked, results)
    found = advantages(records, [i // 4 for i in range(16)], "process", RewardConfig(overlong="keep"))
    for record, steps, step_advantages in zip(records, expected, found):
        if any(s is None for s in steps):
            assert step_advantages is None
            continue
        tokens = record.token_advantages(step_advantages)
        assert len(tokens) == sum(record.tokens_per_step)
        assert tokens == [a for a, n in zip(step_advantages, record.tokens_per_step) for _ in range(n)]


def test_a_result_count_that_does_not_match_the_asked_requests_is_refused():
    requests, step_tokens = [["a", "b"], ["c"]], [[1, 1], [2]]
    ok = Verdict(1.0, Status.OK)
    with pytest.raises(ValueError, match="2 judge results for the 3 requests"):
        record_rollouts([False, False], [0.0, 0.0], requests, step_tokens, [True, True], [ok, ok])
    with pytest.raises(ValueError, match="3 judge results for the 2 requests"):
        record_rollouts([False, True], [0.0, 0.0], requests, step_tokens, [True, False], [ok, ok, ok])
    with pytest.raises(ValueError, match="request lists"):
        record_rollouts([False], [0.0], requests, step_tokens, [True, True], [ok] * 3)


def test_judge_results_speak_what_the_record_reads():
    from exprl.judge.types import JudgeResult, JudgeStatus

    records = record_rollouts([False], [1.0], [["x", "y"]], [[2, 3]], [True],
                              [JudgeResult(5, JudgeStatus.OK, latency_s=0.1, cached=True),
                               JudgeResult(None, JudgeStatus.TIMEOUT)])
    assert records[0].step_rewards == [1.0, None]
    assert [(j.status, j.cached, j.latency_s) for j in records[0].judgments] == [("ok", True, 0.1),
                                                                                   ("timeout", False, 0.0)]


def test_without_a_judge_a_record_holds_the_flags_alone():
    records = record_rollouts([True, False], [0.0, 1.0])
    assert [(r.overlong, r.correct, r.step_rewards, r.judgments, r.tokens_per_step) for r in records] == [
        (True, 0.0, [], [], []), (False, 1.0, [], [], [])]
    with pytest.raises(ValueError, match="overlong flags"):
        record_rollouts([True], [0.0, 1.0])
