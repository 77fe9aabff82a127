"""Rewards: step splitting, score normalisation and advantages (pure functions), sparse verifier.

Engine-agnostic: nothing here imports a trainer, so a verl adapter could reuse it beside TRL's.
"""
from exprl.rewards.advantages import (
    EPSILON,
    apply_overlong,
    apply_overlong_steps,
    outcome_advantages,
    process_advantages,
    score_to_reward,
    token_advantages,
)
from exprl.rewards.steps import DEFAULT_DELIMITER, Step, decoded_offsets, split_steps, token_step_ids

__all__ = [
    "DEFAULT_DELIMITER", "EPSILON", "Step", "apply_overlong", "apply_overlong_steps", "decoded_offsets",
    "outcome_advantages", "process_advantages", "score_to_reward", "split_steps", "token_advantages",
    "token_step_ids",
]
