"""ExpRLReplayBuffer inside verl's own machinery: a real TransferQueue (on a local Ray instance), the
buffer built with the arguments verl's trainer gives a custom sampler, verl's own
`PPOTrainer._compute_advantage` after it, and verl's own loss (`ppo_loss`) on what comes out.

The rollouts are put into TransferQueue as verl's agent loop puts them (one scalar on the last
token, the record in `extra_fields`), for two prompts, one rollout unscorable. The advantages verl
computes must equal exprl's core functions token for token, and the unscorable rollout must be out
of verl's loss: no gradient, and a loss equal to the loss of the batch without it.
"""
from __future__ import annotations

import random

import pytest
import torch
from omegaconf import OmegaConf

from exprl.integrations.verl.records import RECORD_KEY, dump_record
from exprl.integrations.verl.settings import read_settings
from exprl.rewards.record import Judgment, Rollout

from .conftest import compose
from .test_advantages import expected_rows

pytestmark = pytest.mark.slow  # a local Ray instance: about 15 s to start


@pytest.fixture(scope="module")
def transfer_queue():
    import ray
    import transfer_queue as tq

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        yield tq
        tq.close()
    finally:
        ray.shutdown()


def rollouts_of(signal: str, rng: random.Random) -> list[Rollout]:
    steps = (lambda: rng.randint(1, 4)) if signal == "process" else (lambda: 1)
    found = []
    for i in range(6):
        n = steps()
        rewards = [None if i == 4 and t == n - 1 else rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for t in range(n)]
        found.append(Rollout(overlong=False, correct=0.0, step_rewards=rewards,
                             judgments=[Judgment("ok" if r is not None else "timeout", False, 0.1) for r in rewards],
                             tokens_per_step=[rng.randint(1, 5) for _ in range(n)] if signal == "process" else []))
    return found


def put_like_the_agent_loop(tq, rollouts, uids, lengths, prompt_len=3):
    """Prompts and trajectories in TransferQueue as verl's agent loop leaves them
    (`AgentLoopWorkerTQ`, `AgentLoopOutput.as_dict`)."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    tq.kv_batch_put(keys=sorted(set(uids)), partition_id="train",
                    tags=[{"is_prompt": True, "status": "finished", "global_steps": 0}] * len(set(uids)))
    keys, fields, tags = [], [], []
    for i, (rollout, uid, n) in enumerate(zip(rollouts, uids, lengths)):
        keys.append(f"{uid}_{i}_0")
        rm_scores = torch.zeros(n)
        rm_scores[-1] = rollout.dense_reward or 0.0
        fields.append({"prompts": torch.arange(prompt_len), "responses": torch.arange(n) + 10,
                       "response_mask": torch.ones(n, dtype=torch.int64), "loss_mask": torch.ones(n, dtype=torch.int64),
                       "rm_scores": rm_scores, "rollout_log_probs": -torch.rand(n), "old_log_probs": -torch.rand(n),
                       "ref_log_prob": -torch.rand(n), "uid": uid,
                       "extra_fields": {"reward_extra_info": {RECORD_KEY: dump_record(rollout)}}})
        tags.append({"status": "success", "prompt_len": prompt_len, "response_len": n, "seq_len": prompt_len + n,
                     "global_steps": 0, "min_global_steps": 0, "max_global_steps": 0})
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields), tags=tags)


@pytest.mark.parametrize("method", ["exprl-outcome", "exprl-process"])
def test_verl_trains_on_exprls_advantages_and_never_on_an_unscorable_rollout(transfer_queue, method):
    from verl.trainer.ppo.v1 import PPOTrainerSync

    from exprl.integrations.verl.sampler import ExpRLReplayBuffer

    tq = transfer_queue
    config = compose(f"exprl_stage1_{method.removeprefix('exprl-')}")
    OmegaConf.resolve(config)
    signal = read_settings(config).signal
    rollouts = rollouts_of(signal, random.Random(method))
    uids = ["ua"] * 3 + ["ub"] * 3
    lengths = [sum(r.tokens_per_step) if signal == "process" else 4 + i for i, r in enumerate(rollouts)]
    put_like_the_agent_loop(tq, rollouts, uids, lengths)

    sampler = config.trainer.v1.sampler  # what PPOTrainer._build_replay_buffer hands a custom sampler
    buffer = ExpRLReplayBuffer(trainer_mode=config.trainer.v1.trainer_mode, trainer_config=config.trainer.v1.sync,
                               max_off_policy_threshold=sampler.max_off_policy_threshold,
                               max_off_policy_strategy=sampler.max_off_policy_strategy,
                               sampler_kwargs=sampler.sampler_kwargs, refill_fn=lambda count: None, poll_interval=0.05)
    batch, metrics = buffer.sample(global_steps=0, partition_id="train", batch_size=2)
    assert len(batch.keys) == 6 and metrics["exprl/unscorable_share"] == pytest.approx(1 / 6)

    trainer = PPOTrainerSync.__new__(PPOTrainerSync)  # verl's own advantage step, without its workers
    trainer.config = config
    trainer._compute_advantage(batch, metrics={})
    data = tq.kv_batch_get(keys=batch.keys, partition_id="train",
                           select_fields=["uid", "advantages", "response_mask", "loss_mask", "old_log_probs",
                                          "ref_log_prob", "prompts", "responses"])
    order = [int(key.split("_")[1]) for key in batch.keys]
    want = expected_rows(read_settings(config).reward, rollouts, uids, lengths, signal)
    for row, i in enumerate(order):
        advantage = data["advantages"][row]
        if want[i] is None:
            assert i == 4 and not data["response_mask"][row].any() and not data["loss_mask"][row].any()
            assert not advantage.any()
        else:
            assert data["response_mask"][row].all() and data["loss_mask"][row].all()
            torch.testing.assert_close(advantage, torch.tensor(want[i]), rtol=0, atol=1e-6)

    loss, grad = verl_loss(config, data, keep=range(6))
    unscorable = order.index(4)
    assert not grad[unscorable].any() and grad[[r for r in range(6) if r != unscorable]].abs().sum() > 0
    without, _ = verl_loss(config, data, keep=[r for r in range(6) if r != unscorable])
    torch.testing.assert_close(loss, without)


def verl_loss(config, data, keep):
    """verl's `ppo_loss` on the rows `keep`, with the new policy's log-probs a little off the old
    ones; the loss and the gradient of each row's log-probs. verl's engines average over the tokens
    of `loss_mask` (`batch_num_tokens`)."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.utils.losses import ppo_loss

    keep = list(keep)
    pad = lambda name, dtype: torch.nn.utils.rnn.pad_sequence([data[name][r].to(dtype) for r in keep],
                                                             batch_first=True)
    responses, prompts = pad("responses", torch.int64), pad("prompts", torch.int64)
    response_mask = pad("response_mask", torch.int64)
    old = pad("old_log_probs", torch.float32)
    # each rollout's own offset (seeded by its row), whatever rows are kept
    offsets = [0.05 * torch.randn(64, generator=torch.Generator().manual_seed(r))[:old.shape[1]] for r in keep]
    new = (old + torch.stack(offsets)).requires_grad_(True)
    # the model's output: one log-prob per token of prompt + response, unpadded
    sequences = [torch.cat([torch.zeros(prompts.shape[1]), new[k, :int(data["responses"][r].numel())]])
                 for k, r in enumerate(keep)]
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    batch = TensorDict({"prompts": prompts, "responses": responses,
                        "attention_mask": torch.cat([torch.ones_like(prompts), (responses_len_mask(data, keep))], 1),
                        "response_mask": response_mask, "old_log_probs": old, "advantages": pad("advantages", torch.float32),
                        "ref_log_prob": pad("ref_log_prob", torch.float32)}, batch_size=len(keep))
    tu.assign_non_tensor(batch, dp_size=1, batch_num_tokens=int(sum(data["loss_mask"][r].sum() for r in keep)),
                         global_batch_size=len(keep))
    loss, _ = ppo_loss(actor, {"log_probs": torch.cat(sequences)}, batch)
    loss.backward()
    return loss.detach(), new.grad


def responses_len_mask(data, keep):
    return torch.nn.utils.rnn.pad_sequence([torch.ones(int(data["responses"][r].numel()), dtype=torch.int64)
                                            for r in keep], batch_first=True)
