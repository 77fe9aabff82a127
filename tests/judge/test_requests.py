"""What the judge is asked about each rollout (`exprl.judge.requests.judge_requests`): the whole
trace, or one request per step under each process view, and every sampled token counted once."""
from __future__ import annotations

import pytest

from exprl.data.synthetic import SyntheticTaskConfig, generate, policy_trace
from exprl.judge.requests import judge_requests
from exprl.judge.types import PROCESS_VIEWS
from exprl.rewards.steps import split_steps
from exprl.tiny import build_char_tokenizer

PROBLEMS = generate(SyntheticTaskConfig(num_problems=6, min_steps=1, max_steps=5, seed=3))


def rows_and_traces():
    rows = [dict(problem_text=p.problem, reference=p.reference, answer=p.answer, domain=p.domain,
                 problem_id=p.id) for p in PROBLEMS]
    return rows, [policy_trace(p) for p in PROBLEMS]


def test_outcome_asks_one_judgment_of_the_whole_trace():
    tokenizer = build_char_tokenizer()
    rows, traces = rows_and_traces()
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in traces]
    requests, step_tokens = judge_requests(rows, traces, ids, "outcome", "###", "segment", tokenizer)
    assert step_tokens == [[]] * len(rows)
    for (only,), row, trace in zip(requests, rows, traces, strict=True):
        assert (only.mode, only.trace, only.context, only.problem, only.reference, only.answer, only.problem_id) == (
            "outcome", trace, "", row["problem_text"], row["reference"], row["answer"], row["problem_id"])


@pytest.mark.parametrize("view", PROCESS_VIEWS)
def test_process_asks_one_judgment_per_step_and_counts_every_token(view):
    tokenizer = build_char_tokenizer()
    rows, traces = rows_and_traces()
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in traces]
    requests, step_tokens = judge_requests(rows, traces, ids, "process", "###", view, tokenizer)
    assert any(len(mine) > 2 for mine in requests)
    for mine, counts, trace, row_ids in zip(requests, step_tokens, traces, ids, strict=True):
        steps = split_steps(trace)
        assert [r.trace for r in mine] == [s.text for s in steps]
        assert {r.mode for r in mine} == {view}
        # segment: each step alone; prefix and step: after the text before it
        assert [r.context for r in mine] == ["" if view == "segment" else trace[:s.start] for s in steps]
        # one token per character; the end token (no text) counts toward the last step
        assert counts == [len(s.text) for s in steps[:-1]] + [len(steps[-1].text) + 1]
        assert sum(counts) == len(row_ids)


def test_process_requests_follow_the_sampled_ids_not_the_given_text():
    """The steps come from decoding the ids (what the tokens hold), so the token counts fit them."""
    tokenizer = build_char_tokenizer()
    rows, traces = rows_and_traces()
    ids = tokenizer(traces[0], add_special_tokens=False)["input_ids"]
    requests, _ = judge_requests(rows[:1], ["unrelated text"], [ids], "process", "###", "prefix", tokenizer)
    assert "".join(r.trace for r in requests[0]) == traces[0]


def test_a_signal_that_asks_no_judge_is_refused():
    tokenizer = build_char_tokenizer()
    rows, traces = rows_and_traces()
    with pytest.raises(ValueError, match="sparse"):
        judge_requests(rows[:1], traces[:1], [[5]], "sparse", "###", "segment", tokenizer)
