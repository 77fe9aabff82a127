"""The static KV cache of HF generate (SamplingConfig.cache_implementation) samples what the dynamic one does."""
from __future__ import annotations

import json

import pytest

from exprl.cli import main
from exprl.errors import ConfigError
from exprl.eval import evaluate
from exprl.eval.generate import resolve_cache_implementation


@pytest.fixture(scope="module")
def varied_model(tmp_path_factory):
    """A tiny Llama from config whose greedy output is varied text. The shared tiny model ties its
    embeddings, so greedy decoding repeats the prompt's last (special) token and decodes to ''."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from exprl.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False, initializer_range=0.2, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    path = tmp_path_factory.mktemp("varied") / "model"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _problems(tmp_path):
    # Prompts of different lengths, and a last batch smaller than the first: left padding is
    # exercised and the static cache is rebuilt for a new shape.
    data = tmp_path / "sums.jsonl"
    data.write_text("".join(json.dumps({"id": f"s{i}", "problem": "Add " + " and ".join(map(str, range(i + 2))) + ".",
                                        "answer": str(sum(range(i + 2)))}) + "\n" for i in range(5)))
    return data


@pytest.fixture()
def static_caches(monkeypatch):
    """How many static caches transformers builds (the cache a static `generate` decodes into)."""
    from transformers.cache_utils import StaticCache

    built = []
    real_init = StaticCache.__init__

    def init(self, *args, **kwargs):
        built.append(kwargs.get("max_cache_len"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(StaticCache, "__init__", init)
    return built


def _greedy_traces(model, data, out, cache_implementation):
    evaluate(model, [str(data)], out_dir=out, n=1, temperature=0.0, max_tokens=12, batch_size=3,
             system_prompt=None, traces=True, cache_implementation=cache_implementation)
    rows = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    return {row["id"]: (row["trace"], row["finish_reason"]) for row in rows}


def test_static_and_dynamic_cache_give_the_same_greedy_samples(varied_model, tmp_path, static_caches):
    data = _problems(tmp_path)
    dynamic = _greedy_traces(varied_model, data, tmp_path / "dynamic", "dynamic")
    assert static_caches == []
    # On a CPU, auto is the dynamic cache: transformers compiles nothing there.
    assert _greedy_traces(varied_model, data, tmp_path / "auto", "auto") == dynamic and static_caches == []
    static = _greedy_traces(varied_model, data, tmp_path / "static", "static")
    assert len(static_caches) == 2  # one per generate call (batches of 3, then 2)
    assert len(dynamic) == 5 and len({trace for trace, _ in dynamic.values()}) == 5
    assert static == dynamic


def test_auto_is_static_on_a_gpu_and_unknown_values_are_refused(tiny_model, tmp_path):
    assert resolve_cache_implementation("auto", "cuda") == "static"
    assert resolve_cache_implementation("auto", "cuda:1") == "static"
    assert resolve_cache_implementation("auto", "cpu") == "dynamic"
    assert resolve_cache_implementation("dynamic", "cuda") == "dynamic"
    with pytest.raises(ConfigError, match="cache_implementation must be one of auto, dynamic, static, got 'paged'"):
        resolve_cache_implementation("paged", "cpu")
    with pytest.raises(ConfigError, match="eval: cache_implementation must be one of auto, dynamic, static"):
        evaluate(tiny_model, [str(_problems(tmp_path))], out_dir=tmp_path / "e", cache_implementation="offloaded")


def test_the_cache_is_not_a_sampling_setting_an_eval_dir_is_tied_to(tiny_model, tmp_path, static_caches):
    data, out = _problems(tmp_path), tmp_path / "e"
    common = ["eval", "--model", str(tiny_model), "--bench", str(data), "--n", "1", "--max-tokens", "4",
              "--temperature", "0", "--out", str(out)]
    assert main([*common, "--cache-implementation", "dynamic"]) == 0
    first = json.loads((out / "sums.json").read_text())
    # The other cache resumes the same folder, and every sample is already there: nothing is generated.
    assert main([*common, "--cache-implementation", "static"]) == 0
    assert static_caches == []
    assert json.loads((out / "sums.json").read_text())["problems"] == first["problems"]
