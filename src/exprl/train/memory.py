"""What one GPU holds while a stage trains: a memory plan per GPU, before any model loads.

`memory_plan(...)` adds up, per GPU, for the strategy the stage launches with (plain DDP, FSDP2,
DeepSpeed ZeRO-2/3): the policy's parameters, gradients and optimiser states, the frozen reference
(or self-distillation teacher), the activations of the longest sequence, vLLM's share of a colocated
rollout engine and a runtime allowance, and compares the peak with the GPU's memory.

Where an estimator exists its arithmetic is the one used, and the plan names it:
- plain DDP: accelerate's `accelerate estimate-memory` (`accelerate.commands.estimate.
  estimate_training_usage`): a model held in float32 trained under bf16 autocast takes 4 (weights)
  + 6 (gradients: float32 plus the bf16 GEMM copy) + 8 (AdamW moments) bytes a parameter;
- ZeRO-2/3: DeepSpeed's `estimate_zero2_model_states_mem_needs` (4P + 16P/W without offload) and
  `estimate_zero3_model_states_mem_needs` (4 x largest layer + 18P/W), `deepspeed/runtime/zero/`.
Neither is imported (each would pull torch and transformers into a plan that answers in a second);
`tests/train/test_memory.py` checks the DDP figures against accelerate's function. What they do not
cover is written out as a formula in the plan itself: FSDP2 (sharded float32 master weights,
gradients and moments, plus two gathered layers), the reference, activations and vLLM.

The model's shape comes from its config.json (a local folder or the Hugging Face cache), else from
`KNOWN_SHAPES` (the paper's models, from their published config.json), else the plan says it cannot
estimate. Figures are estimates for planning: the GPU acceptance benchmark
(benchmarks/gpu_acceptance.py) prints measured peaks next to them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

GIB = 2 ** 30
RUNTIME_ALLOWANCE_GIB = 2.0
"""CUDA context (about 0.5 GiB), NCCL buffers and the caching allocator's fragmentation: an
allowance, not a measurement."""
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's dimensions (the config.json fields of Llama/Qwen families)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    attention_bias: bool = False
    qk_norm: bool = False   # Qwen3 normalises queries and keys per head

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> "ModelShape":
        heads = raw["num_attention_heads"]
        return cls(hidden_size=raw["hidden_size"], intermediate_size=raw["intermediate_size"],
                   num_hidden_layers=raw["num_hidden_layers"], num_attention_heads=heads,
                   num_key_value_heads=raw.get("num_key_value_heads") or heads,
                   head_dim=raw.get("head_dim") or raw["hidden_size"] // heads, vocab_size=raw["vocab_size"],
                   tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                   attention_bias=bool(raw.get("attention_bias", False)),
                   qk_norm=str(raw.get("model_type", "")).startswith("qwen3"))

    @property
    def layer_params(self) -> int:
        h, q, kv = self.hidden_size, self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.attention_bias else 0)
        norms = 2 * h + (2 * self.head_dim if self.qk_norm else 0)
        return attention + 3 * h * self.intermediate_size + norms

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.embedding_params + self.num_hidden_layers * self.layer_params + self.hidden_size + head

    @property
    def largest_layer(self) -> int:
        """The largest module's parameters: what ZeRO-3 and FSDP gather at once."""
        return max(self.embedding_params, self.layer_params)

    def token_activations(self) -> int:
        """Tensors one decoder layer keeps per token for its backward pass, in elements, with SDPA/flash
        attention (no sequence-squared term): two norm outputs and two residual inputs (4h), queries and
        attention output (2 x heads x head_dim), keys and values (2 x kv_heads x head_dim), and the
        SwiGLU's gate, up, activation and product (4 x intermediate)."""
        q, kv = self.num_attention_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        return 4 * self.hidden_size + 2 * q + 2 * kv + 4 * self.intermediate_size


# The paper's models (their published config.json), so that a plan needs neither the hub nor a download.
_QWEN3 = dict(num_key_value_heads=8, head_dim=128, vocab_size=151936, qk_norm=True)
KNOWN_SHAPES: dict[str, ModelShape] = {
    "Qwen/Qwen3-4B-Instruct-2507": ModelShape(2560, 9728, 36, 32, tie_word_embeddings=True, **_QWEN3),
    "Qwen/Qwen3-4B": ModelShape(2560, 9728, 36, 32, tie_word_embeddings=True, **_QWEN3),
    "Qwen/Qwen3-8B": ModelShape(4096, 12288, 36, 32, tie_word_embeddings=False, **_QWEN3),
    "Qwen/Qwen3-0.6B": ModelShape(1024, 3072, 28, 16, tie_word_embeddings=True, **_QWEN3),
    "smollm2-135m": ModelShape(576, 1536, 30, 9, 3, 64, 49152, tie_word_embeddings=True),
}


def model_shape(model: str) -> tuple[ModelShape | None, str]:
    """The shape of `model` and where it was read, or (None, why not)."""
    folder = Path(model).expanduser()
    candidates = [folder / "config.json"] if folder.is_dir() else []
    if "/" in model and not folder.exists():
        hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", "~/.cache/huggingface")) / "hub")
        snapshots = hub.expanduser() / f"models--{model.replace('/', '--')}" / "snapshots"
        candidates += sorted(snapshots.glob("*/config.json")) if snapshots.is_dir() else []
    for path in candidates:
        if path.is_file():
            try:
                return ModelShape.from_config(json.loads(path.read_text(encoding="utf-8"))), str(path)
            except (KeyError, TypeError, ValueError):
                continue
    if model in KNOWN_SHAPES:
        return KNOWN_SHAPES[model], "exprl.train.memory.KNOWN_SHAPES (its published config.json)"
    if model == "tiny":
        return None, "a fresh tiny model written into the run (a few MiB)"
    return None, (f"no config.json for {model!r} at hand (a local folder or the Hugging Face cache); set "
                  f"launch.architecture to a model of the same shape")


# ----------------------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Strategy:
    """How accelerate spreads the model states over the processes (read from its config file)."""

    name: str                    # ddp, fsdp2, fsdp1, zero2, zero3
    mixed_precision: str = "bf16"
    offload_optimizer: bool = False
    offload_params: bool = False

    @property
    def shards_params(self) -> bool:
        return self.name in ("fsdp1", "fsdp2", "zero3")


def strategy_from_accelerate_config(raw: dict[str, Any]) -> Strategy:
    """The strategy an accelerate config file launches (its `distributed_type` and plugin sections)."""
    kind = str(raw.get("distributed_type", "NO")).upper()
    precision = str(raw.get("mixed_precision", "no"))
    if kind == "FSDP":
        fsdp = raw.get("fsdp_config") or {}
        return Strategy(f"fsdp{int(fsdp.get('fsdp_version', 1))}", precision,
                        offload_params=bool(fsdp.get("fsdp_offload_params", False)),
                        offload_optimizer=bool(fsdp.get("fsdp_offload_params", False)))
    if kind == "DEEPSPEED":
        ds = raw.get("deepspeed_config") or {}
        stage = int(ds.get("zero_stage", 0))
        name = "zero3" if stage == 3 else "zero2" if stage in (1, 2) else "ddp"
        return Strategy(name, precision, offload_optimizer=str(ds.get("offload_optimizer_device", "none")) != "none",
                        offload_params=str(ds.get("offload_param_device", "none")) != "none")
    return Strategy("ddp", precision)


# --------------------------------------------------------------------------------------- the plan
@dataclass
class Workload:
    """What the stage runs per GPU, from the recipe and the derived batch."""

    micro_batch: int               # sequences per forward/backward (per_device_train_batch_size)
    sequence_tokens: int           # the longest sequence: prompt + completion (SFT: max_length)
    scored_tokens: int             # positions whose logits are materialised (completion; SFT: all)
    gradient_checkpointing: bool
    bf16: bool                     # TRL's bf16 (autocast) on
    load_dtype: str                # what the policy (and reference) load in
    reference: bool                # a frozen reference or teacher copy is held
    vllm_share: float = 0.0        # colocated vLLM's gpu_memory_utilization (0: none or server mode)
    vllm_sleeps: bool = False      # vllm_enable_sleep_mode: vLLM frees its memory while the policy trains
    notes: list[str] = field(default_factory=list)


def _model_states(shape: ModelShape, strategy: Strategy, work: Workload, world: int) -> tuple[dict[str, float], str]:
    """Bytes per GPU of the policy's parameters, gradients and optimiser states, and the formula."""
    p, layer, w = shape.params, shape.largest_layer, world
    load = DTYPE_BYTES.get(work.load_dtype, 4)
    if strategy.name == "zero3":
        if strategy.offload_params:
            return {"params": 4 * layer, "gradients": 0, "optimizer": 0}, \
                "DeepSpeed estimate_zero3 (params and optimiser offloaded): 4 x largest layer"
        if strategy.offload_optimizer:
            return {"params": 4 * layer + 2 * p / w, "gradients": 0, "optimizer": 0}, \
                "DeepSpeed estimate_zero3 (optimiser offloaded): 4 x largest layer + 2P/W"
        return {"params": 4 * layer + 2 * p / w, "gradients": 2 * p / w, "optimizer": 14 * p / w}, \
            "DeepSpeed estimate_zero3: 4 x largest layer + 18P/W (bf16 weights and gradients, float32 master " \
            "weights and AdamW moments, DeepSpeed's buffers)"
    if strategy.name == "zero2":
        if strategy.offload_optimizer:
            return {"params": 2 * p, "gradients": 0, "optimizer": 0}, \
                "DeepSpeed estimate_zero2 (optimiser offloaded): 2P"
        return {"params": 2 * p, "gradients": 2 * p, "optimizer": 16 * p / w}, \
            "DeepSpeed estimate_zero2: 4P + 16P/W (bf16 weights and gradients on every GPU, float32 master " \
            "weights and moments sharded)"
    mixed = strategy.mixed_precision in ("bf16", "fp16") or work.bf16
    if strategy.name in ("fsdp1", "fsdp2"):
        # accelerate upcasts trainable parameters to float32 under mixed precision (fsdp2_prepare_model).
        master = 4 if mixed else load
        compute = 2 if mixed else master
        # Gathered at once: the root unit (embeddings, final norm, head) and the decoder layer in flight.
        gathered = shape.embedding_params + shape.layer_params
        return {"params": master * p / w + compute * gathered, "gradients": master * p / w + master * gathered,
                "optimizer": 2 * master * p / w}, \
            f"formula (FSDP, no estimator): ({master} weights + {master} gradients + {2 * master} AdamW) bytes x P/W, " \
            f"plus the root unit and one layer gathered ({compute}-byte weights, {master}-byte gradients)"
    # Plain data parallelism: accelerate's estimator for a float32 model; its rule in bf16 otherwise.
    if load == 4:
        usage = ddp_training_usage(4 * p, "bfloat16" if mixed else "float32")
        return {"params": usage["model"], "gradients": usage["gradients"], "optimizer": usage["optimizer"]}, \
            ("accelerate estimate_training_usage (bf16 mixed precision): 4 weights + 6 gradients + 8 AdamW bytes/param"
             if mixed else "accelerate estimate_training_usage (float32): 4 + 4 + 8 bytes/param")
    return {"params": load * p, "gradients": load * p, "optimizer": 2 * load * p}, \
        f"formula: weights, gradients and AdamW moments all in {work.load_dtype} ({4 * load} bytes/param)"


def ddp_training_usage(model_bytes: int, precision: str) -> dict[str, int]:
    """accelerate's `estimate_training_usage` rule for a model of `model_bytes` float32 bytes (a batch of
    one, plain data parallelism). Written out rather than imported, see the module docstring; a test
    checks it against accelerate's own function."""
    half = model_bytes // 2
    if precision == "float32":
        return {"model": model_bytes, "gradients": model_bytes, "optimizer": 2 * model_bytes}
    return {"model": model_bytes, "gradients": model_bytes + half, "optimizer": 2 * model_bytes}


def _activations(shape: ModelShape, work: Workload) -> tuple[float, str]:
    width = 2 if work.bf16 else 4
    tokens = work.micro_batch * work.sequence_tokens
    per_layer = tokens * shape.token_activations() * width
    if work.gradient_checkpointing:
        layers = shape.num_hidden_layers * tokens * shape.hidden_size * width + per_layer
        layer_text = "L x m x T x h (checkpointed layer inputs) + m x T x a (one layer recomputed)"
    else:
        layers = shape.num_hidden_layers * per_layer
        layer_text = "L x m x T x a (every layer's tensors kept: no gradient checkpointing)"
    logits = 3 * work.micro_batch * work.scored_tokens * shape.vocab_size * width
    return layers + logits, (f"{layer_text} + 3 x m x T_scored x V (logits, their temperature-scaled copy and "
                             f"their gradient), {width}-byte elements; a = {shape.token_activations():,} elements "
                             f"per token per layer")


def memory_plan(shape: ModelShape, strategy: Strategy, work: Workload, world: int, gpu_gib: float,
                shape_source: str = "") -> dict[str, Any]:
    """Per-GPU estimate in GiB: components, the peak of the generation and training phases, and formulas."""
    states, states_formula = _model_states(shape, strategy, work, world)
    ref_bytes = 0.0
    if work.reference:
        ref_bytes = shape.params * DTYPE_BYTES.get(work.load_dtype, 4) / (world if strategy.shards_params else 1)
    activations, activations_formula = _activations(shape, work)
    vllm = work.vllm_share * gpu_gib * GIB
    resident = sum(states.values()) + ref_bytes + RUNTIME_ALLOWANCE_GIB * GIB
    generation = resident + vllm
    training = resident + activations + (0 if work.vllm_sleeps else vllm)
    gib = lambda b: round(b / GIB, 2)  # noqa: E731
    peak = max(generation, training)
    return {
        "gpu_gib": gpu_gib, "strategy": strategy.name, "mixed_precision": strategy.mixed_precision,
        "world_size": world, "params_billions": round(shape.params / 1e9, 3), "shape_from": shape_source,
        "dtype": dtype_statement(strategy, work),
        "components_gib": {"params": gib(states["params"]), "gradients": gib(states["gradients"]),
                           "optimizer": gib(states["optimizer"]), "reference": gib(ref_bytes),
                           "activations": gib(activations), "vllm": gib(vllm),
                           "runtime_allowance": RUNTIME_ALLOWANCE_GIB},
        "generation_phase_gib": gib(generation), "training_phase_gib": gib(training),
        "total_gib": gib(peak), "fits": peak <= gpu_gib * GIB,
        "workload": {"micro_batch": work.micro_batch, "sequence_tokens": work.sequence_tokens,
                     "scored_tokens": work.scored_tokens, "gradient_checkpointing": work.gradient_checkpointing,
                     "vllm_sleeps": work.vllm_sleeps},
        "formulas": {"model_states": states_formula,
                     "reference": (f"P x {DTYPE_BYTES.get(work.load_dtype, 4)} bytes"
                                   + (" / W" if strategy.shards_params else "") if work.reference else "none"),
                     "activations": activations_formula,
                     "vllm": "trl.vllm_gpu_memory_utilization x GPU memory (colocated; held while training "
                             "unless trl.vllm_enable_sleep_mode)" if work.vllm_share else "none",
                     "peak": "max(generation: states + reference + vLLM, training: states + reference + "
                             "activations + vLLM unless it sleeps) + runtime allowance"},
        "notes": list(work.notes),
    }


def dtype_statement(strategy: Strategy, work: Workload) -> dict[str, str]:
    """In what precision the policy and the reference live, in words."""
    mixed = strategy.mixed_precision in ("bf16", "fp16") or work.bf16
    if strategy.name in ("fsdp1", "fsdp2") and mixed:
        policy = f"loads in {work.load_dtype}; trains as float32 master weights (accelerate's FSDP upcasts under " \
                 f"mixed precision), computes in bf16"
    elif strategy.name in ("zero2", "zero3"):
        policy = f"loads in {work.load_dtype}; DeepSpeed keeps float32 master weights and moments, computes in bf16"
    elif work.load_dtype == "float32":
        policy = "float32 weights and AdamW moments" + (", bf16 autocast compute" if work.bf16 else "")
    else:
        policy = f"{work.load_dtype} weights, gradients and AdamW moments (no float32 master copy)"
    reference = f"{work.load_dtype}, frozen" if work.reference else "none"
    return {"policy": policy, "reference": reference}


def fitting_changes(shape: ModelShape, strategy: Strategy, work: Workload, world: int, gpu_gib: float,
                    *, strategies: dict[str, Strategy], valid_worlds: list[int]) -> list[str]:
    """Single changes that bring the plan under `gpu_gib`, each with the estimate it gives."""
    def total(s: Strategy = strategy, w: Workload = work, n: int = world) -> float:
        return memory_plan(shape, s, w, n, gpu_gib)["total_gib"]

    found = []
    for name, candidate in strategies.items():
        if candidate.name != strategy.name and total(s=candidate) <= gpu_gib:
            found.append(f"launch.accelerate_config={name} ({total(s=candidate):.1f} GiB)")
    if work.micro_batch > 1:
        smaller = replace(work, micro_batch=1)
        if total(w=smaller) <= gpu_gib:
            found.append(f"batch.max_per_device=1 ({total(w=smaller):.1f} GiB)")
    if not work.gradient_checkpointing and total(w=replace(work, gradient_checkpointing=True)) <= gpu_gib:
        found.append(f"trl.gradient_checkpointing=true ({total(w=replace(work, gradient_checkpointing=True)):.1f} GiB)")
    if not work.bf16 and total(w=replace(work, bf16=True)) <= gpu_gib:
        found.append(f"trl.bf16=true ({total(w=replace(work, bf16=True)):.1f} GiB)")
    if work.vllm_share:
        if not work.vllm_sleeps and total(w=replace(work, vllm_sleeps=True)) <= gpu_gib:
            found.append(f"trl.vllm_enable_sleep_mode=true ({total(w=replace(work, vllm_sleeps=True)):.1f} GiB)")
        for share in (0.3, 0.25, 0.2, 0.15, 0.1):
            if share < work.vllm_share and total(w=replace(work, vllm_share=share)) <= gpu_gib:
                found.append(f"trl.vllm_gpu_memory_utilization={share} ({total(w=replace(work, vllm_share=share)):.1f} GiB)")
                break
    if strategy.shards_params or strategy.name == "zero2":
        more = [n for n in valid_worlds if n > world and total(n=n) <= gpu_gib]
        if more:
            found.append(f"--num-processes {more[0]} (launch.num_processes; {total(n=more[0]):.1f} GiB)")
    return found


def render_memory(memory: dict[str, Any]) -> list[str]:
    """The plan's text lines for a memory estimate (one stage)."""
    parts = memory["components_gib"]
    shown = ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in parts.items() if v)
    lines = [f"  memory / GPU     {memory['total_gib']:.1f} of {memory['gpu_gib']:g} GiB "
             f"({'fits' if memory['fits'] else 'DOES NOT FIT'}; {memory['strategy']}, {memory['world_size']} "
             f"process{'es' if memory['world_size'] > 1 else ''}, {memory['params_billions']}B params): {shown}",
             f"  dtype            policy {memory['dtype']['policy']}; reference {memory['dtype']['reference']}",
             f"  memory formulas  states: {memory['formulas']['model_states']}; activations: "
             f"{memory['formulas']['activations']}"]
    lines += [f"  memory note      {note}" for note in memory["notes"]]
    return lines

