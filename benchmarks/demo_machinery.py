"""The machinery check (issue 24): can an exact dense reward beat sparse GRPO on this task design?

    .venv/bin/python benchmarks/demo_machinery.py --design NAME --seed 0 --budget 100 [--fresh-pool]
        [--set KEY=VALUE ...] [--methods grpo exprl-outcome] [--results src/exprl/demo/machinery.jsonl]

For one task design (the bundled demo.yaml plus `--set`s) and one seed: pre-trains (or reuses, from
`--output-dir`'s cache) the base model, measures it (C1-C3 of `exprl.demo.conditions`, and the
guess-free every-step-right pass@k on the held-out hard problems), runs Stage I of each method at
`--budget` steps with `judge=oracle` (ExpRL-Outcome's reward is then the exact share of the chain
done right, `exprl.demo.oracle`), evaluates each Stage-I model on the held-out hard and easy
problems, and appends one JSON row to `--results` (by default the file the demo report quotes,
`exprl.demo.machinery.RESULTS`). The condition (issue 24, `exprl.demo.machinery.holds`): the
oracle's every-step-right hard pass@8 >= 20% while sparse GRPO's stays <= 5%, on 3 design seeds.

`--fresh-pool` draws as many hard training problems as Stage I draws prompts, so no problem is
seen twice and no answer can be memorised (sparse GRPO memorised 64 problems' answers at 300 steps,
docs/architecture.md). The base's conditions are then measured on the first `--condition-problems`
of them, as Stage I draws its groups (16 samples each, groups of `training.num_generations`).

`--smoke`: the smallest demo (benchmarks/_smoke.py's overrides), 1 Stage-I step, 2 samples a problem,
a fresh pool, everything (the row too) in a temporary folder. The row is also printed, as the last line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _smoke
from exprl.demo.machinery import RESULTS, every_at_8, holds, oracle_method

REPO = Path(__file__).resolve().parents[1]
KEPT = ("pass1", "pass_n", "group_success", "every_step_pass1", "every_step_pass_n", "first_step_right",
        "right_prefix", "arithmetic_right", "operation_right", "steps_per_sample", "operation_right_by_step",
        "right_given_prefix_by_step")


def _kept(stats) -> dict:
    values = stats.to_dict()
    return {key: round(values[key], 3) if isinstance(values[key], float) else values[key] for key in KEPT}


def _reward_trend(metrics: Path, window: int = 10) -> dict:
    """Mean of each training reward logged (the dense judge reward, TRL's reward) over the first and
    last `window` logged steps."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    trend = {}
    for key in ("exprl/dense_reward_mean", "reward"):
        logged = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if logged:
            trend[key] = [round(sum(part) / len(part), 4) for part in (logged[:window], logged[-window:])]
    return trend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", help="A name for the design (the row's key).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=100, help="Stage-I steps of every method.")
    parser.add_argument("--fresh-pool", action="store_true", help="One hard training problem per Stage-I prompt.")
    parser.add_argument("--methods", nargs="*", default=["grpo", "exprl-outcome"],
                        help="Stage-I methods; none measures the base only (the row's machinery_holds is then null).")
    parser.add_argument("--judge", default="oracle", choices=["oracle", "step"],
                        help="The exprl methods' reward: the oracle (the machinery check), or the demo's step "
                             "judge (with --set judge_process_view=segment; measures the judge, not the task).")
    parser.add_argument("--n", type=int, default=8, help="Evaluation samples per held-out problem (pass@n).")
    parser.add_argument("--condition-problems", type=int, default=64)
    parser.add_argument("--output-dir", default="runs/demo-machinery", help="Base cache and Stage-I runs.")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--config", default=str(REPO / "src/exprl/recipes/demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        scratch = _smoke.folder()
        args.design, args.budget, args.n, args.condition_problems, args.fresh_pool = "smoke", 1, 2, 2, True
        args.output_dir, args.results = str(scratch / "runs"), str(scratch / "rows.jsonl")
        args.overrides = [*_smoke.DEMO_OVERRIDES, *args.overrides]
    elif not args.design:
        parser.error("--design is required (or --smoke)")

    from exprl.config import load_config
    from exprl.demo.conditions import check_conditions, sample_stats
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import CONDITION_GROUPS_PER_PROBLEM, base_model, method_judge, stage1_config, write_task_data
    from exprl.data.loaders import load_problems
    from exprl.train.runner import run_training

    sets = [*args.overrides, f"judge={args.judge}", f"training.stage1_steps={args.budget}"]
    probe = load_config(DemoConfig, args.config, sets)
    if args.fresh_pool:
        sets.append(f"task.num_train_hard={args.budget * probe.training.prompts_per_step}")
    out = Path(args.output_dir)
    config = load_config(DemoConfig, args.config, [*sets, f"output_dir={out}"])
    run_dir = out / args.design / f"seed-{args.seed}-budget-{args.budget}"

    def log(message: str) -> None:
        print(f"[machinery {args.design} s{args.seed}] {message}", file=sys.stderr, flush=True)

    started = time.monotonic()
    data = write_task_data(config, args.seed, run_dir / "data")
    problems = {name: load_problems(path) for name, path in data.items()}
    model = str(base_model(config, args.seed, out / "cache", log=log))
    base_done = json.loads((Path(model) / "base_done.json").read_text())
    pretrain_s = time.monotonic() - started
    t, e = config.training, config.eval
    common = dict(temperature=e.temperature, max_tokens=e.max_tokens, group_size=t.num_generations,
                  seed=args.seed, system_prompt=config.system_prompt, batch_size=e.batch_size)

    def evaluate(path: str) -> dict:
        return {name: _kept(sample_stats(path, problems[name], n=args.n, name=name, **common))
                for name in ("hard", "easy")}

    train_hard = sample_stats(model, problems["train-hard"][:args.condition_problems],
                              n=CONDITION_GROUPS_PER_PROBLEM * t.num_generations, name="train-hard",
                              **dict(common, temperature=t.temperature, max_tokens=t.max_completion_length))
    base_eval = evaluate(model)
    conditions = check_conditions(base_eval["easy"]["pass1"], train_hard, config.task.modulus)
    verdicts = ", ".join(f"{c.name}: {c.measured} ({'holds' if c.holds else 'FAILS'})" for c in conditions)
    log(f"base: {verdicts}; "
        f"hard every-step pass@{args.n} {base_eval['hard']['every_step_pass_n']:.1f}")
    results = {}
    for method in args.methods:
        method_started = time.monotonic()
        train = stage1_config(config, method, model, data["train-hard"], args.seed, run_dir / method)
        trained = run_training(train, run_dir / method / "stage1", judge=method_judge(config, method))
        results[method] = {**evaluate(str(trained.checkpoint_dir)), **_reward_trend(trained.metrics_path),
                           "seconds": round(time.monotonic() - method_started)}
        log(f"{method}: hard every-step pass@{args.n} {results[method]['hard']['every_step_pass_n']:.1f}, "
            f"pass@{args.n} {results[method]['hard']['pass_n']:.1f}, right prefix "
            f"{results[method]['hard']['right_prefix']:.2f} ({results[method]['seconds']} s)")
    oracle = every_at_8(results, oracle_method(results)) if args.judge == "oracle" else None
    grpo = every_at_8(results, "grpo")
    row = {
        "design": args.design, "judge": args.judge, "overrides": args.overrides, "fresh_pool": args.fresh_pool, "seed": args.seed,
        "budget": args.budget, "num_train_hard": config.task.num_train_hard, "n": args.n,
        "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "base": {"model": str(Path(model).resolve().relative_to(out.resolve())),  # under --output-dir
                 "steps_trained": base_done["steps_trained"], "pretrain_s": round(pretrain_s),
                 "conditions": {c.name: {"measured": c.measured, "holds": c.holds} for c in conditions},
                 "train_hard": _kept(train_hard), **base_eval},
        "methods": results,
        "oracle_method": oracle_method(results),
        "machinery_holds": holds(oracle, grpo),
        "wall_s": round(time.monotonic() - started),
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    log(f"oracle every-step pass@{args.n} {oracle}, grpo {grpo}: machinery "
        f"{'holds' if row['machinery_holds'] else 'does not hold'}; {row['wall_s']} s; row appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
