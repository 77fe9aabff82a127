"""Does the hard-set filter keep the demo's hard problems and drop its easy ones? (issue 13)

    .venv/bin/python benchmarks/demo_filter.py [--seed 0] [--n 8] [--max-solved 0] [--set KEY=VALUE ...]

Reuses (or pre-trains) the base model of `exprl demo` from --output-dir's cache, with the same config
and overrides (as benchmarks/demo_base.py does), writes the seed's held-out easy and hard problems,
and runs `exprl data filter` on both at once into OUTPUT_DIR/filter-seed<S>, sampling as the demo's
evaluation does (its temperature, token budget and system prompt). Prints, per split: problems, kept,
dropped, the kept share and the solve-count histogram, and the samples the run generated and reused
(run it twice: the second run generates none).

The condition the figure depends on is printed first: how often the base solves a sample of each
split (the mean solve rate). A filter can only separate the splits when that rate differs.
`--smoke`: the smallest demo (benchmarks/_smoke.py's overrides), n=2, in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=8, help="samples per problem")
    parser.add_argument("--max-solved", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/demo-base", help="holds the base-model cache")
    parser.add_argument("--config", default=str(REPO / "src/exprl/recipes/demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.overrides, args.n, args.output_dir = [*_smoke.DEMO_OVERRIDES, *args.overrides], 2, str(_smoke.folder())

    from exprl.config import load_config
    from exprl.data.loaders import write_problems
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import base_model, task_problems
    from exprl.eval.config import FilterConfig
    from exprl.eval.filter import filter_problems

    config = load_config(DemoConfig, args.config, [*args.overrides, f"output_dir={args.output_dir}"])
    out = Path(args.output_dir)
    model = base_model(config, args.seed, out / "cache", log=lambda m: print(m, file=sys.stderr, flush=True))
    problems = task_problems(config, args.seed)
    data = out / f"filter-input-seed{args.seed}"
    data.mkdir(parents=True, exist_ok=True)
    for split in ("easy", "hard"):
        if not (data / f"{split}.jsonl").is_file():
            write_problems(data / f"{split}.jsonl", problems[split])
    settings = FilterConfig(n=args.n, max_solved=args.max_solved, temperature=config.eval.temperature,
                            max_tokens=config.eval.max_tokens, batch_size=config.eval.batch_size,
                            system_prompt=config.system_prompt, seed=args.seed)
    report = filter_problems(model, [data / "easy.jsonl", data / "hard.jsonl"], out / f"filter-seed{args.seed}",
                             settings, progress=False)
    rows = [json.loads(line) for line in (report.out / "solve_counts.jsonl").read_text().splitlines()]
    print(f"base {model.name}; seed {args.seed}; n={args.n}, kept when solved <= {args.max_solved}; "
          f"T={settings.temperature}, max_tokens={settings.max_tokens}")
    for split, marker in (("easy", "/eval-easy/"), ("hard", "/eval-hard/")):
        mine = [r for r in rows if marker in r["id"]]
        kept = sum(r["kept"] for r in mine)
        histogram = " ".join(f"{c}:{sum(r['solved'] == c for r in mine)}" for c in range(args.n + 1))
        rate = sum(r["solved"] for r in mine) / (args.n * len(mine))
        print(f"{split}: {len(mine)} problems, solve rate per sample {100 * rate:.1f}%; kept {kept}, dropped "
              f"{len(mine) - kept} (kept {100 * kept / len(mine):.1f}%); solve counts {histogram}")
    print(f"samples: {report.stats['samples']['generated']} generated, {report.stats['samples']['reused']} reused; "
          f"{report.stats['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
