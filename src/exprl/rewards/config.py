"""How rewards become advantages: the reward section of a training recipe (`reward:`).

Declared here, where the functions that read it live (`exprl.rewards.steps`,
`exprl.rewards.advantages`), nested in `exprl.train.config.TrainConfig`, and handed to the trainer
as it is. What a process step score *measures* is the judge's to say (`JudgeConfig.process_view`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from exprl.rewards.advantages import Normalize, OverlongPolicy, ProcessMode, SingleStep
from exprl.rewards.steps import DEFAULT_DELIMITER


@dataclass
class RewardConfig:
    """How the judge's rewards (or the verifier's) become advantages: where a step ends, how steps
    and groups are normalised, what a one-step or a cut rollout gets."""

    delimiter: str = field(default=DEFAULT_DELIMITER, metadata={
        "help": "ExpRL-Process step delimiter; it closes its step (exprl.rewards.steps)."})
    process_mode: ProcessMode = field(default="delta", metadata={
        "help": "ExpRL-Process advantage: delta (DeltaNorm, the paper), end (EndNorm), group (GroupNorm)."})
    single_step: SingleStep = field(default="outcome", metadata={
        "help": "ExpRL-Process advantage of a rollout with one step: outcome (its final-step score minus "
                "its group's mean, in DeltaNorm's reward units), zero (paper Eq. 2), raw (s_1, the official code)."})
    outcome_normalize: Normalize = field(default="std", metadata={
        "help": "Group normalisation of outcome rewards (ExpRL-Outcome, GRPO): std = (s - mean)/(std + 1e-6); "
                "mean = s - mean (Stage II in the paper)."})
    overlong: OverlongPolicy = field(default="zero", metadata={
        "help": "A rollout that hit max_completion_length: zero = reward 0 without asking the judge "
                "(the paper's ExpRL); mask = dropped from the loss; keep = its reward stands (the official "
                "sparse GRPO and Stage II pay a correct answer written before the cap)."})
