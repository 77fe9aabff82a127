"""The reward path's per-rollout functions (`exprl.judge.rollouts`), shared by the TRL trainer and
the verl adapter: cut rollouts, who is asked, what is asked, and the record each rollout gets."""
from __future__ import annotations

import pytest

from exprl.judge.rollouts import asked_rollouts, judge_requests, overlong_flags, record_rollouts
from exprl.judge.types import JudgeResult, JudgeStatus
from exprl.rewards.config import RewardConfig
from exprl.tiny import build_char_tokenizer

EOS, PAD = 1, 0
ROW = dict(problem_text="What is 2+2?", reference="2+2=4 so \\boxed{4}", answer="4", domain="math",
           problem_id="p0")


def test_overlong_means_at_the_cap_without_an_end_token():
    flags = overlong_flags([[5, 6, 7], [5, 6, EOS], [5, 6], [5, 6, PAD], []], {EOS, PAD}, max_length=3)
    assert flags == [True, False, False, False, False]
    assert overlong_flags([[]], {EOS}, max_length=0) == [True]  # a zero cap: an empty rollout is cut


@pytest.mark.parametrize("policy, expected", [("zero", [True, False, True]), ("mask", [True, True, True]),
                                              ("keep", [True, True, True])])
def test_a_cut_rollout_is_asked_unless_its_verdict_cannot_matter(policy, expected):
    assert asked_rollouts([False, True, False], RewardConfig(overlong=policy)) == expected


def test_outcome_asks_one_judgment_of_the_whole_trace():
    tokenizer = build_char_tokenizer()
    trace = "### Add\n2+2=4\n### Answer\n\\boxed{4}"
    ids = tokenizer(trace, add_special_tokens=False)["input_ids"]
    requests, step_tokens = judge_requests([ROW], [trace], [ids], "outcome", "###", "segment", tokenizer)
    assert step_tokens == [[]]
    (only,), = requests
    assert (only.mode, only.trace, only.problem, only.reference, only.answer, only.problem_id) == (
        "outcome", trace, ROW["problem_text"], ROW["reference"], "4", "p0")


@pytest.mark.parametrize("view", ["segment", "prefix", "step"])
def test_process_asks_one_judgment_per_step_and_counts_every_token(view):
    tokenizer = build_char_tokenizer()
    trace = "Let x=2.\n### Square\nx^2=4\n### Answer\n\\boxed{4}"
    ids = tokenizer(trace, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    requests, step_tokens = judge_requests([ROW], [trace], [ids], "process", "###", view, tokenizer)
    steps = ["Let x=2.\n###", " Square\nx^2=4\n###", " Answer\n\\boxed{4}"]
    assert [r.trace for r in requests[0]] == steps
    assert all(r.mode == view for r in requests[0])
    assert [r.context for r in requests[0]] == (["", "", ""] if view == "segment" else
                                                ["", steps[0], steps[0] + steps[1]])
    # one token per character here; the EOS (zero-width) counts toward the last step
    assert step_tokens == [[len(steps[0]), len(steps[1]), len(steps[2]) + 1]]


def test_records_take_the_results_in_order_and_keep_unscorable_as_none():
    tokenizer = build_char_tokenizer()
    traces = ["a\n### b", "c", "d\n### e"]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in traces]
    requests, step_tokens = judge_requests([ROW] * 3, traces, ids, "process", "###", "segment", tokenizer)
    overlong, asked = [False, True, False], [True, False, True]
    results = [JudgeResult(5, JudgeStatus.OK, latency_s=0.1), JudgeResult(None, JudgeStatus.TIMEOUT),
               JudgeResult(2, JudgeStatus.OK, cached=True), JudgeResult(3, JudgeStatus.OK)]
    records = record_rollouts(overlong, [1.0, 0.0, 0.0], requests, step_tokens, asked, results)
    assert [r.step_rewards for r in records] == [[1.0, None], [0.0], [0.25, 0.5]]
    assert [[j.status for j in r.judgments] for r in records] == [["ok", "timeout"], [], ["ok", "ok"]]
    assert records[2].judgments[0].cached and records[0].judgments[0].latency_s == 0.1
    assert [r.tokens_per_step for r in records] == step_tokens
    assert [r.dense_reward for r in records] == [None, 0.0, 0.5]
    assert [(r.overlong, r.correct) for r in records] == [(False, 1.0), (True, 0.0), (False, 0.0)]


def test_without_a_judge_a_record_holds_the_flags_alone():
    records = record_rollouts([True, False], [0.0, 1.0])
    assert [(r.overlong, r.correct, r.step_rewards, r.judgments) for r in records] == [
        (True, 0.0, [], []), (False, 1.0, [], [])]
