"""Fixtures for training tests: tiny models, a small problem file with a canary in every reference."""
from __future__ import annotations

import json
import math
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


def build_step_model(path: Path) -> Path:
    """A tiny char-level model whose samples are mostly '#', 'a', ' ' and newlines, so traces have
    several `###` steps: the residual stream is dominated by one constant direction and the output
    layer reads a fixed unigram distribution off it (the blocks still add input-dependent noise)."""
    import torch

    from exprl.tiny import build_char_tokenizer, build_tiny_model

    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer)
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        embed = model.model.embed_tokens.weight
        embed[:, 0] = 10.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        head = torch.nn.Linear(embed.size(1), embed.size(0), bias=False)
        head.weight.normal_(0, 0.02)
        probs = {"#": 0.3, "a": 0.3, " ": 0.2, "\n": 0.1, "<eos>": 0.02}
        base = math.log(0.08 / (len(tokenizer) - len(probs)))
        head.weight[:, 0] = base / 8.0
        for tok, p in probs.items():
            head.weight[tokenizer.convert_tokens_to_ids(tok), 0] = math.log(p) / 8.0
        model.lm_head = head
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def step_model(tmp_path_factory) -> Path:
    return build_step_model(tmp_path_factory.mktemp("step-model") / "model")


TARGETS = ["### add\n\\boxed{5}", "\\boxed{12}", "### mul\n### so\n\\boxed{12}", "\\boxed{5}"]


def build_answer_model(path: Path, steps: int = 100) -> Path:
    """A tiny model pre-trained for a few seconds to answer with a mix of `###` steps and boxed 5 or
    12 whatever the question: at temperature 0.8 its groups mix right and wrong answers and one- and
    multi-step traces, so every method gets a non-zero learning signal."""
    import torch

    from exprl.tiny import build_char_tokenizer, build_tiny_model

    torch.manual_seed(0)
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer)
    from exprl.data.prompts import policy_messages

    prompts = [tokenizer.apply_chat_template(policy_messages(q), tokenize=False, add_generation_prompt=True)
               for q in ("What is 2+3?", "What is 4*3?")]
    texts = [p + t + "<|end|>" for p in prompts for t in TARGETS]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    completion_lengths = [len(t) + 1 for _ in prompts for t in TARGETS]  # one token per character
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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from exprl.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")
