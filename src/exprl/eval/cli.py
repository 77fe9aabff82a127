"""`exprl eval` and `exprl report`."""
from __future__ import annotations

import argparse

from exprl.config import add_override_argument
from exprl.data.catalog import add_data_dir_argument
from exprl.eval.config import EvalConfig

# flag -> EvalConfig field; a flag left out keeps the config's value (its default, the YAML's, --set's)
_EVAL_FLAGS = {"bench": "benches", "n": "n", "temperature": "temperature", "top_p": "top_p",
               "max_tokens": "max_tokens", "limit": "limit", "batch_size": "batch_size", "seed": "seed",
               "engine": "engine", "system_prompt": "system_prompt"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="sample n completions per benchmark problem and report unbiased pass@k",
        description="Evaluate a checkpoint. Re-running the same command resumes: finished samples are "
                    "never regenerated. Another model or other sampling settings in the same --out are refused, "
                    "naming what changed.")
    p.add_argument("--model", required=True, help="checkpoint folder (or hub id org/name)")
    p.add_argument("--bench", nargs="+", default=None, metavar="BENCH",
                   help="bench-*.yaml recipes (files or bundled names: bench-math500, bench-gsm8k), catalog datasets "
                        "(math500, gsm8k-test: `exprl data list`) or data files (JSONL/Parquet, Problem schema)")
    p.add_argument("--n", type=int, default=None, help=f"samples per problem (default {EvalConfig.n})")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature (default {EvalConfig.temperature}, training's)")
    p.add_argument("--top-p", type=float, default=None, help=f"nucleus mass (default {EvalConfig.top_p})")
    p.add_argument("--max-tokens", type=int, default=None,
                   help=f"max new tokens per sample (default {EvalConfig.max_tokens})")
    p.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems of each benchmark")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"requests per generate call (default {EvalConfig.batch_size})")
    p.add_argument("--seed", type=int, default=None, help=f"base seed (default {EvalConfig.seed})")
    p.add_argument("--engine", choices=["auto", "hf", "vllm"], default=None,
                   help=f"sampler (default {EvalConfig.engine})")
    p.add_argument("--system-prompt", default=None,
                   help="policy system prompt; '' for none (default: the training prompt)")
    p.add_argument("--config", metavar="YAML", default=None,
                   help="eval settings file (its 'eval:' section when it has one, as in a pipeline YAML)")
    add_override_argument(p, "eval setting", "n=4")
    add_data_dir_argument(p)
    p.add_argument("--out", default="eval", help="output directory (default ./eval)")
    p.set_defaults(handler=_eval)

    r = subparsers.add_parser(
        "report", help="tables like the paper's Tables 1-2 and plots over pipeline run directories")
    r.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by `exprl pipeline`")
    r.add_argument("--out", default=None, help="report directory (default: RUN_DIR/report for one run, "
                                                "./report for several)")
    r.add_argument("--k", type=int, default=None,
                   help="the pass@k column of the Stage-I table (default: the largest k every run has)")
    r.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder exprl did not create (same-named files are replaced)")
    r.set_defaults(handler=_report)


def eval_config_from_args(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from --config/--set, then the explicit flags (flags win)."""
    import dataclasses

    from exprl.config import load_config, read_yaml

    section = "eval" if args.config and "eval" in read_yaml(args.config) else None
    config = load_config(EvalConfig, args.config, args.overrides, section=section)
    flags = {name: getattr(args, flag) for flag, name in _EVAL_FLAGS.items() if getattr(args, flag) is not None}
    if flags.get("system_prompt") == "":
        flags["system_prompt"] = None  # '' on the command line means no system prompt
    return dataclasses.replace(config, **flags)  # checked again, as any EvalConfig is


def _eval(args: argparse.Namespace) -> int:
    from exprl.eval.evaluate import evaluate_config, results_table

    results = evaluate_config(args.model, eval_config_from_args(args), args.out)
    print(results_table(results))
    print(f"results in {args.out}/")
    return 0


REPORT_WRITES = ("report.md", "tables.md", "pass_at_k_*.png", "dynamics_stage*.png", "steps_per_trace.png")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from exprl.eval.report import load_run, write_report
    from exprl.runs import claim_output_dir, inspect_output_dir

    out = Path(args.out) if args.out else (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("report"))
    # The default folder is inside the run it reports on; it may not hold a run, nor overwrite another's files.
    folder = dict(inputs=args.runs, overwrite=args.overwrite, nested_ok=True)
    inspect_output_dir(out, "report", **folder)
    for run in args.runs:
        load_run(run)  # every run readable before the report folder is made
    claim_output_dir(out, "report", REPORT_WRITES, **folder)
    path = write_report(args.runs, out, k=args.k)
    print(f"report written to {path}")
    return 0
