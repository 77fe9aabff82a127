"""`exprl data filter`: the problems a model cannot solve yet (the paper's hard set, docs/method.md §5.1).

The model samples n answers per problem, exactly as evaluation samples (the eval layer's generator:
vLLM where installed, else HF `generate`; the policy prompt of exprl.data.prompts), the sparse
verifier grades them, and a problem is kept when at most `max_solved` of its n answers are right
(0: solved in none, the paper's filter, which drew 64 samples at a 32k-token budget).

Output folder (`--out`; exprl.runs' rules: a folder exprl did not write is refused, and so is one
inside an input):

    exprl-manifest.json      what exprl wrote here
    filter.json              model, fingerprint, inputs and sampling settings (a rerun with another
                             model or other sampling settings is refused, naming what changed)
    generations.sqlite       every sample with its verdict (the eval layer's store, so `exprl analyze`
                             reads it too); committed batch by batch
    solve_counts.jsonl       one row per input problem: id, source, domain, level, n, solved, kept.
                             While the filter runs, finished problems go to solve_counts.jsonl.partial
                             (exprl.runs.RowJournal)
    kept.jsonl               the kept problems as Problem rows (the data layer's format); a training
                             recipe may name the folder itself, which reads as this file
    dropped.jsonl            the other problems, same format
    stats.json               solve-count histogram, kept share per source, level and domain, and how
                             many samples this run generated and how many it reused

Rerunning the same command resumes: a problem whose row is in the journal is not touched again, and
a sample in the store is never generated again (a kill loses at most the batch being generated).
`n` and `max_solved` may change between runs: more samples are added, the selection is redone.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from exprl import __version__
from exprl.data.loaders import load_problems, write_problems
from exprl.data.problem import Problem
from exprl.data.prompts import policy_messages
from exprl.errors import DataError, RunStateError
from exprl.eval.config import FilterConfig
from exprl.eval.evaluate import GENERATIONS_FILE, LazyGenerator, verify_missing
from exprl.eval.generate import (Generator, SamplingSettings, generation_key, model_fingerprint, resolve_model,
                                 sample_seed)
from exprl.eval.store import GenerationStore
from exprl.runs import (RowJournal, claim_output_dir, inspect_output_dir, read_versioned_json, refuse_changes,
                        write_json_atomic)

FILTER_COMMAND = "data filter"
FILTER_FORMAT = 1
FILTER_FILE = "filter.json"
COUNTS_FILE = "solve_counts.jsonl"
KEPT_FILE = "kept.jsonl"
DROPPED_FILE = "dropped.jsonl"
STATS_FILE = "stats.json"
FILTER_WRITES = (FILTER_FILE, GENERATIONS_FILE, COUNTS_FILE, COUNTS_FILE + ".partial", KEPT_FILE, DROPPED_FILE,
                 STATS_FILE)
STORE_BENCHMARK = "filter"
"""The benchmark column of the filter's samples in generations.sqlite."""
SAMPLE_SETTINGS = ("temperature", "top_p", "max_tokens", "seed", "system_prompt")
"""What makes a sample what it is, besides the model: fixed for the life of a filter folder."""


@dataclass
class FilterReport:
    out: Path
    stats: dict[str, Any]

    def summary(self) -> str:
        s = self.stats
        histogram = " ".join(f"{k}:{v}" for k, v in s["solve_counts"].items())
        return (f"kept {s['kept']} of {s['problems']} problems ({100 * s['kept_share']:.1f}%): solved at most "
                f"{s['max_solved']} of {s['n']} times. Solve counts (solved:problems) {histogram}. "
                f"Samples: {s['samples']['generated']} generated, {s['samples']['reused']} reused.")


def problem_key(problem: Problem) -> str:
    """A problem's id and a digest of what the model is asked and graded against: an edited problem
    is sampled again, never graded with samples of its old text."""
    digest = hashlib.sha256(json.dumps([problem.problem, problem.answer]).encode()).hexdigest()[:12]
    return f"{problem.id}#{digest}"


def filter_problems(model: str | Path, inputs: str | Path | Sequence[str | Path], out_dir: str | Path,
                    config: FilterConfig | None = None, *, generator: Generator | None = None,
                    progress: bool | None = None) -> FilterReport:
    """Filter the problems of `inputs` (anything `load_problems` reads) by how often `model` solves
    them; writes the folder described in the module docstring. `generator` replaces the built-in
    sampler; it is built only when a sample is missing, so a finished folder never loads the model.
    `progress`: a bar on a terminal, progress lines elsewhere (None: shown; False: off)."""
    from exprl.progress import Progress

    from exprl.rewards.verifier import refuse_unverifiable

    config = config or FilterConfig()
    sources = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
    model_id = resolve_model(model)
    out = Path(out_dir)
    folder = dict(inputs=[model_id, *sources], flag="--out")
    inspect_output_dir(out, FILTER_COMMAND, writes=FILTER_WRITES, **folder)
    problems = _load(sources, config.limit)
    refuse_unverifiable(problems, "data filter")
    started = time.monotonic()
    fingerprint = model_fingerprint(model_id)
    settings = SamplingSettings(temperature=config.temperature, top_p=config.top_p,
                                max_new_tokens=config.max_tokens, system_prompt=config.system_prompt)
    key = generation_key(fingerprint, settings)
    identity = {"model": model_id, "fingerprint": fingerprint, **{k: getattr(config, k) for k in SAMPLE_SETTINGS}}
    stored = read_filter_manifest(out)
    if stored is not None:
        refuse_changes(stored["identity"], identity, where=out, what="filter (model or sampling settings)",
                       hint="filter with another model or setting into a new --out")
    folder_output = claim_output_dir(out, FILTER_COMMAND, FILTER_WRITES, **folder)
    write_json_atomic(out / FILTER_FILE, {"exprl_version": __version__, "format": FILTER_FORMAT, "identity": identity,
                                          "generation_key": key, "inputs": sources, "settings": asdict(config)})

    journal = RowJournal(out / COUNTS_FILE, identity, command=FILTER_COMMAND)
    lazy = LazyGenerator(model_id, settings, config, generator)
    keys = [problem_key(p) for p in problems]
    try:
        done = journal.open(keep=lambda row: row.get("n") == config.n)
        rows = {k: done[k] for k in keys if k in done}
        todo = [(k, p) for k, p in zip(keys, problems) if k not in rows]
        per_group = max(1, -(-config.batch_size // config.n))  # problems whose samples fill about one batch
        with GenerationStore(out / GENERATIONS_FILE) as store, \
                Progress(len(problems), "filter", "problem", initial=len(rows), disable=progress is False) as bar:
            have = store.done_indices(key, STORE_BENCHMARK)
            for start in range(0, len(todo), per_group):
                group = todo[start:start + per_group]
                _sample(store, lazy, key, group, have, config)
                for row_key, problem in group:
                    rows[row_key] = _solve_row(store, key, row_key, problem, config.n)
                    journal.add(row_key, rows[row_key])
                    bar.update(1)
        output = [{**rows[k], "kept": rows[k]["solved"] <= config.max_solved} for k in keys]
        write_problems(out / KEPT_FILE, [p for p, row in zip(problems, output) if row["kept"]])
        write_problems(out / DROPPED_FILE, [p for p, row in zip(problems, output) if not row["kept"]])
        stats = filter_stats(problems, output, config)
        stats.update(model=model_id, fingerprint=fingerprint, inputs=sources,
                     samples={"generated": lazy.requests, "reused": config.n * len(problems) - lazy.requests},
                     seconds=round(time.monotonic() - started, 1))
        write_json_atomic(out / STATS_FILE, stats)
        journal.finish(output)
    finally:
        journal.close()
    # Last: until now every reader refuses the folder as incomplete (generations.sqlite is a store
    # committed as it grows, checked by its own keys, not by a hash).
    folder_output.commit([FILTER_FILE, COUNTS_FILE, KEPT_FILE, DROPPED_FILE, STATS_FILE])
    return FilterReport(out, stats)


def _load(sources: list[str], limit: int | None) -> list[Problem]:
    problems = [p for source in sources for p in load_problems(source)]
    if limit is not None:
        problems = problems[:limit]
    seen: dict[str, int] = {}
    for row, problem in enumerate(problems, start=1):
        if problem.id in seen:  # ids name the rows of solve_counts.jsonl: a duplicate would be ambiguous
            raise DataError(f"duplicate id '{problem.id}' (also problem {seen[problem.id]} of the input)",
                            path=", ".join(sources), line=row, field="id")
        seen[problem.id] = row
    return problems


def _sample(store: GenerationStore, generator: LazyGenerator, key: str, group: list[tuple[str, Problem]],
            have: dict[str, set[int]], config: FilterConfig) -> None:
    """Generate the group's missing samples, a batch at a time, each batch committed as it comes,
    then grade every sample of the group still without a verdict."""
    requests = [(k, p, i) for k, p in group for i in range(config.n) if i not in have.get(k, ())]
    for start in range(0, len(requests), config.batch_size):
        batch = requests[start:start + config.batch_size]
        generations = generator.generate([policy_messages(p.problem, config.system_prompt) for _, p, _ in batch],
                                         [sample_seed(config.seed, STORE_BENCHMARK, k, i) for k, _, i in batch])
        if len(generations) != len(batch):
            raise RuntimeError(f"generator returned {len(generations)} completions for {len(batch)} requests")
        store.add(key, STORE_BENCHMARK, [(k, i, g) for (k, _, i), g in zip(batch, generations)])
        for k, _, i in batch:
            have.setdefault(k, set()).add(i)
    verify_missing(store, key, STORE_BENCHMARK, [replace(p, id=k) for k, p in group])


def _solve_row(store: GenerationStore, key: str, row_key: str, problem: Problem, n: int) -> dict[str, Any]:
    samples = [s for s in store.samples(key, STORE_BENCHMARK, [row_key]) if s.sample_index < n]
    if len(samples) != n or any(s.correct is None for s in samples):
        raise RunStateError(f"problem {problem.id}: {len(samples)} of {n} samples graded after sampling")
    return {"id": problem.id, "source": problem.source, "domain": problem.domain,
            "level": problem.meta.get("level"), "n": n, "solved": sum(bool(s.correct) for s in samples),
            "mean_tokens": sum(s.generation.num_tokens for s in samples) / n,
            "truncated": sum(s.generation.finish_reason == "length" for s in samples)}


def filter_stats(problems: Sequence[Problem], rows: Sequence[dict[str, Any]], config: FilterConfig) -> dict[str, Any]:
    """The solve-count histogram (every count 0..n) and the kept share per source, level and domain."""
    counts = Counter(row["solved"] for row in rows)

    def shares(label) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[bool]] = {}
        for problem, row in zip(problems, rows):
            groups.setdefault(str(label(problem)), []).append(row["kept"])
        return {name: {"problems": len(kept), "kept": sum(kept), "kept_share": sum(kept) / len(kept)}
                for name, kept in sorted(groups.items())}

    kept = sum(row["kept"] for row in rows)
    return {"n": config.n, "max_solved": config.max_solved, "problems": len(rows), "kept": kept,
            "dropped": len(rows) - kept, "kept_share": kept / len(rows) if rows else 0.0,
            "solve_counts": {str(c): counts.get(c, 0) for c in range(config.n + 1)},
            "per_source": shares(lambda p: p.source or "(none)"),
            "per_level": shares(lambda p: p.meta.get("level", "(none)")),
            "per_domain": shares(lambda p: p.domain)}


def read_filter_manifest(out: Path) -> dict[str, Any] | None:
    """The filter.json of a filter folder, format-checked; None when there is none yet."""
    path = out / FILTER_FILE
    if not path.is_file():
        return None
    return read_versioned_json(path, "filter", FILTER_FORMAT, "use a new output folder, or delete this one to start over")
