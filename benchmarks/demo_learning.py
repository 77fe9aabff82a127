"""The demo's learning table: the analogue of the paper's Tables 1 and 2 on the synthetic task.

    .venv/bin/python benchmarks/demo_learning.py --seeds 3 [--output-dir runs/demo-bench] [--set KEY=VALUE ...]

Runs `exprl demo` (configs/demo.yaml plus overrides) for every seed, then prints pass@1 / pass@16
on held-out hard and easy problems as mean ± std over seeds, and the wall time. Resumable: a rerun
reuses finished stages (the wall time then covers only what was left).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--output-dir", default="runs/demo-bench")
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from exprl.config import load_config
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import collect_results, run_demo, summary_tables

    config = load_config(DemoConfig, args.config,
                         [*args.overrides, f"seeds={args.seeds}", f"output_dir={args.output_dir}"])
    started = time.monotonic()
    report = run_demo(config, log=lambda m: print(m, file=sys.stderr, flush=True))
    wall = time.monotonic() - started
    seeds = [config.seed + i for i in range(config.seeds)]
    table = collect_results(Path(config.output_dir), seeds, config.methods)
    print(summary_tables(table, config.methods, k=min(16, config.eval.n)))
    # Stages finished by an earlier run are reused, so the time covers only what this run did.
    print(f"seeds: {len(seeds)}; wall time of this run {wall:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
