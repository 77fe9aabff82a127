"""Step time of ExpRL-Outcome and ExpRL-Process against sparse GRPO, same tiny model and batch.

The judge is the loopback OpenAI-compatible server (real HTTP on 127.0.0.1) with a fixed latency,
so the figure is the trainer's own overhead around a judge of known speed. Prints the median step
time of each method (first step dropped: warm-up), the ratios to GRPO, and Process's judge calls per
step.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py [--completions 32] [--latency 0.05] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from exprl.judge.loopback import LoopbackJudgeServer
from exprl.judge.types import JudgeConfig
from exprl.tiny import save_tiny_model
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=32, help="rollouts per step")
    parser.add_argument("--generations", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--latency", type=float, default=0.05, help="judge latency per call, seconds")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-completion-length", type=int, default=64)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LoopbackJudgeServer(latency_s=args.latency) as server:
        root = Path(tmp)
        model = save_tiny_model(root / "model")
        data = root / "problems.jsonl"
        data.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i}+{i}?", "answer": str(2 * i),
                                            "reference": f"### Double\n{i}+{i}={2 * i}\n### Answer\n\\boxed{{{2 * i}}}"})
                                + "\n" for i in range(64)), encoding="utf-8")
        results = {}
        for method in ("grpo", "exprl-outcome", "exprl-process"):
            config = TrainConfig(
                method=method, model=str(model), data=DataConfig(train_files=[str(data)]),
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
