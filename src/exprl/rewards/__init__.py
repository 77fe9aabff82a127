"""Rewards: step splitting, the reward config, the per-rollout record, advantages (pure functions),
the sparse verifier, the training monitors.

Engine-agnostic: nothing here imports a trainer or the judge (rewards sit below the judge, whose
CLI splits steps and labels calibration traces with the verifier), so a verl adapter could reuse
it beside TRL's.
"""
from exprl.rewards.advantages import (
    EPSILON,
    apply_overlong,
    apply_overlong_steps,
    outcome_advantages,
    process_advantages,
)
from exprl.rewards.config import RewardConfig
from exprl.rewards.monitors import Alert, Monitor, MonitorConfig, batch_metrics, read_traits
from exprl.rewards.record import Judgment, Rollout, Traits, advantages, tokens_per_step
from exprl.rewards.steps import (DEFAULT_DELIMITER, Step, decoded_offsets, split_steps, token_end_steps,
                                 token_step_ids, trace_steps)

__all__ = [
    "DEFAULT_DELIMITER", "EPSILON", "Alert", "Judgment", "Monitor", "MonitorConfig", "RewardConfig", "Rollout",
    "Step", "Traits", "advantages", "apply_overlong", "apply_overlong_steps", "batch_metrics", "decoded_offsets",
    "outcome_advantages", "process_advantages", "read_traits", "split_steps", "token_end_steps", "token_step_ids",
    "tokens_per_step", "trace_steps",
]
