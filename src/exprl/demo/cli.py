"""`exprl demo`: its parser and handler (the run is `exprl.demo.runner.run_demo`)."""
from __future__ import annotations

import argparse
import sys

from exprl.config import add_override_argument


def register(commands) -> None:
    commands.command(
        "demo", _add_arguments, _handle,
        help="the whole pipeline on the synthetic coverage task, minutes on a CPU",
        description="Pre-train a tiny base model on easy arithmetic chains, run Stage I with sft, grpo, "
                    "self-distill, exprl-outcome and exprl-process on hard chains, Stage II sparse GRPO "
                    "from each, evaluate pass@k, and write a report. Re-running resumes.")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="YAML",
                   help="demo recipe: a file or a bundled recipe's name (default: the built-in defaults, which "
                        "`exprl recipes show demo` prints)")
    p.add_argument("--output-dir", default=None, help="run directory (default: runs/demo)")
    p.add_argument("--seeds", type=int, default=None, help="independent repetitions (default 1)")
    p.add_argument("--judge-url", default=None, metavar="URL",
                   help="OpenAI-compatible judge endpoint instead of the reference judge")
    p.add_argument("--judge-model", default=None, help="model name sent to --judge-url")
    add_override_argument(p, "demo", "training.stage1_steps=10")


def _handle(args: argparse.Namespace) -> int:
    from exprl.config import load_config
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import run_demo

    overrides = list(args.overrides)
    if args.judge_url is not None:
        overrides.append("judge=openai")
    for key, value in (("seeds", args.seeds), ("judge_url", args.judge_url),
                       ("judge_model", args.judge_model), ("output_dir", args.output_dir)):
        if value is not None:
            overrides.append(f"{key}={value}")
    config = load_config(DemoConfig, args.config, overrides)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    from exprl.demo.runner import check_judge_url
    from exprl.runs import claim_output_dir

    if config.judge_url:
        check_judge_url(config.judge_url)  # a judge that does not answer stops the demo before its folder exists
    # The demo's folder is its run: resumed by the same command, never another folder's contents mixed in.
    claim_output_dir(config.output_dir, "demo", DEMO_WRITES, adopt=("demo.yaml",), flag="--output-dir")
    report = run_demo(config, log=log)
    print(report)
    return 0


DEMO_WRITES = ("demo.yaml", "cache", "seed-*", "report.md", "tables.md", "*.png")
