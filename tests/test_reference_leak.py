"""The reference must never reach the policy's input.

A canary is planted in every reference; real training steps of every method run with a forward
pre-hook on the policy model that records every input it is given (generation included), and the
decoded inputs must not contain the canary. The judge (ExpRL) must see it, and SFT's *target* is the
reference by definition, so for SFT only the prompt part of the input is checked. Self-distillation's
teacher is a separate frozen model and is not hooked: it is meant to see the reference.
"""
from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from testing.loopback import LoopbackJudgeServer
from exprl.judge.types import JudgeConfig
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training

CANARY = "LEAK-CANARY-5c8e21"


class RecordPolicyInputs(TrainerCallback):
    def __init__(self):
        self.inputs = []  # (input_ids, labels or None)
        self.handle = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, args_, kwargs_):
            ids = kwargs_.get("input_ids", args_[0] if args_ else None)
            if ids is not None:
                self.inputs.append((ids.detach().clone(), kwargs_.get("labels")))
        self.handle = model.register_forward_pre_hook(hook, with_kwargs=True)

    def on_train_end(self, *args, **kwargs):
        self.handle.remove()


@pytest.fixture(scope="module")
def leak_setup(tmp_path_factory):
    from exprl.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("leak")
    data = root / "problems.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i}+1?", "answer": str(i + 1),
                                        "reference": f"### Add\n{i}+1={i + 1} {CANARY}\n\\boxed{{{i + 1}}}"}) + "\n"
                            for i in range(2)), encoding="utf-8")
    return save_tiny_model(root / "model"), data


@pytest.mark.slow
@pytest.mark.parametrize("method", ["exprl-outcome", "exprl-process", "grpo", "sft", "self-distill"])
def test_canary_never_reaches_the_policy(method, leak_setup, tmp_path):
    model, data = leak_setup
    trl = (dict(max_steps=1, per_device_train_batch_size=2, max_length=256) if method == "sft" else
           dict(max_steps=1, per_device_train_batch_size=2, num_generations=2, max_completion_length=16))
    recorder = RecordPolicyInputs()
    with LoopbackJudgeServer() as server:
        config = TrainConfig(method=method, model=str(model), data=DataConfig(train_files=[str(data)]), trl=trl,
                             judge=JudgeConfig(backend="openai", base_urls=[server.base_url], model="loopback",
                                               cache_path=""))
        run_training(config, tmp_path / "run", callbacks=[recorder])
        judge_bodies = json.dumps(server.requests)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    assert recorder.inputs, "no policy forward was recorded"
    full_texts, prompt_texts = [], []
    for ids, labels in recorder.inputs:
        for row in range(ids.size(0)):
            full_texts.append(tokenizer.decode(ids[row], skip_special_tokens=True))
            if labels is not None:
                prompt_ids = ids[row][labels[row] == -100]
                prompt_texts.append(tokenizer.decode(prompt_ids, skip_special_tokens=True))
    if method == "sft":
        assert prompt_texts and not any(CANARY in t for t in prompt_texts)
        assert any(CANARY in t for t in full_texts)  # the reference is SFT's target, as intended
    else:
        assert not any(CANARY in t for t in full_texts)
        assert any("+1?" in t for t in full_texts)  # the problem itself did reach the policy
    if method in ("exprl-outcome", "exprl-process"):
        assert CANARY in judge_bodies  # the reference reached the judge, through the hidden column
