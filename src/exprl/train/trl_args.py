"""The keyword arguments handed to TRL's config class, and the batch arithmetic behind them.

`trl_arguments(config, world_size)` is the one place where those values are assembled, from the
method's paper defaults, what the machine forces, exprl's fixed choices, the recipe's `trl` section,
the batch its `batch` section derives for the world size, and the `max_steps` its budget in rollout
batches gives. The runner builds TRL's config from it; the plan (`exprl.train.plan`) reads it.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

from exprl.errors import ConfigError
from exprl.train.batch import check_batch, derive_batch
from exprl.train.config import SAMPLING_METHODS, TrainConfig, method_defaults
from exprl.train.trl_fields import CONFIG_SOURCES, check_trl_value, config_kind, trl_annotations, trl_defaults


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

        raise ConfigError(unknown_keys(unknown, known, f"{CONFIG_SOURCES[config_kind(config.method)][-1][2]} "
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
        shape = batch_shape(config, {**known, **values}, world_size)
        values["max_steps"] = _max_steps(config, shape)
    return values


@dataclasses.dataclass
class BatchShape:
    """One rollout batch as TRL will cut it at one world size (`batch_shape`)."""

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


def positive(values: dict[str, Any], key: str) -> int:
    """`values[key]` when it is a positive integer, else a ConfigError naming trl.KEY."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"trl.{key} must be a positive integer, got {value!r}")
    return value


def batch_shape(config: TrainConfig, effective: dict[str, Any], world_size: int) -> BatchShape:
    """TRL's generation-batch arithmetic (GRPOConfig/SDFTConfig.__post_init__), with errors that say
    which recipe key to change instead of failing once the trainer is built."""
    per_device = positive(effective, "per_device_train_batch_size")
    accumulation = positive(effective, "gradient_accumulation_steps")
    iterations = positive(effective, "num_iterations")
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
        steps = positive(effective, "steps_per_generation")
    batch = global_batch * steps
    if batch % generations:
        raise ConfigError(
            f"at {world_size} process{'es' if world_size > 1 else ''} a rollout batch is "
            f"trl.per_device_train_batch_size {per_device} x {world_size} x trl.steps_per_generation {steps} = "
            f"{batch} completions, not a multiple of trl.num_generations = {generations}; change "
            f"trl.num_generations or trl.per_device_train_batch_size")
    return BatchShape(per_device, accumulation, steps, iterations, batch, generations)


def _max_steps(config: TrainConfig, shape: BatchShape) -> int:
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


def effective_trl(config: TrainConfig) -> dict[str, Any]:
    """The trl values as TRL will get them (the recipe's over the method's paper defaults over TRL's
    own), less the budget's derived max_steps, which needs the world size."""
    return {**trl_defaults(config.method), **trl_arguments(dataclasses.replace(config, rollout_batches=None), 1)}



def world_size_from_environment() -> int:
    """The number of training processes of this launch (accelerate and torchrun set WORLD_SIZE)."""
    import os

    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None
