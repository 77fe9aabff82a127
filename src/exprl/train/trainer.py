"""ExpRLTrainer: TRL's GRPOTrainer with exprl's judge rewards and advantages.

TRL samples the rollouts, computes log-probabilities, the KL term and the clipped loss; all of that
is TRL's, untouched. The reward path itself (a judge score to a token's advantage) is plain
functions outside this module, laid out in order in `exprl.rewards.rollouts`; this module keeps only
what ties them to TRL. Every place it touches TRL (checked against TRL 1.16.0, the version
pyproject.toml pins; a seam not in this table is a bug):

    seam (TRL 1.16.0 GRPOTrainer)     kind                 what exprl does with it
    --------------------------------  -------------------  ------------------------------------------------
    _generate(prompts)                override, wraps      sets the batch's judging going as soon as
                                                           sampling returns
    _generate's result (8 values)     read by position     [1] completion ids, [3] completions (the order
                                                           of its `return`)
    _calculate_rewards(inputs,        override, replaces   one Rollout record per rollout, gathered once;
      prompts, completions,                                TRL's reward table (N, columns) built from them
      completion_ids_list)
    _generate_and_score_completions   override, wraps      hands the rows on; after TRL returns, rewrites
      (inputs)                                             output["advantages"], ["completion_mask"],
                                                           ["num_items_in_batch"]; reads
                                                           ["completion_ids"], ["tool_mask"]
    reward_funcs, args.reward_weights arguments rewritten  named placeholder columns TRL never calls;
      (in __init__)                                        weights [1, 0, ...] (the verifier: logged only)
    generation_config.disable_compile attribute written    False again for a static cache without vLLM
                                                           (TRL sets it True for every cache)
    _tokenizer                        private, read        pad_token_id (an end token for the overlong
                                                           test); decoding with spans
    _metrics[mode][key]               private, appended    exprl's monitor metrics, logged with TRL's
    eos_token_ids,                    attributes, read     the overlong test; the groups; the static-cache
      max_completion_length,                               rule
      num_generations, num_generations_eval, use_vllm
    groups index // num_generations,  conventions,         as TRL's view(-1, num_generations) and its
      local slice process_index *     repeated             process_slice
      local batch
    trl.trainer.utils                 helpers, called      the judge's own event loop for the run
      start_/shutdown_event_loop_in_daemon

The three overrides hand one rollout batch to each other through one object, `_Batch`, because TRL
passes `_generate` the prompts alone and `_calculate_rewards` returns a tensor alone: the rows go
from `_generate_and_score_completions` to `_generate`, the judging under way from `_generate` to
`_calculate_rewards`, the gathered records from `_calculate_rewards` back to
`_generate_and_score_completions`.

The reward step. TRL calls one function per reward, each returning one number per rollout. exprl
needs more than a number (a judge reward per step, which tokens make up each step, why a judgment
failed), so every local rollout is verified and judged (all judgments of the batch in one
`judge_many`), what was found is written to one `exprl.rewards.record.Rollout` per rollout, and the
records are gathered across processes once. The judging starts as soon as TRL's `_generate` returns,
on the judge's own event loop, so it overlaps the log-prob passes TRL makes before its reward step and
the verifier (which runs in the main thread, where math-verify's timeout works).

The advantages. After TRL returns, its `advantages` are replaced by `exprl.rewards.record.advantages`
over the gathered generation batch, sliced to this process: (B,) for outcome methods, (B, T) per
token for ExpRL-Process. An unscorable rollout leaves the loss (its completion mask is zeroed; it was
already left out of its group's statistics), and `num_items_in_batch` is recomputed to match.

A judge that stops answering does not leave the run training blind: when at least
`monitor.stop_unscorable_share` of the rollouts a batch asked the judge about are unscorable for
`monitor.stop_unscorable_batches` batches in a row (`exprl.rewards.monitors.JudgeBreaker`), the
trainer saves a checkpoint and stops, and the runner exits 1 naming the cause.

The reference reaches the judge only through hidden dataset columns (`reference`, `answer`,
`problem_text`); the prompt column is built by `exprl.data.prompts.policy_messages` alone.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from accelerate.utils import gather_object
from transformers import TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import shutdown_event_loop_in_daemon, start_event_loop_in_daemon

from exprl.judge.requests import judge_requests
from exprl.judge.types import Judge, JudgeStatus, ProcessView
from exprl.rewards.config import RewardConfig
from exprl.rewards.monitors import JudgeBreaker, MonitorConfig, batch_metrics, read_traits
from exprl.rewards.record import Rollout, advantages
from exprl.rewards.rollouts import asked_rollouts, overlong_flags, record_rollouts
from exprl.rewards.verifier import completion_text, sparse_rewards
from exprl.train.config import SIGNALS


@dataclass
class _Batch:
    """One rollout batch on its way through TRL's `_generate_and_score_completions`, which calls
    `_generate` and then `_calculate_rewards` without handing on the rows or the records. Each field
    is written by one override and read by the next (module docstring)."""

    rows: list[dict[str, Any]]   # the dataset rows with the hidden columns the judge reads
    judging: tuple[list[list[int]], concurrent.futures.Future] | None = None
    """Set by `_generate`: the completion ids it judges, and the judging under way."""
    rollouts: list[Rollout] | None = None
    """Set by `_calculate_rewards`: the gathered generation batch's records."""


class ExpRLTrainer(GRPOTrainer):
    """GRPOTrainer for exprl-outcome, exprl-process and sparse grpo (see the module docstring).

    `reward` is the recipe's reward section as it is; `process_view` the judge's
    (`JudgeConfig.process_view`); `judge` anything speaking the `Judge` protocol (exprl-* only).
    """

    def __init__(self, *args: Any, method: str, reward: RewardConfig, process_view: ProcessView,
                 judge: Judge | None = None, monitor: MonitorConfig | None = None, **kwargs: Any):
        if method not in SIGNALS:
            raise ValueError(f"ExpRLTrainer does not train method {method!r}")
        if method != "grpo" and judge is None:
            raise ValueError(f"method {method} needs a judge")
        self.method, self.signal, self.reward = method, SIGNALS[method], reward
        self.process_view, self.judge = process_view, judge
        # A judge that stops answering stops the run (a checkpoint saved) instead of training blind.
        self.breaker = JudgeBreaker(monitor or MonitorConfig()) if judge is not None else None
        self.judge_stopped: str | None = None  # why the breaker stopped the run; None while it runs
        self._last_judge_error: str | None = None
        # The batch being scored (`_Batch`); after `_generate_and_score_completions` returns, the last
        # one scored, whose records monitors, tests and benchmarks read.
        self._batch: _Batch | None = None
        columns = [_column(f"judge_{self.signal}"), _column("sparse_correct")] if judge else [_column("sparse_correct")]
        if kwargs.get("args") is not None:
            # TRL's own advantages weigh column 0 only (exprl replaces them anyway); the verifier is logged.
            kwargs["args"].reward_weights = [1.0] + [0.0] * (len(columns) - 1)
        super().__init__(*args, reward_funcs=columns, **kwargs)
        if self.breaker is not None:
            self.add_callback(_StopWhenJudgeFails(self))
        if self.args.cache_implementation == "static" and not self.use_vllm:
            # TRL turns transformers' compiled decoding off (`disable_compile`) for every cache, but a
            # static cache is asked for to be compiled: uncompiled it is no faster than the dynamic
            # one. On a CPU transformers compiles nothing either way (docs/architecture.md).
            self.generation_config.disable_compile = False
        if judge is not None:
            # The judge's clients live on one event loop for the whole run (its connections are reused).
            self._judge_thread, self._judge_loop, ready = start_event_loop_in_daemon(name="exprl-judge")
            ready.wait()
            atexit.register(shutdown_event_loop_in_daemon, self._judge_thread, self._judge_loop)

    # ------------------------------------------------------------------ the reward step
    def _generate(self, prompts):
        """TRL's sampling, after which this batch's judging is set going at once on the judge's loop:
        decoding, step splitting and the judge's calls then overlap what TRL does next without them
        (the reference and old-policy log-prob passes) and the verifier."""
        result = super()._generate(prompts)
        batch = self._batch
        if self.judge is not None and batch is not None and batch.judging is None:
            _, completion_ids, _, completions, *_ = result  # TRL 1.16's order (module docstring)
            batch.judging = (completion_ids, self._start_judging(batch.rows, completions, completion_ids))
        return result

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        """TRL's reward step, replaced: one record per rollout, gathered once; TRL's table from it."""
        if self._batch is None:  # called outside `_generate_and_score_completions`
            self._batch = _Batch(rows=inputs)
        batch = self._batch
        batch.rollouts = gather_object(self._find_rewards(inputs, completions, completion_ids_list, batch.judging))
        dense = [[r.dense_reward, r.correct] if self.judge else [r.correct] for r in batch.rollouts]
        return torch.tensor([[torch.nan if v is None else v for v in row] for row in dense],
                            dtype=torch.float32, device=self.accelerator.device)

    def _start_judging(self, rows: list[dict[str, Any]], completions: list[Any],
                       completion_ids: list[list[int]]) -> concurrent.futures.Future:
        """Judge the local batch on the judge's event loop: every judgment in one `judge_many`."""
        asked = asked_rollouts(self._overlong(completion_ids), self.reward)

        async def judge_batch():
            requests, step_tokens = judge_requests(rows, completions, completion_ids, self.signal,
                                                   self.reward.delimiter, self.process_view, self._tokenizer,
                                                   segmentation=self.reward.segmentation)
            flat = [r for mine, ask in zip(requests, asked) if ask for r in mine]
            results = await self.judge.judge_many(flat) if flat else []
            return requests, step_tokens, asked, results

        return asyncio.run_coroutine_threadsafe(judge_batch(), self._judge_loop)

    def _find_rewards(self, inputs: list[dict[str, Any]], completions: list[Any], completion_ids: list[list[int]],
                      judging: tuple[list[list[int]], concurrent.futures.Future] | None) -> list[Rollout]:
        """The local rollouts' records: the judging `_generate` started, if it was for these very
        rollouts (else judging starts here), the verifier and the monitors' traits meanwhile."""
        future = None
        if self.judge is not None:
            future = (judging[1] if judging is not None and judging[0] is completion_ids
                      else self._start_judging(inputs, completions, completion_ids))
        overlong = self._overlong(completion_ids)
        # While the judge works: the verifier, and what the monitors read from each text.
        correct = sparse_rewards(completions, [row["answer"] for row in inputs])
        traits = [read_traits(completion_text(c), len(ids), self.reward.delimiter)
                  for c, ids in zip(completions, completion_ids)]
        if future is None:
            rollouts = record_rollouts(overlong, correct)
        else:
            requests, step_tokens, asked, results = future.result()
            rollouts = record_rollouts(overlong, correct, requests, step_tokens, asked, results)
            self._last_judge_error = next((r.error for r in results if not r.ok and r.error), self._last_judge_error)
        for rollout, found in zip(rollouts, traits):
            rollout.traits = found
        return rollouts

    def _overlong(self, completion_ids: Sequence[Sequence[int]]) -> list[bool]:
        return overlong_flags(completion_ids, set(self.eos_token_ids) | {self._tokenizer.pad_token_id},
                              self.max_completion_length, self.reward.overlong_rule)

    # ------------------------------------------------------------------ the advantages
    def _generate_and_score_completions(self, inputs):
        self._batch = batch = _Batch(rows=inputs)  # `_generate` and `_calculate_rewards` fill the rest
        output = super()._generate_and_score_completions(inputs)
        if batch.rollouts is None:
            raise RuntimeError("TRL's _generate_and_score_completions did not call _calculate_rewards "
                               "(a TRL version other than the one in train/trainer.py's table?)")
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        rollouts = batch.rollouts
        group_ids = [i // num_generations for i in range(len(rollouts))]  # TRL's view(-1, num_generations)
        all_advantages = advantages(rollouts, group_ids, self.signal, self.reward)

        local_n = output["completion_ids"].size(0)
        start = self.accelerator.process_index * local_n
        local = slice(start, start + local_n)
        mask = output["completion_mask"]
        keep = torch.tensor([a is not None for a in all_advantages[local]], device=mask.device)
        mask = mask * keep.unsqueeze(1).to(mask.dtype)
        if self.signal == "process":
            output["advantages"] = token_advantage_tensor(rollouts[local], all_advantages[local], mask)
        else:
            output["advantages"] = torch.tensor([0.0 if a is None else a for a in all_advantages[local]],
                                                dtype=torch.float32, device=mask.device)
        output["completion_mask"] = mask
        loss_mask = mask if "tool_mask" not in output else mask * output["tool_mask"]
        output["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        self._log_exprl_metrics(mode, rollouts, group_ids, all_advantages if self.signal == "process" else None)
        tripped = mode == "train" and self.breaker is not None and self.breaker.observe(rollouts)
        if tripped and self.judge_stopped is None:
            statuses = Counter(j.status for r in rollouts for j in r.judgments)
            self.judge_stopped = self.breaker.reason(statuses, self._last_judge_error)
        return output

    # ------------------------------------------------------------------ what is logged
    def _log_exprl_metrics(self, mode: str, rollouts: list[Rollout], group_ids: list[int],
                           step_advantages: list[Any] | None) -> None:
        """The batch's monitor metrics (`exprl.rewards.monitors.batch_metrics`) into TRL's logs."""
        statuses = [status.value for status in JudgeStatus] if self.judge is not None else None
        for key, value in batch_metrics(rollouts, group_ids, statuses, step_advantages).items():
            self._metrics[mode][key].append(value)


class _StopWhenJudgeFails(TrainerCallback):
    """Ends training with a checkpoint at the step where the judge breaker tripped (the rollout
    batch it judged is trained on, its unscorable rollouts masked as always)."""

    def __init__(self, trainer: ExpRLTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer.judge_stopped is not None:
            control.should_save = True
            control.should_training_stop = True


def token_advantage_tensor(rollouts: Sequence[Rollout], step_advantages: Sequence[Any],
                           mask: torch.Tensor) -> torch.Tensor:
    """ExpRL-Process's (B, T) advantages, shaped like the completion `mask`: each token gets its
    step's advantage; an unscorable rollout's row stays 0 (its mask row is zeroed)."""
    per_token = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    for row, (rollout, advantages_of_steps) in enumerate(zip(rollouts, step_advantages)):
        if advantages_of_steps is not None:
            values = rollout.token_advantages(advantages_of_steps)
            per_token[row, :len(values)] = torch.tensor(values, dtype=torch.float32)
    return per_token


def _column(name: str) -> Callable[..., list[float]]:
    """A column of TRL's reward table, named for TRL's logs. ExpRLTrainer fills the table itself
    (`_calculate_rewards`), so TRL never calls it."""
    def column(**_: Any) -> list[float]:
        raise RuntimeError(f"the reward column {name!r} is filled by ExpRLTrainer._calculate_rewards")

    column.__name__ = name
    return column
