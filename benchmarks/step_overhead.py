"""Step time of ExpRL-Outcome and ExpRL-Process against sparse GRPO, same tiny model and batch.

The judge is the loopback OpenAI-compatible server (real HTTP on 127.0.0.1) with a fixed latency,
run in its own process as a real judge server is, so the figure is the trainer's own overhead
around a judge of known speed (in-process, the fake server's CPU would share the trainer's
interpreter lock). The policy is the demo's base model, briefly pre-trained on policy-style traces
of the synthetic task, so its rollouts are split into `###` steps as an LLM's are (a random model
writes none, and Process would degenerate to one judge call per rollout).

Prints the median and the fastest step time of each method (the first step of a run dropped:
warm-up; runs of the methods alternate, so load from elsewhere falls on all), the ratio to GRPO
of the medians and the median of the per-round ratios (each run against the GRPO run beside it),
Process's judge calls per step and steps per rollout, and the judge's own floor: the time its
calls take if nothing else costs anything, ceil(calls / concurrency) x latency. The last line is
one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py [--completions 32] [--latency 0.05] [--concurrency 64] [--steps 5] [--rounds 3]
        [--methods grpo exprl-outcome exprl-process] [--cache-dir DIR] [--smoke]

`--smoke`: the smallest demo's base model (benchmarks/_smoke.py's overrides), 4 rollouts of up to 24
tokens a step, 2 steps, one round.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _paths import LOOPBACK_SERVER
import _smoke
from exprl.config import load_config
from exprl.demo.base import BaseModelConfig
from exprl.demo.config import DemoConfig
from exprl.demo.runner import base_model, write_task_data
from exprl.judge.types import JudgeConfig
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training

METHODS = ("grpo", "exprl-outcome", "exprl-process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--completions", type=int, default=32, help="rollouts per step")
    parser.add_argument("--generations", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--latency", type=float, default=0.05, help="judge latency per call, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="judge calls in flight at once")
    parser.add_argument("--steps", type=int, default=5, help="training steps per run (the first is dropped)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each method, alternating")
    parser.add_argument("--max-completion-length", type=int, default=DemoConfig().training.max_completion_length,
                        help="the demo's rollout cap: its 13-14-step hard problems need up to 129 tokens, and a "
                             "rollout cut at the cap is never judged (`reward.overlong: zero`), so a shorter cap "
                             "would leave the judge half the calls a step really makes")
    parser.add_argument("--pretrain-steps", type=int, default=200,
                        help="pre-training steps of the policy (enough to write `###` steps)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep the pre-trained policy here between runs (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    demo = DemoConfig(base=BaseModelConfig(steps=args.pretrain_steps, num_problems=4000))
    if args.smoke:
        demo = load_config(DemoConfig, overrides=_smoke.DEMO_OVERRIDES)
        args.completions, args.generations, args.steps, args.rounds = 4, 2, 2, 1
        args.max_completion_length = demo.training.max_completion_length

    server = subprocess.Popen([*LOOPBACK_SERVER, "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            model = base_model(demo, 0, args.cache_dir or root / "cache", log=lambda message: None)
            data = write_task_data(demo, 0, root / "data")["train-hard"]
            step_times: dict[str, list[float]] = {method: [] for method in args.methods}
            round_medians: dict[str, list[float]] = {method: [] for method in args.methods}
            calls: dict[str, list[float]] = {method: [] for method in args.methods}
            steps_per_trace: dict[str, list[float]] = {method: [] for method in args.methods}
            # Rounds alternate the methods, so a burst of load from elsewhere on the machine falls on all of them.
            for round_index in range(args.rounds):
                for method in args.methods:
                    config = TrainConfig(
                        method=method, model=str(model), data=DataConfig(train_files=[str(data)]), system_prompt=None,
                        judge=JudgeConfig(backend="openai", base_urls=[base_url], model="loopback", cache_path="",
                                          concurrency=args.concurrency),
                        trl=dict(max_steps=args.steps, per_device_train_batch_size=args.completions,
                                 num_generations=args.generations, max_completion_length=args.max_completion_length,
                                 save_strategy="no"))
                    result = run_training(config, root / f"{method}-{round_index}")
                    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
                    rows = [r for r in rows if "step_time" in r][1:]  # the first step warms up
                    step_times[method] += [r["step_time"] for r in rows]
                    round_medians[method].append(statistics.median(r["step_time"] for r in rows))
                    calls[method] += [r.get("exprl/judge_calls", 0.0) for r in rows]
                    steps_per_trace[method] += [r.get("exprl/steps_per_trace_mean", 0.0) for r in rows]
            results = {method: {"step_s": statistics.median(step_times[method]),
                                "step_min_s": min(step_times[method]),
                                "judge_calls": statistics.mean(calls[method]),
                                "steps_per_trace": statistics.mean(steps_per_trace[method])}
                       for method in args.methods}
    finally:
        server.kill()
        server.wait()

    base = results.get("grpo", {}).get("step_s")
    print(f"{args.completions} completions/step, {args.generations}/prompt, <= {args.max_completion_length} tokens, "
          f"judge latency {args.latency * 1000:.0f} ms at concurrency {args.concurrency}, "
          f"{args.rounds} rounds x steps 2..{args.steps} of each method")
    print(f"{'method':<15}{'median s':>9}{'x GRPO':>9}{'paired x':>10}{'min s':>9}{'judge calls/step':>18}"
          f"{'steps/trace':>13}{'judge floor s':>15}")
    for method, r in results.items():
        r["judge_floor_s"] = math.ceil(r["judge_calls"] / args.concurrency) * args.latency
        if base:
            # Each round's median over the same round's GRPO median (runs next to each other in time),
            # then the median of those ratios: less exposed to the machine's load drifting over minutes.
            r["x_grpo"] = r["step_s"] / base
            r["x_grpo_paired"] = statistics.median(m / g for m, g in zip(round_medians[method],
                                                                         round_medians["grpo"]))
        ratios = (f"{r['x_grpo']:>9.2f}", f"{r['x_grpo_paired']:>10.2f}") if base else (f"{'-':>9}", f"{'-':>10}")
        print(f"{method:<15}{r['step_s']:>9.3f}{ratios[0]}{ratios[1]}{r['step_min_s']:>9.3f}{r['judge_calls']:>18.1f}"
              f"{r['steps_per_trace']:>13.2f}{r['judge_floor_s']:>15.2f}")
    print(json.dumps({"latency_s": args.latency, "concurrency": args.concurrency, "completions": args.completions,
                      **{method.replace("-", "_"): r for method, r in results.items()}}))


if __name__ == "__main__":
    main()
