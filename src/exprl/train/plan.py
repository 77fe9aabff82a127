"""What a training stage will do, worked out from its recipe before anything runs.

`plan_stage(config, world_size)` turns a TrainConfig into the numbers that decide a comparison:
prompts and completions per rollout batch, optimiser steps per rollout batch, the budget in rollout
batches and in TRL's `max_steps`, the judge calls it will make, and the effective loss and sampling
settings (the recipe's values over the method's paper defaults over TRL's own defaults). A stage
that cannot run at that world size raises a ConfigError naming the key to change.

It loads no model and imports neither torch nor trl: TRL's field names and defaults are read from
the installed TRL and transformers sources (`trl_defaults`), so `--dry-run` answers in a second and
sees exactly the defaults the run will get. `trl_arguments` is the one place where the values
handed to TRL's config class are assembled; the runner uses it too.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import math
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from exprl.errors import ConfigError
from exprl.train.batch import check_batch, derive_batch
from exprl.train.config import JUDGED_METHODS, RL_METHODS, SAMPLING_METHODS, TrainConfig, method_defaults
from exprl.train.checks import check_stage
from exprl.train.fidelity import departures, render
from exprl.train.resources import plan_resources, render_batch, render_launch, render_memory

# Where each method's TRL config class is declared, base classes first (later ones override).
_TRAINING_ARGUMENTS = ("transformers", "training_args.py", "TrainingArguments")
_TRL_BASE = ("trl", "trainer/base_config.py", "_BaseConfig")
CONFIG_SOURCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "grpo": (_TRAINING_ARGUMENTS, _TRL_BASE, ("trl", "trainer/grpo_config.py", "GRPOConfig")),
    "sft": (_TRAINING_ARGUMENTS, _TRL_BASE, ("trl", "trainer/sft_config.py", "SFTConfig")),
    "self-distill": (_TRAINING_ARGUMENTS, _TRL_BASE, ("trl", "experimental/sdft/sdft_config.py", "SDFTConfig")),
}


class Computed:
    """A TRL default that is an expression, not a literal (kept as its source text)."""

    def __init__(self, source: str):
        self.source = source

    def __repr__(self) -> str:
        return f"<{self.source}>"


REQUIRED = Computed("required")


def _config_kind(method: str) -> str:
    return "grpo" if method in RL_METHODS else method


def _source_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # a top-level package is located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{package} is not installed; the training extra provides it")
    return Path(list(spec.submodule_search_locations)[0]) / relative


@lru_cache(maxsize=None)
def _class_fields(package: str, relative: str, class_name: str) -> dict[str, Any]:
    path = _source_file(package, relative)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return dict(_field_default(item) for item in node.body
                        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name))
    raise ConfigError(f"{path}: no class {class_name}; this TRL/transformers version is not the one exprl knows")


def _field_default(item: ast.AnnAssign) -> tuple[str, Any]:
    name = item.target.id  # type: ignore[union-attr]
    value = item.value
    if value is None:
        return name, REQUIRED
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        keywords = {k.arg: k.value for k in value.keywords}
        if "default" in keywords:
            value = keywords["default"]
        else:
            return name, Computed(ast.unparse(keywords.get("default_factory", value)))
    try:
        return name, ast.literal_eval(value)
    except ValueError:
        return name, Computed(ast.unparse(value))


@lru_cache(maxsize=None)
def _class_annotations(package: str, relative: str, class_name: str) -> dict[str, ast.expr]:
    path = _source_file(package, relative)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {item.target.id: item.annotation for item in node.body  # type: ignore[union-attr]
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    raise ConfigError(f"{path}: no class {class_name}; this TRL/transformers version is not the one exprl knows")


def trl_annotations(method: str) -> dict[str, ast.expr]:
    """Every field of the method's TRL config class with its declared type, as source (no import)."""
    fields: dict[str, ast.expr] = {}
    for source in CONFIG_SOURCES[_config_kind(method)]:
        fields.update(_class_annotations(*source))
    return fields


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict, "list": list, "tuple": tuple}


def check_trl_value(key: str, value: Any, annotation: ast.expr) -> Any:
    """`value` checked against a TRL field's declared type (read from its source), so a recipe with
    `trl.max_steps: abc` stops here, naming the key, rather than in TRL after the model is built.
    A YAML string that spells a number becomes that number where the field is a float ("1e-6"
    reads as text in YAML 1.1). Types exprl cannot check without importing TRL (its enums, its
    classes) accept any value; TRL checks those."""
    accepted = _accepts(annotation, value)
    if accepted is _REFUSED:
        raise ConfigError(f"trl.{key} must be {ast.unparse(annotation)}, got {value!r}")
    return accepted


_REFUSED = object()


def _accepts(annotation: ast.expr, value: Any) -> Any:
    """`value` (or its float reading) when it fits `annotation`, else _REFUSED."""
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return value if value is None else _REFUSED
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        options = [annotation.left, annotation.right]
    elif isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) in ("Optional", "Union"):
        inner = annotation.slice
        options = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if annotation.value.id == "Optional":  # type: ignore[attr-defined]
            options.append(ast.Constant(None))
    else:
        options = None
    if options is not None:
        fits = [_accepts(option, value) for option in options]
        exact = [f for f in fits if f is value]  # a member the value fits as is wins over a conversion
        return exact[0] if exact else next((f for f in fits if f is not _REFUSED), _REFUSED)
    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) == "Literal":
        inner = annotation.slice
        allowed = [e.value for e in (inner.elts if isinstance(inner, ast.Tuple) else [inner])
                   if isinstance(e, ast.Constant)]
        return value if value in allowed else _REFUSED
    name = annotation.value.id if isinstance(annotation, ast.Subscript) else getattr(annotation, "id", None)
    expected = _SCALARS.get(name or "")
    if expected is None:
        return value  # an enum or class of TRL's: TRL itself checks it
    if expected is bool or isinstance(value, bool):
        return value if expected is bool and isinstance(value, bool) else _REFUSED
    if expected is float:
        if isinstance(value, (int, float)):
            return value
        try:
            return float(value) if isinstance(value, str) else _REFUSED
        except ValueError:
            return _REFUSED
    if expected in (list, tuple):
        return value if isinstance(value, (list, tuple)) else _REFUSED
    return value if isinstance(value, expected) else _REFUSED


def trl_defaults(method: str) -> dict[str, Any]:
    """Every field of the method's TRL config class with its declared default (literal, or Computed)."""
    fields: dict[str, Any] = {}
    for source in CONFIG_SOURCES[_config_kind(method)]:
        fields.update(_class_fields(*source))
    return fields


def trl_arguments(config: TrainConfig, world_size: int, machine: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments for the method's TRL config class, in order of precedence: the paper's
    defaults for the method, then `machine` (what the hardware forces, e.g. no bf16 on a CPU), then
    exprl's fixed choices for the method, then the recipe's `trl` section, then the batch arguments
    derived from its `batch` section for `world_size` (exprl.train.batch), then the derived `max_steps`.
    Unknown keys, world sizes that cannot hold the declared batch and budgets that do not divide are
    ConfigErrors naming the key."""
    check_budget(config)
    known = trl_defaults(config.method)
    unknown = sorted(set(config.trl) - set(known))
    if unknown:
        from exprl.config import unknown_keys

        raise ConfigError(unknown_keys(unknown, known, f"{CONFIG_SOURCES[_config_kind(config.method)][-1][2]} "
                                                       f"(method {config.method})", prefix="trl."))
    values = {k: v for k, v in method_defaults(config.method).items() if k in known}
    values.update(machine or {})
    if config.method == "self-distill":
        # The paper's baseline: sampled-token reverse KL to the frozen base shown the reference.
        values.update(teacher_model_kind="base", distillation_mode="sampled_token", distillation_alpha=1.0,
                      generate_from_teacher=False, teacher_prompt_template=config.teacher_template)
    types = trl_annotations(config.method)
    values.update({key: check_trl_value(key, value, types[key]) for key, value in config.trl.items()})
    if config.batch.declared:
        check_batch(config.batch, config.method, config.method in SAMPLING_METHODS, config.trl)
        values.update(derive_batch(config.batch, world_size).trl_values())
    if config.rollout_batches is not None:
        shape = _batch_shape(config, {**known, **values}, world_size)
        values["max_steps"] = _max_steps(config, shape)
    return values


@dataclasses.dataclass
class _Shape:
    per_device: int
    accumulation: int
    steps_per_generation: int
    iterations: int
    generation_batch: int
    num_generations: int

    @property
    def optimizer_steps_per_batch(self) -> Fraction:
        # TRL generates every steps_per_generation x num_iterations micro-batches and steps the
        # optimiser every gradient_accumulation_steps micro-batches.
        return Fraction(self.steps_per_generation * self.iterations, self.accumulation)


def _positive(values: dict[str, Any], key: str) -> int:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"trl.{key} must be a positive integer, got {value!r}")
    return value


def _batch_shape(config: TrainConfig, effective: dict[str, Any], world_size: int) -> _Shape:
    """TRL's generation-batch arithmetic (GRPOConfig/SDFTConfig.__post_init__), with errors that say
    which recipe key to change instead of failing once the trainer is built."""
    per_device = _positive(effective, "per_device_train_batch_size")
    accumulation = _positive(effective, "gradient_accumulation_steps")
    iterations = _positive(effective, "num_iterations")
    generations = effective.get("num_generations")
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 2:
        raise ConfigError(f"trl.num_generations must be an integer of at least 2 (group advantages need a "
                          f"group), got {generations!r}")
    steps, batch = effective.get("steps_per_generation"), effective.get("generation_batch_size")
    global_batch = per_device * world_size
    if steps is not None and batch is not None:
        raise ConfigError("set trl.steps_per_generation or trl.generation_batch_size, not both")
    if batch is not None:
        if batch % global_batch:
            raise ConfigError(f"trl.generation_batch_size = {batch} is not a multiple of "
                              f"trl.per_device_train_batch_size x processes = {per_device} x {world_size}; "
                              f"change trl.generation_batch_size")
        steps = batch // global_batch
    elif steps is None:
        steps = accumulation
    else:
        steps = _positive(effective, "steps_per_generation")
    batch = global_batch * steps
    if batch % generations:
        raise ConfigError(
            f"at {world_size} process{'es' if world_size > 1 else ''} a rollout batch is "
            f"trl.per_device_train_batch_size {per_device} x {world_size} x trl.steps_per_generation {steps} = "
            f"{batch} completions, not a multiple of trl.num_generations = {generations}; change "
            f"trl.num_generations or trl.per_device_train_batch_size")
    return _Shape(per_device, accumulation, steps, iterations, batch, generations)


def _max_steps(config: TrainConfig, shape: _Shape) -> int:
    steps = config.rollout_batches * shape.optimizer_steps_per_batch  # type: ignore[operator]
    if steps.denominator != 1:
        raise ConfigError(
            f"rollout_batches = {config.rollout_batches} does not give a whole number of optimiser steps at "
            f"{shape.optimizer_steps_per_batch} per rollout batch (trl.steps_per_generation x trl.num_iterations / "
            f"trl.gradient_accumulation_steps); change rollout_batches or trl.gradient_accumulation_steps")
    return int(steps)


def check_budget(config: TrainConfig) -> None:
    """One way to state a budget: rollout batches for methods that sample, optimiser steps for SFT."""
    if config.rollout_batches is not None:
        if config.method not in SAMPLING_METHODS:
            raise ConfigError(f"rollout_batches: method {config.method} samples no rollouts; its budget is "
                              f"trl.max_steps optimiser steps")
        if config.rollout_batches < 1:
            raise ConfigError(f"rollout_batches must be at least 1, got {config.rollout_batches}")
        if "max_steps" in config.trl:
            raise ConfigError("set rollout_batches or trl.max_steps, not both (rollout_batches sets "
                              "trl.max_steps from the batch shape)")


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


def effective_trl(config: TrainConfig) -> dict[str, Any]:
    """The trl values as TRL will get them (the recipe's over the method's paper defaults over TRL's
    own), less the budget's derived max_steps, which needs the world size."""
    return {**trl_defaults(config.method), **trl_arguments(dataclasses.replace(config, rollout_batches=None), 1)}


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
    per_device = _positive(effective, "per_device_train_batch_size")
    accumulation = _positive(effective, "gradient_accumulation_steps")
    judge: dict[str, Any] = {"backend": None, "model": None, "calls_per_completion": 0, "calls_per_batch": 0}
    if config.method in SAMPLING_METHODS:
        shape = _batch_shape(config, effective, world_size)
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


def world_size_from_environment() -> int:
    """The number of training processes of this launch (accelerate and torchrun set WORLD_SIZE)."""
    import os

    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None
