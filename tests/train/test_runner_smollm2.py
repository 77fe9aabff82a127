"""ExpRL-Outcome with the real SmolLM2-135M policy and the real llama.cpp server judging with the
same model: one training step end to end (2 prompts x 2 completions x 32 tokens)."""
from __future__ import annotations

import json

import pytest

from exprl.judge.server import JudgeServer
from exprl.judge.types import JudgeConfig
from exprl.rewards.config import RewardConfig
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training
from exprl.weights import smollm2_gguf_path

pytestmark = [pytest.mark.slow, pytest.mark.llama_server]


@pytest.fixture()
def llama_server():
    # One thread: the judge shares two cores with the trainer (docs/facts.md).
    with JudgeServer(smollm2_gguf_path(), threads=1) as server:
        yield server


def test_smollm2_policy_with_llama_cpp_judge_completes_a_step(llama_server, problems_file, tmp_path):
    # 32 tokens rarely hold a whole SmolLM2 answer; `keep` has the judge grade cut rollouts too, so
    # the step makes judge calls whatever the sample lengths.
    config = TrainConfig(
        method="exprl-outcome", model="smollm2-135m", data=DataConfig(train_files=[str(problems_file)]),
        reward=RewardConfig(overlong="keep"),
        judge=JudgeConfig(backend="openai", base_urls=[llama_server.base_url], model=llama_server.model_id(),
                          json_mode=True, cache_path="", max_new_tokens=128, timeout_s=120),
        trl=dict(max_steps=1, per_device_train_batch_size=4, num_generations=2, max_completion_length=32,
                 save_strategy="no"))
    result = run_training(config, tmp_path / "run")
    assert result.global_step == 1
    row = next(json.loads(line) for line in result.metrics_path.read_text().splitlines() if "loss" in line)
    assert row["exprl/judge_calls"] >= 1
    # JSON mode's bounded reasoning closes the object within 128 tokens: grades parse.
    assert row["exprl/judge_ok"] >= 1
    assert row["exprl/judge_ok"] + row["exprl/judge_unparseable"] + row["exprl/judge_error"] \
        + row["exprl/judge_timeout"] == row["exprl/judge_calls"]
