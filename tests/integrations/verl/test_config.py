"""The shipped Stage-I configs: Hydra composes them on verl's own config, verl's checks accept them,
every class they name loads, and they carry the paper's values (method.md §3)."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from exprl.errors import ConfigError
from exprl.integrations.verl.sampler import check_sampler_kwargs

from .conftest import compose

PAPER = {  # method.md §3, the official qwen4b scripts
    "exprl_stage1_outcome": dict(method="exprl-outcome", n=10, mini=18, clip_high=0.28),
    "exprl_stage1_process": dict(method="exprl-process", n=16, mini=36, clip_high=0.26),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_stage1_config_composes_passes_verl_checks_and_loads_its_classes(name):
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config
    from verl.utils.import_utils import load_extern_object

    config = compose(name)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    assert need_reference_policy(config) and not need_critic(config)
    assert resolve_reward_manager_cls(config).__name__ == "ExpRLRewardManager"
    sampler = config.trainer.v1.sampler.custom_sampler
    assert load_extern_object(sampler.path, sampler.name).__name__ == "ExpRLReplayBuffer"
    assert get_adv_estimator_fn(config.algorithm.adv_estimator).__module__ == "exprl.integrations.verl.advantages"
    omega_conf_to_dataclass(config.algorithm)
    OmegaConf.resolve(config)
    settings = check_sampler_kwargs(config.trainer.v1.sampler.sampler_kwargs)
    assert settings.method == PAPER[name]["method"] and settings.judge.process_view == "segment"


@pytest.mark.parametrize("name", sorted(PAPER))
def test_a_stage1_config_has_the_papers_values(name):
    config = compose(name)
    paper, actor, rollout = PAPER[name], config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    assert config.data.train_batch_size == 36
    assert (rollout.n, actor.ppo_mini_batch_size) == (paper["n"], paper["mini"])
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.clip_ratio_c) == (0.2, paper["clip_high"], 3.0)
    assert (actor.use_kl_loss, actor.kl_loss_coef, actor.kl_loss_type) == (True, 0.001, "low_var_kl")
    assert (actor.optim.lr, actor.optim.weight_decay, actor.grad_clip, actor.ppo_epochs) == (1e-6, 0.01, 1.0, 1)
    assert (actor.entropy_coeff, actor.loss_agg_mode) == (0, "token-mean")
    assert (rollout.temperature, rollout.top_p, rollout.response_length, rollout.prompt_length) == (
        0.8, 1.0, 16384, 4096)
    assert not config.algorithm.use_kl_in_reward
    assert config.data.apply_chat_template_kwargs.enable_thinking is False
    assert config.trainer.n_gpus_per_node + 2 == 8 and config.trainer.total_training_steps == 230
    assert config.exprl.judge.temperature == 0.0 and config.exprl.judge.max_new_tokens == 2048


@pytest.mark.parametrize("override, refused", [
    ("algorithm.adv_estimator=grpo", "algorithm.adv_estimator must be 'exprl'"),
    ("algorithm.use_kl_in_reward=true", "use_kl_in_reward must be false"),
    ("reward.reward_model.enable=true", "enable_resource_pool false"),
    ("+exprl.reward.no_such_key=1", "'exprl.reward.no_such_key'"),
    ("exprl.method=grpo", "'exprl.method' must be one of"),
])
def test_what_the_replay_buffer_cannot_run_is_refused_by_key(override, refused):
    config = compose("exprl_stage1_process", [override])
    OmegaConf.resolve(config)
    with pytest.raises(ConfigError, match=refused.replace("(", r"\(")):
        check_sampler_kwargs(config.trainer.v1.sampler.sampler_kwargs)


def test_the_replay_buffer_refuses_an_asynchronous_trainer_mode():
    from exprl.integrations.verl.sampler import ExpRLReplayBuffer

    config = compose("exprl_stage1_outcome")
    OmegaConf.resolve(config)
    sampler = config.trainer.v1.sampler
    with pytest.raises(ConfigError, match="sync trainer mode, not 'separate_async'"):
        ExpRLReplayBuffer(trainer_mode="separate_async", trainer_config=config.trainer.v1.separate_async,
                          max_off_policy_threshold=sampler.max_off_policy_threshold,
                          max_off_policy_strategy=sampler.max_off_policy_strategy,
                          sampler_kwargs=sampler.sampler_kwargs, refill_fn=lambda count: None)
