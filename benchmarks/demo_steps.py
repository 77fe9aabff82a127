"""Where a finished demo's samples go wrong on the hard split, step by step, per method; and the
credit ExpRL-Process gave each step position during Stage I.

    .venv/bin/python benchmarks/demo_steps.py runs/demo-bench --seeds 0 1 2 [--stage stage1]
    .venv/bin/python benchmarks/demo_steps.py --smoke

Reads the evaluation samples a demo run stored (`<run>/seed-<s>/<method>/eval/<stage>/generations.sqlite`;
the base row is the base evaluation) and checks each `###` step on its own inputs with the code the
report and `benchmarks/demo_base.py` use (`exprl.demo.conditions.split_stats`): operation read right,
arithmetic right, the first step right, how many steps are right in a row from the first (partial
progress, which is what a reference-scaffolded reward can build on), and every step right.

Then, from ExpRL-Process's Stage-I metrics (`exprl/process_advantage_step_<t>`), the mean advantage
of the tokens of step t, averaged over Stage I: under DeltaNorm (A_1 = s_1 - s_T, A_t = s_t - s_{t-1})
and the prefix view, a trace that improves after its first step debits that first step.

`--smoke`: first runs the smallest demo (benchmarks/_smoke.py's overrides; one seed, ExpRL-Process
only) in a temporary folder, then reads it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _smoke

METHODS = ["sft", "grpo", "self-distill", "exprl-outcome", "exprl-process"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--stage", default="stage1", choices=["stage1", "stage2"])
    parser.add_argument("--n", type=int, default=16, help="Samples per problem the evaluation drew.")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.run_dir, args.seeds, args.n, args.stage = smoke_run(), [0], 2, "stage1"
    elif args.run_dir is None:
        parser.error("RUN_DIR is required (or --smoke)")

    from exprl.data.loaders import load_problems
    from exprl.demo.report import mean_std, stored_stats

    rows: dict[str, list] = {}
    positions: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        seed_dir = args.run_dir / f"seed-{seed}"
        problems = load_problems(seed_dir / "data" / "hard.jsonl")
        # The base evaluation lives in the first method's run.
        sources = [("base", next(seed_dir / m / "eval" / "base" for m in METHODS if (seed_dir / m / "eval" / "base").is_dir()))]
        sources += [(m, seed_dir / m / "eval" / args.stage) for m in METHODS if (seed_dir / m / "eval" / args.stage).is_dir()]
        for row, eval_dir in sources:
            rows.setdefault(row, []).append(stored_stats(eval_dir, "hard", problems, args.n, group_size=args.n))
        metrics = seed_dir / "exprl-process" / "stage1" / "metrics.jsonl"
        if metrics.is_file():
            per_position: dict[str, list[float]] = {}
            for line in metrics.read_text().splitlines():
                for key, value in json.loads(line).items():
                    if key.startswith("exprl/process_advantage_step_"):
                        per_position.setdefault(key.rsplit("_", 1)[1], []).append(value)
            for position, values in per_position.items():
                positions.setdefault(position, {})[seed] = sum(values) / len(values)

    print(f"hard split, after {args.stage} (base: untrained), seeds {args.seeds}; mean ± std over seeds")
    print("| model | operation read right % | arithmetic right % | first step right % | mean right prefix "
          "(steps) | every step right pass@1 % |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row, stats in rows.items():
        cells = [mean_std([getattr(s, f) for s in stats], 1 if f != "right_prefix" else 2)
                 for f in ("operation_right", "arithmetic_right", "first_step_right", "right_prefix", "every_step_pass1")]
        print(f"| {row} | " + " | ".join(cells) + " |")
    if positions:
        order = sorted((p for p in positions if p.isdigit()), key=int) + (["last"] if "last" in positions else [])
        print("\nExpRL-Process, Stage I: mean advantage of step t's tokens (mean over steps, then over seeds)")
        print("| step | " + " | ".join(order) + " |")
        print("|---" * (len(order) + 1) + "|")
        print("| A_t | " + " | ".join(mean_std(list(positions[p].values()), 3) for p in order) + " |")
    return 0


def smoke_run() -> Path:
    """A finished run of the smallest demo, ExpRL-Process only (the method whose Stage-I metrics are read)."""
    from exprl.config import load_config
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import run_demo

    out = _smoke.folder() / "demo"
    config = load_config(DemoConfig, overrides=[*_smoke.DEMO_OVERRIDES, "seeds=1", "methods=[exprl-process]",
                                                f"output_dir={out}"])
    run_demo(config, log=lambda m: print(m, file=sys.stderr, flush=True))
    return out


if __name__ == "__main__":
    sys.exit(main())
