"""`exprl pipeline`: its parser and handler. The handler loads the pipeline file, plans both
training stages and prints the plan; without --dry-run it checks every input and runs
(`exprl.pipeline.run.run_pipeline`), then prints each stage's state.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from exprl.config import add_override_argument
from exprl.data.catalog import add_data_dir_argument
from exprl.pipeline.config import load_pipeline_config
from exprl.pipeline.run import (check_pipeline_inputs, default_run_dir, pipeline_recipes, plan_document, plan_pipeline,
                                run_pipeline)
from exprl.runs import STAGES


def register(commands) -> None:
    commands.command(
        "pipeline", _add_arguments, _handle,
        help="base eval -> Stage I -> eval -> Stage II (sparse GRPO) -> eval, resumable",
        description="Run the two-stage protocol into one run directory. Re-running the same command "
                    "skips finished stages and resumes an interrupted one. Both training stages are "
                    "planned first; --dry-run prints the plan and stops.")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="pipeline: a YAML file, or a bundled recipe's name (pipeline-cpu-smoke, "
                        "pipeline-paper-qwen3-4b)")
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/<name or method>)")
    add_override_argument(p, "pipeline", "eval.n=4 or stage2.trl.num_generations=16")
    add_data_dir_argument(p)
    from exprl.train.cli import add_plan_arguments

    add_plan_arguments(p)


def _handle(args: argparse.Namespace) -> int:
    import json

    from exprl.eval.plan import render_evaluation
    from exprl.train.cli import plan_world_size, refuse_over_memory

    config = load_pipeline_config(args.config, args.overrides)
    recipes = pipeline_recipes(config)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config, recipes)
    # A dry run plans each stage at its recipe's launch.num_processes unless --num-processes names one for
    # all; a real run trains every stage on the processes it was launched with.
    world = args.num_processes if args.dry_run else plan_world_size(args)
    plans = plan_pipeline(config, recipes, world, gpu_memory_gib=args.gpu_memory_gib, run_dir=run_dir)
    document = plan_document(config, recipes, plans, run_dir)
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        print(f"pipeline: {document['label']} into {run_dir}\n")
        print("\n\n".join(p.render() for p in plans) + "\n\n" + render_evaluation(document["evaluation"]), flush=True)
    if args.dry_run:
        refuse_over_memory(plans)
        return 0
    check_pipeline_inputs(config, recipes, run_dir)
    state = run_pipeline(config, run_dir)
    for stage in STAGES:
        record = state["stages"].get(stage, {})
        extra = record.get("pass_at_1") or record.get("checkpoint") or record.get("error") or ""
        print(f"{stage:12s} {record.get('state', '?'):12s} {extra}")
    print(f"run directory: {run_dir}  (exprl report {run_dir})")
    return 0 if state.get("finished") else 1
