"""A frozen in-process Hugging Face model as the judge (the paper's "frozen copy of the base model").

Batched greedy generation with left padding under `torch.no_grad` in eval mode, prompts from
`exprl.judge.prompts` through the model's chat template, scores from `exprl.judge.parsing`. The
model runs in a worker thread so the caller's event loop stays free, one batch at a time (a lock:
two generate calls on one CPU model only slow each other down).

`config.model` is a model folder or hub id, a `.gguf` file (loaded through transformers' GGUF
reader and dequantised, since a model left quantised is refused by save/training code), or
"smollm2" for the bundled SmolLM2-135M GGUF. The judgments it works on at once (`judge.concurrency`)
are the rows of one generation batch, so that is also its `requests_per_call`.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Sequence

from exprl.errors import JudgeError
from exprl.judge.backends import ThreadedBackend
from exprl.judge.parsing import parse_score, unreadable
from exprl.judge.prompts import PromptStyle, build_prompt, trace_char_budget
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus
from exprl.weights import resolve_judge_model


def load_judge_model(model: str) -> tuple[Any, Any]:
    """(model, tokenizer) for a folder, hub id, `.gguf` file or "smollm2"; frozen and in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = resolve_judge_model(model)
    try:
        if model.lower().endswith(".gguf"):
            from transformers import GgufConfig

            path = Path(model)
            if not path.is_file():
                raise JudgeError(f"GGUF judge model not found: {path}")
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            loaded = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, quantization_config=GgufConfig(dequantize=True))
        else:
            tokenizer = AutoTokenizer.from_pretrained(model)
            loaded = AutoModelForCausalLM.from_pretrained(model, dtype="auto")
    except (OSError, ValueError) as exc:
        raise JudgeError(f"cannot load the judge model '{model}': {exc}") from exc
    import torch

    if torch.cuda.is_available():
        loaded = loaded.to("cuda")
    return loaded, tokenizer


class TransformersBackend(ThreadedBackend):
    """`Backend` generating judgments with an in-process model. `name` is "transformers:<model>"."""

    def __init__(self, config: JudgeConfig, *, model: Any = None, tokenizer: Any = None):
        if (model is None) != (tokenizer is None):
            raise JudgeError("pass both a model and its tokenizer, or neither (then config.model is loaded)")
        if model is None:
            if not config.model:
                raise JudgeError("the transformers judge backend needs a model (judge.model / --model)")
            model, tokenizer = load_judge_model(config.model)
        if not getattr(tokenizer, "chat_template", None):
            raise JudgeError(f"the judge model '{config.model}' has no chat template")
        if config.concurrency < 1 or config.max_new_tokens < 1:
            raise JudgeError("judge.concurrency (the generation batch size) and judge.max_new_tokens must be >= 1")
        model.eval()
        model.requires_grad_(False)
        tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.config, self.model, self.tokenizer = config, model, tokenizer
        self.name = f"transformers:{config.model or type(model).__name__}"
        self.style = PromptStyle.of(config)
        self.requests_per_call = config.concurrency  # one call = one generation batch
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self._lock = threading.Lock()

    def judge_all(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        results: list[JudgeResult | None] = [None] * len(requests)
        pending: list[tuple[int, list[int], bool]] = []  # (index, prompt ids, trace was cut)
        limit = None if self.max_positions is None else self.max_positions - self.config.max_new_tokens
        for index, request in enumerate(requests):
            try:
                prompt = build_prompt(request, self.style,
                                      max_trace_chars=trace_char_budget(self.config.max_trace_tokens))
            except ValueError as exc:
                results[index] = JudgeResult(score=None, status=JudgeStatus.ERROR, error=str(exc))
                continue
            ids = self.tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding
                ids = ids["input_ids"]
            if limit is not None and len(ids) > limit:
                results[index] = JudgeResult(
                    score=None, status=JudgeStatus.ERROR, truncated=prompt.truncated,
                    error=f"the judge prompt has {len(ids)} tokens; the model takes {self.max_positions} "
                          f"including {self.config.max_new_tokens} new ones (lower judge.max_trace_tokens)")
                continue
            pending.append((index, list(ids), prompt.truncated))
        # Similar lengths together: less padding to compute over.
        pending.sort(key=lambda item: len(item[1]))
        for start in range(0, len(pending), self.requests_per_call):
            batch = pending[start:start + self.requests_per_call]
            for (index, _, truncated), result in zip(batch, self._generate(batch)):
                result.truncated = truncated
                results[index] = result
        return [r for r in results if r is not None]

    def _generate(self, batch: list[tuple[int, list[int], bool]]) -> list[JudgeResult]:
        import torch

        started = time.perf_counter()
        width = max(len(ids) for _, ids, _ in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for _, ids, _ in batch])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for _, ids, _ in batch])
        sampling = self.config.temperature > 0
        try:
            with self._lock, torch.no_grad():
                output = self.model.generate(
                    input_ids=input_ids.to(self.model.device), attention_mask=attention.to(self.model.device),
                    max_new_tokens=self.config.max_new_tokens, do_sample=sampling,
                    temperature=self.config.temperature if sampling else None, top_p=None, top_k=None,
                    pad_token_id=pad)
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: the batch fails, not the caller
            error = f"generation failed: {type(exc).__name__}: {exc}"
            return [JudgeResult(score=None, status=JudgeStatus.ERROR, error=error) for _ in batch]
        latency = (time.perf_counter() - started) / len(batch)
        texts = self.tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        results = []
        for text in texts:
            score = parse_score(text, json_mode=self.config.json_mode, rule=self.config.score_parsing)
            if score is None:
                results.append(JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw=text, latency_s=latency,
                                           error=unreadable(self.config.score_parsing)))
            else:
                results.append(JudgeResult(score=score, status=JudgeStatus.OK, raw=text, latency_s=latency))
        return results
