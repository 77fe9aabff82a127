"""Is the demo's base model what the synthetic task needs? Conditions C1-C4 of issue 12.

    .venv/bin/python benchmarks/demo_base.py [--seed 0] [--n 16] [--set KEY=VALUE ...]

Pre-trains (or reuses, from --output-dir's cache) the base model of `exprl demo` with the same
config and overrides, samples it n times per problem at the evaluation temperature on the held-out
easy and hard problems and on the hard *training* problems, and prints per split:

- pass@1 / pass@n of the final answer, and the same for the guess-free "every step right";
- the share of groups of `training.num_generations` samples with a right answer (sparse GRPO's
  signal), and the share of right answers that are lucky (not every step right);
- every `###` step checked on its own inputs: operation and operand read right, input taken from the
  previous result, arithmetic right given those; the first step right, and the mean right prefix;

then conditions C1-C4 (`exprl.demo.conditions`), each with its value and whether it holds.
`--smoke`: the smallest demo (benchmarks/_smoke.py's overrides), n=2, in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parents[1]

COLUMNS = [("pass1", "pass@1"), ("pass_n", "pass@n"), ("group_success", "groups with a success"),
           ("every_step_pass1", "every step pass@1"), ("every_step_pass_n", "every step pass@n"),
           ("lucky_share", "lucky answers"), ("steps_per_sample", "### per sample"),
           ("operation_right", "op. read right"), ("input_right", "input right"),
           ("arithmetic_right", "arith. right"), ("first_step_right", "first step right"),
           ("right_prefix", "right prefix")]


def measure(config, seed: int, n: int, log) -> dict:
    from exprl.demo.conditions import check_conditions, sample_stats
    from exprl.demo.runner import base_model, task_problems

    started = time.monotonic()
    model = str(base_model(config, seed, Path(config.output_dir) / "cache", log=log))
    pretrain_s = time.monotonic() - started
    done = json.loads((Path(model) / "base_done.json").read_text())
    problems = task_problems(config, seed)
    common = dict(n=n, temperature=config.eval.temperature, max_tokens=config.eval.max_tokens,
                  group_size=config.training.num_generations, seed=seed, system_prompt=config.system_prompt,
                  batch_size=config.eval.batch_size)
    stats = {name: sample_stats(model, problems[name], name=name, **common)
             for name in ("easy", "hard", "train-hard")}
    sampled_s = time.monotonic() - started - pretrain_s
    return {"model": model, "pretrain_s": pretrain_s, "sample_s": sampled_s, "steps_trained": done["steps_trained"],
            "final_loss": done["final_loss"], "stats": stats,
            "conditions": check_conditions(stats["easy"].pass1, stats["train-hard"], config.task.modulus)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=16, help="Samples per problem at the eval temperature.")
    parser.add_argument("--output-dir", default="runs/demo-base", help="Holds the base-model cache.")
    parser.add_argument("--config", default=str(REPO / "src/exprl/recipes/demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.overrides, args.n, args.output_dir = [*_smoke.DEMO_OVERRIDES, *args.overrides], 2, str(_smoke.folder())

    from exprl.config import load_config
    from exprl.demo.config import DemoConfig

    config = load_config(DemoConfig, args.config, [*args.overrides, f"output_dir={args.output_dir}"])
    result = measure(config, args.seed, args.n, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"overrides: {' '.join(args.overrides) or '(defaults)'}; seed {args.seed}; n={args.n} at "
          f"T={config.eval.temperature}; base {result['model']}: {result['steps_trained']} steps, final loss "
          f"{result['final_loss']:.3f}, pre-training {result['pretrain_s']:.0f} s, sampling {result['sample_s']:.0f} s")
    print("| split | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, stats in result["stats"].items():
        values = stats.to_dict()
        print(f"| {name} | " + " | ".join(f"{values[key]:.2f}" if key == "right_prefix" else f"{values[key]:.1f}"
                                          for key, _ in COLUMNS) + " |")
    for name, stats in result["stats"].items():
        if name != "easy":
            print(f"{name}: operation read right at step 1, 2, ...: {stats.operation_right_by_step}")
            print(f"{name}: step t right when steps 1..t-1 are (per-step accuracy along a right chain): "
                  f"{stats.right_given_prefix_by_step}")
    for condition in result["conditions"]:
        print(f"{condition.name}: {condition.measured} (needs {condition.claim}): "
              f"{'holds' if condition.holds else 'FAILS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
