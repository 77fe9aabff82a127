"""What a stage asks of the machine, for its plan: the batch per process, the launch line, the memory plan.

`plan_resources` reads the effective TRL values a plan computed (exprl.train.plan) and the recipe's
`batch` and `launch` sections, and returns the plan's three sections as plain dicts; the
`render_*` functions turn them into the plan's text lines. No model is loaded and neither torch
nor TRL imported.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from exprl.train.batch import valid_world_sizes
from exprl.train.config import RL_METHODS, SAMPLING_METHODS, TrainConfig
from exprl.train.launch import launch_section, launch_strategy, shipped_accelerate_configs
from exprl.train.memory import Strategy, Workload, fitting_changes, memory_plan, model_shape, render_memory as _memory_lines


def plan_resources(config: TrainConfig, effective: dict[str, Any], world_size: int, recipe: str, *,
                   gpu_memory_gib: float, output_dir: str = "", overrides: Sequence[str] = (),
                   architecture: str | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(batch, launch, memory) sections of a stage's plan at `world_size`; `effective`: the TRL values the
    stage will get, defaults included (None where TRL computes one)."""
    get = effective.get
    bf16 = bool(get("bf16") if get("bf16") is not None else not get("fp16"))  # TRL's _BaseConfig rule
    sampling = config.method in SAMPLING_METHODS
    batch: dict[str, Any] = {
        "declared": config.batch.declared, "per_device": get("per_device_train_batch_size"),
        "gradient_accumulation_steps": get("gradient_accumulation_steps"),
        "steps_per_generation": (get("steps_per_generation") or get("gradient_accumulation_steps")) if sampling else None}
    if config.batch.declared:
        batch.update({k: v for k, v in dataclasses.asdict(config.batch).items() if v is not None},
                     valid_world_sizes=valid_world_sizes(config.batch))
    launch, strategy = launch_section(config.launch, world_size, recipe, bf16, output_dir=output_dir,
                                      overrides=overrides)
    shape, source = model_shape(architecture or config.launch.architecture or config.model)
    if shape is None:
        return batch, launch, {"estimated": False, "why": source, "gpu_gib": gpu_memory_gib}
    work = workload(config, get, bf16, strategy)
    memory = memory_plan(shape, strategy, work, world_size, gpu_memory_gib, source)
    if not memory["fits"]:
        strategies = {name: launch_strategy(name, bf16)[0] for name in shipped_accelerate_configs()}
        worlds = valid_world_sizes(config.batch, upto=64) if config.batch.declared else [2, 4, 8, 16, 32, 64]
        memory["would_fit_with"] = fitting_changes(shape, strategy, work, world_size, gpu_memory_gib,
                                                   strategies=strategies, valid_worlds=worlds)
    return batch, launch, memory


def workload(config: TrainConfig, get: Any, bf16: bool, strategy: Strategy) -> Workload:
    """What one GPU runs (exprl.train.memory.Workload), from the effective TRL values."""
    notes: list[str] = []
    kwargs = get("model_init_kwargs")
    dtype = str(kwargs.get("dtype", "float32")) if isinstance(kwargs, dict) else "float32"
    if dtype == "auto":
        dtype = "bfloat16"
        notes.append("model_init_kwargs dtype auto: taken as bfloat16, the paper's checkpoints' own dtype")
    if config.method == "sft":
        length = get("max_length") or 1024
        sequence, scored = length, length  # SFT materialises the logits of every position
    else:
        completion = get("max_completion_length") or 256
        prompt = config.data.max_prompt_tokens or get("max_prompt_length")
        if prompt is None:
            prompt = 1024
            notes.append("prompts taken as 1,024 tokens: set data.max_prompt_tokens to plan with the real bound")
        sequence, scored = prompt + completion, completion  # TRL keeps the completion's logits only
        if get("vllm_max_model_length"):
            sequence = min(sequence, get("vllm_max_model_length"))
    reference = config.method == "self-distill" or (config.method in RL_METHODS and bool(get("beta")))
    colocated = config.method in SAMPLING_METHODS and bool(get("use_vllm")) and get("vllm_mode") == "colocate"
    if dtype != "float32" and strategy.name == "ddp":
        notes.append(f"plain DDP trains the {dtype} weights as they load (no float32 master copy): AdamW steps below "
                     f"bf16's resolution (about 0.4% of a weight; lr 1e-6 steps are far below it) are rounded away; "
                     f"fsdp2 and zero3 keep float32 master weights")
    return Workload(micro_batch=get("per_device_train_batch_size") or 8, sequence_tokens=int(sequence),
                    scored_tokens=int(scored), gradient_checkpointing=bool(get("gradient_checkpointing")), bf16=bf16,
                    load_dtype=dtype, reference=reference,
                    vllm_share=float(get("vllm_gpu_memory_utilization") or 0.0) if colocated else 0.0,
                    vllm_sleeps=bool(get("vllm_enable_sleep_mode")), notes=notes)


# ------------------------------------------------------------------------------ the plan's text
def render_batch(plan: Any) -> list[str]:
    batch = plan.batch
    if not batch:
        return []
    derived = (f"{batch['per_device']} per device x {batch['gradient_accumulation_steps']} accumulated"
               + (f", steps_per_generation {batch['steps_per_generation']}" if batch.get("steps_per_generation") else ""))
    if not batch["declared"]:
        return [f"  batch            from the trl keys ({derived}): it follows the world size; declare batch.prompts "
                f"and batch.rollouts (sft: batch.sequences) to fix it"]
    return [f"  batch            declared; at {plan.world_size}: {derived}; world sizes that hold it: "
            f"{', '.join(map(str, batch['valid_world_sizes']))}"]


def render_launch(plan: Any) -> list[str]:
    return [f"  launch           {plan.launch['command']}"] if plan.launch else []


def render_memory(plan: Any) -> list[str]:
    memory = plan.memory
    if not memory:
        return []
    if not memory.get("estimated", True):
        return [f"  memory / GPU     not estimated: {memory['why']}"]
    lines = _memory_lines(memory)
    if memory.get("would_fit_with"):
        lines.append(f"  would fit with   {'; '.join(memory['would_fit_with'])}")
    elif not memory["fits"]:
        lines.append("  would fit with   no single change exprl knows of: a smaller model, shorter sequences or a larger GPU")
    return lines
