"""ExpRLRewardManager, called the way verl calls it: verl's own reward-loop worker
(`RewardLoopWorker.compute_score_batch`, without Ray) on a `DataProto` batch built as verl builds
one, loading the manager from the shipped config, with exprl's judge service talking HTTP to a
loopback judge server that misbehaves on request."""
from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from exprl.data.problem import Problem
from exprl.integrations.verl.data import verl_row
from exprl.integrations.verl.records import RECORD_KEY, load_record
from testing.loopback import LoopbackJudgeServer

from .conftest import compose

MAX_RESPONSE = 40
PROBLEM = Problem(id="p7", problem="What is 6*7?", reference="6*7=42 so the answer is \\boxed{42}", answer="42")


def reply_from_hints(body):
    """A judge that scores what the candidate text asks for (`SCORE_HINT=N`), and cannot score a text
    saying NO_SCORE: a well-formed answer without a score, which exprl calls unparseable."""
    text = body["messages"][-1]["content"]
    if "NO_SCORE" in text:
        return "Reasoning: I cannot tell."
    return f"Reasoning: fine.\nScore: {re.findall(r'SCORE_HINT=([0-9])', text)[-1]}"


def make_worker(method, url, tokenizer_dir, *extra):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    config = compose(f"exprl_stage1_{method.removeprefix('exprl-')}", [
        f"++exprl.judge.base_urls=['{url}']", "++exprl.judge.model=loopback", "++exprl.judge.max_retries=0",
        "++exprl.judge.cache_path=''", f"actor_rollout_ref.model.path={tokenizer_dir}",
        f"data.max_response_length={MAX_RESPONSE}", *extra])
    OmegaConf.resolve(config)
    return RewardLoopWorker(config)


def batch(tokenizer, responses, *, eos=True, problem=PROBLEM):
    """Rollouts of one prompt as verl hands them to a reward worker: prompt ids left-padded,
    response ids right-padded, the attention mask marking both, the dataset row's columns."""
    from verl import DataProto

    row = verl_row(problem, 0)
    prompt_text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
           for text in responses]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    tensors = {"prompts": torch.tensor([prompt] * len(ids)),
               "responses": torch.tensor([r + [pad] * (width - len(r)) for r in ids]),
               "attention_mask": torch.tensor([[1] * len(prompt) + [1] * len(r) + [0] * (width - len(r)) for r in ids])}
    column = lambda value: np.array([value] * len(ids), dtype=object)
    return DataProto.from_dict(tensors=tensors, non_tensors={
        "data_source": column(row["data_source"]), "reward_model": column(row["reward_model"]),
        "extra_info": column(row["extra_info"]), "raw_prompt": column(row["prompt"])}), ids


def score(worker, data):
    """verl's batch call on one event loop, then the judge's connections on it closed (a worker of a
    real run keeps them for the run)."""
    async def run():
        try:
            return await worker.compute_score_batch(data)
        finally:
            await worker.reward_manager.judge.backend.aclose()

    try:
        return asyncio.run(run())
    finally:
        worker.reward_manager.judge.close()


def test_outcome_rewards_are_the_judges_and_an_unscorable_rollout_has_no_reward(tokenizer, tokenizer_dir):
    with LoopbackJudgeServer(reply=reply_from_hints) as server:
        worker = make_worker("exprl-outcome", server.base_url, tokenizer_dir)
        data, ids = batch(tokenizer, ["### a SCORE_HINT=2 ### b SCORE_HINT=5", "SCORE_HINT=1",
                                      "NO_SCORE \\boxed{42}", "SCORE_HINT=4 \\boxed{42}"])
        out = score(worker, data)
        judged = [m["content"] for body in server.requests for m in body["messages"]]
    assert server.request_count == 4  # one judgment of each whole trace
    assert [o["reward_score"] for o in out] == [1.0, 0.0, 0.0, 0.75]
    records = [load_record(o["reward_extra_info"][RECORD_KEY]) for o in out]
    assert [r.step_rewards for r in records] == [[1.0], [0.0], [None], [0.75]]
    assert [r.judgments[0].status for r in records] == ["ok", "ok", "unparseable", "ok"]
    assert [o["reward_extra_info"]["exprl_judge_reward"] for o in out] == [1.0, 0.0, None, 0.75]
    assert [r.correct for r in records] == [0.0, 0.0, 1.0, 1.0]  # the verifier, logged beside
    assert not any(r.overlong for r in records) and [r.traits.tokens for r in records] == list(map(len, ids))
    user_prompts = judged[1::2]  # the judge sees the reference
    assert len(user_prompts) == 4 and all(PROBLEM.reference in text for text in user_prompts)


def test_process_judges_each_step_alone_and_counts_every_response_token(tokenizer, tokenizer_dir):
    with LoopbackJudgeServer(reply=reply_from_hints) as server:
        worker = make_worker("exprl-process", server.base_url, tokenizer_dir)
        data, ids = batch(tokenizer, ["first SCORE_HINT=3 ### second SCORE_HINT=5 ### NO_SCORE",
                                      "one SCORE_HINT=2 ### two SCORE_HINT=4", "alone SCORE_HINT=1"])
        out = score(worker, data)
        steps_judged = [body["messages"][-1]["content"] for body in server.requests]
    records = [load_record(o["reward_extra_info"][RECORD_KEY]) for o in out]
    assert [r.step_rewards for r in records] == [[0.5, 1.0, None], [0.25, 0.75], [0.0]]
    assert [sum(r.tokens_per_step) for r in records] == list(map(len, ids))  # the EOS counts too
    assert [len(r.tokens_per_step) for r in records] == [3, 2, 1] and server.request_count == 6
    # segment view (the paper recipes' and the official code's): a step is shown without the ones before it
    second = next(text for text in steps_judged if "second SCORE_HINT=5" in text)
    assert "first SCORE_HINT=3" not in second
    assert [o["reward_score"] for o in out] == [0.0, 0.75, 0.0]  # the last step's; unscorable -> the 0.0 placeholder
    assert [o["reward_extra_info"]["exprl_judge_reward"] for o in out] == [None, 0.75, 0.0]


def test_a_rollout_cut_at_the_length_cap_is_not_judged_and_earns_zero(tokenizer, tokenizer_dir):
    with LoopbackJudgeServer(reply=reply_from_hints) as server:
        worker = make_worker("exprl-outcome", server.base_url, tokenizer_dir)
        cut = "SCORE_HINT=5 " + "x" * (MAX_RESPONSE - len("SCORE_HINT=5 "))
        data, _ = batch(tokenizer, [cut], eos=False)
        out, = score(worker, data)
    record = load_record(out["reward_extra_info"][RECORD_KEY])
    assert server.request_count == 0 and record.overlong and record.step_rewards == [0.0]
    assert out["reward_score"] == 0.0 and record.judgments == []


@pytest.mark.parametrize("behaviour, status", [("status", "error"), ("malformed", "error"), ("drop", "error"),
                                               ("wrong_shape", "error"), ("hang", "timeout")])
def test_a_failing_judge_makes_rollouts_unscorable_never_zero(tokenizer, tokenizer_dir, behaviour, status):
    with LoopbackJudgeServer(behaviour, status=503) as server:
        worker = make_worker("exprl-process", server.base_url, tokenizer_dir, "++exprl.judge.timeout_s=0.5")
        data, _ = batch(tokenizer, ["a SCORE_HINT=5 ### b SCORE_HINT=5", "c SCORE_HINT=5"])
        out = score(worker, data)
    records = [load_record(o["reward_extra_info"][RECORD_KEY]) for o in out]
    assert [r.step_rewards for r in records] == [[None, None], [None]]
    assert {j.status for r in records for j in r.judgments} == {status}
    assert [r.dense_reward for r in records] == [None, None]


def test_a_judge_that_recovers_after_faults_is_retried_into_scores(tokenizer, tokenizer_dir):
    with LoopbackJudgeServer("status", status=503, faults=2) as server:
        worker = make_worker("exprl-outcome", server.base_url, tokenizer_dir, "++exprl.judge.max_retries=3",
                             "++exprl.judge.retry_backoff_s=0.01", "++exprl.judge.concurrency=1")
        data, _ = batch(tokenizer, ["SCORE_HINT=4", "SCORE_HINT=2"])
        out = score(worker, data)
    assert [o["reward_score"] for o in out] == [0.75, 0.25] and server.request_count == 4


def test_judgments_come_from_the_cache_the_second_time(tokenizer, tokenizer_dir, tmp_path):
    cache = tmp_path / "judge.sqlite"
    with LoopbackJudgeServer(reply=reply_from_hints) as server:
        data, _ = batch(tokenizer, ["a SCORE_HINT=3 ### b SCORE_HINT=4"])
        first, = score(make_worker("exprl-process", server.base_url, tokenizer_dir,
                                   f"++exprl.judge.cache_path={cache}"), data)
        asked = server.request_count
        second, = score(make_worker("exprl-process", server.base_url, tokenizer_dir,
                                    f"++exprl.judge.cache_path={cache}"), data)
    assert asked == 2 and server.request_count == 2
    assert [j.cached for j in load_record(second["reward_extra_info"][RECORD_KEY]).judgments] == [True, True]
    assert first["reward_extra_info"][RECORD_KEY].replace("true", "false") == \
        second["reward_extra_info"][RECORD_KEY].replace("true", "false")


def test_the_record_survives_verls_streaming_path_into_the_rollouts_fields(tokenizer, tokenizer_dir):
    """verl's agent loop stores `reward_score` on the last response token and `reward_extra_info`
    in the rollout's `extra_fields` (`AgentLoopOutput.as_dict`), which TransferQueue keeps for the
    replay buffer."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput

    with LoopbackJudgeServer(reply=reply_from_hints) as server:
        worker = make_worker("exprl-process", server.base_url, tokenizer_dir)
        data, (ids,) = batch(tokenizer, ["a SCORE_HINT=3 ### b SCORE_HINT=4"])
        result, = score(worker, data)
    output = AgentLoopOutput(prompt_ids=data.batch["prompts"][0].tolist(), response_ids=ids, response_mask=[1] * len(ids),
                             metrics=AgentLoopMetrics())
    output.reward_score = result["reward_score"]
    output.extra_fields["reward_extra_info"] = result["reward_extra_info"]
    fields = output.as_dict()
    assert fields["rm_scores"].tolist() == [0.0] * (len(ids) - 1) + [0.75]
    record = load_record(fields["extra_fields"]["reward_extra_info"][RECORD_KEY])
    assert record.step_rewards == [0.5, 0.75] and sum(record.tokens_per_step) == len(ids)


def test_a_judge_on_verls_own_pool_is_reached_through_verls_router_address(tokenizer, tokenizer_dir):
    """With `reward.reward_model.enable` verl serves the judge itself and hands each reward worker its
    router's address; an openai judge with no base_urls talks to it, under the reward model's name."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    with LoopbackJudgeServer(reply=reply_from_hints) as server:
        config = compose("exprl_stage1_outcome", [
            "exprl.judge.base_urls=[]", "exprl.judge.model=''", "++exprl.judge.cache_path=''",
            f"actor_rollout_ref.model.path={tokenizer_dir}", f"data.max_response_length={MAX_RESPONSE}",
            "reward.reward_model.enable=true", "reward.reward_model.enable_resource_pool=true",
            f"reward.reward_model.model_path={tokenizer_dir}",
            "reward.custom_reward_function.path=pkg://exprl.integrations.verl.reward_manager",
            "reward.custom_reward_function.name=ExpRLRewardManager"])
        OmegaConf.resolve(config)
        worker = RewardLoopWorker(config, reward_router_address=f"127.0.0.1:{server.port}")
        data, _ = batch(tokenizer, ["SCORE_HINT=4"])
        out, = score(worker, data)
    assert out["reward_score"] == 0.75 and server.requests[0]["model"] == str(tokenizer_dir)
