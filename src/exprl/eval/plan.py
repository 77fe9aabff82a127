"""What a pipeline's evaluations will do, before any model or benchmark loads: the plan's evaluation section.

Per benchmark: where it would load from (a local file, a catalog dataset's local copy or the hub),
how many problems (counted in a local JSONL file, else the catalog's published size), the samples
(problems x n) and the most tokens they can generate (samples x max_tokens); then the same summed
over the evaluation points (base, after Stage I, after Stage II). Nothing is downloaded: a dataset
only on the hub is counted by its published size.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from exprl.eval.config import EvalConfig


def _jsonl_rows(path: Path) -> int | None:
    if path.suffix not in (".jsonl", ".ndjson") or not path.is_file():
        return None
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def benchmark_source(spec: str) -> tuple[str, str, int | None]:
    """(name, source, limit) of a benchmark entry, as `exprl.eval.evaluate.load_benchmark` resolves it."""
    from exprl.config import load_config
    from exprl.eval.config import BenchmarkConfig
    from exprl.recipes import bundled_recipe, find_recipe, recipe_folder, resolve_entry

    if spec.endswith((".yaml", ".yml")) or (not Path(spec).exists() and bundled_recipe(spec) is not None):
        recipe = find_recipe(spec)
        bench = load_config(BenchmarkConfig, recipe)
        return (bench.name or recipe.stem.removeprefix("bench-"), resolve_entry(bench.path, recipe_folder(recipe)),
                bench.limit)
    return (Path(spec).stem if Path(spec).suffix else spec.replace("/", "_")), spec, None


def _size(source: str) -> tuple[int | None, str]:
    """Problems in `source` and where they would load from, without loading anything remote."""
    from exprl.data.catalog import find_entry, locate

    entry = None if Path(source).exists() else find_entry(source)
    if entry is not None:
        location = locate(entry)
        if location.kind == "local":
            return _jsonl_rows(Path(location.where)), location.where
        return entry.rows, f"the hub: {location.where} ({location.note})"
    return _jsonl_rows(Path(source)), source


def plan_evaluation(config: EvalConfig, evaluations: Sequence[str]) -> dict[str, Any]:
    """The evaluation section of a pipeline plan (`evaluations`: the points it evaluates at)."""
    benches = []
    for spec in config.benches:
        name, source, limit = benchmark_source(spec)
        problems, where = _size(source)
        for cap in (limit, config.limit):
            if cap is not None and problems is not None:
                problems = min(problems, cap)
        samples = problems * config.n if problems is not None else None
        benches.append({"name": name, "source": where, "problems": problems, "samples": samples,
                        "max_generated_tokens": samples * config.max_tokens if samples is not None else None})
    known = [b for b in benches if b["samples"] is not None]
    per_point = sum(b["samples"] for b in known)
    return {"benchmarks": benches, "n": config.n, "temperature": config.temperature, "top_p": config.top_p,
            "max_tokens": config.max_tokens, "engine": config.engine, "evaluations": list(evaluations),
            "samples_per_evaluation": per_point, "samples_in_all": per_point * len(evaluations),
            "max_generated_tokens_in_all": per_point * config.max_tokens * len(evaluations),
            "uncounted": [b["name"] for b in benches if b["samples"] is None]}


def render_evaluation(section: dict[str, Any]) -> str:
    lines = [f"evaluation: {', '.join(section['evaluations'])}; n = {section['n']} samples a problem at temperature "
             f"{section['temperature']:g}, top-p {section['top_p']:g}, at most {section['max_tokens']:,} new tokens "
             f"({section['engine']})"]
    for bench in section["benchmarks"]:
        counted = (f"{bench['problems']:,} problems -> {bench['samples']:,} samples, at most "
                   f"{bench['max_generated_tokens']:,} generated tokens" if bench["samples"] is not None
                   else "problems not counted before it loads")
        lines.append(f"  {bench['name']:<16} {counted}; from {bench['source']}")
    lines.append(f"  in all           {section['samples_in_all']:,} samples, at most "
                 f"{section['max_generated_tokens_in_all']:,} generated tokens over {len(section['evaluations'])} "
                 f"evaluation{'s' if len(section['evaluations']) > 1 else ''}"
                 + (f" (not counted: {', '.join(section['uncounted'])})" if section["uncounted"] else ""))
    return "\n".join(lines)
