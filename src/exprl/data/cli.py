"""`exprl data list | prepare | stats | synth | filter`: the `data` group and its actions. Only argument
parsing here; the work is in catalog, loaders, prepare and synthetic. `filter` samples a model, so its
flags and handler are the eval layer's (exprl.eval.cli), which this group names (`provided_above`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from exprl.config import add_override_argument
from exprl.data.catalog import add_data_dir_argument


def register(commands) -> None:
    commands.group(
        "data", help="load, validate, deduplicate, decontaminate and split problem corpora",
        description="Prepare problem corpora (JSONL, Parquet, Hugging Face datasets) for training.",
        # `filter` samples a model to keep the problems it cannot solve: that needs the eval layer
        # (the sampler, the verifier), so its flags and its work are declared there.
        provided_above={"filter": "exprl.eval.cli"})
    commands.action(
        "data", "list", add_data_dir_argument, _list,
        help="the datasets exprl knows by name, and where each would load from now",
        description="Catalog names (gsm8k-train, math500, ...) are accepted wherever a data file is: recipes' "
                    "data.train_files, benchmark configs, `eval --bench`, `data prepare`. Each loads from "
                    "DATA_DIR/FILE when the data folder ($EXPRL_DATA_DIR or --data-dir) has that file, else from "
                    "the Hugging Face hub.")
    commands.action(
        "data", "prepare", _add_prepare_arguments, _prepare,
        help="validate, clean, dedupe and decontaminate corpora into DIR (a test split on request)",
        description="Writes DIR/train.{jsonl,parquet} (and DIR/test.{jsonl,parquet} with --set test_fraction=F; "
                    "by default nothing is held out), removed.jsonl, rejected.jsonl (with --skip-invalid) and "
                    "stats.json, and prints a summary. DIR records what exprl wrote in it (exprl-manifest.json, "
                    "written last with every file's size and hash: a folder a killed prepare left half-written "
                    "is refused by every reader); DIR may not hold an input.")
    commands.action("data", "stats", _add_stats_arguments, _stats,
                    help="print statistics of a problem file or of a prepared stats.json")
    commands.action("data", "synth", _add_synth_arguments, _synth,
                    help="generate the synthetic coverage task as problems JSONL")


def _add_prepare_arguments(prepare: argparse.ArgumentParser) -> None:
    prepare.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="catalog dataset (exprl data list), .jsonl, .parquet, datasets file or folder, or a "
                              "Hugging Face hub id")
    prepare.add_argument("--out", required=True, metavar="DIR", help="output folder")
    prepare.add_argument("--decontaminate", nargs="+", default=[], metavar="EVAL",
                         help="eval sets whose problems (and 13-gram overlaps) are removed from the output")
    prepare.add_argument("--skip-invalid", action="store_true",
                         help="record bad rows in rejected.jsonl instead of stopping at the first")
    prepare.add_argument("--allow-empty", action="store_true",
                         help="accept an input without usable rows (an error otherwise)")
    prepare.add_argument("--overwrite", action="store_true",
                         help="write into a non-empty folder exprl did not create (same-named files are "
                              "replaced, nothing else is touched)")
    prepare.add_argument("--field", action="append", default=[], metavar="FIELD=COLUMN",
                         help="map a source column onto a Problem field, e.g. problem=question (repeatable)")
    _add_config_arguments(prepare)
    add_data_dir_argument(prepare)


def _add_stats_arguments(stats: argparse.ArgumentParser) -> None:
    stats.add_argument("file", metavar="FILE", help="problems in any loadable format, or a stats.json")
    stats.add_argument("--field", action="append", default=[], metavar="FIELD=COLUMN",
                       help="map a source column onto a Problem field (repeatable)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of the readable summary")
    add_data_dir_argument(stats)


def _add_synth_arguments(synth: argparse.ArgumentParser) -> None:
    synth.add_argument("--out", required=True, metavar="FILE", help="output JSONL file")
    synth.add_argument("--seed", type=int, default=None, help="generator seed (overrides the config)")
    _add_config_arguments(synth)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", default=None, help="config file (fields as in --set)")
    add_override_argument(parser, "prepare config", "near_dup_threshold=0.85")


def _list(args: argparse.Namespace) -> int:
    from exprl.data.catalog import BENCHMARKS, CATALOG, DATA_DIR_ENV, data_dir, locate

    folder = data_dir()
    print(f"data folder: {folder if folder else f'none (set {DATA_DIR_ENV}=DIR or pass --data-dir DIR)'}")
    width = max(len(e.name) for e in (*CATALOG, *BENCHMARKS))
    for entry in (*CATALOG, *BENCHMARKS):
        location = locate(entry)
        where = location.where if location.kind == "local" else f"the hub ({location.note})"
        print(f"\n{entry.name:{width}}  {entry.description}\n{'':{width}}  hub {entry.hub_label}, local copy "
              f"{entry.local_file}\n{'':{width}}  loads from {where}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from exprl.config import load_config
    from exprl.data.prepare import PrepareConfig, prepare

    config = load_config(PrepareConfig, args.config, args.overrides)
    config.fields = [*config.fields, *args.field]
    config.decontaminate = [*config.decontaminate, *args.decontaminate]
    config.skip_invalid = config.skip_invalid or args.skip_invalid
    config.allow_empty = config.allow_empty or args.allow_empty
    report = prepare(args.inputs, args.out, config, overwrite=args.overwrite)
    print(report.summary())
    if not report.test:
        print("no test split: test_fraction is 0 (--set test_fraction=0.1 holds a tenth of the problems out)")
    print(f"wrote {', '.join(str(p) for p in report.files.values())} in {report.stats['seconds']} s")
    if report.replaced:
        print(f"replaced what was there before: {', '.join(p.name for p in report.replaced)}")
    if report.deleted:
        print(f"removed {', '.join(p.name for p in report.deleted)}: written by an earlier prepare into {args.out}, "
              f"not made by these settings")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from exprl.data.loaders import load_problems, parse_field_mapping
    from exprl.data.prepare import describe_problems, format_stats

    path = Path(args.file)
    stats = None
    if path.suffix == ".json" and path.is_file():
        try:
            candidate = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            candidate = None
        if isinstance(candidate, dict) and "counts" in candidate and "kept" in candidate:
            stats = candidate  # a stats.json that `data prepare` wrote
    if stats is None:
        stats = describe_problems(load_problems(args.file, mapping=parse_field_mapping(args.field)))
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from exprl.config import load_config
    from exprl.data.loaders import write_problems
    from exprl.data.synthetic import SyntheticTaskConfig, generate

    from exprl.runs import check_parent_folder, refuse_special

    overrides = [*args.overrides, *([f"seed={args.seed}"] if args.seed is not None else [])]
    config = load_config(SyntheticTaskConfig, args.config, overrides)
    refuse_special(args.out, "--out", folder_ok=False)
    check_parent_folder(args.out)
    problems = generate(config)
    write_problems(args.out, problems)
    print(f"wrote {len(problems)} problems to {args.out}")
    return 0
