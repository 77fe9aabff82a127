"""ExpRL-Outcome with the real SmolLM2-135M policy and the real llama.cpp server judging with the
same model: one training step end to end (2 prompts x 2 completions x 32 tokens)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from exprl.judge.types import JudgeConfig
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.models import smollm2_gguf_file
from exprl.train.runner import run_training

pytestmark = [pytest.mark.slow, pytest.mark.llama_server]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def llama_server():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is the judge-server extra")
    port = _free_port()
    # TODO(judge-extras): use exprl.judge.server.JudgeServer once it lands; same command underneath.
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf_file()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/models", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("llama.cpp server did not come up in 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_smollm2_policy_with_llama_cpp_judge_completes_a_step(llama_server, problems_file, tmp_path):
    config = TrainConfig(
        method="exprl-outcome", model="smollm2-135m", data=DataConfig(train_files=[str(problems_file)]),
        judge=JudgeConfig(backend="openai", base_urls=[llama_server], model="smollm2", json_mode=True,
                          cache_path="", max_new_tokens=64, timeout_s=120),
        trl=dict(max_steps=1, per_device_train_batch_size=4, num_generations=2, max_completion_length=32,
                 save_strategy="no"))
    result = run_training(config, tmp_path / "run")
    assert result.global_step == 1
    row = next(json.loads(line) for line in result.metrics_path.read_text().splitlines() if "loss" in line)
    assert row["exprl/judge_calls"] >= 1
    assert row["exprl/judge_ok"] + row["exprl/judge_unparseable"] + row["exprl/judge_error"] \
        + row["exprl/judge_timeout"] == row["exprl/judge_calls"]
