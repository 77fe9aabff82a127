"""`ExpRLReplayBuffer`: verl's synchronous replay buffer with exprl's advantage step.

verl 0.9.1's v1 trainer keeps rollouts in TransferQueue and, each step, asks its replay buffer for a
training batch (`trainer.v1.sampler.custom_sampler` names the class: verl's documented way to plug
one in), then computes old and reference log-probs, then advantages from three fields (`uid`,
`response_mask`, `rm_scores`), then the loss. This buffer hands out the same batch as verl's, after
one step of exprl's own: it reads each rollout's record (`extra_fields.reward_extra_info`, written
by `ExpRLRewardManager` as the rollout finished), computes the batch's advantages with exprl's core
(`advantages.batch_scores`), and writes back

* `rm_scores`: the token-level advantages. verl's streaming reward path put one scalar on the last
  token; ExpRL-Process needs a value per token. verl copies them to `token_level_rewards`, and the
  `exprl` estimator (registered when this module is imported, which verl does while building the
  trainer) returns them unchanged;
* `response_mask` and `loss_mask`: zeroed for a rollout that leaves the loss (unscorable, or masked
  by the overlong policy). verl's loss (`verl.workers.utils.losses.ppo_loss`) masks the policy,
  entropy and KL terms with `response_mask`, and its engines average over the tokens of
  `loss_mask`: such a rollout is out of the loss, not in it with advantage 0, as verl's own
  synthetic padding rollouts are (`verl.trainer.ppo.padding_utils`).

The batch's exprl metrics (`exprl.rewards.monitors.batch_metrics`) join verl's step metrics. verl's
`critic/score/*` and `critic/rewards/*` then read the advantages (as in the official code, whose
reward tensor held them too); `exprl/dense_reward_mean` is the judge's.

The settings arrive through `trainer.v1.sampler.sampler_kwargs`, which the shipped configs fill by
interpolation from the config's `exprl:` and `algorithm:` sections (one place declares each).
"""
from __future__ import annotations

from typing import Any

import torch
import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.utils import tensordict_utils as tu

from exprl.errors import ConfigError
from exprl.integrations.verl.advantages import ESTIMATOR, batch_scores
from exprl.integrations.verl.settings import VerlSettings, read_settings
from exprl.judge.types import JudgeStatus
from exprl.rewards.monitors import batch_metrics


def check_sampler_kwargs(kwargs: Any) -> VerlSettings:
    """The settings the buffer needs, and what it needs of the rest of the verl config, refused by
    key before anything starts."""
    settings = read_settings({"exprl": kwargs.get("exprl")})
    if kwargs.get("adv_estimator") != ESTIMATOR:
        raise ConfigError(f"algorithm.adv_estimator must be {ESTIMATOR!r} with exprl's replay buffer, got "
                          f"{kwargs.get('adv_estimator')!r}")
    if kwargs.get("use_kl_in_reward"):
        raise ConfigError("algorithm.use_kl_in_reward must be false: exprl's token-level scores are the "
                          "advantages (the KL goes in the loss: actor_rollout_ref.actor.use_kl_loss)")
    if kwargs.get("reward_model_enable") and not kwargs.get("reward_model_own_pool"):
        raise ConfigError("reward.reward_model.enable with enable_resource_pool false: verl 0.9.1 then judges "
                          "after sampling and hands the reward manager no reward_model/extra_info columns; give "
                          "the judge its own pool (enable_resource_pool: true) or serve it outside verl")
    return settings


class ExpRLReplayBuffer(ReplayBuffer):
    """verl's sync `ReplayBuffer`, with exprl's advantages written into every training batch it
    hands out (module docstring). Validation batches pass through untouched."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.trainer_mode != "sync":
            raise ConfigError(f"exprl's replay buffer runs verl's sync trainer mode, not {self.trainer_mode!r} "
                              f"(trainer.v1.trainer_mode)")
        self.settings = check_sampler_kwargs(self.sampler_kwargs or {})

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[Any, dict]:
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id != "val":
            metrics.update(write_exprl_scores(batch, self.settings))
        return batch, metrics


def write_exprl_scores(batch: Any, settings: VerlSettings) -> dict[str, float]:
    """exprl's advantage step on one batch in TransferQueue (`batch`: verl's `KVBatchMeta`); the
    batch's exprl metrics."""
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                           select_fields=["uid", "response_mask", "extra_fields"])
    response_mask = data["response_mask"]
    masks = list(response_mask.unbind()) if response_mask.is_nested else list(response_mask)
    padding = [bool(tag.get("is_padding", False)) for tag in batch.tags]
    scores, new_masks, rollouts, groups, found = batch_scores(
        list(data["extra_fields"]), list(data["uid"]), masks, padding, settings.signal, settings.reward)
    fields = {name: torch.nested.as_nested_tensor(rows, layout=torch.jagged)
              for name, rows in (("rm_scores", scores), ("response_mask", new_masks), ("loss_mask", new_masks))}
    tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=tu.get_tensordict(fields))
    return batch_metrics(rollouts, groups, [status.value for status in JudgeStatus],
                         found if settings.signal == "process" else None)
