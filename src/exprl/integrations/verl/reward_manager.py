"""ExpRL's reward manager for verl: each rollout judged by exprl's judge service.

`ExpRLRewardManager.run_single` is what verl's reward-loop worker calls for one rollout (verl's
streaming path: the agent loop asks a worker as each rollout finishes; the colocated path: a worker
per chunk of the batch). It runs exprl's reward path for that rollout, in the order the TRL trainer
does (`exprl.rewards.rollouts`): the overlong flag, the judge requests (the whole trace, or one per
`###` step of the decoded sampled ids under the judge's process view), one `judge_many` on exprl's
`JudgeService` (any backend, its cache, its retries; a failure is a status, never a number), the
sparse verifier and the monitors' traits, and the `Rollout` record. The record travels in
`reward_extra_info` (`records.py`); advantages need the whole group and are the trainer mode's.

`reward_score`, the one number verl keeps from a reward manager (it writes it on the last response
token), is the judge's reward s = (score - 1) / 4 for verl's own logs; the trainer mode overwrites
it before anything trains on it. For an unscorable rollout verl still needs a number there: it gets
0.0, which is never trained on (the rollout leaves the loss) and which `exprl_judge_reward` (None)
and the `exprl/unscorable_share` metric tell apart from a judged 0.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from exprl.errors import ConfigError
from exprl.integrations.verl.data import judge_row
from exprl.integrations.verl.records import RECORD_KEY, dump_record
from exprl.integrations.verl.settings import read_settings
from exprl.judge.requests import judge_requests
from exprl.judge.service import build_judge
from exprl.judge.types import Judge
from exprl.rewards.monitors import read_traits
from exprl.rewards.rollouts import asked_rollouts, overlong_flags, record_rollouts
from exprl.rewards.verifier import sparse_rewards


@register("exprl")
class ExpRLRewardManager(RewardManagerBase):
    """verl's reward manager for exprl-outcome and exprl-process (module docstring).

    `config`: the whole verl config, whose `exprl:` section (`settings.VerlSettings`) names the
    method, the judge and the reward settings. `reward_router_address`: set by verl when the judge
    is verl's own reward model (`reward.reward_model.enable`); an openai judge with no `base_urls`
    then talks to it. `judge`: any `Judge` in place of the configured one (tests).
    """

    def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None,
                 reward_router_address: str | None = None, reward_model_tokenizer: Any = None,
                 judge: Judge | None = None):
        super().__init__(config, tokenizer, compute_score)
        self.settings = read_settings(config)
        self.max_response_length = _max_response_length(config)
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        judge_config = self.settings.judge
        if reward_router_address and judge_config.backend == "openai" and not judge_config.base_urls:
            served = judge_config.model or str(config.reward.reward_model.model_path or "")
            judge_config = dataclasses.replace(judge_config, base_urls=[f"http://{reward_router_address}/v1"],
                                               model=served)
        self.judge = judge if judge is not None else build_judge(judge_config)

    async def run_single(self, data: DataProto) -> dict[str, Any]:
        item = data[len(data) - 1]  # a multi-turn rollout is judged on its last output, as verl's managers do
        responses = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-responses.shape[-1]:].sum())
        ids = [int(i) for i in responses[:valid].tolist()]
        row = judge_row(item.non_tensor_batch["reward_model"], item.non_tensor_batch.get("extra_info") or {})
        settings, reward = self.settings, self.settings.reward
        loop = asyncio.get_running_loop()

        def prepare():
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            requests, step_tokens = judge_requests([row], [text], [ids], settings.signal, reward.delimiter,
                                                   settings.judge.process_view, self.tokenizer,
                                                   segmentation=reward.segmentation)
            return text, requests, step_tokens

        text, requests, step_tokens = await loop.run_in_executor(None, prepare)
        overlong = overlong_flags([ids], self.stop_ids, self.max_response_length, reward.overlong_rule)
        asked = asked_rollouts(overlong, reward)
        results = await self.judge.judge_many(requests[0]) if asked[0] else []
        # The verifier (logged, never trained on) times out safely outside the main thread: it then
        # uses its process pool (exprl.rewards.verifier).
        correct = await loop.run_in_executor(None, sparse_rewards, [text], [row["answer"]])
        rollout, = record_rollouts(overlong, correct, requests, step_tokens, asked, results)
        rollout.traits = read_traits(text, len(ids), reward.delimiter)
        dense = rollout.dense_reward
        return {"reward_score": 0.0 if dense is None else dense,
                "reward_extra_info": {RECORD_KEY: dump_record(rollout), "exprl_judge_reward": dense,
                                      "exprl_correct": rollout.correct, "exprl_steps": rollout.num_steps}}


def _max_response_length(config: Any) -> int:
    try:
        return int(config.actor_rollout_ref.rollout.response_length)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError("the verl config needs actor_rollout_ref.rollout.response_length (the length cap "
                          "that decides an overlong rollout)") from exc
