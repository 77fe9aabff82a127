"""Rewards: step splitting, the reward config, the per-rollout record and the reward path per
rollout (`rollouts`: a judge score to a token's advantage, in call order), advantages (pure
functions), the sparse verifier, the training monitors.

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
from exprl.rewards.record import Judgment, Rollout, Traits, advantages, score_reward, tokens_per_step
from exprl.rewards.rollouts import Verdict, asked_rollouts, overlong_flags, record_rollouts
from exprl.rewards.steps import (DEFAULT_DELIMITER, Step, decoded_offsets, split_steps, token_end_steps,
                                 token_step_ids, trace_steps)

__all__ = [
    "DEFAULT_DELIMITER", "EPSILON", "Alert", "Judgment", "Monitor", "MonitorConfig", "RewardConfig", "Rollout",
    "Step", "Traits", "Verdict", "advantages", "apply_overlong", "apply_overlong_steps", "asked_rollouts",
    "batch_metrics", "decoded_offsets", "outcome_advantages", "overlong_flags", "process_advantages", "read_traits",
    "record_rollouts", "score_reward", "split_steps", "token_end_steps", "token_step_ids", "tokens_per_step",
    "trace_steps",
]
