"""The reference never reaches the policy on the adapter's data path; the judge does see it.

A canary is planted in every reference. The problems go through the adapter's parquet writer, verl's
own dataset (`RLHFDataset`) and verl's own single-turn agent loop, whose prompt ids go to a real
(tiny, random) policy that samples the rollout; every prompt the policy is given is recorded and
decoded. The rollouts then go through verl's reward-loop worker to `ExpRLRewardManager` and exprl's
judge service, whose HTTP requests to a loopback judge must carry the canary.
"""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import OmegaConf

from exprl.data.problem import Problem
from exprl.data.prompts import POLICY_SYSTEM_PROMPT
from exprl.errors import DataError
from exprl.integrations.verl.data import judge_row, main, verl_row, write_verl_parquet
from exprl.integrations.verl.records import RECORD_KEY, load_record
from testing.loopback import LoopbackJudgeServer

from .conftest import compose

CANARY = "LEAK-CANARY-5c8e21"
PROBLEMS = [Problem(id=f"p{i}", problem=f"What is {i}+1?", answer=str(i + 1),
                    reference=f"### Add\n{i}+1={i + 1} {CANARY}\n\\boxed{{{i + 1}}}") for i in range(3)]


class RecordingPolicy:
    """verl's LLM server client (`generate` -> `TokenOutput`) answered by a tiny random policy with
    HF generate; it records every prompt it is given, as the TRL canary test hooks the policy."""

    def __init__(self, tokenizer, max_new_tokens: int):
        from exprl.tiny import build_tiny_model

        self.model, self.max_new_tokens, self.prompts = build_tiny_model(tokenizer), max_new_tokens, []

    async def generate(self, request_id, prompt_ids, sampling_params, **_):
        from verl.workers.rollout.replica import TokenOutput

        self.prompts.append(list(prompt_ids))
        with torch.no_grad():
            out = self.model.generate(torch.tensor([list(prompt_ids)]), max_new_tokens=self.max_new_tokens,
                                      do_sample=True, temperature=1.0)
        return TokenOutput(token_ids=out[0, len(prompt_ids):].tolist())


def test_a_row_gives_the_policy_the_problem_alone_and_the_judge_the_reference():
    row = verl_row(PROBLEMS[1], 1)
    assert row["prompt"] == [{"role": "system", "content": POLICY_SYSTEM_PROMPT},
                             {"role": "user", "content": "What is 1+1?\n"}]
    assert CANARY not in str(row["prompt"]) and CANARY in row["reward_model"]["reference"]
    assert judge_row(row["reward_model"], row["extra_info"]) == dict(
        problem_text="What is 1+1?", reference=PROBLEMS[1].reference, answer="2", domain="math", problem_id="p1")


def test_a_row_exprl_did_not_write_is_refused_naming_what_is_missing():
    with pytest.raises(DataError, match="was not written by exprl"):
        judge_row({"style": "rule", "ground_truth": "2"}, {"problem": "x", "problem_id": "a", "domain": "math"})
    with pytest.raises(DataError, match="extra_info lacks problem_id"):
        judge_row(verl_row(PROBLEMS[0], 0)["reward_model"], {"problem": "x", "domain": "math"})


def test_the_command_writes_every_problem_as_a_row(tmp_path):
    source = tmp_path / "problems.jsonl"
    source.write_text("".join(__import__("json").dumps(p.to_dict()) + "\n" for p in PROBLEMS), encoding="utf-8")
    assert main([str(source), str(tmp_path / "train.parquet")]) == 0
    rows = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert [r["extra_info"]["problem_id"] for r in rows] == ["p0", "p1", "p2"]
    assert all(CANARY in r["reward_model"]["reference"] and CANARY not in str(r["prompt"]) for r in rows)


def test_the_canary_never_reaches_the_policy_through_verls_dataset_and_agent_loop(tokenizer, tokenizer_dir, tmp_path):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.utils.dataset.rl_dataset import RLHFDataset

    parquet = write_verl_parquet(PROBLEMS, tmp_path / "train.parquet")
    policy = RecordingPolicy(tokenizer, max_new_tokens=12)
    with LoopbackJudgeServer() as server:
        config = compose("exprl_stage1_outcome", [
            f"data.train_files={parquet}", f"actor_rollout_ref.model.path={tokenizer_dir}",
            "data.max_response_length=12", "data.max_prompt_length=256",
            f"++exprl.judge.base_urls=['{server.base_url}']", "++exprl.judge.model=loopback",
            "++exprl.judge.cache_path=''",
            "++exprl.reward.overlong=keep"])  # a random policy's rollouts hit the cap: judge them all the same
        OmegaConf.resolve(config)
        dataset = RLHFDataset(data_files=[str(parquet)], tokenizer=tokenizer, config=config.data)
        agent = SingleTurnAgentLoop(trainer_config=DictConfigWrap(config), server_manager=policy, tokenizer=tokenizer,
                                    processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data))
        worker = RewardLoopWorker(config)

        async def rollout_and_judge(row):
            output = await agent.run(sampling_params={}, **row)
            return output, await worker.compute_score(reward_input(output, row))

        async def everything():
            try:
                return [await rollout_and_judge(dataset[i]) for i in range(len(dataset))]
            finally:
                await worker.reward_manager.judge.backend.aclose()

        results = agent.loop.run_until_complete(everything())  # the loop verl's agent loop is bound to
        worker.reward_manager.judge.close()
        judged = [m["content"] for body in server.requests for m in body["messages"]]

    seen = [tokenizer.decode(ids, skip_special_tokens=False) for ids in policy.prompts]
    assert len(seen) == len(PROBLEMS) and all(f"What is {i}+1?" in seen[i] for i in range(len(PROBLEMS)))
    assert not any(CANARY in text for text in seen)
    assert sum(CANARY in text for text in judged) == len(PROBLEMS)  # each rollout's judgment carries it
    for output, result in results:
        record = load_record(result["reward_extra_info"][RECORD_KEY])
        assert record.judgments and record.judgments[0].status == "ok"
        assert len(output.response_ids) <= 12


def reward_input(output, row):
    """The one-rollout batch verl's agent loop sends its reward worker (`AgentLoopWorker._compute_score`)."""
    from verl import DataProto

    prompts, responses = torch.tensor(output.prompt_ids), torch.tensor(output.response_ids)
    tensors = {"prompts": prompts[None], "responses": responses[None],
               "attention_mask": torch.ones(1, len(prompts) + len(responses), dtype=torch.int64)}
    non_tensors = {key: np.array([value], dtype=object) for key, value in row.items()
                   if key in ("data_source", "reward_model", "extra_info", "raw_prompt")}
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)
