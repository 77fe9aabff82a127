"""`exprl train --config RECIPE [--resume] [--output-dir DIR] [--set key=value ...]`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from exprl.config import add_override_argument


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="Stage-I training with one method (exprl-outcome, exprl-process, grpo, sft, self-distill)",
        description="Train one method from a recipe YAML. A finished run is detected and not redone; "
                    "an interrupted one continues with --resume.")
    p.add_argument("--config", required=True, help="recipe YAML (see configs/)")
    p.add_argument("--output-dir", default=None, help="run folder (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    add_override_argument(p, "recipe", "trl.max_steps=10")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from exprl.train.config import load_train_config
    from exprl.train.runner import run_training

    config = load_train_config(args.config, args.overrides)
    output_dir = Path(args.output_dir or Path("runs") / Path(args.config).stem)
    result = run_training(config, output_dir, resume=args.resume)
    if result.already_done:
        print(f"exprl train: {output_dir} is already finished (step {result.global_step}); nothing to do.")
    print(json.dumps(result.to_dict(), indent=2))
    return 0
