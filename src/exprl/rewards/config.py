"""How rewards become advantages: the reward section of a training recipe (`reward:`).

Declared here, where the functions that read it live (`exprl.rewards.steps`,
`exprl.rewards.advantages`), nested in `exprl.train.config.TrainConfig`, and handed to the trainer
as it is. What a process step score *measures* is the judge's to say (`JudgeConfig.process_view`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from exprl.rewards.advantages import Normalize, OverlongPolicy, ProcessMode, SingleStep, Unscorable
from exprl.rewards.steps import DEFAULT_DELIMITER

Segmentation = Literal["merged", "token-end"]
OverlongRule = Literal["unfinished", "at-cap"]


@dataclass
class RewardConfig:
    """How the judge's rewards (or the verifier's) become advantages: where a step ends, how steps
    and groups are normalised, what a one-step or a cut rollout gets."""

    delimiter: str = field(default=DEFAULT_DELIMITER, metadata={
        "help": "ExpRL-Process step delimiter; it closes its step (exprl.rewards.steps)."})
    segmentation: Segmentation = field(default="merged", metadata={
        "help": "Where ExpRL-Process steps end. merged: on the decoded text, touching markers count as "
                "one and a step with nothing but its marker (a leading ###, two in a row) joins the next, "
                "so no empty step is judged (exprl). token-end: the official code's rule over the sampled "
                "tokens: a step closes after every token at which the text so far ends with the delimiter, "
                "empty steps included (exprl.rewards.steps.token_end_steps)."})
    process_mode: ProcessMode = field(default="delta", metadata={
        "help": "ExpRL-Process advantage: delta (DeltaNorm, the paper), end (EndNorm), group (GroupNorm)."})
    single_step: SingleStep = field(default="outcome", metadata={
        "help": "ExpRL-Process advantage of a rollout with one step: outcome (its final-step score minus "
                "its group's mean, in DeltaNorm's reward units), zero (paper Eq. 2), raw (s_1, the official code)."})
    unscorable: Unscorable = field(default="leave-out", metadata={
        "help": "What an unscorable rollout (the judge's answer could not be read, or it failed) is in its "
                "group's statistics. It always leaves the loss. leave-out: absent from them, so its failure "
                "moves no one's advantage (exprl); zero-in-group: a reward of 0 there (the official code)."})
    outcome_normalize: Normalize = field(default="std", metadata={
        "help": "Group normalisation of outcome rewards (ExpRL-Outcome, GRPO): std = (s - mean)/(std + 1e-6); "
                "mean = s - mean (Stage II in the paper)."})
    overlong: OverlongPolicy = field(default="zero", metadata={
        "help": "A rollout that hit max_completion_length: zero = reward 0 without asking the judge "
                "(the paper's ExpRL); zero-after-judge = the judge is still asked and its score replaced by "
                "0, while an unscorable verdict drops the rollout from the loss (the official code's order); "
                "mask = dropped from the loss; keep = its reward stands (the official sparse GRPO and "
                "Stage II pay a correct answer written before the cap)."})
    overlong_rule: OverlongRule = field(default="unfinished", metadata={
        "help": "Which rollouts the overlong policy takes. unfinished: max_completion_length tokens and no "
                "end token (exprl: a rollout that ended exactly at the cap finished). at-cap: "
                "max_completion_length tokens, the end token counted, finished or not (the official "
                "`response_mask.sum() == max_response_length`)."})
