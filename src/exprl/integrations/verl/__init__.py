"""ExpRL on verl (0.9.x): exprl's judge and rewards as a verl reward manager, a replay buffer and an
advantage estimator.

verl samples, computes log-probabilities, the KL loss and the clipped PPO loss; exprl judges each
rollout, decides which rollouts leave the loss, and computes the advantages with its own core
functions. What crosses from one to the other, and where:

    dataset row (data.py)   the policy's prompt in `prompt`; the reference only in `reward_model`
    reward manager          `ExpRLRewardManager.run_single` (reward_manager.py): one rollout ->
                            exprl's judge service (any backend, its cache) -> one
                            `exprl.rewards.record.Rollout`, carried in `reward_extra_info`
    replay buffer           `ExpRLReplayBuffer` (sampler.py): each training batch verl samples,
                            its records -> exprl's advantages (`exprl.rewards.record.advantages`)
                            as token-level scores in `rm_scores`; a rollout out of the loss gets
                            its `response_mask` and `loss_mask` zeroed
    advantage estimator     `exprl` (advantages.py): those token-level scores, unchanged, are the
                            advantages

Why the replay buffer: verl 0.9.1 hands a reward manager's result to the trainer as one scalar on
the last token (`AgentLoopOutput.reward_score`), and neither a reward manager nor an estimator can
reach the response mask the loss reads; the buffer is the one pluggable class that sees the batch
in between (docs/scaling.md, "TRL + accelerate or verl").

verl loads each piece by the path the config names (`pkg://exprl.integrations.verl...`), in the
process that uses it. Importing this package imports nothing from verl.
"""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "config"
"""The shipped verl configs (Hydra), for `python -m verl.trainer.main_ppo --config-path`."""
