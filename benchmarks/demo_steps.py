"""Where a finished demo's samples go wrong on the hard split, step by step, per method.

    .venv/bin/python benchmarks/demo_steps.py runs/demo-bench --seeds 0 1 2 [--stage stage1]

Reads the evaluation samples a demo run stored (`<run>/seed-<s>/<method>/eval/<stage>/generations.sqlite`;
the base row is the base evaluation) and checks each `###` step on its own inputs, as
`benchmarks/demo_base.py` does: operation read right, arithmetic right, and how many steps are right
in a row from the first (partial progress, which is what a reference-scaffolded reward can build on).
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_base import step_checks  # noqa: E402

METHODS = ["sft", "grpo", "self-distill", "exprl-outcome", "exprl-process"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--stage", default="stage1", choices=["stage1", "stage2"])
    args = parser.parse_args(argv)

    from exprl.data.loaders import load_problems

    rows: dict[str, Counter] = {}
    for seed in args.seeds:
        seed_dir = args.run_dir / f"seed-{seed}"
        problems = {p.id: p for p in load_problems(seed_dir / "data" / "hard.jsonl")}
        # The base evaluation lives in the first method's run.
        sources = [("base", next(seed_dir / m / "eval" / "base" for m in METHODS if (seed_dir / m / "eval" / "base").is_dir()))]
        sources += [(m, seed_dir / m / "eval" / args.stage) for m in METHODS if (seed_dir / m / "eval" / args.stage).is_dir()]
        for row, eval_dir in sources:
            counts = rows.setdefault(row, Counter())
            with sqlite3.connect(eval_dir / "generations.sqlite") as db:
                for problem_id, text in db.execute("SELECT problem_id, text FROM generations WHERE benchmark = 'hard'"):
                    checks = step_checks(problems[problem_id], text)
                    right_in_a_row = next((i for i, c in enumerate(checks) if not all(c)), len(checks))
                    counts.update(samples=1, steps=len(checks), read=sum(c[0] for c in checks),
                                  arithmetic=sum(c[2] for c in checks), prefix=right_in_a_row,
                                  first_right=right_in_a_row >= 1)
    print(f"hard split, after {args.stage} (base: untrained), seeds {args.seeds}")
    print("| model | samples | operation read right | arithmetic right | first step right | mean steps right in a row |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row, c in rows.items():
        steps = max(1, c["steps"])
        print(f"| {row} | {c['samples']} | {100 * c['read'] / steps:.0f}% | {100 * c['arithmetic'] / steps:.0f}% | "
              f"{100 * c['first_right'] / c['samples']:.0f}% | {c['prefix'] / c['samples']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
