"""Pre-training the demo's base model: a tiny Llama taught the easy split by exprl itself.

The base model learns the *policy style* (`### 7 + 5 = 12` steps, then `\\boxed{}`) from generated
easy problems only, never from references, so the references stay stylistically foreign to it, as
human solutions are to an LLM. It sees the exact chat prompt the policy sees in training and
evaluation (`exprl.data.prompts.policy_messages`), so nothing downstream needs a special case.

The loop is plain torch: on 2 CPU cores a hand-written loop over pre-tokenised batches is several
times faster than a trainer's per-step machinery. It stops once the base solves most held-out easy
problems greedily (2-5 minutes on 2 cores), so every seed starts the demo from a competent base.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from exprl.data.prompts import POLICY_SYSTEM_PROMPT, policy_messages
from exprl.data.synthetic import TOKEN_WORDS, SyntheticTaskConfig, generate, policy_trace, slipped_trace
from exprl.errors import ConfigError

DONE_FILE = "base_done.json"


@dataclass
class BaseModelConfig:
    """The tiny base model and its pre-training on the easy split."""

    hidden_size: int = field(default=128, metadata={"range": "[1, inf)", "help": "Width of the tiny Llama."})
    num_layers: int = field(default=2, metadata={"range": "[1, inf)", "help": "Transformer layers."})
    num_heads: int = field(default=4, metadata={"range": "[1, inf)", "help": "Attention heads."})
    max_positions: int = field(default=512, metadata={
        "range": "[1, inf)", "help": "Longest sequence the model can see."})
    num_problems: int = field(default=20000, metadata={
        "range": "[1, inf)", "help": "Easy problems generated for pre-training."})
    steps: int = field(default=4200, metadata={"range": "[1, inf)",
        "help": "Most optimiser steps (the cosine schedule spans them); pre-training usually stops "
                "earlier, at `target_easy_greedy`."})
    target_easy_greedy: float = field(default=0.9, metadata={"range": "[0, 1]",
        "help": "Stop once the base solves this share of held-out easy problems greedily (checked every "
                "`check_every` steps); 0 always trains all `steps`. The task needs a base that solves easy "
                "problems, and when a tiny model gets there varies with the seed and even the hardware "
                "(the loss drops in sudden phases): a fixed step count left some bases at 37% "
                "(docs/architecture.md)."})
    check_every: int = field(default=300, metadata={"range": "[1, inf)", "help": "Steps between competence checks."})
    check_problems: int = field(default=32, metadata={"range": "[1, inf)",
        "help": "Held-out easy problems of each competence check (a split of their own)."})
    batch_size: int = field(default=32, metadata={"range": "[1, inf)", "help": "Sequences per step."})
    learning_rate: float = field(default=3e-3, metadata={
        "range": "(0, inf)", "help": "Peak AdamW learning rate (cosine decay)."})
    warmup_steps: int = field(default=30, metadata={"range": "[0, inf)", "help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.01, metadata={"range": "[0, inf)", "help": "AdamW weight decay."})
    seed: int = field(default=0, metadata={
        "range": "[0, 4294967295]", "help": "Seed of the model init, the data and the batch order."})
    whole_numbers: bool = field(default=True, metadata={
        "help": "One token per number below min(modulus, 100), as LLM tokenizers keep short numbers "
                "whole. Each step is then a lookup the base model learns in a minute; with digit "
                "tokens it spends that minute on carries, and the task's difficulty must come from "
                "chain length, not digit arithmetic."})
    word_tokens: bool = field(default=True, metadata={
        "help": "One token per word piece of the task (`Start at `, `Subtract `, `### `, ` = `, ...), as "
                "an LLM's vocabulary has: sequences are about 2.4x shorter, so each pre-training step "
                "costs less and the model copies numbers from fewer positions back."})
    slip_rate: float = field(default=0.0, metadata={"range": "[0, 1)",
        "help": "Share of pre-training steps whose result is off by one, the trace going on from the slipped "
                "value (exprl.data.synthetic.slipped_trace): a base that has every step's skill but slips "
                "at every position, so that a long chain fails by compounding (issue 24's machinery "
                "check). 0: clean traces."})
    device: str = field(default="auto", metadata={
        "help": "Where to pre-train: cpu, cuda, or auto (the first GPU when there is one)."})

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_problems", "steps", "batch_size",
                     "check_every", "check_problems"):
            if getattr(self, name) < 1:
                raise ConfigError(f"base.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.slip_rate < 1.0:
            raise ConfigError(f"base.slip_rate must be in [0, 1), got {self.slip_rate}")
        if not 0.0 <= self.target_easy_greedy <= 1.0:
            raise ConfigError(f"base.target_easy_greedy must be in [0, 1], got {self.target_easy_greedy}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"base.device must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"base.hidden_size ({self.hidden_size}) must be a multiple of "
                              f"base.num_heads ({self.num_heads})")


def cache_key(base: BaseModelConfig, tasks: Sequence[SyntheticTaskConfig], system_prompt: str | None) -> str:
    """Everything the trained weights depend on; a changed field trains a new base model."""
    fields = asdict(base)
    if not base.slip_rate:
        del fields["slip_rate"]  # clean traces: the key bases had before slips existed, so their caches stay valid
    payload = json.dumps({"base": fields, "tasks": [asdict(t) for t in tasks],
                          "system_prompt": system_prompt, "words": TOKEN_WORDS if base.word_tokens else [],
                          "format": 4}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pretrain_base(base: BaseModelConfig, tasks: Sequence[SyntheticTaskConfig], cache_dir: str | Path,
                  system_prompt: str | None = POLICY_SYSTEM_PROMPT, log: Callable[[str], None] = print) -> Path:
    """Train (or reuse) the base model; returns its HF model folder under `cache_dir`.

    `tasks` are the generated splits the base learns from (each gives `num_problems` traces); the
    first is the easy split, from which the competence checks draw held-out problems. `system_prompt`
    must be the one training and evaluation will use (policy_messages), since the base model only
    knows the prompts it saw. The folder is named by `cache_key`, and a finished run leaves
    `base_done.json` (with the competence checks), so an interrupted run retrains and a finished one
    is reused.
    """
    out = Path(cache_dir) / f"base-{cache_key(base, tasks, system_prompt)}"
    if (out / DONE_FILE).is_file():
        log(f"base model: reusing {out}")
        return out

    import torch

    from exprl.tiny import build_char_tokenizer, build_tiny_model

    started = time.monotonic()
    modulus = max(t.modulus for t in tasks)
    tokenizer = build_char_tokenizer(number_tokens=min(modulus, 100) if base.whole_numbers else 0,
                                     words=TOKEN_WORDS if base.word_tokens else ())
    model = build_tiny_model(tokenizer, hidden_size=base.hidden_size, num_layers=base.num_layers,
                             num_heads=base.num_heads, max_positions=base.max_positions, seed=base.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if base.device == "auto" else base.device
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    problems = [p for task in tasks for p in generate(task)]
    check = generate(replace(tasks[0], split=f"{tasks[0].split}-check", num_problems=base.check_problems),
                     exclude={p.problem for p in problems})
    # Logged, never a stopping rule: how well the base reads the operations of the longest chains it
    # learns from (the skill hard problems need beyond easy ones).
    long_check = generate(replace(tasks[-1], split=f"{tasks[-1].split}-check", num_problems=base.check_problems),
                          exclude={p.problem for p in problems}) if len(tasks) > 1 and tasks[-1].num_problems else []
    slips = random.Random(f"{base.seed}:slips")
    examples = [_encode(tokenizer, p.problem, slipped_trace(p, base.slip_rate, slips) if base.slip_rate
                        else policy_trace(p), system_prompt) for p in problems]
    too_long = max(len(ids) for ids, _ in examples)
    if too_long > base.max_positions:
        raise ConfigError(f"base.max_positions={base.max_positions} is shorter than the longest "
                          f"pre-training sequence ({too_long} tokens)")
    log(f"base model: {n_params / 1e6:.2f}M parameters, pre-training at most {base.steps} steps on "
        f"{len(examples)} policy-style traces ({_describe(tasks)}), until it solves "
        f"{base.target_easy_greedy:.0%} of {len(check)} held-out easy problems greedily")

    torch.manual_seed(base.seed)
    order = random.Random(base.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=base.learning_rate,
                                  weight_decay=base.weight_decay, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, base))
    model.train()
    running, checks = None, []
    batches = _length_grouped_batches(examples, base.batch_size, order)
    for step in range(base.steps):
        batch = next(batches)
        input_ids, attention, labels = (t.to(device) for t in _collate(batch, tokenizer.pad_token_id))
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if (step + 1) % base.check_every == 0 or step + 1 == base.steps:
            solved = easy_greedy_accuracy(model, tokenizer, check, system_prompt)
            checks.append({"step": step + 1, "loss": round(running, 4), "easy_greedy": solved})
            reading = ""
            if long_check:
                checks[-1]["long_operations_read"] = long_operations_read(model, tokenizer, long_check, system_prompt)
                reading = f"; reads {checks[-1]['long_operations_read']:.0%} of long chains' operations right"
            log(f"base model: step {step + 1}/{base.steps} loss {running:.3f}, solves {solved:.0%} of "
                f"held-out easy problems greedily{reading} ({time.monotonic() - started:.0f}s)")
            if base.target_easy_greedy and solved >= base.target_easy_greedy:
                break

    model.eval()
    model.to("cpu")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / DONE_FILE).write_text(json.dumps({
        "system_prompt": system_prompt, "key": cache_key(base, tasks, system_prompt), "base": asdict(base), "tasks": [asdict(t) for t in tasks],
        "parameters": n_params, "final_loss": running, "steps_trained": step + 1, "checks": checks,
        "seconds": round(time.monotonic() - started, 1),
    }, indent=2))
    return out


def easy_greedy_accuracy(model, tokenizer, problems, system_prompt: str | None) -> float:
    """Share of `problems` whose greedy completion boxes the right answer (`model` stays in train mode)."""
    from exprl.data.answers import last_boxed

    texts = _greedy_texts(model, tokenizer, problems, system_prompt, max_new_tokens=96)
    return sum(last_boxed(text) == p.answer for text, p in zip(texts, problems)) / max(1, len(problems))


def long_operations_read(model, tokenizer, problems, system_prompt: str | None) -> float:
    """Share of the `###` steps of greedy completions that copy their operation and operand right."""
    from exprl.data.synthetic import check_steps

    longest = max(len(p.meta["ops"]) for p in problems)
    texts = _greedy_texts(model, tokenizer, problems, system_prompt, max_new_tokens=10 * longest + 8)
    checks = [c for text, p in zip(texts, problems) for c in check_steps(p, text)]
    return sum(c.operation for c in checks) / max(1, len(checks))


def _greedy_texts(model, tokenizer, problems, system_prompt: str | None, max_new_tokens: int) -> list[str]:
    import torch

    prompts = [tokenizer.apply_chat_template(policy_messages(p.problem, system_prompt), add_generation_prompt=True,
                                             tokenize=False) for p in problems]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    model.eval()
    with torch.no_grad():
        output = model.generate(**encoded, do_sample=False, max_new_tokens=max_new_tokens,
                                pad_token_id=tokenizer.pad_token_id)
    model.train()
    return tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)


def _encode(tokenizer, problem_text: str, completion: str, system_prompt: str | None) -> tuple[list[int], int]:
    """Token ids of prompt + completion + end marker, and where the completion starts."""
    prompt = tokenizer.apply_chat_template(policy_messages(problem_text, system_prompt), add_generation_prompt=True,
                                           tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion + "<|end|>", add_special_tokens=False)["input_ids"]
    return prompt_ids + completion_ids, len(prompt_ids)


def _length_grouped_batches(examples: list[tuple[list[int], int]], batch_size: int, order: random.Random):
    """Endless random batches of examples of similar length.

    A batch is padded to its longest sequence, and with a share of long (hard-length) traces a random
    batch nearly always holds one: most of every step was padding. So draw a pool of
    `_POOL_BATCHES` batches' worth at random, sort it by length, cut it into batches and shuffle those.
    """
    size = min(batch_size, len(examples))
    while True:
        pool = sorted(order.sample(examples, min(len(examples), size * _POOL_BATCHES)), key=lambda e: len(e[0]))
        chunks = [pool[i:i + size] for i in range(0, len(pool) - size + 1, size)]
        order.shuffle(chunks)
        yield from chunks


_POOL_BATCHES = 16


def _collate(batch: list[tuple[list[int], int]], pad_id: int):
    """Right-padded tensors; the loss covers the completion only (the prompt is given, not learnt)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(batch):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention[row, :len(ids)] = 1
        labels[row, prompt_len:len(ids)] = torch.tensor(ids[prompt_len:])
    return input_ids, attention, labels


def _describe(tasks: Sequence[SyntheticTaskConfig]) -> str:
    return ", ".join(f"{t.num_problems} of {t.min_steps}-{t.max_steps} steps" for t in tasks)


def _lr_factor(step: int, base: BaseModelConfig) -> float:
    if step < base.warmup_steps:
        return (step + 1) / base.warmup_steps
    progress = (step - base.warmup_steps) / max(1, base.steps - base.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
