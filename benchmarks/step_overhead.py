"""Step time of ExpRL-Outcome and ExpRL-Process against sparse GRPO, same tiny model and batch.

The judge is the loopback OpenAI-compatible server (real HTTP on 127.0.0.1) with a fixed latency,
so the figure is the trainer's own overhead around a judge of known speed. The policy is the demo's
base model, briefly pre-trained on policy-style traces of the synthetic task, so its rollouts are
split into `###` steps as an LLM's are (a random model writes none, and Process would degenerate
to one judge call per rollout). Prints the median step time of each method (first step dropped:
warm-up), the ratios to GRPO, Process's judge calls per step and steps per rollout.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py [--completions 32] [--latency 0.05] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from exprl.demo.base import BaseModelConfig
from exprl.demo.config import DemoConfig
from exprl.demo.runner import base_model, write_task_data
from exprl.judge.loopback import LoopbackJudgeServer
from exprl.judge.types import JudgeConfig
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=32, help="rollouts per step")
    parser.add_argument("--generations", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--latency", type=float, default=0.05, help="judge latency per call, seconds")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-completion-length", type=int, default=96)
    parser.add_argument("--pretrain-steps", type=int, default=200,
                        help="pre-training steps of the policy (enough to write `###` steps)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LoopbackJudgeServer(latency_s=args.latency) as server:
        root = Path(tmp)
        demo = DemoConfig(base=BaseModelConfig(steps=args.pretrain_steps, num_problems=4000))
        model = base_model(demo, 0, root / "cache", log=lambda message: None)
        data = write_task_data(demo, 0, root / "data")["train-hard"]
        results = {}
        for method in ("grpo", "exprl-outcome", "exprl-process"):
            config = TrainConfig(
                method=method, model=str(model), data=DataConfig(train_files=[str(data)]), system_prompt=None,
                judge=JudgeConfig(backend="openai", base_urls=[server.base_url], model="loopback", cache_path="",
                                  concurrency=64),
                trl=dict(max_steps=args.steps, per_device_train_batch_size=args.completions,
                         num_generations=args.generations, max_completion_length=args.max_completion_length,
                         save_strategy="no"))
            result = run_training(config, root / method)
            rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
            rows = [r for r in rows if "step_time" in r]
            times = [r["step_time"] for r in rows[1:]] or [r["step_time"] for r in rows]
            calls = [r.get("exprl/judge_calls", 0.0) for r in rows]
            steps_per_trace = [r.get("exprl/steps_per_trace_mean", 0.0) for r in rows]
            results[method] = (statistics.median(times), statistics.mean(calls), statistics.mean(steps_per_trace))

    base = results["grpo"][0]
    print(f"{args.completions} completions/step, {args.generations}/prompt, <= {args.max_completion_length} tokens, "
          f"judge latency {args.latency * 1000:.0f} ms, median of steps 2..{args.steps}")
    print(f"{'method':<15}{'step s':>9}{'x GRPO':>9}{'judge calls/step':>18}{'steps/trace':>13}")
    for method, (seconds, calls, spt) in results.items():
        print(f"{method:<15}{seconds:>9.3f}{seconds / base:>9.2f}{calls:>18.1f}{spt:>13.2f}")


if __name__ == "__main__":
    main()
