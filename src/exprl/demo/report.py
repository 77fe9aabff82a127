"""The demo's report: the conditions first, then Tables 1-2 with the guess-free metric, then the plots.

    runs/demo/report.md
      ## Conditions        C1-C4 measured on each seed's base model (`seed_conditions`), then the
                           machinery condition as benchmarks/demo_machinery.py measured it (exprl.demo.machinery)
      ## Table 1, 2        mean ± std over seeds: final-answer pass@k and "every step right" pass@k
      ## Table 3           where the hard samples go wrong after Stage I, step by step
      plots                pass@k curves and training dynamics (exprl.eval.report, per seed)

Final-answer pass@k comes from each evaluation's own results (`exprl.eval.evaluate.read_results`);
the guess-free and per-step figures are computed here from the samples the evaluation stored, with
`exprl.demo.conditions.split_stats`, the same code that measures the conditions.
"""
from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from exprl.demo.conditions import Condition, SplitStats, check_conditions, split_stats
from exprl.demo.config import DemoConfig
from exprl.demo.machinery import machinery_section
from exprl.runs import write_text_atomic

# The base model's samples on the hard training problems, measured once per seed (exprl.demo.runner).
TRAIN_HARD_BASE_FILE = "train-hard-base.json"
BENCHES = ("hard", "easy")
# (key in the table, label) of the figures computed from stored samples.
SAMPLE_METRICS = (("every@1", "every_step_pass1"), ("every@n", "every_step_pass_n"),
                  ("operation", "operation_right"), ("arithmetic", "arithmetic_right"),
                  ("first_step", "first_step_right"), ("prefix", "right_prefix"))


def seed_conditions(seed_dir: Path, first_method: str, modulus: int) -> list[Condition] | None:
    """C1-C4 of one seed: C1 from the base model's evaluation on the easy split (the base row of the
    tables), C2-C4 from its samples on the hard training problems (`TRAIN_HARD_BASE_FILE`)."""
    from exprl.eval.evaluate import read_results

    stats_path, base_eval = seed_dir / TRAIN_HARD_BASE_FILE, seed_dir / first_method / "eval" / "base"
    if not stats_path.is_file() or not (base_eval / "eval.json").is_file():
        return None
    train_hard = SplitStats(**json.loads(stats_path.read_text(encoding="utf-8")))
    easy_pass1 = 100 * read_results(base_eval)["easy"]["pass_at_k"]["1"]
    return check_conditions(easy_pass1, train_hard, modulus)


def stored_stats(eval_dir: Path, bench: str, problems: Sequence[Any], n: int, group_size: int) -> SplitStats:
    """`split_stats` of the samples an evaluation stored for `bench`."""
    texts: dict[str, list[str]] = {}
    with sqlite3.connect(eval_dir / "generations.sqlite") as db:
        rows = db.execute("SELECT problem_id, sample_index, text FROM generations WHERE benchmark = ? "
                          "ORDER BY problem_id, sample_index", (bench,))
        for problem_id, index, text in rows:
            if index < n:
                texts.setdefault(problem_id, []).append(text)
    return split_stats(problems, [texts.get(p.id, []) for p in problems], group_size)


def collect_results(run_dir: Path, seeds: list[int], methods: list[str], n: int | None = None) -> dict[tuple, list[float]]:
    """{(row, stage, bench, metric): [value per seed]} read back from the finished pipeline runs.

    metric is `pass@k` (the evaluation's own), or, when `n` (samples per problem) is given, one of
    `SAMPLE_METRICS` computed from the stored samples.
    """
    from exprl.data.loaders import load_problems
    from exprl.eval.evaluate import read_results
    from exprl.runs import read_run

    table: dict[tuple, list[float]] = {}
    for seed in seeds:
        seed_dir = run_dir / f"seed-{seed}"
        problems = {b: load_problems(seed_dir / "data" / f"{b}.jsonl") for b in BENCHES} if n else {}
        for index, method in enumerate(methods):
            path = seed_dir / method
            state = read_run(path)
            stages = [("stage1", "stage1_eval"), ("stage2", "stage2_eval")]
            if index == 0:
                stages.append(("base", "base_eval"))
            for stage, key in stages:
                if state["stages"].get(key, {}).get("state") != "done":
                    continue
                row = "base" if stage == "base" else method
                for bench, result in read_results(path / "eval" / stage).items():
                    for k, value in result["pass_at_k"].items():
                        table.setdefault((row, stage, bench, f"pass@{k}"), []).append(100 * value)
                    if n and bench in problems:
                        stats = stored_stats(path / "eval" / stage, bench, problems[bench], n, group_size=n)
                        for metric, field in SAMPLE_METRICS:
                            table.setdefault((row, stage, bench, metric), []).append(getattr(stats, field))
    return table


def mean_std(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_tables(table: dict, methods: list[str], k: int) -> str:
    """Tables 1 and 2 of the paper with the guess-free metric, and the per-step Table 3, as mean ±
    std over seeds (sample std)."""
    def row_cells(row: str, stage: str, columns: Sequence[tuple[str, str]]) -> str:
        return f"| {row} | " + " | ".join(mean_std(table.get((row, stage, b, m), [])) for b, m in columns) + " |"

    every = "every step right"
    t1 = [("hard", "pass@1"), ("hard", f"pass@{k}"), ("hard", "every@1"), ("hard", "every@n"), ("easy", "pass@1")]
    t2 = [("hard", "pass@1"), ("hard", f"pass@{k}"), ("hard", "every@1"), ("hard", "every@n"),
          ("easy", "pass@1"), ("easy", f"pass@{k}")]
    t3 = [("hard", "operation"), ("hard", "arithmetic"), ("hard", "first_step"), ("hard", "prefix")]
    lines = ["## Table 1: after Stage II (sparse GRPO), mean ± std over seeds", "",
             f"| method | hard pass@1 | hard pass@{k} | hard {every} pass@1 | hard {every} pass@{k} | easy pass@1 |",
             "|---" * 6 + "|"]
    lines += [row_cells(row, stage, t1) for row, stage in [("base", "base")] + [(m, "stage2") for m in methods]]
    lines += ["", "## Table 2: after Stage I only, mean ± std over seeds", "",
              f"| method | hard pass@1 | hard pass@{k} | hard {every} pass@1 | hard {every} pass@{k} | easy pass@1 "
              f"| easy pass@{k} |", "|---" * 7 + "|"]
    lines += [row_cells(row, stage, t2) for row, stage in [("base", "base")] + [(m, "stage1") for m in methods]]
    lines += ["", "## Table 3: the hard samples step by step, after Stage I", "",
              "Each `###` step checked on its own inputs; the right prefix is the steps right in a row from the "
              "first (partial progress, what a dense reward can build on).", "",
              "| method | operation read right % | arithmetic right % | first step right % | mean right prefix (steps) |",
              "|---" * 5 + "|"]
    lines += [row_cells(row, stage, t3) for row, stage in [("base", "base")] + [(m, "stage1") for m in methods]]
    return "\n".join(lines) + "\n"


def conditions_section(seed_conditions: dict[int, list[Condition] | None]) -> str:
    """`## Conditions`: one row per seed, each condition's measured value and whether it holds."""
    measured = next((cs for cs in seed_conditions.values() if cs), [])
    names, claims = [c.name for c in measured], [c.claim for c in measured]
    lines = ["## Conditions", "",
             "Measured on each seed's base model before any training: C1 on the held-out easy problems (the "
             "base row of the tables), C2-C4 on the hard *training* problems, sampled as Stage I draws its groups "
             "(several groups' worth a problem; the share of groups with a right answer is the unbiased estimate). The paper's claim is only put to a test where all four hold; a seed where one "
             "fails is reported, not dropped.", ""]
    lines += [f"- **{name}**: {claim}" for name, claim in zip(names, claims)]
    lines += ["", "| seed | " + " | ".join(names) + " | all hold |", "|---" * (len(names) + 2) + "|"]
    for seed, conditions in seed_conditions.items():
        if not conditions:
            lines.append(f"| {seed} | " + " | ".join("not measured" for _ in names) + " | – |")
            continue
        cells = [f"{c.measured}: {'holds' if c.holds else '**fails**'}" for c in conditions]
        lines.append(f"| {seed} | " + " | ".join(cells) + f" | {'yes' if all(c.holds for c in conditions) else '**no**'} |")
    return "\n".join(lines) + "\n"


def write_demo_report(run_dir: Path, config: DemoConfig, seeds: list[int], seed_reports: list[Path]) -> Path:
    """report.md: conditions (with the machinery condition for this design), tables, then the first seed's
    plots and links to every seed's report."""
    methods, n, temperature, modulus = config.methods, config.eval.n, config.eval.temperature, config.task.modulus
    k = min(16, n)
    table = collect_results(run_dir, seeds, methods, n=n)
    conditions = {seed: seed_conditions(run_dir / f"seed-{seed}", methods[0], modulus) for seed in seeds}
    lines = ["# exprl demo report", "",
             f"Seeds: {', '.join(map(str, seeds))}. pass@k in %, unbiased estimator, n={n} samples per problem at "
             f"temperature {temperature}. 'Every step right' is the guess-free success: the trace writes exactly "
             "the chain's steps, each right, and boxes the right answer (a wrong chain still ends on the right "
             "value by luck about once in `modulus` samples).", "",
             conditions_section(conditions), machinery_section(config), summary_tables(table, methods, k)]
    first = seed_reports[0]
    lines += ["## Plots", "", f"Seed {seeds[0]} (every seed's own report: "
              + ", ".join(f"[seed {s}]({p.relative_to(run_dir)})" for s, p in zip(seeds, seed_reports)) + ").", ""]
    lines += [f"![{png.stem}]({png.relative_to(run_dir)})" for png in sorted(first.parent.glob("*.png"))]
    return write_text_atomic(run_dir / "report.md", "\n".join(lines) + "\n")
