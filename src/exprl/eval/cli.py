"""`exprl eval`, `exprl data filter`, `exprl analyze` and `exprl report`."""
from __future__ import annotations

import argparse

from exprl.config import add_override_argument
from exprl.data.catalog import add_data_dir_argument
from exprl.eval.config import CACHE_IMPLEMENTATIONS, ENGINES, EvalConfig

# flag -> EvalConfig field; a flag left out keeps the config's value (its default, the YAML's, --set's)
_EVAL_FLAGS = {"bench": "benches", "n": "n", "temperature": "temperature", "top_p": "top_p",
               "max_tokens": "max_tokens", "limit": "limit", "batch_size": "batch_size", "seed": "seed",
               "engine": "engine", "cache_implementation": "cache_implementation", "system_prompt": "system_prompt",
               "traces": "traces"}


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
    p.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems of each benchmark")
    _add_sampling_arguments(p, EvalConfig)
    p.add_argument("--config", metavar="YAML", default=None,
                   help="eval settings file (its 'eval:' section when it has one, as in a pipeline YAML)")
    add_override_argument(p, "eval setting", "n=4")
    add_data_dir_argument(p)
    p.add_argument("--out", default="eval", help="output directory (default ./eval)")
    p.add_argument("--traces", action="store_true", default=None,
                   help="also write OUT/traces.jsonl, every sample with its problem, reference and verdict: the "
                        "input of `exprl judge run` and `exprl judge calibrate`")
    p.set_defaults(handler=_eval)

    data = subparsers.choices.get("data")  # exprl.data.cli registered it first (exprl.cli)
    if data is not None:
        _register_filter(data.actions)

    _register_analyze(subparsers)

    r = subparsers.add_parser(
        "report", help="tables like the paper's Tables 1-2 and plots over pipeline run directories")
    r.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by `exprl pipeline`")
    r.add_argument("--out", default=None, help="report directory (default: RUN_DIR/report for one run, "
                                                "./report for several)")
    r.add_argument("--k", type=int, default=None,
                   help="the pass@k column of the Stage-I table (default: the largest k every run has)")
    r.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder exprl did not create (same-named files are replaced)")
    r.add_argument("--analysis", nargs="+", default=[], metavar="DIR",
                   help="`exprl analyze` folders whose behaviour tables and plots the report shows (a run's own "
                        "RUN_DIR/analysis is found without this)")
    r.set_defaults(handler=_report)


_FILTER_FLAGS = {"n": "n", "max_solved": "max_solved", "limit": "limit", "temperature": "temperature",
                 "top_p": "top_p", "max_tokens": "max_tokens", "batch_size": "batch_size", "seed": "seed",
                 "engine": "engine", "cache_implementation": "cache_implementation", "system_prompt": "system_prompt"}


def _register_filter(actions) -> None:
    from exprl.eval.config import FilterConfig

    p = actions.add_parser(
        "filter", help="keep the problems a model cannot solve (the paper's hard set)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Sample N answers per problem with the model (as `exprl eval` samples), grade them with the "
                    "sparse verifier, and keep the problems solved at most --max-solved times (0: never, the "
                    "paper's hard set).\n\nWrites into DIR:\n"
                    "  kept.jsonl          the kept problems (Problem rows; a recipe may name DIR itself)\n"
                    "  dropped.jsonl       the other problems\n"
                    "  solve_counts.jsonl  per problem: id, source, domain, level, n, solved, kept\n"
                    "  stats.json          solve-count histogram; kept share per source, level and domain;\n"
                    "                      samples generated by this run and reused from an earlier one\n"
                    "  generations.sqlite  every sample with its verdict (`exprl analyze DIR` reads it)\n"
                    "  filter.json         model, inputs and sampling settings\n\n"
                    "Re-running the same command resumes: no sample is generated twice. --n and --max-solved may "
                    "change between runs; another model or sampling setting is refused.")
    p.add_argument("--model", required=True, help="checkpoint folder (or hub id org/name)")
    p.add_argument("--input", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="problems: a prepared folder, JSONL/Parquet file, catalog dataset or hub id (several: "
                        "concatenated)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or this command's own)")
    p.add_argument("--n", type=int, default=None, help=f"samples per problem (default {FilterConfig.n})")
    p.add_argument("--max-solved", type=int, default=None,
                   help=f"keep problems solved at most this many times (default {FilterConfig.max_solved})")
    p.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems")
    _add_sampling_arguments(p, FilterConfig)
    p.add_argument("--config", metavar="YAML", default=None,
                   help="filter settings file (its 'filter:' section when it has one, as in a pipeline YAML)")
    add_override_argument(p, "filter setting", "n=16")
    add_data_dir_argument(p)
    p.set_defaults(handler=_filter)


def _filter(args: argparse.Namespace) -> int:
    from exprl.eval.config import FilterConfig
    from exprl.eval.filter import KEPT_FILE, filter_problems

    config = _config_from_args(FilterConfig, "filter", args, _FILTER_FLAGS)
    report = filter_problems(args.model, args.input, args.out, config)
    print(report.summary())
    print(f"kept problems in {report.out / KEPT_FILE}; statistics in {report.out / 'stats.json'}")
    return 0


def _add_sampling_arguments(p: argparse.ArgumentParser, defaults: type) -> None:
    """The flags of exprl.eval.config.SamplingConfig's fields (eval and data filter sample alike)."""
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature (default {defaults.temperature}, training's)")
    p.add_argument("--top-p", type=float, default=None, help=f"nucleus mass (default {defaults.top_p})")
    p.add_argument("--max-tokens", type=int, default=None,
                   help=f"max new tokens per sample (default {defaults.max_tokens})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"requests per generate call (default {defaults.batch_size})")
    p.add_argument("--seed", type=int, default=None, help=f"base seed (default {defaults.seed})")
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help=f"sampler (default {defaults.engine}: vLLM when installed and a GPU is present, else HF)")
    p.add_argument("--cache-implementation", choices=list(CACHE_IMPLEMENTATIONS), default=None,
                   help=f"KV cache of HF generate (default {defaults.cache_implementation}: static, compiled, on a GPU; "
                        "dynamic on a CPU)")
    p.add_argument("--system-prompt", default=None,
                   help="policy system prompt; '' for none (default: the training prompt)")


def eval_config_from_args(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from --config/--set, then the explicit flags (flags win)."""
    return _config_from_args(EvalConfig, "eval", args, _EVAL_FLAGS)


def _config_from_args(cls: type, section_name: str, args: argparse.Namespace, flag_fields: dict[str, str]):
    import dataclasses

    from exprl.config import check_values, load_config, read_yaml

    section = section_name if args.config and section_name in read_yaml(args.config) else None
    config = load_config(cls, args.config, args.overrides, section=section)
    flags = {name: getattr(args, flag) for flag, name in flag_fields.items() if getattr(args, flag) is not None}
    if flags.get("system_prompt") == "":
        flags["system_prompt"] = None  # '' on the command line means no system prompt
    return check_values(dataclasses.replace(config, **flags), section_name)  # flags held to the ranges too


def _eval(args: argparse.Namespace) -> int:
    from exprl.eval.evaluate import evaluate_config, results_table

    results = evaluate_config(args.model, eval_config_from_args(args), args.out)
    print(results_table(results))
    print(f"results in {args.out}/")
    return 0


REPORT_WRITES = ("report.md", "tables.md", "pass_at_k_*.png", "dynamics_stage*.png", "steps_per_trace.png",
                 "monitors_*.png", "behaviours*.png", "delimiters*.png")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from exprl.eval.report import analysis_folders, load_run, write_report
    from exprl.runs import claim_output_dir, inspect_output_dir

    out = Path(args.out) if args.out else (Path(args.runs[0]) / "report" if len(args.runs) == 1 else Path("report"))
    # The default folder is inside the run it reports on; it may not hold a run, nor overwrite another's files.
    folder = dict(inputs=args.runs, overwrite=args.overwrite, nested_ok=True)
    inspect_output_dir(out, "report", **folder)
    for run in args.runs:
        load_run(run)  # every run readable before the report folder is made
    analyses = analysis_folders(args.runs, args.analysis)
    claim_output_dir(out, "report", REPORT_WRITES, **folder)
    path = write_report(args.runs, out, k=args.k, analyses=analyses)
    print(f"report written to {path}")
    return 0


def _register_analyze(subparsers) -> None:
    from exprl.judge.cli import add_judge_config_arguments

    p = subparsers.add_parser(
        "analyze", help="response length, `###` steps and reasoning behaviours per method and stage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read the generations exprl stored (a pipeline run's evaluations and, with "
                    "trl.log_completions, its training rollouts; an eval, filter or training folder; or every run "
                    "below a folder) and measure, per method and stage: response length, `###` delimiters per "
                    "trace, and four reasoning behaviours (verification, backtracking, enumeration of cases, "
                    "subgoal setting), each also counted problem by problem against the base model.\n\n"
                    "Writes into DIR:\n"
                    "  behaviours.md       the tables (share of traces per behaviour; problems gained / lost vs base)\n"
                    "  delimiters.png      share of traces by number of `###` (the paper's Fig. 6), a panel per stage\n"
                    "  behaviours.png      behaviour shares per method and stage; net problems gained vs base (Fig. 5)\n"
                    "  analysis.json       every number above, the inputs and the annotator with its version\n"
                    "  annotations.sqlite  the LLM annotator's cache (--annotator llm)\n\n"
                    "`exprl report` shows the tables and plots of RUN_DIR/analysis (or of --analysis DIR).")
    p.add_argument("inputs", nargs="+", metavar="RUN_OR_EVAL_DIR", help="folders to read (see above)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: INPUT/analysis for one input, ./analysis for several)")
    p.add_argument("--annotator", choices=["rules", "llm"], default="rules",
                   help="rules: the documented patterns of exprl.eval.annotate (default); llm: a chat model through "
                        "a judge backend (--backend openai --base-url URL --model NAME, or --backend transformers "
                        "--model PATH), its answers cached (--cache, default DIR/annotations.sqlite)")
    p.add_argument("--max-per-problem", type=int, default=None, metavar="K",
                   help="read at most K samples of each problem (bounds an LLM annotator's calls)")
    add_judge_config_arguments(p, backends=("openai", "transformers"))
    p.set_defaults(handler=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from pathlib import Path

    from exprl.errors import ConfigError
    from exprl.eval.analyze import ANALYZE_COMMAND, ANALYZE_WRITES, ANNOTATION_CACHE, find_groups, write_analysis
    from exprl.eval.annotate import LLMAnnotator, RuleAnnotator
    from exprl.judge.cli import judge_config_from_args
    from exprl.runs import claim_output_dir, inspect_output_dir

    if args.max_per_problem is not None and args.max_per_problem < 1:
        raise ConfigError(f"--max-per-problem must be at least 1, got {args.max_per_problem}")
    out = Path(args.out) if args.out else (Path(args.inputs[0]) / "analysis" if len(args.inputs) == 1
                                           else Path("analysis"))
    folder = dict(inputs=args.inputs, nested_ok=True)
    inspect_output_dir(out, ANALYZE_COMMAND, **folder)
    config = judge_config_from_args(args) if args.annotator == "llm" else None
    if config is not None and config.backend == "reference":
        raise ConfigError("--annotator llm needs --backend openai (with --base-url and --model) or --backend "
                          "transformers (with --model): the reference judge reads no prose")
    groups = find_groups(args.inputs, args.max_per_problem)  # every input readable before DIR is made
    claim_output_dir(out, ANALYZE_COMMAND, ANALYZE_WRITES, **folder)
    if config is not None:
        cache = config.cache_path if config.cache_path is not None else str(out / ANNOTATION_CACHE)
        annotator = LLMAnnotator(config, cache or None)
    else:
        annotator = RuleAnnotator()
    try:
        analysis = write_analysis(args.inputs, out, annotator, args.max_per_problem, groups)
    finally:
        close = getattr(annotator, "close", None)
        if close:
            close()
    from exprl.eval.analyze import behaviour_markdown

    print("\n".join(behaviour_markdown(analysis)))
    print(f"\nanalysis written to {out}/ (behaviours.md, delimiters.png, behaviours.png, analysis.json)")
    return 0
