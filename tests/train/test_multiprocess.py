"""Several processes, for real: `accelerate launch` with 2 processes on the CPU (gloo) trains
ExpRL-Outcome and ExpRL-Process (segment view, the paper recipes'), Stage II, SFT and self-distillation.
Every process must train on exactly the advantages, completion masks and token count one process
computes from the same completions, and the first optimiser step's gradients (reduced over the two
processes) must equal those of one process trained on the same rollouts, within float tolerance.

The judge is the loopback HTTP server scoring by a hash of the request; about one judgment in six
answers `Score: 0`, which the parser refuses, so some rollouts are unscorable and masked. A prompt's
two rollouts straddle the two processes, so group statistics only come out right after the gather.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from testing.loopback import LoopbackJudgeServer

pytestmark = pytest.mark.slow  # every test here shares one two-process `accelerate launch` (minutes)

WORKER_PATH = Path(__file__).with_name("multiprocess_worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def load_worker():
    spec = importlib.util.spec_from_file_location("multiprocess_worker", WORKER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def flaky_scorer(body: dict) -> int:
    """1-5 by a hash of the request, 0 (refused by the parser: unscorable) for about one in six."""
    text = json.dumps(body.get("messages", []), sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process_trainer(config, out_dir: Path):
    """The trainer `run_training` would build for `config`, on this (single) process."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from exprl.judge.service import build_judge
    from exprl.train import runner
    from exprl.train.config import JUDGED_METHODS

    args = runner.build_trl_args(config, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = Dataset.from_list(runner.build_rows(runner.load_training_problems(config), config))
    judge = build_judge(config.judge) if config.method in JUDGED_METHODS else None
    trainer = runner._trainer_for_method(config, args, config.model, tokenizer, dataset, [], judge)
    trainer.model.train()
    return trainer


@pytest.fixture(scope="module")
def sums_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sums") / "sums.jsonl"
    rows = [{"id": f"sum-{a}-{b}", "problem": f"What is {a}+{b}?", "answer": str(a + b),
             "reference": f"### Add\n{a}+{b}={a + b}\n### Answer\n\\boxed{{{a + b}}}"}
            for a in range(1, 10) for b in (4 - a % 2, 8 + a % 3)]  # 18 sums, several of them 5 or 12
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def replay(trainer, label: str, parts: list[dict]) -> None:
    """Make `trainer` (one process) sample exactly what the two processes sampled in their first rollout
    batch: the prompts both held, in rank order, and the completions they drew."""
    inputs = parts[0]["inputs"] + parts[1]["inputs"]
    completions = parts[0]["completion_ids"] + parts[1]["completion_ids"]
    if label == "self-distill":
        prepare = type(trainer)._prepare_training_batch
        trainer._generate = lambda prompt_ids: (prompt_ids, completions)
        trainer._prepare_training_batch = lambda unused: prepare(trainer, inputs)
    else:
        score = type(trainer)._generate_and_score_completions
        trainer._generate_single_turn = lambda *args, **kwargs: (completions, None)
        trainer._generate_and_score_completions = lambda unused: score(trainer, inputs)


def one_process_first_step(worker, label: str, model: Path, data: Path, judge_url: str, out_dir: Path,
                           parts: list[dict] | None):
    """The gradients of the first optimiser step of `label` trained on one process, on the same rollouts."""
    config = worker.recipe(label, str(model), str(data), judge_url, rollout_batches=1)
    trainer = one_process_trainer(config, out_dir)
    if parts is not None:
        replay(trainer, label, parts)
    trainer.add_callback(worker.first_step_gradients(out_dir, "grads.pt"))
    try:
        trainer.train()
    finally:
        if getattr(trainer, "judge", None) is not None:
            trainer.judge.close()
    return torch.load(out_dir / "grads.pt")


@pytest.fixture(scope="module")
def launched(answer_model, sums_file, tmp_path_factory):
    """One `accelerate launch` of every label on 2 processes, against a judge that stays up for the
    module's tests: (the worker module, its output folder, the judge's URL)."""
    worker = load_worker()
    worker.write_stage2_data(str(sums_file))
    out = tmp_path_factory.mktemp("two")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    with LoopbackJudgeServer(scorer=flaky_scorer) as server:
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(free_port()), str(WORKER_PATH),
                  str(answer_model), str(sums_file), server.base_url, str(out)]
        done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
        yield worker, out, server.base_url


@pytest.fixture(scope="module")
def compared(launched, answer_model, sums_file, tmp_path_factory):
    """For each RL label and each of its two rollout batches: (the two processes' parts, what one process
    computes from the same prompts and completions, the prompts, the completions)."""
    worker, out, judge_url = launched
    batches = {}
    for label in worker.RL_LABELS:
        ranks = [torch.load(out / label / f"rank-{r}.pt", weights_only=False) for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == 2, label  # two rollout batches each
        # The declared batch: the same recipe on one process trains on the same global batch.
        config = worker.recipe(label, str(answer_model), str(sums_file), judge_url)
        trainer = one_process_trainer(config, tmp_path_factory.mktemp("one") / label)
        try:
            for batch in range(2):
                parts = [ranks[r][batch] for r in (0, 1)]
                inputs = parts[0]["inputs"] + parts[1]["inputs"]
                completions = parts[0]["completion_ids"] + parts[1]["completion_ids"]
                trainer._generate_single_turn = lambda *args, _ids=completions, **kwargs: (_ids, None)
                batches[(label, batch)] = (parts, trainer._generate_and_score_completions(inputs), inputs,
                                           completions)
        finally:
            if trainer.judge is not None:
                trainer.judge.close()
    return batches


def test_every_process_trains_on_the_advantages_masks_and_token_count_one_process_computes(launched, compared):
    worker = launched[0]
    assert {label for label, _ in compared} == set(worker.RL_LABELS)
    for (label, batch), (parts, single, inputs, _) in compared.items():
        assert len(inputs) == worker.PROMPTS * worker.ROLLOUTS
        n = len(parts[0]["inputs"])
        for rank, part in enumerate(parts):
            rows = slice(rank * n, (rank + 1) * n)
            for key in ("advantages", "completion_mask"):
                mine, expected = part[key], single[key][rows].cpu()
                width = mine.shape[1] if mine.dim() == 2 else None
                if width is not None:  # a process pads to its own longest completion
                    assert not expected[:, width:].any(), (label, batch, rank, key)
                    expected = expected[:, :width]
                assert torch.equal(mine, expected.to(mine.dtype)), (label, batch, rank, key, mine, expected)
            assert part["num_items_in_batch"].item() == single["num_items_in_batch"].item()


def test_the_comparison_covers_what_goes_wrong_across_processes(compared):
    """Unscorable (masked) rollouts, a prompt's group straddling the two processes, process rollouts whose
    steps earn different advantages: each occurs, so the comparison above is not an easy one."""
    seen = {"masked": 0, "straddling": 0, "multi_step": 0}
    for (label, _), (parts, single, inputs, completions) in compared.items():
        n = len(parts[0]["inputs"])
        mask = single["completion_mask"].cpu()
        seen["masked"] += int(sum(not mask[i].any() and len(completions[i]) > 0 for i in range(len(inputs))))
        seen["straddling"] += inputs[n - 1]["problem_id"] == inputs[n]["problem_id"]
        if label == "exprl-process":
            advantages = single["advantages"].cpu()
            seen["multi_step"] += sum(len(set(advantages[i][mask[i].bool()].tolist())) > 1
                                      for i in range(len(inputs)))
    assert seen["masked"] > 0 and seen["straddling"] == 6 and seen["multi_step"] > 0, seen


def test_the_first_step_gradients_are_all_reduced_over_the_processes(launched):
    worker, out, _ = launched
    for label in worker.LABELS:
        grads = [torch.load(out / label / f"grads-rank-{r}.pt") for r in (0, 1)]
        assert grads[0].keys() == grads[1].keys() and grads[0]
        assert all(torch.equal(grads[0][k], grads[1][k]) for k in grads[0]), label


def test_the_first_step_gradients_equal_one_process_trained_on_the_same_rollouts(launched, answer_model, sums_file,
                                                                                 tmp_path):
    """Within float tolerance; SFT on the same sequences."""
    worker, out, judge_url = launched
    for label in worker.LABELS:
        reduced = torch.load(out / label / "grads-rank-0.pt")
        parts = None if label == "sft" else [torch.load(out / label / f"rank-{r}.pt", weights_only=False)[0]
                                             for r in (0, 1)]
        single = one_process_first_step(worker, label, answer_model, sums_file, judge_url,
                                        tmp_path / "first-step" / label, parts)
        assert single.keys() == reduced.keys(), label
        scale = max(g.abs().max().item() for g in single.values())
        assert scale > 0, label  # the step moves the model
        for name in single:
            torch.testing.assert_close(reduced[name], single[name], rtol=1e-4, atol=1e-6 * scale,
                                       msg=lambda m, n=name: f"{label} {n}: {m}")
