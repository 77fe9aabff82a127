"""Rubrics written by a real LLM (SmolLM2-135M on llama.cpp) through the openai rubric builder."""
from __future__ import annotations

import pytest

from exprl.data.synthetic import SyntheticTaskConfig, generate
from exprl.judge.rubrics import OpenAIRubricBuilder, build_rubrics, load_rubrics
from exprl.judge.types import JudgeConfig

pytestmark = [pytest.mark.llama_server, pytest.mark.slow]


def test_llm_rubric_is_stored_with_the_known_answer_last_or_reported_failed(llama_judge_server, tmp_path):
    [problem] = generate(SyntheticTaskConfig(num_problems=1, min_steps=3, max_steps=3, seed=2))
    config = JudgeConfig(backend="openai", base_urls=[llama_judge_server.base_url],
                         model=llama_judge_server.model_id(), json_mode=True, max_new_tokens=64,
                         timeout_s=120, max_retries=0)
    builder = OpenAIRubricBuilder(config)
    store = tmp_path / "rubrics.jsonl"
    summary = build_rubrics([problem], store, builder)
    assert summary.built + summary.failed == 1
    rubrics = load_rubrics(store)
    if summary.built:
        checkpoints = rubrics[problem.id]
        assert checkpoints[-1] == problem.answer and 1 <= len(checkpoints) <= 6
    else:
        assert rubrics == {}
