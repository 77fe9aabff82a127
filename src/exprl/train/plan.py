"""What a training stage will do, worked out from its recipe before anything runs.

`plan_stage(config, world_size)` turns a TrainConfig into the numbers that decide a comparison:
prompts and completions per rollout batch, optimiser steps per rollout batch, the budget in rollout
batches and in TRL's `max_steps`, the judge calls it will make, and the effective loss and sampling
settings (the recipe's values over the method's paper defaults over TRL's own defaults). A stage
that cannot run at that world size raises a ConfigError naming the key to change.

It loads no model and imports neither torch nor trl: TRL's field names and defaults are read from
the installed TRL and transformers sources (`exprl.train.trl_fields`), so `--dry-run` answers in a
second and sees exactly the defaults the run will get. The values handed to TRL's config class are
assembled in one place, `exprl.train.trl_args.trl_arguments`, which the runner uses too; this module
turns them into the plan and renders it.
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

from exprl.errors import ConfigError
from exprl.train.config import JUDGED_METHODS, RL_METHODS, SAMPLING_METHODS, TrainConfig
from exprl.train.checks import check_stage
from exprl.train.fidelity import departures, render
from exprl.train.resources import plan_resources, render_batch, render_launch, render_memory
from exprl.train.trl_args import batch_shape, effective_trl, positive, trl_arguments
from exprl.train.trl_fields import Computed, trl_defaults


# ---------------------------------------------------------------------------------------- the plan
@dataclasses.dataclass
class StagePlan:
    """One stage at one world size. `to_dict` is the `--json` form; `render` the text form."""

    name: str
    method: str
    world_size: int
    recipe: str
    model: str
    data: str
    rollout_batches: float | None
    prompts_per_batch: int | None
    completions_per_batch: int | None
    num_generations: int | None
    optimizer_steps_per_batch: float | None
    sequences_per_optimizer_step: int
    optimizer_steps: int | None
    epochs: float | None
    total_prompts: float | None
    total_completions: float | None
    judge: dict[str, Any]
    loss: dict[str, Any]
    optimizer: dict[str, Any]
    sampling: dict[str, Any]
    advantages: dict[str, Any]
    policy_prompt: dict[str, Any]
    trl: dict[str, Any]
    batch: dict[str, Any] = dataclasses.field(default_factory=dict)
    launch: dict[str, Any] = dataclasses.field(default_factory=dict)
    memory: dict[str, Any] = dataclasses.field(default_factory=dict)
    departures: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # exprl.train.fidelity

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def render(self) -> str:
        w = self.world_size
        lines = [f"{self.name}: {self.method} on {w} process{'es' if w > 1 else ''}  ({self.recipe})",
                 f"  model            {self.model}", f"  data             {self.data}"]
        if self.completions_per_batch is not None:
            lines.append(f"  rollout batch    {self.prompts_per_batch} prompts x {self.num_generations} = "
                         f"{self.completions_per_batch} completions; {_number(self.optimizer_steps_per_batch)} "
                         f"optimiser step(s) of {self.sequences_per_optimizer_step} completions each")
            lines.append(f"  budget           {_number(self.rollout_batches)} rollout batches = "
                         f"{_number(self.optimizer_steps)} optimiser steps (trl.max_steps)"
                         if self.optimizer_steps is not None else
                         f"  budget           {self.trl.get('num_train_epochs', 3)} epochs (no rollout_batches, "
                         f"no trl.max_steps)")
            if self.total_prompts is not None:
                lines.append(f"  seen in all      {_number(self.total_prompts)} prompts, "
                             f"{_number(self.total_completions)} completions"
                             + (f" ({self.epochs:.2f} epochs)" if self.epochs is not None else ""))
        else:
            lines.append(f"  batch            {self.sequences_per_optimizer_step} sequences per optimiser step")
            if "max_steps" in self.trl:
                lines.append(f"  budget           {_number(self.optimizer_steps)} optimiser steps (trl.max_steps)"
                             + (f", {self.epochs:.2f} epochs" if self.epochs is not None else ""))
            else:
                steps = (f"{_number(self.optimizer_steps)} optimiser steps" if self.optimizer_steps is not None
                         else "optimiser steps counted once the data is at hand")
                lines.append(f"  budget           {_number(self.epochs)} epochs (trl.num_train_epochs) = {steps}")
        judge = self.judge
        if judge["calls_per_completion"]:
            per = judge["calls_per_completion"]
            calls = (f"{judge['calls_per_batch']} per rollout batch (one per completion)" if per == 1 else
                     f"{self.completions_per_batch} x steps per trace per rollout batch (one per step)")
            who = " ".join(str(part) for part in (judge["backend"], judge["model"]) if part)
            lines.append(f"  judge            {who}: {calls}"
                         + (f"; process view {judge['process_view']}" if judge.get("process_view") else ""))
        lines.append("  loss             " + ", ".join(f"{k} {_number(v)}" for k, v in self.loss.items()))
        lines.append("  optimiser        " + ", ".join(f"{k} {_number(v)}" for k, v in self.optimizer.items()))
        lines.append("  sampling         " + ", ".join(f"{k} {_number(v)}" for k, v in self.sampling.items()))
        if self.advantages:
            lines.append("  advantages       " + ", ".join(f"{k} {v}" for k, v in self.advantages.items()))
        prompt = self.policy_prompt
        lines.append(f"  policy prompt    {prompt['name']}"
                     + (f": {prompt['text']!r}" if prompt["text"] else ""))
        for section in SECTIONS:
            lines += section(self)
        return "\n".join(lines)


def render_departures(plan: StagePlan) -> list[str]:
    return render(plan.departures)


SECTIONS = [render_batch, render_launch, render_memory, render_departures]
"""The plan's sections after the training settings, in order: each takes a StagePlan and returns its
text lines. A new section is one more function here."""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _as_number(value: Fraction | int | None) -> float | int | None:
    if value is None:
        return None
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


def plan_stage(config: TrainConfig, world_size: int, name: str = "train", recipe: str = "",
               model: str | None = None, data: str | None = None, *, gpu_memory_gib: float = 80.0,
               output_dir: str = "", overrides: Sequence[str] = (), architecture: str | None = None) -> StagePlan:
    """The plan of one stage; ConfigError (naming the key, prefixed by `name`) if it cannot run.

    `gpu_memory_gib`: the GPU the memory plan is made for; `output_dir` and `overrides` go into the
    launch line; `architecture`: the model whose shape the memory plan uses when `config.model` is a
    checkpoint not written yet (Stage II planned before Stage I)."""
    if world_size < 1:
        raise ConfigError(f"--num-processes must be at least 1, got {world_size}")
    try:
        check_stage(config, effective_trl(config))  # every value, before the shapes: a refused start writes nothing
        plan = _plan(config, world_size, name, recipe, model, data)
        effective = {k: (None if isinstance(v, Computed) else v)
                     for k, v in {**trl_defaults(config.method), **plan.trl}.items()}
        plan.batch, plan.launch, plan.memory = plan_resources(
            config, effective, world_size, recipe, gpu_memory_gib=gpu_memory_gib, output_dir=output_dir,
            overrides=overrides, architecture=architecture)
    except ConfigError as exc:
        where = f"{name} ({recipe})" if recipe else name
        raise ConfigError(f"{where}: {exc}") from None
    numbers = {key: getattr(plan, key, None) for key in ("prompts_per_batch", "optimizer_steps_per_batch",
                                                          "rollout_batches", "sequences_per_optimizer_step")}
    plan.departures = departures(config, {**trl_defaults(config.method), **plan.trl}, numbers, name)
    return plan


def _plan(config: TrainConfig, world_size: int, name: str, recipe: str, model: str | None,
          data: str | None) -> StagePlan:
    from exprl.data.prompts import policy_prompt_name

    values = trl_arguments(config, world_size)
    effective = {**trl_defaults(config.method), **values}

    def get(key: str) -> Any:
        value = effective.get(key)
        return value.source if isinstance(value, Computed) else value

    problems = _count_problems(config.data.sources(), config.data.max_problems)
    max_steps = get("max_steps")
    optimizer_steps = max_steps if isinstance(max_steps, int) and max_steps > 0 else None
    per_device = positive(effective, "per_device_train_batch_size")
    accumulation = positive(effective, "gradient_accumulation_steps")
    judge: dict[str, Any] = {"backend": None, "model": None, "calls_per_completion": 0, "calls_per_batch": 0}
    if config.method in SAMPLING_METHODS:
        shape = batch_shape(config, effective, world_size)
        per_batch = shape.optimizer_steps_per_batch
        prompts = shape.generation_batch // shape.num_generations
        batches = (Fraction(optimizer_steps) / per_batch) if optimizer_steps is not None else None
        plan_numbers = dict(
            prompts_per_batch=prompts, completions_per_batch=shape.generation_batch,
            num_generations=shape.num_generations, optimizer_steps_per_batch=_as_number(per_batch),
            sequences_per_optimizer_step=per_device * world_size * accumulation,
            rollout_batches=_as_number(batches),
            total_prompts=_as_number(batches * prompts) if batches is not None else None,
            total_completions=_as_number(batches * shape.generation_batch) if batches is not None else None)
        seen = plan_numbers["total_prompts"]
        epochs = seen / problems if seen is not None and problems else None
        if config.method in JUDGED_METHODS:
            process = config.method == "exprl-process"
            judge = {"backend": config.judge.backend, "model": config.judge.model or None,
                     "calls_per_completion": "steps" if process else 1,
                     "calls_per_batch": None if process else shape.generation_batch}
            if process:
                judge["process_view"] = config.judge.process_view
    else:
        batch = per_device * world_size * accumulation
        plan_numbers = dict(prompts_per_batch=None, completions_per_batch=None, num_generations=None,
                            optimizer_steps_per_batch=None, sequences_per_optimizer_step=batch,
                            rollout_batches=None, total_prompts=None, total_completions=None)
        if optimizer_steps is not None:
            epochs = optimizer_steps * batch / problems if problems else None
        else:
            # An epoch budget: the Trainer's count of optimiser steps, when the data is at hand.
            epochs = float(get("num_train_epochs"))
            if problems:
                micro_batches = math.ceil(math.ceil(problems / world_size) / per_device)
                optimizer_steps = math.ceil(epochs * max(math.ceil(micro_batches / accumulation), 1))

    loss: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    advantages: dict[str, Any] = {}
    if config.method in RL_METHODS:
        use_vllm = bool(get("use_vllm"))
        if not use_vllm:
            correction = "none (rollouts from the trained model itself)"
        elif not get("vllm_importance_sampling_correction"):
            correction = "off"
        else:
            correction = (f"{get('vllm_importance_sampling_mode')} "
                          f"[{get('vllm_importance_sampling_clip_min')}, {get('vllm_importance_sampling_clip_max')}]")
        epsilon_high = get("epsilon_high")
        loss = {"loss_type": get("loss_type"), "beta": get("beta")}
        if get("beta"):
            loss["kl_weighted_by_ratio"] = bool(get("use_bias_correction_kl"))
        loss.update({"clip_low": get("epsilon"),
                     "clip_high": epsilon_high if epsilon_high is not None else get("epsilon"),
                     "dual_clip": get("delta"), "importance_sampling": correction,
                     "entropy_coef": get("entropy_coef"), "num_iterations": get("num_iterations")})
        reward = config.reward
        advantages = {"outcome_normalize": reward.outcome_normalize, "overlong": reward.overlong}
        if config.method == "exprl-process":
            advantages = {"process_mode": reward.process_mode, "single_step": reward.single_step,
                          "delimiter": reward.delimiter, "segmentation": reward.segmentation,
                          "overlong": reward.overlong}
        if config.method in JUDGED_METHODS:
            advantages.update(overlong_rule=reward.overlong_rule, unscorable=reward.unscorable)
    elif config.method == "self-distill":
        loss = {"distillation_mode": get("distillation_mode"), "distillation_alpha": get("distillation_alpha"),
                "teacher": get("teacher_model_kind"), "num_iterations": get("num_iterations")}
        sampling["max_prompt_length"] = get("max_prompt_length")
    else:
        loss = {"loss_type": get("loss_type"), "completion_only_loss": get("completion_only_loss")}
        sampling["max_length"] = get("max_length")
    if config.method in SAMPLING_METHODS:
        sampling = {"temperature": get("temperature"), "top_p": get("top_p"), "top_k": get("top_k"),
                    "max_completion_length": get("max_completion_length"), **sampling,
                    "vllm": get("vllm_mode") if get("use_vllm") else False}
    optimizer = {"learning_rate": get("learning_rate"), "lr_scheduler_type": get("lr_scheduler_type"),
                 "warmup_steps": get("warmup_steps"), "adam_betas": [get("adam_beta1"), get("adam_beta2")],
                 "weight_decay": get("weight_decay"), "max_grad_norm": get("max_grad_norm")}
    return StagePlan(
        name=name, method=config.method, world_size=world_size, recipe=_shown_path(recipe) or "given in code",
        model=model if model is not None else config.model,
        data=data if data is not None else config.data.describe(),
        optimizer_steps=optimizer_steps, epochs=epochs, judge=judge, loss=loss, optimizer=optimizer,
        sampling=sampling, advantages=advantages,
        policy_prompt={"name": policy_prompt_name(config.system_prompt), "text": config.system_prompt},
        trl={k: v for k, v in values.items() if k != "teacher_prompt_template"}, **plan_numbers)


def _shown_path(path: str) -> str:
    """A recipe path as the user would type it: relative to the working directory when inside it."""
    if not path or not Path(path).is_absolute():
        return path
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _count_problems(files: list[str], limit: int | None) -> int | None:
    """Problems in the training files when they are JSONL at hand (a line each), else None: a plan
    must not need the data, which a fresh clone has not prepared yet."""
    total = 0
    for name in files:
        path = Path(name)
        if path.suffix != ".jsonl" or not path.is_file():
            return None
        with path.open("rb") as f:
            total += sum(1 for line in f if line.strip())
    return min(total, limit) if limit is not None else total
