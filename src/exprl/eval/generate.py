"""Sampling completions from a checkpoint: HF `generate` (CPU or one GPU) or vLLM when installed.

Prompts are built only by `exprl.data.prompts.policy_messages` from the bare problem text, so the
reference solution has no way into the policy's input. A generator takes chat conversations and one
seed per request and returns one `Generation` per request; `evaluate` decides which (problem, sample)
pairs still need generating, so generators know nothing about caching.
"""
from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from exprl.data.prompts import POLICY_TEMPERATURE
from exprl.errors import ConfigError
from exprl.eval.config import CACHE_IMPLEMENTATIONS, ENGINES
from exprl.eval.store import Generation

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Whole-file hashing is exact but slow for multi-GB shards; past this size head, middle and tail are
# hashed with the size, which still changes whenever training changes the weights.
_FULL_HASH_LIMIT = 256 * 2**20
_SAMPLE_BYTES = 4 * 2**20


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = POLICY_TEMPERATURE
    top_p: float = 1.0
    max_new_tokens: int = 1024
    system_prompt: str | None = None

    def key_material(self) -> dict:
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "system_prompt": self.system_prompt}


class Generator(Protocol):
    """Anything that samples one completion per (conversation, seed)."""

    def generate(self, conversations: Sequence[list[dict[str, str]]], seeds: Sequence[int]) -> list[Generation]:
        ...


def resolve_model(model: str | Path) -> str:
    """A local checkpoint folder (must exist and hold a config.json) or a hub id `org/name`."""
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"checkpoint {path} has no config.json: not a model folder")
        return str(path.resolve())
    if _HUB_ID.match(text) and not text.startswith((".", "~")):
        return text
    raise ConfigError(f"checkpoint not found: {text} (no such folder, and not a hub id like org/name)")


def model_fingerprint(model: str) -> str:
    """Content hash of a local checkpoint (config, tokenizer, weights); the id itself for a hub model."""
    path = Path(model)
    digest = hashlib.sha256()
    if not path.is_dir():
        digest.update(f"hub:{model}".encode())
        return digest.hexdigest()[:16]
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if file.suffix not in (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja"):
            continue  # optimizer states, logs and trainer bookkeeping do not change what it generates
        if file.name in ("trainer_state.json", "training_args.bin"):
            continue
        digest.update(str(file.relative_to(path)).encode())
        size = file.stat().st_size
        digest.update(str(size).encode())
        with file.open("rb") as handle:
            if size <= _FULL_HASH_LIMIT:
                for block in iter(lambda: handle.read(2**20), b""):
                    digest.update(block)
            else:
                for offset in (0, size // 2, size - _SAMPLE_BYTES):
                    handle.seek(offset)
                    digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def generation_key(fingerprint: str, settings: SamplingSettings) -> str:
    material = json.dumps({"model": fingerprint, **settings.key_material()}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def sample_seed(seed: int, benchmark: str, problem_id: str, sample_index: int) -> int:
    """A per-sample seed that does not depend on how requests happen to be batched."""
    return zlib.crc32(f"{seed}:{benchmark}:{problem_id}:{sample_index}".encode())


class HFGenerator:
    """Batched sampling with `transformers` `generate`, left-padded, on CPU or the first GPU.

    HF samples a whole batch from one RNG, so the batch is seeded from its requests' seeds: the same
    requests in the same batch reproduce exactly.

    `cache_implementation` (exprl.eval.config.SamplingConfig): with `static`, transformers sizes the
    cache for the batch's prompt + max_new_tokens and, on a GPU, compiles the decoding step on the
    first call; a later batch that is larger, or longer than any before, makes a new cache, and
    transformers may compile again for its shape (a fixed shape was measured, not an eval's mix).
    """

    def __init__(self, model: str, settings: SamplingSettings, batch_size: int = 8, device: str | None = None,
                 cache_implementation: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.settings, self.batch_size = settings, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cache_implementation = resolve_cache_implementation(cache_implementation, self.device)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device)
        except OSError as exc:
            raise ConfigError(f"cannot load model '{model}': {exc}") from exc
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        stop = self.model.generation_config.eos_token_id
        stop_ids = stop if isinstance(stop, list) else [stop]
        self.stop_ids = {i for i in stop_ids + [self.tokenizer.eos_token_id] if i is not None}

    def render(self, conversation: list[dict[str, str]]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        # A base model without a chat template reads the turns as plain paragraphs.
        return "\n\n".join(m["content"].strip() for m in conversation) + "\n\n"

    def generate(self, conversations, seeds):
        out: list[Generation] = []
        for start in range(0, len(conversations), self.batch_size):
            out.extend(self._generate_batch(conversations[start:start + self.batch_size],
                                            seeds[start:start + self.batch_size]))
        return out

    def _generate_batch(self, conversations, seeds):
        import torch

        texts = [self.render(c) for c in conversations]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        torch.manual_seed(zlib.crc32(",".join(map(str, seeds)).encode()))
        sample = self.settings.temperature > 0
        sampling = {"do_sample": True, "temperature": self.settings.temperature,
                    "top_p": self.settings.top_p} if sample else {"do_sample": False}
        with torch.no_grad():
            output = self.model.generate(**encoded, max_new_tokens=self.settings.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id,
                                         cache_implementation=self.cache_implementation, **sampling)
        new_tokens = output[:, encoded["input_ids"].shape[1]:].tolist()
        results = []
        for row in new_tokens:
            end = next((i for i, tok in enumerate(row) if tok in self.stop_ids), None)
            kept = row if end is None else row[:end]
            results.append(Generation(
                text=self.tokenizer.decode(kept, skip_special_tokens=True),
                num_tokens=len(kept) + (0 if end is None else 1),
                finish_reason="length" if end is None else "stop"))
        return results


class VLLMGenerator:
    """vLLM offline engine (GPU machines only; the `gpu` extra). One SamplingParams per request so
    that repeated prompts get distinct, reproducible samples."""

    def __init__(self, model: str, settings: SamplingSettings, tensor_parallel_size: int = 1):
        from vllm import LLM, SamplingParams

        self._params = SamplingParams
        self.settings = settings
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size)

    def generate(self, conversations, seeds):
        params = [self._params(temperature=self.settings.temperature, top_p=self.settings.top_p,
                               max_tokens=self.settings.max_new_tokens, seed=seed) for seed in seeds]
        outputs = self.llm.chat(list(conversations), params, use_tqdm=False)
        return [Generation(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason or "stop")
                for o in outputs]


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def make_generator(model: str, settings: SamplingSettings, engine: str = "auto", batch_size: int = 8,
                   cache_implementation: str = "auto") -> Generator:
    """`hf`, `vllm`, or `auto` (vLLM when it is installed and a GPU is present, else HF).
    `cache_implementation` is HF generate's (vLLM manages its own cache)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "vllm" or (engine == "auto" and vllm_available() and _has_gpu()):
        if not vllm_available():
            raise ConfigError("engine 'vllm' requested but vllm is not installed (pip install 'exprl[gpu]')")
        return VLLMGenerator(model, settings)
    return HFGenerator(model, settings, batch_size=batch_size, cache_implementation=cache_implementation)


def resolve_cache_implementation(requested: str, device: str) -> str:
    """`auto` is static on a GPU, where transformers compiles the decoding step over a static cache
    (3x dynamic's tokens/s measured on an H100, docs/architecture.md), and dynamic on a CPU, where
    nothing is compiled and a static cache would only add attention over its empty slots."""
    if requested not in CACHE_IMPLEMENTATIONS:
        raise ConfigError(f"cache_implementation must be one of {', '.join(CACHE_IMPLEMENTATIONS)}, got {requested!r}")
    if requested == "auto":
        return "static" if device.startswith("cuda") else "dynamic"
    return requested


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
