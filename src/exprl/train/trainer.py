"""ExpRLTrainer: TRL's GRPOTrainer with exprl's judge rewards and advantages.

TRL generates, runs the reward functions, gathers their values across processes and computes its
own group advantages. This subclass changes two things and nothing else:

1. `_calculate_rewards`: the reward functions (judge, sparse verifier) leave per-sample side data
   (process step rewards, token -> step maps, judge statuses); after TRL's gather we gather that
   side data the same way, so every process sees the whole generation batch in TRL's order.
2. `_generate_and_score_completions`: after TRL returns, `advantages` is replaced by exprl.rewards'
   values computed over the gathered groups and sliced to this process exactly as TRL slices
   (`process_index * local_batch`): (B,) for outcome methods, (B, T) per token for ExpRL-Process.
   Unscorable rollouts get their completion mask zeroed (out of the loss) and were already left out
   of the group statistics; `num_items_in_batch` is recomputed to match.

The reference reaches the judge only through hidden dataset columns (`reference`, `answer`,
`problem_text`); the prompt column is built by `exprl.data.prompts.policy_messages` alone.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Sequence

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from exprl.judge.types import JudgeRequest, JudgeResult, JudgeStatus, ProcessView, process_requests
from exprl.rewards.advantages import (
    apply_overlong,
    apply_overlong_steps,
    outcome_advantages,
    process_advantages,
)
from exprl.rewards.config import RewardConfig
from exprl.rewards.steps import decoded_offsets, split_steps, token_step_ids
from exprl.rewards.verifier import completion_text, sparse_rewards

logger = logging.getLogger(__name__)


class ExpRLTrainer(GRPOTrainer):
    """GRPOTrainer for exprl-outcome, exprl-process and sparse grpo (see the module docstring)."""

    def __init__(self, *args: Any, method: str, reward: RewardConfig, process_view: ProcessView,
                 judge: Any = None, **kwargs: Any):
        if method not in ("exprl-outcome", "exprl-process", "grpo"):
            raise ValueError(f"ExpRLTrainer does not train method {method!r}")
        if method != "grpo" and judge is None:
            raise ValueError(f"method {method} needs a judge")
        self.method, self.reward, self.process_view = method, reward, process_view
        self.judge = judge
        self._side: dict[str, list[Any]] = {}
        self._gathered: dict[str, Any] = {}
        if method == "exprl-outcome":
            reward_funcs = [self.judge_outcome, self.sparse_correct]
        elif method == "exprl-process":
            reward_funcs = [self.judge_process, self.sparse_correct]
        else:
            reward_funcs = [self.sparse_correct]
        args_ = kwargs.get("args")
        if args_ is not None:
            # Only column 0 trains (and exprl computes its advantages itself); the verifier is logged.
            args_.reward_weights = [1.0] + [0.0] * (len(reward_funcs) - 1)
        super().__init__(*args, reward_funcs=reward_funcs, **kwargs)

    # ------------------------------------------------------------------ reward functions
    def sparse_correct(self, completions: list[Any], answer: list[str], **_: Any) -> list[float]:
        """Final-answer correctness: the GRPO reward, and for ExpRL only a logged number."""
        return sparse_rewards(completions, answer)

    def _is_overlong(self, completion_ids: Sequence[Sequence[int]]) -> list[bool]:
        stop = set(self.eos_token_ids) | {self._tokenizer.pad_token_id}
        return [len(ids) >= self.max_completion_length and (not ids or ids[-1] not in stop)
                for ids in completion_ids]

    async def judge_outcome(self, completions: list[Any], completion_ids: list[list[int]],
                            problem_text: list[str], reference: list[str], answer: list[str],
                            domain: list[str], problem_id: list[str], **_: Any) -> list[float | None]:
        """One judge call per rollout on the whole trace; all calls of the batch in flight together."""
        skip = self._is_overlong(completion_ids) if self.reward.overlong == "zero" else [False] * len(completions)
        requests = [JudgeRequest(problem=p, reference=r, trace=completion_text(c), mode="outcome", answer=a,
                                 domain=d, problem_id=i)
                    for c, p, r, a, d, i, s in zip(completions, problem_text, reference, answer, domain,
                                                   problem_id, skip) if not s]
        results = iter(await self.judge.judge_many(requests) if requests else [])
        rewards: list[float | None] = []
        statuses: list[JudgeResult | None] = []
        for s in skip:
            result = None if s else next(results)
            statuses.append(result)
            rewards.append(0.0 if s else result.reward)  # type: ignore[union-attr]
        self._side["judge_results"] = [[r] if r is not None else [] for r in statuses]
        self._side["num_steps"] = [1] * len(completions)
        return rewards

    async def judge_process(self, completion_ids: list[list[int]], problem_text: list[str],
                            reference: list[str], answer: list[str], domain: list[str],
                            problem_id: list[str], **_: Any) -> list[float | None]:
        """Split every rollout into steps and judge ALL steps of ALL rollouts in one `judge_many`."""
        tokenizer = self._tokenizer
        skip = self._is_overlong(completion_ids) if self.reward.overlong == "zero" else [False] * len(completion_ids)
        requests: list[JudgeRequest] = []
        layout: list[tuple[int, int]] = []  # per rollout: (first request index, number of steps)
        step_ids: list[list[int]] = []
        for ids, p, r, a, d, i, s in zip(completion_ids, problem_text, reference, answer, domain, problem_id, skip):
            text, offsets = decoded_offsets(ids, tokenizer)
            steps = split_steps(text, self.reward.delimiter)
            step_ids.append(token_step_ids(steps, offsets))
            layout.append((len(requests), len(steps)))
            if s:
                continue
            requests.extend(process_requests(text, steps, self.process_view, problem=p, reference=r,
                                             answer=a, domain=d, problem_id=i))
        results = await self.judge.judge_many(requests) if requests else []
        step_rewards: list[list[float | None]] = []
        per_rollout_results: list[list[JudgeResult]] = []
        for (first, count), s in zip(layout, skip):
            if s:
                step_rewards.append([0.0] * count)
                per_rollout_results.append([])
            else:
                chunk = results[first:first + count]
                per_rollout_results.append(list(chunk))
                step_rewards.append([res.reward for res in chunk])
        self._side.update(step_rewards=step_rewards, step_ids=step_ids, judge_results=per_rollout_results,
                          num_steps=[count for _, count in layout])
        # TRL logs this column as "the" reward: the final step's score (the whole trace's under the prefix view)
        return [None if any(v is None for v in sr) else sr[-1] for sr in step_rewards]

    # ------------------------------------------------------------------ TRL hooks
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._side = {}
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        local_overlong = self._is_overlong(completion_ids_list)
        gathered = {"overlong": gather_object(local_overlong), "local_step_ids": self._side.get("step_ids")}
        for key in ("step_rewards", "judge_results", "num_steps"):
            if key in self._side:
                gathered[key] = gather_object(self._side[key])
        gathered["rewards_per_func"] = rewards_per_func
        self._gathered = gathered
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        g = self._gathered
        rewards_per_func: torch.Tensor = g["rewards_per_func"]
        total = rewards_per_func.size(0)
        group_ids = [i // num_generations for i in range(total)]  # TRL's view(-1, num_generations)
        overlong = g["overlong"]
        s = self.reward

        if self.method == "exprl-process":
            step_rewards = apply_overlong_steps(g["step_rewards"], overlong, s.overlong)
            all_adv = process_advantages(step_rewards, group_ids, mode=s.process_mode,
                                         single_step=s.single_step, normalize=s.outcome_normalize)
        else:
            column = [None if math.isnan(v) else v for v in rewards_per_func[:, 0].tolist()]
            all_adv = outcome_advantages(apply_overlong(column, overlong, s.overlong), group_ids,
                                         s.outcome_normalize)

        local_n = output["completion_ids"].size(0)
        start = self.accelerator.process_index * local_n
        local_adv = all_adv[start:start + local_n]
        keep = torch.tensor([a is not None for a in local_adv], device=output["completion_mask"].device)
        completion_mask = output["completion_mask"] * keep.unsqueeze(1).to(output["completion_mask"].dtype)
        if self.method == "exprl-process":
            advantages = torch.zeros(completion_mask.shape, dtype=torch.float32, device=completion_mask.device)
            for row, (adv, ids) in enumerate(zip(local_adv, g["local_step_ids"])):
                if adv is not None:
                    advantages[row, :len(ids)] = torch.tensor([adv[t] for t in ids], dtype=torch.float32)
        else:
            advantages = torch.tensor([a if a is not None else 0.0 for a in local_adv], dtype=torch.float32,
                                      device=completion_mask.device)
        output["advantages"] = advantages
        output["completion_mask"] = completion_mask
        loss_mask = completion_mask if "tool_mask" not in output else completion_mask * output["tool_mask"]
        output["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        self._log_exprl_metrics(mode, rewards_per_func, all_adv, group_ids, overlong)
        return output

    def _log_exprl_metrics(self, mode: str, rewards_per_func: torch.Tensor, advantages: list[Any],
                           group_ids: list[int], overlong: list[bool]) -> None:
        metrics = self._metrics[mode]
        g = self._gathered
        sparse = rewards_per_func[:, -1]
        metrics["exprl/sparse_correct"].append(sparse.mean().item())
        solved_groups = {gid for gid, v in zip(group_ids, sparse.tolist()) if v > 0}
        metrics["exprl/unsolved_share"].append(1.0 - len(solved_groups) / max(len(set(group_ids)), 1))
        metrics["exprl/overlong_share"].append(sum(overlong) / max(len(overlong), 1))
        metrics["exprl/unscorable_share"].append(sum(a is None for a in advantages) / max(len(advantages), 1))
        if self.method == "grpo":
            return
        dense = rewards_per_func[:, 0]
        dense = dense[~torch.isnan(dense)]
        if dense.numel():
            metrics["exprl/dense_reward_mean"].append(dense.mean().item())
            metrics["exprl/dense_reward_std"].append(dense.std().item() if dense.numel() > 1 else 0.0)
        results = [r for rollout in g.get("judge_results", []) for r in rollout]
        counts = Counter(r.status.value if isinstance(r.status, JudgeStatus) else str(r.status) for r in results)
        for status in JudgeStatus:
            metrics[f"exprl/judge_{status.value}"].append(float(counts.get(status.value, 0)))
        metrics["exprl/judge_calls"].append(float(len(results)))
        if results:
            metrics["exprl/judge_cache_hit_rate"].append(sum(r.cached for r in results) / len(results))
            metrics["exprl/judge_latency_s"].append(sum(r.latency_s for r in results) / len(results))
        steps = g.get("num_steps") or []
        if steps:
            metrics["exprl/steps_per_trace_mean"].append(sum(steps) / len(steps))
            for label, lo, hi in (("1", 1, 1), ("2-3", 2, 3), ("4-7", 4, 7), ("8+", 8, 10**9)):
                metrics[f"exprl/steps_per_trace_{label}"].append(sum(lo <= n <= hi for n in steps) / len(steps))
