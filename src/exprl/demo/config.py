"""`exprl demo` options: one TRL-style dataclass, loaded from a demo recipe (the bundled demo.yaml) plus overrides."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from exprl.data.prompts import POLICY_TEMPERATURE
from exprl.demo.base import BaseModelConfig
from exprl.errors import ConfigError
from exprl.judge.types import ProcessView

ALL_METHODS = ["sft", "grpo", "self-distill", "exprl-outcome", "exprl-process"]
DemoJudge = Literal["reference", "oracle", "openai", "step"]


@dataclass
class DemoTaskConfig:
    """The synthetic coverage task's splits (see exprl.data.synthetic)."""

    modulus: int = field(default=97, metadata={"range": "[2, inf)",
        "help": "Values are reduced modulo this number (at most 100: one token per value). A prime makes "
                "multiplying by 2-9 a bijection, so a wrong chain's end is close to a uniform guess; modulo "
                "100 products fall onto multiples of 2 and 5 and wrong chains land on the answer more often "
                "(docs/architecture.md, conditions first)."})
    operations: list[str] = field(default_factory=lambda: ["add", "sub", "mul"], metadata={
        "help": "Operations in the chains (add, sub, mul). With add and sub only, a chain read out of order "
                "still ends on the right value (they commute): lucky answers without the work."})
    min_operand: int = field(default=2, metadata={"range": "[1, inf)", "help": "Smallest operand of an operation."})
    max_operand: int = field(default=9, metadata={"range": "[1, inf)",
        "help": "Largest operand. With add and sub the base model must learn 2 x modulus x (operands) "
                "one-token sums; fewer operands, fewer facts."})
    last_first: bool = field(default=True, metadata={
        "help": "List each problem's operations last first after a stop item, `(d) Stop. (c) Add 7. (b) ... (a) "
                "...`, so that step k's operation sits at one distance from the end of every problem, short or "
                "long (exprl.data.synthetic.SyntheticTaskConfig.last_first)."})
    step_labels: str = field(default="letters", metadata={
        "help": "Labels of operations and steps: letters (`(c) Add 4.`, `### c:`) or numbers (`(3)`, `### 3:`). "
                "With numbers a label is the same token as a value, and the base read the operations of "
                "long problems wrongly (docs/architecture.md)."})
    easy_min_steps: int = field(default=1, metadata={"range": "[1, inf)", "help": "Shortest easy chain."})
    easy_max_steps: int = field(default=3, metadata={"range": "[1, inf)",
        "help": "Longest easy chain. Easy chains are the base model's pre-training but for pretrain_long_share."})
    hard_min_steps: int = field(default=13, metadata={"range": "[1, inf)",
        "help": "Shortest hard chain: long enough that a base right on most steps almost never gets all of "
                "them (condition C2, exprl.demo.conditions; docs/architecture.md)."})
    hard_max_steps: int = field(default=14, metadata={"range": "[1, inf)", "help": "Longest hard chain."})
    pretrain_long_share: float = field(default=0.2, metadata={"range": "[0, 1)",
        "help": "Share of pre-training traces that are longer than easy ones (easy_max_steps + 1 up to "
                "pretrain_long_max_steps). With none, the base model never writes more steps than an easy "
                "chain has (measured: 2.1 `###` per hard sample, hard pass@16 2%), so no reward, sparse or "
                "dense, can reach the steps hard problems need (docs/architecture.md)."})
    pretrain_long_max_steps: int = field(default=14, metadata={"range": "[0, inf)",
        "help": "Longest chain among the long pre-training traces; 0 = hard_max_steps. Below "
                "hard_min_steps, the base has practised chains up to that length but never a hard one."})
    num_train_hard: int = field(default=64, metadata={"range": "[1, inf)",
        "help": "Hard problems (with references) used by Stage I, and without references by Stage II."})
    num_eval_hard: int = field(default=32, metadata={"range": "[1, inf)", "help": "Held-out hard problems evaluated."})
    num_eval_easy: int = field(default=32, metadata={"range": "[1, inf)", "help": "Held-out easy problems evaluated."})

    def __post_init__(self) -> None:
        if not 1 <= self.easy_min_steps <= self.easy_max_steps < self.hard_min_steps <= self.hard_max_steps:
            raise ConfigError("task: need 1 <= easy_min_steps <= easy_max_steps < hard_min_steps "
                              f"<= hard_max_steps, got {self.easy_min_steps}, {self.easy_max_steps}, "
                              f"{self.hard_min_steps}, {self.hard_max_steps}")
        if self.pretrain_long_max_steps and not self.easy_max_steps < self.pretrain_long_max_steps <= self.hard_max_steps:
            raise ConfigError("task.pretrain_long_max_steps must be 0 or between easy_max_steps + 1 and "
                              f"hard_max_steps, got {self.pretrain_long_max_steps}")
        if not 0.0 <= self.pretrain_long_share < 1.0:
            raise ConfigError(f"task.pretrain_long_share must be in [0, 1), got {self.pretrain_long_share}")
        for name in ("num_train_hard", "num_eval_hard", "num_eval_easy"):
            if getattr(self, name) < 1:
                raise ConfigError(f"task.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class DemoTrainingConfig:
    """Stage I and Stage II sizes, shared by every method so that the comparison is like for like."""

    stage1_steps: int = field(default=50, metadata={"range": "[1, inf)",
        "help": "Stage-I optimiser steps per method: what fits `make demo` in 10 minutes on 2 CPU cores. At the "
                "stable learning rate (2e-4; 1e-3 collapsed both GRPO and ExpRL-Outcome) 20 steps left the dense "
                "reward flat (0.242 -> 0.249); benchmarks/demo_learning.py measures longer budgets."})
    stage2_steps: int = field(default=10, metadata={"range": "[1, inf)",
        "help": "Stage-II (sparse GRPO) steps from each Stage-I model. 10 keeps `make demo` within 10 minutes on "
                "2 cores: at 20 a seed took 610 s, a third of it in the five Stage IIs."})
    num_generations: int = field(default=4, metadata={"range": "[2, inf)",
        "help": "Rollouts per prompt (RL methods, self-distill). Smaller than the paper's 10-16 because a "
                "final answer here is one of `modulus` values: a group of 8 already holds a lucky guess 8% of "
                "the time, and condition C2 (at most 10% of groups with a right answer) failed on 1 seed of 3; "
                "groups of 4 (guess floor 4.1%) hold it on all 5 seeds measured (docs/architecture.md)."})
    prompts_per_step: int = field(default=8, metadata={"range": "[1, inf)",
        "help": "Prompts in each optimiser step (8 x 4 = 32 rollouts, as many as before the groups shrank)."})
    learning_rate: float = field(default=2e-4, metadata={"range": "(0, inf)",
        "help": "RL learning rate (Stage I and Stage II). Much larger than the paper's 1e-6: a 0.56M-parameter "
                "model moves little per step at that rate; at 1e-3 GRPO and ExpRL-Outcome collapsed, and 4e-4 "
                "lowered every method's easy skill over 5 seeds for no gain on hard problems (docs/architecture.md)."})
    sft_learning_rate: float = field(default=2e-4, metadata={"range": "(0, inf)", "help": "SFT learning rate."})
    distill_learning_rate: float = field(default=2e-4, metadata={
        "range": "(0, inf)", "help": "Self-distillation learning rate."})
    temperature: float = field(default=POLICY_TEMPERATURE, metadata={"range": "(0, inf)",
        "help": "Rollout sampling temperature (the paper's, exprl.data.prompts.POLICY_TEMPERATURE)."})
    beta: float = field(default=0.0, metadata={"range": "[0, inf)",
        "help": "KL coefficient against the base model (0 = no reference model: saves a forward pass). The "
                "paper's 0.001 changed nothing measurable at the demo's budget over 5 seeds (docs/architecture.md)."})
    max_completion_length: int = field(default=160, metadata={"range": "[1, inf)",
        "help": "Rollout cap in tokens; a full 14-step trace is at most 129 (word tokens), so the cap "
                "only stops runaway traces."})

    def __post_init__(self) -> None:
        for name in ("stage1_steps", "stage2_steps", "num_generations", "prompts_per_step",
                     "max_completion_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ConfigError("training.num_generations must be >= 2: group advantages need a group")


@dataclass
class DemoEvalConfig:
    n: int = field(default=8, metadata={"range": "[1, inf)",
        "help": "Samples per problem (pass@k for k <= n). 8 keeps `make demo` within 10 minutes on 2 cores; "
                "benchmarks/demo_base.py and demo_learning.py take more."})
    temperature: float = field(default=POLICY_TEMPERATURE, metadata={"range": "[0, inf)",
        "help": "Evaluation sampling temperature (the paper's, exprl.data.prompts.POLICY_TEMPERATURE)."})
    max_tokens: int = field(default=200, metadata={"range": "[1, inf)",
        "help": "Maximum new tokens per sample (a full 14-step trace is at most 129)."})
    batch_size: int = field(default=256, metadata={"range": "[1, inf)",
        "help": "Samples per generate call: tiny models are per-call-overhead bound on CPU."})

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_tokens < 1 or self.batch_size < 1:
            raise ConfigError("eval: n, max_tokens and batch_size must be >= 1")


@dataclass
class DemoConfig:
    """The embedded demo: base pre-training, Stage I with each method, Stage II, evaluation, report."""

    output_dir: str = field(default="runs/demo", metadata={"help": "Run directory (resumable)."})
    seeds: int = field(default=1, metadata={"range": "[1, inf)",
        "help": "Independent repetitions (task, base model and training all re-seeded); tables show "
                "mean and std over seeds."})
    seed: int = field(default=0, metadata={
        "range": "[0, 4294967295]", "help": "First seed; repetitions use seed, seed+1, ..."})
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS), metadata={
        "help": f"Stage-I methods to compare: any of {', '.join(ALL_METHODS)}."})
    judge: DemoJudge = field(default="reference", metadata={
        "help": "Stage-I reward of the exprl methods. reference: the deterministic reference judge (chain "
                "matching); oracle: the exact share of right steps, recomputed from the problem "
                "(exprl.demo.oracle), a check that the task and settings can show a dense-reward effect at "
                "all, not a judge of the paper's; openai: the endpoint at judge_url; step: the reference "
                "judge for ExpRL-Outcome and, for ExpRL-Process, the step judge (exprl.demo.step_judge), "
                "which grades one step alone against the reference's chain of values, so that needs "
                "judge_process_view: segment (the official code's semantics)."})
    judge_url: str = field(default="", metadata={
        "help": "OpenAI-compatible judge endpoint (e.g. http://127.0.0.1:8080/v1), for judge: openai."})
    judge_model: str = field(default="", metadata={"help": "Model name sent to the judge endpoint."})
    judge_process_view: ProcessView = field(default="prefix", metadata={
        "help": "The demo judge's JudgeConfig.process_view (what an ExpRL-Process step score measures): "
                "prefix (the work so far, the paper's equation), segment (the step alone, the official "
                "code) or step (the step after its earlier steps). prefix, not JudgeConfig's segment, because "
                "the demo's reference judge matches checkpoints along the chain in the text it grades: shown "
                "one step alone, or a step after its context, it scores near 0 after step 1 (docs/architecture.md, "
                "'Conditions first'). segment or step need a judge that grades one step (judge: oracle or openai)."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "Policy system prompt. None: the base model learnt the format in pre-training, and a "
                "constant instruction would double every sequence on 2 CPU cores."})
    task: DemoTaskConfig = field(default_factory=DemoTaskConfig, metadata={"help": "The synthetic task."})
    base: BaseModelConfig = field(default_factory=BaseModelConfig, metadata={
        "help": "The tiny base model and its pre-training on the easy split."})
    training: DemoTrainingConfig = field(default_factory=DemoTrainingConfig, metadata={
        "help": "Stage I / Stage II sizes."})
    eval: DemoEvalConfig = field(default_factory=DemoEvalConfig, metadata={"help": "Evaluation."})

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"methods must be a non-empty list of {', '.join(ALL_METHODS)}; got {self.methods}")
        if self.judge not in get_args(DemoJudge):
            raise ConfigError(f"judge must be one of {', '.join(get_args(DemoJudge))}, got {self.judge!r}")
        if self.judge == "step" and self.judge_process_view != "segment":
            # It grades a step shown alone; under prefix or step the request holds more than one step.
            raise ConfigError("judge: step grades one step alone and needs judge_process_view: segment, "
                              f"got {self.judge_process_view!r}")
        if (self.judge == "openai") != bool(self.judge_url):
            raise ConfigError("judge: openai needs judge_url, and judge_url needs judge: openai")
