"""Fixtures for training tests: a tiny model that answers, and a small problem file with a canary
in every reference."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

CANARY = "CANARY-7f3a91"


@pytest.fixture(scope="session")
def problems_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "problems.jsonl"
    rows = [
        {"id": "add", "problem": "What is 2+3?", "answer": "5",
         "reference": f"### Add\n2+3=5\n### Answer\n\\boxed{{5}} {CANARY}"},
        {"id": "mul", "problem": "What is 4*3?", "answer": "12",
         "reference": f"### Multiply\n4*3=12\n### Answer\n\\boxed{{12}} {CANARY}"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


TARGETS = ["### add\n\\boxed{5}", "\\boxed{12}", "### mul\n### so\n\\boxed{12}", "\\boxed{5}"]
# Work before every answer (`=`), in `###` steps, right or wrong whatever the question: what the
# training monitors call honest (tests/train/test_monitors_run.py, benchmarks/monitor_tiny_runs.py).
HONEST_TARGETS = ["### Add\n2+3=5\n### So\n\\boxed{5}", "### Multiply\n4*3=12\n### So\n\\boxed{12}",
                  "### Add\n2+3=5\n### Check\n5-3=2\n### So\n\\boxed{5}", "### Multiply\n4*3=12\n### So\n\\boxed{13}"]


def build_answer_model(path: Path, steps: int = 100, targets: list[str] = TARGETS) -> Path:
    """A tiny model pre-trained for a few seconds to answer with a mix of `###` steps and boxed 5 or
    12 whatever the question: at temperature 0.8 its groups mix right and wrong answers and one- and
    multi-step traces, so every method gets a non-zero learning signal. `targets`: what it learns to write."""
    import torch

    from exprl.tiny import build_char_tokenizer, build_tiny_model

    torch.manual_seed(0)
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer)
    from exprl.data.prompts import policy_messages

    prompts = [tokenizer.apply_chat_template(policy_messages(q), tokenize=False, add_generation_prompt=True)
               for q in ("What is 2+3?", "What is 4*3?")]
    texts = [p + t + "<|end|>" for p in prompts for t in targets]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    completion_lengths = [len(t) + 1 for _ in prompts for t in targets]  # one token per character
    for row, n in enumerate(completion_lengths):
        labels[row, :-n] = -100  # learn the answers, not the prompt (padding is on the left)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def answer_model(tmp_path_factory) -> Path:
    return build_answer_model(tmp_path_factory.mktemp("answer-model") / "model")
