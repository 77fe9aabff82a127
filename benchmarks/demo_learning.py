"""The demo's learning table: the analogue of the paper's Tables 1 and 2 on the synthetic task.

    .venv/bin/python benchmarks/demo_learning.py --seeds 3 [--jobs 3] [--output-dir runs/demo-bench] [--set KEY=VALUE ...]

Runs `exprl demo` (the bundled demo.yaml plus overrides) for every seed, then prints pass@1 / pass@n (n = eval.n)
on held-out hard and easy problems as mean ± std over seeds, and the wall time. Resumable: a rerun
reuses finished stages (the wall time then covers only what was left). `--jobs N` runs N seeds at
once, each in its own process and run directory (`<output-dir>/seed-<s>-run`): worth it on a GPU or
a many-core machine, never on 2 cores, where two torch processes slow each other down.
`--smoke`: one seed of the smallest demo (benchmarks/_smoke.py's overrides) in a temporary folder.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="Seeds run at once, one process each.")
    parser.add_argument("--output-dir", default="runs/demo-bench")
    parser.add_argument("--config", default=str(REPO / "src/exprl/recipes/demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.overrides, args.seeds = [*_smoke.DEMO_OVERRIDES, *args.overrides], 1
        args.output_dir = str(_smoke.folder())

    from exprl.config import load_config
    from exprl.demo.config import DemoConfig
    from exprl.demo.report import collect_results, summary_tables
    from exprl.demo.runner import run_demo

    config = load_config(DemoConfig, args.config,
                         [*args.overrides, f"seeds={args.seeds}", f"output_dir={args.output_dir}"])
    seeds = [config.seed + i for i in range(config.seeds)]
    started = time.monotonic()
    if args.jobs <= 1:
        report = run_demo(config, log=lambda m: print(m, file=sys.stderr, flush=True))
        table = collect_results(Path(config.output_dir), seeds, config.methods, n=config.eval.n)
    else:
        runs = {seed: Path(config.output_dir) / f"seed-{seed}-run" for seed in seeds}

        def run_seed(seed: int) -> int:
            sets = [f"--set={o}" for o in [*args.overrides, f"seed={seed}", "seeds=1"]]
            command = [sys.executable, "-m", "exprl.cli", "demo", "--config", args.config,
                       "--output-dir", str(runs[seed]), *sets]
            with open(runs[seed].with_suffix(".log"), "w") as log:
                return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode

        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            codes = dict(zip(seeds, pool.map(run_seed, seeds)))
        failed = [seed for seed, code in codes.items() if code]
        if failed:
            print(f"seeds {failed} failed: see {', '.join(str(runs[s].with_suffix('.log')) for s in failed)}",
                  file=sys.stderr)
        table = {}
        for seed in seeds:
            if seed not in failed:
                for key, values in collect_results(runs[seed], [seed], config.methods, n=config.eval.n).items():
                    table.setdefault(key, []).extend(values)
        report = ", ".join(str(runs[s] / "report.md") for s in seeds)
    wall = time.monotonic() - started
    print(summary_tables(table, config.methods, k=min(16, config.eval.n)))
    # Stages finished by an earlier run are reused, so the time covers only what this run did.
    print(f"seeds: {len(seeds)}; wall time of this run {wall:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
