"""GPU acceptance: the paper recipes' path on one GPU in one command, printing one JSON line.

What it runs, each row in a process of its own started by `accelerate launch` with the accelerate
config the paper recipes ship (`exprl recipes path accelerate/fsdp2`) and 1 process:

  exprl-outcome   `exprl train` (exprl.train.runner.run_training) of ExpRL-Outcome: rollouts from vLLM
                  colocated in the training process (trl.vllm_mode colocate), every rollout judged by a
                  judge on a local HTTP server (testing/loopback.py in its own process, answering
                  after --latency seconds);
  exprl-process   the same for ExpRL-Process (segment view; random words hold no `###`, so traces are
                  split at a word prefix, --delimiter);
  trl-grpo        TRL's plain GRPOTrainer with a length reward at the same shape and the same GRPOConfig
                  values (those exprl hands TRL for exprl-outcome): the step exprl's rows are set against.

The model is Qwen3-shaped with random weights, written locally with a word-level tokenizer (nothing is
downloaded): Qwen3-0.6B's dimensions, the shape of the TRL anchor (../shared/bench/trl_grpo_anchor.py),
8 prompts x 8 rollouts of up to 256 tokens, one optimiser step per rollout batch, bf16, gradient
checkpointing. The batch is declared (exprl.train.batch), so the planner's memory estimate for the same
recipe (exprl.train.plan, at the GPU's own memory) is printed next to each row's measured peak: the
PyTorch allocator's peak (vLLM's KV cache and weights included: colocated vLLM allocates through it)
and the device's (total minus free memory, the largest seen at a step's end: CUDA context and NCCL
included). A step is timed from the trainer's step-begin to step-end callback with the device
synchronised; the first step is left out of the median.

    python benchmarks/gpu_acceptance.py            # one H100: about 4 minutes (vLLM starts three times)
    python benchmarks/gpu_acceptance.py --tiny     # the same code on a CPU without vLLM: a check of the
                                                   # script (tests/test_benchmarks.py), not a figure;
                                                   # --smoke, every benchmark's name for it, is the same

The device machine needs trl, datasets, accelerate and vllm (0.22-0.31 for TRL 1.16) beside torch and
transformers; a missing module is named in the JSON line. Progress goes to stderr, the JSON line to stdout.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _paths import LOOPBACK_SERVER  # noqa: E402
import _smoke  # noqa: E402
from gpu_step_time import SHAPES, Shape, write_model_and_data  # noqa: E402  (the same model and problems)

ROWS = ("exprl-outcome", "exprl-process", "trl-grpo")
NEEDED = ("trl", "datasets", "accelerate", "transformers", "torch")
ACCEPTANCE = {"full": replace(SHAPES["full"], completions=64, generations=8, steps=4),
              "tiny": replace(SHAPES["tiny"], completions=8, generations=4, steps=2)}
ACCELERATE_CONFIG = "fsdp2"


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a tiny shape on a CPU, without vLLM (a check of the script)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per row (default: 4; --tiny: 2)")
    parser.add_argument("--latency", type=float, default=0.05, help="local judge latency per call, seconds")
    parser.add_argument("--delimiter", default="w15", help="ExpRL-Process step delimiter (a word prefix)")
    parser.add_argument("--row-timeout", type=float, default=150, help="seconds a row may take")
    parser.add_argument("--workdir", type=Path, default=None, help="model, data and runs (default: a temporary folder)")
    parser.add_argument("--row", choices=ROWS, default=None, help=argparse.SUPPRESS)  # a child's one row
    parser.add_argument("--judge-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    args.tiny = args.tiny or args.smoke
    shape = ACCEPTANCE["tiny" if args.tiny else "full"]
    if args.steps is not None:
        shape = replace(shape, steps=args.steps)
    if args.row is not None:
        print("RESULT " + json.dumps(run_row(args.row, shape, args)), flush=True)
        return 0
    started = time.time()
    needed = NEEDED + (() if args.tiny else ("vllm",))
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        print(json.dumps({"error": f"missing modules: {', '.join(missing)}", "shape": asdict(shape)}))
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        result = orchestrate(args, shape, workdir)
    result["wall_s"] = round(time.time() - started, 1)
    result["within_8_min"] = result["wall_s"] <= 480
    print(json.dumps(result))
    return 0 if all("failed" not in r for r in result["rows"].values()) else 1


def orchestrate(args: argparse.Namespace, shape: Shape, workdir: Path) -> dict:
    import torch

    from exprl.recipes import accelerate_config_path

    cuda = torch.cuda.is_available()
    write_model_and_data(shape, workdir, cuda)
    judge = subprocess.Popen([*LOOPBACK_SERVER, "--latency", str(args.latency)],
                             stdout=subprocess.PIPE, text=True)
    rows: dict[str, dict] = {}
    config_file = accelerate_config_path(ACCELERATE_CONFIG)
    try:
        judge_url = judge.stdout.readline().strip()  # type: ignore[union-attr]
        for row in args.rows:
            # On a CPU accelerate runs the config's distributed type on the CPU (--cpu); on a GPU as shipped.
            command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
                       "--num_processes", "1", __file__, "--row", row,
                       "--workdir", str(workdir), "--judge-url", judge_url, "--steps", str(shape.steps),
                       "--delimiter", args.delimiter, *(["--tiny"] if args.tiny else [])]
            rows[row] = child(command, row, args.row_timeout)
    finally:
        judge.kill()
        judge.wait()
    anchor = rows.get("trl-grpo", {}).get("step_s")
    ratios = {f"{row}/trl-grpo": round(rows[row]["step_s"] / anchor, 3)
              for row in ("exprl-outcome", "exprl-process") if anchor and "step_s" in rows.get(row, {})}
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
            "accelerate_config": ACCELERATE_CONFIG, "num_processes": 1, "vllm": not args.tiny,
            "shape": "tiny" if args.tiny else "Qwen3-0.6B", **asdict(shape), "judge_latency_s": args.latency,
            "rows": rows, "ratios": ratios}


def child(command: list[str], row: str, timeout: float) -> dict:
    """One row in a process of its own; its RESULT line, or why there is none."""
    log(f"== {row}")
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        log("\n".join(output.splitlines()[-30:]))
        return {"failed": f"stopped after {timeout:.0f} s (--row-timeout)"}
    lines = done.stdout.splitlines()
    found = [line for line in lines if line.startswith("RESULT ")]
    if done.returncode != 0 or not found:
        log("\n".join(lines[-40:]))
        return {"failed": f"exit {done.returncode}: {lines[-1][:300] if lines else 'no output'}"}
    return json.loads(found[-1][len("RESULT "):])


# ------------------------------------------------------------------------- one row, in its own process
def recipe(row: str, shape: Shape, args: argparse.Namespace):
    """The TrainConfig of an exprl row (trl-grpo takes exprl-outcome's TRL values)."""
    import torch

    from exprl.judge.types import JudgeConfig
    from exprl.rewards.config import RewardConfig
    from exprl.train.batch import BatchConfig
    from exprl.train.launch import LaunchConfig
    from exprl.train.config import DataConfig, TrainConfig

    cuda = torch.cuda.is_available()
    trl = dict(max_completion_length=shape.completion_tokens, temperature=0.8, learning_rate=1e-6,
               save_strategy="no", logging_steps=1, gradient_checkpointing=True, dataloader_num_workers=0,
               report_to="none")
    if cuda:
        trl.update(bf16=True, model_init_kwargs={"dtype": "bfloat16"}, use_vllm=True, vllm_mode="colocate",
                   vllm_gpu_memory_utilization=0.3, vllm_max_model_length=shape.prompt_words + shape.completion_tokens + 8)
    else:
        trl.update(use_cpu=True, bf16=False)
    method = "exprl-process" if row == "exprl-process" else "exprl-outcome"
    prompts = shape.completions // shape.generations
    return TrainConfig(
        method=method, model=str(args.workdir / "model"), system_prompt=None,
        data=DataConfig(train_files=[str(args.workdir / "problems.jsonl")], max_prompt_tokens=shape.prompt_words + 8),
        judge=JudgeConfig(backend="openai", base_urls=[args.judge_url or "http://127.0.0.1:9/v1"], model="loopback",
                          cache_path="", concurrency=64),
        # A random model seldom samples its end token: `keep` has capped rollouts judged all the same.
        reward=RewardConfig(delimiter=args.delimiter, overlong="keep"), print_logs=False, rollout_batches=shape.steps,
        batch=BatchConfig(prompts=prompts, rollouts=shape.generations, optimizer_steps=1,
                          max_per_device=shape.completions if cuda else 4),
        launch=LaunchConfig(num_processes=1, accelerate_config=ACCELERATE_CONFIG), trl=trl)


def run_row(row: str, shape: Shape, args: argparse.Namespace) -> dict:
    import torch
    from transformers import TrainerCallback

    from exprl.train.plan import plan_stage

    cuda = torch.cuda.is_available()

    class StepTimer(TrainerCallback):
        """The anchor's timing (step-begin to step-end, device synchronised), and the device's peak use."""

        def __init__(self):
            self.times: list[float] = []
            self.start = 0.0
            self.device_peak = 0
            self.wrapped = ""
            self.distributed = ""

        def on_train_begin(self, args, state, control, model=None, **unused_kwargs):
            from torch.distributed.fsdp import FSDPModule

            # fully_shard turns the model's class into an FSDP one in place: proof the config took.
            self.wrapped = "fsdp2" if isinstance(model, FSDPModule) else type(model).__name__
            self.distributed = str(args.distributed_state.distributed_type)

        def on_step_begin(self, *unused, **unused_kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.start = time.perf_counter()

        def on_step_end(self, *unused, **unused_kwargs):
            if cuda:
                torch.cuda.synchronize()
                free, total = torch.cuda.mem_get_info()
                self.device_peak = max(self.device_peak, total - free)
            self.times.append(time.perf_counter() - self.start)

    config = recipe(row, shape, args)
    gpu_gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else 80.0
    plan = plan_stage(config, 1, row, gpu_memory_gib=gpu_gib)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timer = StepTimer()
    started = time.perf_counter()
    if row == "trl-grpo":
        note = train_trl(config, args.workdir / f"run-{row}", timer)
    else:
        from exprl.train.runner import run_training

        result = run_training(config, args.workdir / f"run-{row}", callbacks=[timer])
        logged = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
        calls = statistics.mean(r.get("exprl/judge_calls", 0.0) for r in logged if "exprl/judge_calls" in r)
        note = f"exprl train {config.method}, {calls:.0f} judge calls a step"
    wall = time.perf_counter() - started
    steady = timer.times[1:] or timer.times
    memory = plan.memory
    return {"step_s": round(statistics.median(steady), 3), "first_s": round(timer.times[0], 2),
            "steps": [round(t, 3) for t in timer.times], "wall_s": round(wall, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "device_peak_gib": round(timer.device_peak / 2**30, 2) if cuda else None,
            "plan_gib": memory.get("total_gib"), "plan_components_gib": memory.get("components_gib"),
            "plan_strategy": memory.get("strategy"), "gpu_gib": round(gpu_gib, 1),
            "per_device": plan.trl["per_device_train_batch_size"], "model_wrapped_as": timer.wrapped,
            "distributed_type": timer.distributed, "note": note}


def train_trl(config, output_dir: Path, timer) -> str:
    """TRL's own GRPOTrainer at the same shape and GRPOConfig values, rewarded by completion length."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from exprl.data.loaders import load_problems
    from exprl.train.trl_args import trl_arguments

    values = trl_arguments(config, 1)
    values.update(output_dir=str(output_dir), seed=config.seed)
    problems = load_problems(config.data.train_files[0])
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p.problem}]} for p in problems])

    def length_reward(completions, **unused):
        return [len(str(c)) / 1000.0 for c in completions]

    trainer = GRPOTrainer(model=config.model, reward_funcs=[length_reward], args=GRPOConfig(**values),
                          train_dataset=dataset, callbacks=[timer])
    trainer.train()
    return "TRL GRPOTrainer, length reward, exprl-outcome's GRPOConfig values"


if __name__ == "__main__":
    sys.exit(main())
