"""The runner's bookkeeping that needs no training: which problems a run keeps."""
from __future__ import annotations

import pytest

from exprl.data.problem import Problem
from exprl.errors import ConfigError
from exprl.tiny import build_char_tokenizer
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import build_rows, within_prompt_budget


def problems(*texts: str) -> list[Problem]:
    return [Problem(id=f"p{i}", problem=text, reference="ref", answer="1") for i, text in enumerate(texts)]


def prompt_length(tokenizer, config: TrainConfig, problem: Problem) -> int:
    text = tokenizer.apply_chat_template(build_rows([problem], config)[0]["prompt"], add_generation_prompt=True,
                                         tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_prompts_longer_than_the_budget_are_left_out_and_the_rest_keep_their_order():
    tokenizer = build_char_tokenizer()  # one token per character: lengths are easy to reason about
    short, long, medium = problems("What is 1+1?", "x" * 400, "What is 20+22, exactly?")
    base = TrainConfig(data=DataConfig(train_files=["unused"]))
    limit = prompt_length(tokenizer, base, medium)
    assert prompt_length(tokenizer, base, short) < limit < prompt_length(tokenizer, base, long)
    config = TrainConfig(data=DataConfig(train_files=["unused"], max_prompt_tokens=limit))
    assert [p.id for p in within_prompt_budget([short, long, medium], config, tokenizer)] == ["p0", "p2"]
    assert within_prompt_budget([short, long, medium], base, tokenizer) == [short, long, medium]


def test_a_budget_nothing_fits_is_a_config_error_naming_the_key():
    config = TrainConfig(data=DataConfig(train_files=["unused"], max_prompt_tokens=3))
    with pytest.raises(ConfigError, match="data.max_prompt_tokens=3"):
        within_prompt_budget(problems("What is 1+1?"), config, build_char_tokenizer())


def test_a_budget_below_one_is_refused_when_the_recipe_loads():
    with pytest.raises(ConfigError, match="max_prompt_tokens"):
        DataConfig(train_files=["x"], max_prompt_tokens=0)
