"""`exprl train --config RECIPE [--output-dir DIR] [--set key=value ...] [--dry-run ...]`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from exprl.config import add_override_argument
from exprl.data.catalog import add_data_dir_argument
from exprl.errors import ConfigError
from exprl.runs import TRAIN_RESULT_FILE


def register(commands) -> None:
    commands.command(
        "train", _add_arguments, handle,
        help="Stage-I training with one method (exprl-outcome, exprl-process, grpo, sft, self-distill)",
        description="Train one method from a recipe YAML. Running the same command again continues an "
                    "interrupted run from its last checkpoint, and finds a finished one finished; another "
                    "recipe in the same --output-dir is refused, naming what changed. The run is planned and "
                    "the recipe checked first; --dry-run prints the plan and stops.")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="recipe: a YAML file, or a bundled recipe's name (`exprl recipes list`)")
    p.add_argument("--output-dir", default=None, help="run folder (default: runs/<recipe name>)")
    add_override_argument(p, "recipe", "rollout_batches=10")
    add_data_dir_argument(p)
    add_plan_arguments(p)


def add_plan_arguments(parser: Any) -> None:
    """`--dry-run --num-processes N --json`, shared by `exprl train` and `exprl pipeline`."""
    parser.add_argument("--dry-run", action="store_true",
                        help="print what each training stage will do (batch shapes, budget, judge calls, loss "
                             "settings) and check that it can run; loads no model, trains nothing")
    parser.add_argument("--num-processes", type=int, default=None, metavar="N",
                        help="with --dry-run: plan every stage for N training processes (default: each recipe's "
                             "launch.num_processes, else this launch's WORLD_SIZE, else 1)")
    parser.add_argument("--gpu-memory-gib", type=float, default=80.0, metavar="GIB",
                        help="with --dry-run: the GPU memory the memory plan must fit, per GPU (default 80: an H100); "
                             "a stage over it is refused, naming changes that would fit")
    parser.add_argument("--json", action="store_true", help="with --dry-run: the plan as one JSON object")


def plan_world_size(args: argparse.Namespace, recipe_default: int | None = None) -> int:
    """The world size a stage is planned at: --num-processes, else (dry run) the recipe's
    launch.num_processes, else this launch's WORLD_SIZE, else 1. A real run trains on the processes it
    was launched with."""
    import os

    from exprl.train.trl_args import world_size_from_environment

    if not args.dry_run and (args.num_processes is not None or args.json):
        raise ConfigError("--num-processes and --json go with --dry-run; a run trains on the processes it is "
                          "launched with (accelerate launch --num_processes N)")
    if args.num_processes is not None:
        return args.num_processes
    if args.dry_run and recipe_default is not None and "WORLD_SIZE" not in os.environ:
        return recipe_default
    return world_size_from_environment()


def print_plan(plans: Sequence[Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        print(json.dumps({**(extra or {}), "stages": [p.to_dict() for p in plans]}, indent=2, default=str))
    else:
        print("\n\n".join(p.render() for p in plans), flush=True)


def refuse_over_memory(plans: Sequence[Any]) -> None:
    """A dry run whose memory plan does not fit the GPU stops with exit 2, naming what would fit."""
    over = [p for p in plans if p.memory and p.memory.get("estimated", True) and not p.memory["fits"]]
    if not over:
        return
    reasons = []
    for plan in over:
        memory = plan.memory
        fixes = memory.get("would_fit_with") or []
        reasons.append(f"{plan.name} ({plan.recipe}): the memory plan needs {memory['total_gib']:.1f} GiB per GPU of "
                       f"{memory['gpu_gib']:g} (--gpu-memory-gib) with {memory['strategy']} on {plan.world_size} "
                       f"process{'es' if plan.world_size > 1 else ''}; "
                       + (f"it would fit with {'; or '.join(fixes)}" if fixes else
                          "no single change exprl knows of makes it fit (a smaller model, shorter sequences, a larger GPU)"))
    raise ConfigError(" | ".join(reasons))


def handle(args: argparse.Namespace) -> int:
    from exprl.train.config import load_train_config
    from exprl.train.plan import plan_stage

    config = load_train_config(args.config, args.overrides)
    output_dir = Path(args.output_dir or Path("runs") / Path(args.config).stem)
    plan = plan_stage(config, plan_world_size(args, config.launch.num_processes), "train", args.config,
                      gpu_memory_gib=args.gpu_memory_gib, output_dir=str(output_dir), overrides=args.overrides or ())
    if args.dry_run or os.environ.get("RANK", "0") == "0":  # under accelerate, one rank prints it
        print_plan([plan], args.json)
    if args.dry_run:
        refuse_over_memory([plan])
        return 0
    from exprl.train.runner import run_training

    result = run_training(config, output_dir)
    if result.already_done:
        print(f"exprl train: {output_dir} is already finished, with this recipe (step {result.global_step}); "
              f"nothing to do.")
    print(json.dumps(result.to_dict(), indent=2))
    if not (output_dir / TRAIN_RESULT_FILE).is_file():
        print(f"exprl train: stopped at step {result.global_step} before the last; run the same command again "
              f"to continue.", file=sys.stderr)
        return 1
    return 0
