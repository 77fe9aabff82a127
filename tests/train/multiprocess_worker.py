"""Every training method on several processes: what each process trains on, and its first gradients.

    accelerate launch --multi_gpu --num_processes 2 tests/train/multiprocess_worker.py \
        MODEL DATA JUDGE_URL OUT_DIR

(`--multi_gpu` is accelerate's name for its torch-distributed launcher; with `trl.use_cpu` the
processes join a gloo group on the CPU.) Each recipe declares its batch (exprl.train.batch), so the
same recipe on one process trains on the same global batch. Every process saves, for every rollout
batch, the prompts it held, the completions it sampled and the advantages, completion mask and token
count it trained on (`OUT_DIR/<label>/rank-<r>.pt`), and the gradients of its first optimiser step
after they were reduced over the processes (`OUT_DIR/<label>/grads-rank-<r>.pt`).
tests/train/test_multiprocess.py recomputes every batch and the first step on one process and compares.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

LABELS = ("exprl-outcome", "exprl-process", "stage2", "sft", "self-distill")
RL_LABELS = ("exprl-outcome", "exprl-process", "stage2")
PROMPTS, ROLLOUTS = 9, 2
"""A rollout batch of 9 prompts x 2 rollouts, one optimiser step: each of 2 processes samples 9
rollouts, an odd number, so one prompt's group straddles the two processes and group statistics
need the gather; 3 rollouts per micro-batch, 3 micro-batches per process (6 on one process)."""
INPUT_KEYS = ("prompt", "problem_id", "problem_text", "reference", "answer", "domain")
NO_CLIP = 1e6
"""max_grad_norm: the clip coefficient is min(1, 1e6 / norm) = 1, so the recorded gradient is the raw
reduced one (with the paper's 1.0 it would be rescaled by its own norm)."""


def stage2_data(data: str) -> Path:
    """Stage II's problems: the sums with answers the tiny model writes (5 or 12, alternately), so that its
    sparse reward varies within groups and the first step has a gradient to compare. Written by the test."""
    return Path(data).with_name("stage2-answers.jsonl")


def write_stage2_data(data: str) -> Path:
    import json

    rows = [json.loads(line) for line in Path(data).read_text(encoding="utf-8").splitlines() if line.strip()]
    path = stage2_data(data)
    path.write_text("".join(json.dumps({**row, "answer": "5" if i % 2 else "12"}) + "\n" for i, row in enumerate(rows)),
                    encoding="utf-8")
    return path


def recipe(label: str, model: str, data: str, judge_url: str, rollout_batches: int = 2):
    """The TrainConfig of `label`: the same for every world size (the batch is declared)."""
    from exprl.judge.types import JudgeConfig
    from exprl.rewards.config import RewardConfig
    from exprl.train.batch import BatchConfig
    from exprl.train.config import DataConfig, TrainConfig

    data_config = DataConfig(train_files=[data])
    common = dict(learning_rate=1e-3, save_strategy="no", use_cpu=True, bf16=False, max_grad_norm=NO_CLIP)
    if label == "sft":
        return TrainConfig(method="sft", model=model, data=data_config,
                           batch=BatchConfig(sequences=6, max_per_device=3),
                           trl={**common, "max_steps": rollout_batches, "max_length": 256})
    sampling = dict(max_completion_length=40, temperature=1.0, **common)
    if label == "self-distill":
        return TrainConfig(method="self-distill", model=model, data=data_config, rollout_batches=rollout_batches,
                           batch=BatchConfig(prompts=3, rollouts=ROLLOUTS, max_per_device=3),
                           trl={**sampling, "max_completion_length": 24})
    batch = BatchConfig(prompts=PROMPTS, rollouts=ROLLOUTS, optimizer_steps=1, max_per_device=3)
    if label == "stage2":  # the paper's Stage II settings that shape its advantages
        return TrainConfig(method="grpo", model=model, data=DataConfig(train_files=[str(stage2_data(data))]),
                           rollout_batches=rollout_batches,
                           batch=batch, reward=RewardConfig(outcome_normalize="mean", overlong="keep"),
                           trl={**sampling, "beta": 0.0})
    # The paper recipes' process view: every `###` segment judged alone.
    judge = JudgeConfig(backend="openai", base_urls=[judge_url], model="loopback", cache_path="", max_retries=0,
                        process_view="segment")
    return TrainConfig(method=label, model=model, data=data_config, judge=judge, rollout_batches=rollout_batches,
                       batch=batch, trl=sampling)


def first_step_gradients(folder: Path, name: str = "grads-rank-{rank}.pt"):
    """A TrainerCallback saving the gradients the first optimiser step is about to apply (after the
    processes' all-reduce and before clipping, which NO_CLIP makes a no-op) to folder/name, {rank} being
    this process's index (known once the trainer has set up the processes)."""
    from transformers import TrainerCallback

    class FirstStepGradients(TrainerCallback):
        saved = False

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if not self.saved:
                torch.save({key: p.grad.detach().clone() for key, p in model.named_parameters()
                            if p.grad is not None}, folder / name.format(rank=args.process_index))
                self.saved = True

    return FirstStepGradients()


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


def record_distillation_batches(records: list[dict]) -> None:
    """Keep the prompts and sampled completions of every self-distillation rollout batch."""
    from trl.experimental.sdft import SDFTTrainer

    prepare, sample = SDFTTrainer._prepare_training_batch, SDFTTrainer._generate

    def generate(self, prompt_ids):
        prompts, completions = sample(self, prompt_ids)
        self._recorded_ids = [list(ids) for ids in completions]
        return prompts, completions

    def prepare_training_batch(self, inputs):
        batch = prepare(self, inputs)
        records.append({"inputs": [{k: row[k] for k in ("prompt", "privileged_context")} for row in inputs],
                        "completion_ids": self._recorded_ids})
        return batch

    SDFTTrainer._generate = generate
    SDFTTrainer._prepare_training_batch = prepare_training_batch


def main(model: str, data: str, judge_url: str, out_dir: str) -> int:
    from accelerate import PartialState

    from exprl.train.runner import run_training

    records: list[dict] = []
    record_batches(records)
    record_distillation_batches(records)
    for label in LABELS:
        records.clear()
        folder = Path(out_dir) / label
        folder.mkdir(parents=True, exist_ok=True)
        run_training(recipe(label, model, data, judge_url), folder / "run", callbacks=[first_step_gradients(folder)])
        rank = PartialState().process_index  # the trainer has joined the processes by now
        torch.save(list(records), folder / f"rank-{rank}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
