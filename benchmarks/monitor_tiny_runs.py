"""The training monitors on real tiny ExpRL-Process runs, and the report they give.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/monitor_tiny_runs.py [--out runs/monitor-tiny] [--steps 16]

Conditions: a tiny char-level policy pre-trained for 100 steps to write work in `###` steps
(`build_answer_model` with `HONEST_TARGETS`, both in tests/train/conftest.py:
`### Add\\n2+3=5\\n### So\\n\\boxed{5}` and three like it, one with a wrong answer), two problems
(2+3, 4*3), 8 rollouts a step (2 prompts x 4), max 64 completion tokens, the reference judge,
ExpRL-Process with every other setting at its default; one run per learning rate (--lrs, default
1e-4 and 1e-3). Each run is a pipeline-run folder whose Stage I is the training run, so that
`exprl report` reads it. Prints, per run and step, the monitor metrics and the alerts raised, and
writes the report over all runs to OUT/report (monitors_stage1.png, the Alerts section).
`--smoke`: 2 steps at one learning rate, OUT in a temporary folder (benchmarks/_smoke.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "train"))  # the tests' tiny-policy builder, used as it is

from conftest import HONEST_TARGETS, build_answer_model  # noqa: E402

from exprl.eval.report import write_report  # noqa: E402
from exprl.judge.types import JudgeConfig  # noqa: E402
from exprl.runs import RUN_FORMAT, STAGES  # noqa: E402
from exprl.train.config import DataConfig, TrainConfig  # noqa: E402
from exprl.train.runner import run_training  # noqa: E402

PROBLEMS = [
    {"id": "add", "problem": "What is 2+3?", "answer": "5", "reference": "### Add\n2+3=5\n### Answer\n\\boxed{5}"},
    {"id": "mul", "problem": "What is 4*3?", "answer": "12",
     "reference": "### Multiply\n4*3=12\n### Answer\n\\boxed{12}"},
]
SHOWN = (("dense_reward_mean", "reward"), ("sparse_correct", "correct"), ("response_tokens_mean", "tokens"),
         ("overlong_share", "overlong"), ("steps_per_trace_mean", "steps"), ("steps_per_trace_1", "1-step"),
         ("bare_answer_share", "bare"), ("number_list_share", "lists"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/monitor-tiny"))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3])
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.out, args.steps, args.lrs = _smoke.folder() / "monitor-tiny", 2, [1e-3]
    args.out.mkdir(parents=True, exist_ok=False)
    problems = args.out / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS), encoding="utf-8")
    model = build_answer_model(args.out / "policy", targets=HONEST_TARGETS)

    runs = []
    for lr in args.lrs:
        name = f"exprl-process-lr{lr:g}"
        run = args.out / name
        run.mkdir()
        stages = {stage: {"state": "done" if stage == "stage1" else "pending"} for stage in STAGES}
        (run / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "exprl_version": "benchmark", "name": name,
                                                  "method": "exprl-process", "stages": stages}))
        config = TrainConfig(method="exprl-process", model=str(model), data=DataConfig(train_files=[str(problems)]),
                             judge=JudgeConfig(backend="reference", cache_path=""), print_logs=False,
                             trl=dict(max_steps=args.steps, per_device_train_batch_size=8, num_generations=4,
                                      max_completion_length=64, learning_rate=lr, save_strategy="no"))
        started = time.monotonic()
        result = run_training(config, run / "stage1")
        rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
        print(f"\n{name}: {args.steps} steps in {time.monotonic() - started:.0f} s")
        print("step " + " ".join(f"{label:>8}" for _, label in SHOWN))
        for row in rows:
            if row.get("record") == "alert":
                print(f"  alert at step {row['step']}: {row['name']} ({row['value']:.2f} >= {row['threshold']:.2f})")
            elif "exprl/overlong_share" in row:
                print(f"{row['step']:4d} " + " ".join(f"{row[f'exprl/{key}']:8.2f}" for key, _ in SHOWN))
        runs.append(run)
    report = write_report(runs, args.out / "report")
    print(f"\nreport: {report}")


if __name__ == "__main__":
    main()
