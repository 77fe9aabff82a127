"""Stage I (ExpRL-Outcome, ExpRL-Process) and Stage II on several processes: what each one trains on.

    accelerate launch --multi_gpu --num_processes 2 tests/train/multiprocess_worker.py \
        MODEL DATA JUDGE_URL OUT_DIR

(`--multi_gpu` is accelerate's name for its torch-distributed launcher; with `trl.use_cpu` the
processes join a gloo group on the CPU.) Each recipe trains two rollout batches on a tiny model;
every process saves, for every rollout batch, the prompts it held, the completions it sampled and
the advantages, completion mask and token count it trained on (`OUT_DIR/<label>/rank-<r>.pt`).
tests/train/test_multiprocess.py then recomputes every batch on one process from the same
completions and compares.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

PER_DEVICE = 3
STEPS_PER_GENERATION = 3
"""Each process samples 3 x 3 = 9 rollouts a batch, an odd number: with 2 generations per prompt one
prompt's group straddles the two processes, so group statistics need the gather. A rollout batch
(9 prompts x 2) is trained in 3 optimiser steps."""
LABELS = ("exprl-outcome", "exprl-process", "stage2")
INPUT_KEYS = ("prompt", "problem_id", "problem_text", "reference", "answer", "domain")


def recipe(label: str, model: str, data: str, judge_url: str, per_device: int = PER_DEVICE):
    """The TrainConfig of `label` at `per_device` rollouts per process and micro-batch."""
    from exprl.judge.types import JudgeConfig
    from exprl.rewards.config import RewardConfig
    from exprl.train.config import DataConfig, TrainConfig

    judge = JudgeConfig(backend="openai", base_urls=[judge_url], model="loopback", cache_path="", max_retries=0,
                        process_view="prefix")
    trl = dict(per_device_train_batch_size=per_device, steps_per_generation=STEPS_PER_GENERATION,
               num_generations=2, max_completion_length=40, temperature=1.0, learning_rate=1e-3,
               save_strategy="no", use_cpu=True, bf16=False)
    if label == "stage2":  # the paper's Stage II settings that shape its advantages
        return TrainConfig(method="grpo", model=model, data=DataConfig(train_files=[data]), rollout_batches=2,
                           reward=RewardConfig(outcome_normalize="mean", overlong="keep"),
                           trl={**trl, "beta": 0.0})
    return TrainConfig(method=label, model=model, data=DataConfig(train_files=[data]), judge=judge,
                       rollout_batches=2, trl=trl)


def record_batches(records: list[dict]) -> None:
    """Keep what every `_generate_and_score_completions` of this process hands to the loss."""
    from exprl.train.trainer import ExpRLTrainer

    generate, rewards = ExpRLTrainer._generate_and_score_completions, ExpRLTrainer._calculate_rewards

    def calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._recorded_ids = [list(ids) for ids in completion_ids_list]
        return rewards(self, inputs, prompts, completions, completion_ids_list)

    def generate_and_score(self, inputs):
        output = generate(self, inputs)
        records.append({"inputs": [{k: row[k] for k in INPUT_KEYS} for row in inputs],
                        "completion_ids": self._recorded_ids, "advantages": output["advantages"].cpu(),
                        "completion_mask": output["completion_mask"].cpu(),
                        "num_items_in_batch": output["num_items_in_batch"].cpu()})
        return output

    ExpRLTrainer._calculate_rewards = calculate_rewards
    ExpRLTrainer._generate_and_score_completions = generate_and_score


def main(model: str, data: str, judge_url: str, out_dir: str) -> int:
    from accelerate import PartialState

    from exprl.train.runner import run_training

    records: list[dict] = []
    record_batches(records)
    for label in LABELS:
        records.clear()
        run_training(recipe(label, model, data, judge_url), Path(out_dir) / label / "run")
        rank = PartialState().process_index
        torch.save(list(records), Path(out_dir) / label / f"rank-{rank}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
