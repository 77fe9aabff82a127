"""The in-process transformers judge with tiny char-level models (noise output -> unparseable)."""
from __future__ import annotations

import asyncio

import pytest

from exprl.errors import JudgeError
from exprl.judge.backends.transformers_backend import TransformersBackend
from exprl.judge.service import build_judge
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeStatus
from exprl.tiny import build_char_tokenizer, build_tiny_model, save_tiny_model

REFERENCE = r"a = 12, b = 36, so \boxed{36}"


def requests(n):
    # Different lengths, so that a batch is left-padded and re-sorted by length inside the backend.
    return [JudgeRequest(problem="Start at 7. Add 5. Multiply by 3.", reference=REFERENCE,
                         trace="### 7 + 5 = 12\n" * (1 + i % 3) + f"\\boxed{{{30 + i}}}") for i in range(n)]


def tiny_backend(max_new_tokens: int, max_positions: int) -> TransformersBackend:
    """A backend over a fresh random tiny model whose context holds `max_positions` tokens."""
    tokenizer = build_char_tokenizer()
    return TransformersBackend(JudgeConfig(backend="transformers", model="tiny", max_new_tokens=max_new_tokens),
                               model=build_tiny_model(tokenizer, max_positions=max_positions), tokenizer=tokenizer)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-judge"), max_positions=4096)


def test_a_saved_model_judges_through_the_service_with_statuses(tiny_dir):
    config = JudgeConfig(backend="transformers", model=str(tiny_dir), max_new_tokens=8, concurrency=4,
                         cache_path="")
    with build_judge(config) as judge:
        results = judge.judge_sync(requests(5))
    assert len(results) == 5
    for result in results:
        # A random model writes noise: no score can be read, which must be said, never a zero.
        assert result.status in (JudgeStatus.OK, JudgeStatus.UNPARSEABLE)
        if result.status is JudgeStatus.UNPARSEABLE:
            assert result.score is None and result.reward is None and result.error
        else:
            assert result.score in range(1, 6)
    assert judge.name == f"transformers:{tiny_dir}"


@pytest.mark.slow
def test_batching_returns_the_same_results_in_input_order():
    import torch

    tokenizer = build_char_tokenizer()
    # float64: padding changes summation order; in double precision no greedy choice flips.
    model = build_tiny_model(tokenizer, max_positions=4096, seed=3).double()
    # With tied embeddings a random 2-layer model echoes its last input token (<|assistant|>,
    # decoded as ""); a random output head makes it write prompt-dependent characters instead.
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 4)
    one_by_one = TransformersBackend(JudgeConfig(backend="transformers", model="tiny", max_new_tokens=12,
                                                 concurrency=1), model=model, tokenizer=tokenizer)
    batched = TransformersBackend(JudgeConfig(backend="transformers", model="tiny", max_new_tokens=12,
                                              concurrency=4), model=model, tokenizer=tokenizer)
    # A random model averages its whole context; requests made mostly of different characters
    # (and of different lengths, so the batch is padded) are what tells its outputs apart.
    batch = [JudgeRequest(problem="Add.", reference=ch * (200 + 60 * i), trace=ch * (300 - 40 * i))
             for i, ch in enumerate("qZ7}%m")]
    single = [one_by_one.judge_all([r])[0].raw for r in batch]
    together = [r.raw for r in asyncio.run(batched.judge_batch(batch))]
    assert together == single
    assert len(set(single)) > 1  # the outputs tell the requests apart, so order is really checked


def test_the_event_loop_stays_free_while_the_model_generates():
    backend = tiny_backend(max_new_tokens=24, max_positions=4096)

    async def judge_while_ticking():
        ticks = 0
        task = asyncio.create_task(backend.judge_batch(requests(4)))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.001)
        return ticks, task.result()

    ticks, results = asyncio.run(judge_while_ticking())
    assert ticks > 1 and len(results) == 4


def test_a_prompt_longer_than_the_model_context_is_an_error_status():
    backend = tiny_backend(max_new_tokens=8, max_positions=512)
    [result] = backend.judge_all(requests(1))
    assert result.status is JudgeStatus.ERROR and "the model takes 512" in result.error


def test_configuration_errors_are_clear(tmp_path):
    with pytest.raises(JudgeError, match="cannot load the judge model"):
        TransformersBackend(JudgeConfig(backend="transformers", model=str(tmp_path / "absent")))
    with pytest.raises(JudgeError, match="GGUF judge model not found"):
        TransformersBackend(JudgeConfig(backend="transformers", model=str(tmp_path / "absent.gguf")))
    with pytest.raises(JudgeError, match="needs a model"):
        TransformersBackend(JudgeConfig(backend="transformers"))


@pytest.mark.slow
def test_the_smollm2_gguf_loads_dequantised_and_judges():
    backend = TransformersBackend(JudgeConfig(backend="transformers", model="smollm2", max_new_tokens=16))
    assert not getattr(backend.model, "is_quantized", False)
    [result] = backend.judge_all(requests(1))
    assert result.status in (JudgeStatus.OK, JudgeStatus.UNPARSEABLE) and result.raw.strip()
