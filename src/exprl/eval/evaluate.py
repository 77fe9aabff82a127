"""`evaluate`: sample n completions per benchmark problem, verify them, and report unbiased pass@k.

Output directory layout (the same command re-run into it resumes: finished samples are never
regenerated; another model or other sampling settings are refused, naming what changed, while n,
limit, the benchmarks, batch size and engine may change: they add or choose samples, never change one):

    exprl-manifest.json   what exprl writes here (exprl.runs)
    eval.json             manifest: exprl version, store format, model, fingerprint, settings
    generations.sqlite    every sample, keyed by (generation key, benchmark, problem id, index)
    <benchmark>.json      per-problem c/n and mean length, pass@k for every k in 1..n
    results.md            one markdown table over the benchmarks

Only problems whose domain has a verifier (exprl.rewards.verifier.VERIFIED_DOMAINS) are sampled and
scored; the others (code) are counted per domain in the result's `unscored` and named under the table.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from exprl import __version__
from exprl.data.loaders import load_problems
from exprl.data.problem import Problem
from exprl.data.prompts import policy_messages
from exprl.errors import ConfigError, DataError, RunStateError
from exprl.eval.config import BenchmarkConfig, EvalConfig
from exprl.eval.generate import (Generator, SamplingSettings, generation_key, make_generator,
                                 model_fingerprint, resolve_model, sample_seed)
from exprl.eval.passk import pass_at_k_curve
from exprl.eval.store import GenerationStore
from exprl.runs import (atomic_path, claim_output_dir, inspect_output_dir, read_versioned_json, refuse_changes,
                        write_json_atomic, write_text_atomic)

logger = logging.getLogger(__name__)

EVAL_FORMAT = 1
"""Version of the eval directory layout; a directory written with another one is refused."""
EVAL_COMMAND = "eval"
EVAL_FILE = "eval.json"
GENERATIONS_FILE = "generations.sqlite"
RESULTS_FILE = "results.md"
TRACES_FILE = "traces.jsonl"
SAMPLE_SETTINGS = ("temperature", "top_p", "max_tokens", "seed", "system_prompt")
"""What makes a sample what it is, besides the model: fixed for the life of an eval directory."""


def _benchmark_recipe(spec: str) -> tuple[Path, BenchmarkConfig, str] | None:
    """(recipe file, its config, the data source it names) when `spec` is a bench-*.yaml recipe (a
    file, or a bundled recipe's name), else None: `spec` then names the data itself."""
    from exprl.config import load_config
    from exprl.recipes import bundled_recipe, find_recipe, recipe_folder, resolve_entry

    if not (spec.endswith((".yaml", ".yml")) or (not Path(spec).exists() and bundled_recipe(spec) is not None)):
        return None
    recipe = find_recipe(spec)
    bench = load_config(BenchmarkConfig, recipe)
    if not bench.path:
        raise ConfigError(f"{spec}: 'path' is required: the benchmark's data file, catalog dataset or hub id")
    return recipe, bench, resolve_entry(bench.path, recipe_folder(recipe))


def load_benchmark(spec: str, limit: int | None = None) -> tuple[str, str, list[Problem]]:
    """(name, source, problems) from a bench-*.yaml recipe (a file, or a bundled recipe's name), a
    catalog dataset (`exprl data list`), a data file or a hub id."""
    split, mapping = None, None
    found = _benchmark_recipe(spec)
    if found is not None:
        recipe, bench, source = found
        name, split, mapping = bench.name or recipe.stem.removeprefix("bench-"), bench.split, bench.fields or None
        if bench.limit is not None:
            limit = bench.limit if limit is None else min(limit, bench.limit)
    else:
        source = spec
        name = Path(spec).stem if Path(spec).suffix else spec.replace("/", "_")
    # Evaluation never reads the reference, and benchmarks such as AIME ship none.
    problems = load_problems(source, split=split, mapping=mapping, require_reference=False)
    if limit is not None:
        problems = problems[:limit]
    if not problems:
        raise DataError("the benchmark has no problems", path=source)
    seen: set[str] = set()
    for row, problem in enumerate(problems, start=1):
        if problem.id in seen:  # ids key the generation cache: a duplicate would share samples
            raise DataError(f"duplicate id '{problem.id}'", path=source, line=row, field="id")
        seen.add(problem.id)
    return name, source, problems


def check_benchmark(spec: str) -> None:
    """What `load_benchmark` would refuse about `spec` found without reading its problems (a plan
    checks every benchmark in a second): a benchmark recipe that does not load or names no data, a
    data file that does not exist, a misspelt catalog name."""
    from exprl.data.loaders import DATA_SUFFIXES, check_source_name

    found = _benchmark_recipe(spec)
    source = spec if found is None else found[2]
    check_source_name(source)
    if Path(source).suffix.lower() in DATA_SUFFIXES and not Path(source).exists():
        raise DataError("file not found" + (f" (named by the benchmark recipe {spec})" if source != spec else ""),
                        path=source)


def evaluate(model: str | Path, benches: list[str], out_dir: str | Path = "eval", *,
             generator: Generator | None = None, **settings: Any) -> dict[str, dict[str, Any]]:
    """Evaluate `model` on each benchmark; returns {benchmark name: result dict} and writes files.

    `settings` are EvalConfig fields (n, temperature, max_tokens, ...), each defaulting to the
    field's own default. `generator` replaces the built-in HF/vLLM sampler (e.g. a client of a
    served model); it is created lazily, so a fully cached evaluation never loads the model.
    """
    return evaluate_config(model, EvalConfig(benches=list(benches), **settings), out_dir, generator=generator)


def evaluate_config(model: str | Path, config: EvalConfig, out_dir: str | Path,
                    generator: Generator | None = None) -> dict[str, dict[str, Any]]:
    if not config.benches:
        raise ConfigError("eval: no benchmarks given")
    model_id = resolve_model(model)
    out = Path(out_dir)
    # Reading the folder again would change the model's fingerprint: an output inside it is refused too.
    folder = dict(inputs=[model_id], adopt=(EVAL_FILE,), flag="--out")
    inspect_output_dir(out, EVAL_COMMAND, **folder)
    stored = read_eval_manifest(out)
    fingerprint = model_fingerprint(model_id)
    settings = SamplingSettings(temperature=config.temperature, top_p=config.top_p,
                                max_new_tokens=config.max_tokens, system_prompt=config.system_prompt)
    key = generation_key(fingerprint, settings)
    loaded, unscored = [], {}
    for spec in config.benches:
        name, source, problems = load_benchmark(spec, config.limit)
        problems, unscored[name] = scorable(name, source, problems)
        loaded.append((name, source, problems))
    names = [name for name, _, _ in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(f"eval: two benchmarks share a name ({', '.join(names)}); give recipes distinct names")
    if stored is not None:
        identity = {"model": model_id, "fingerprint": fingerprint, **{k: getattr(config, k) for k in SAMPLE_SETTINGS}}
        refuse_changes({"model": stored.get("model"), "fingerprint": stored.get("fingerprint"),
                        **{k: stored.get("settings", {}).get(k) for k in SAMPLE_SETTINGS}}, identity,
                       where=out, what="evaluation (model or sampling settings)",
                       hint="evaluate another model or setting into a new --out")
    claim_output_dir(out, EVAL_COMMAND, [EVAL_FILE, GENERATIONS_FILE, RESULTS_FILE, TRACES_FILE,
                                         *(f"{n}.json" for n in names)], **folder)
    write_json_atomic(out / EVAL_FILE, {
        "exprl_version": __version__, "format": EVAL_FORMAT, "model": model_id,
        "fingerprint": fingerprint, "generation_key": key, "settings": asdict(config),
        "benchmarks": names})

    lazy = LazyGenerator(model_id, settings, config, generator)
    results: dict[str, dict[str, Any]] = {}
    with GenerationStore(out / GENERATIONS_FILE) as store:
        for name, source, problems in loaded:
            _generate_missing(store, lazy, key, name, problems, config)
            verify_missing(store, key, name, problems)
            result = _summarise(store, key, name, source, problems, config, model_id, fingerprint)
            result["unscored"] = unscored[name]
            write_json_atomic(out / f"{name}.json", result)
            results[name] = result
        if config.traces:
            write_traces(out / TRACES_FILE, store, key, loaded)
    write_text_atomic(out / RESULTS_FILE, results_table(results))
    return results


def write_traces(path: Path, store: GenerationStore, key: str,
                 benchmarks: list[tuple[str, str, list[Problem]]]) -> None:
    """Every sample as a row of `exprl judge run`'s input (id, problem, reference, trace, answer, domain,
    problem_id) plus its benchmark, sample index and verdict (`correct`, which `judge calibrate` reads
    as the label). Written whole or not at all."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for name, _, problems in benchmarks:
            by_id = {p.id: p for p in problems}
            for sample in store.samples(key, name, list(by_id)):
                problem = by_id[sample.problem_id]
                handle.write(json.dumps({
                    "id": f"{name}/{problem.id}/{sample.sample_index}", "problem_id": problem.id,
                    "benchmark": name, "sample_index": sample.sample_index, "problem": problem.problem,
                    "reference": problem.reference, "answer": problem.answer, "domain": problem.domain,
                    "trace": sample.generation.text, "correct": sample.correct,
                    "finish_reason": sample.generation.finish_reason}, ensure_ascii=False) + "\n")


def scorable(name: str, source: str, problems: list[Problem]) -> tuple[list[Problem], dict[str, int]]:
    """The problems pass@k can be computed on (their domain has a verifier), and how many of each
    other domain were left out; logged, and recorded in the result as `unscored`. A benchmark with
    none left is an error: there is nothing exprl could score."""
    from exprl.data.domains import canonical_domain
    from exprl.rewards.verifier import VERIFIED_DOMAINS, has_verifier

    kept, left_out = [], {}
    for problem in problems:
        domain = canonical_domain(problem.domain, where=f"{source}, problem {problem.id}")
        if has_verifier(domain):
            kept.append(problem)
        else:
            left_out[domain] = left_out.get(domain, 0) + 1
    if not kept:
        raise ConfigError(f"benchmark {name} ({source}): every problem is in domain "
                          f"{', '.join(left_out)}, which has no verifier (exprl verifies final answers in "
                          f"{' and '.join(VERIFIED_DOMAINS)}); pass@k cannot be computed on it")
    if left_out:
        logger.warning("benchmark %s: %s left unscored: no verifier for %s (exprl verifies final answers in %s)",
                       name, ", ".join(f"{n} {d} problem(s)" for d, n in left_out.items()),
                       " or ".join(left_out), " and ".join(VERIFIED_DOMAINS))
    return kept, left_out


class LazyGenerator:
    """The sampler, built on the first request: a fully cached run never loads the model. `requests`
    counts the completions it was asked for (what a resumed run really generated)."""

    def __init__(self, model_id, settings, config, generator):
        self._args, self._generator, self.calls, self.requests = (model_id, settings, config), generator, 0, 0

    def generate(self, conversations, seeds):
        if self._generator is None:
            model_id, settings, config = self._args
            self._generator = make_generator(model_id, settings, config.engine, config.batch_size,
                                             config.cache_implementation)
        self.calls += 1
        self.requests += len(conversations)
        return self._generator.generate(conversations, seeds)


def _generate_missing(store: GenerationStore, generator, key: str, name: str,
                      problems: list[Problem], config: EvalConfig) -> None:
    from exprl.progress import Progress

    done = store.done_indices(key, name)
    todo = [(p, i) for p in problems for i in range(config.n) if i not in done.get(p.id, ())]
    if not todo:
        return
    with Progress(len(todo), f"eval {name}", "sample") as bar:
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start:start + config.batch_size]
            conversations = [policy_messages(p.problem, config.system_prompt) for p, _ in batch]
            seeds = [sample_seed(config.seed, name, p.id, i) for p, i in batch]
            generations = generator.generate(conversations, seeds)
            if len(generations) != len(batch):
                raise RuntimeError(f"generator returned {len(generations)} completions for {len(batch)} requests")
            store.add(key, name, [(p.id, i, g) for (p, i), g in zip(batch, generations)])
            bar.update(len(batch))


def verify_missing(store: GenerationStore, key: str, name: str, problems: list[Problem]) -> None:
    """Grade every stored sample of `problems` that has no verdict yet (the sparse verifier)."""
    from exprl.rewards.verifier import sparse_rewards

    answers = {p.id: p.answer for p in problems}
    pending = [s for s in store.samples(key, name, list(answers)) if s.correct is None]
    if not pending:
        return
    rewards = sparse_rewards([s.generation.text for s in pending], [answers[s.problem_id] for s in pending])
    store.set_verdicts(key, name, [(s.problem_id, s.sample_index, r == 1.0) for s, r in zip(pending, rewards)])


def _summarise(store, key, name, source, problems, config, model_id, fingerprint) -> dict[str, Any]:
    by_problem: dict[str, list] = {}
    for sample in store.samples(key, name):
        if sample.sample_index < config.n:
            by_problem.setdefault(sample.problem_id, []).append(sample)
    rows = []
    for problem in problems:
        samples = by_problem.get(problem.id, [])
        lengths = [s.generation.num_tokens for s in samples]
        rows.append({"id": problem.id, "n": len(samples), "c": sum(bool(s.correct) for s in samples),
                     "mean_length": sum(lengths) / len(lengths) if lengths else 0.0,
                     "truncated": sum(s.generation.finish_reason == "length" for s in samples)})
    short = [r["id"] for r in rows if r["n"] != config.n]
    if short:
        raise RunStateError(f"{name}: {len(short)} problems lack samples after generation (e.g. {short[0]})")
    curve = pass_at_k_curve([(r["n"], r["c"]) for r in rows])
    total = config.n * len(rows)
    return {
        "benchmark": name, "source": source, "model": model_id, "fingerprint": fingerprint,
        "exprl_version": __version__, "n": config.n, "temperature": config.temperature,
        "top_p": config.top_p, "max_tokens": config.max_tokens, "seed": config.seed,
        "system_prompt": config.system_prompt, "num_problems": len(rows),
        "pass_at_k": {str(k): v for k, v in curve.items()},
        "mean_length": sum(r["mean_length"] for r in rows) / len(rows),
        "truncated_fraction": sum(r["truncated"] for r in rows) / total,
        "problems": rows,
    }


def table_ks(n: int) -> list[int]:
    """The k columns shown in tables: powers of two up to n, and n itself."""
    ks = [2 ** i for i in range(int(math.log2(n)) + 1)]
    return ks if ks[-1] == n else ks + [n]


def results_table(results: dict[str, dict[str, Any]]) -> str:
    ks = sorted({k for r in results.values() for k in table_ks(r["n"])})
    header = ["benchmark", "problems", "n"] + [f"pass@{k}" for k in ks] + ["mean length", "truncated"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        cells = [name, str(r["num_problems"]), str(r["n"])]
        cells += [f"{100 * r['pass_at_k'][str(k)]:.2f}" if str(k) in r["pass_at_k"] else "" for k in ks]
        cells += [f"{r['mean_length']:.1f}", f"{100 * r['truncated_fraction']:.1f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{name}: {', '.join(f'{n} {d} problem(s)' for d, n in r['unscored'].items())} not scored "
             f"(no verifier for the domain)" for name, r in results.items() if r.get("unscored")]
    return ("\n".join(lines) + "\n\npass@k in %, unbiased estimator over n samples per problem; length in tokens.\n"
            + "".join(f"{note}\n" for note in notes))


def read_results(eval_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The per-benchmark results an earlier `evaluate` wrote into `eval_dir`."""
    eval_dir = Path(eval_dir)
    manifest = read_eval_manifest(eval_dir)
    if manifest is None:
        raise RunStateError(f"{eval_dir}: no eval.json; not an evaluation directory")
    results = {}
    for name in manifest.get("benchmarks", []):
        path = eval_dir / f"{name}.json"
        if not path.is_file():
            raise RunStateError(f"{path}: missing; the evaluation did not finish (re-run it to resume)")
        results[name] = json.loads(path.read_text(encoding="utf-8"))
    return results


def read_eval_manifest(out: Path) -> dict[str, Any] | None:
    """The eval.json of an evaluation folder, format-checked; None when there is none yet."""
    path = out / EVAL_FILE
    if not path.is_file():
        return None
    return read_versioned_json(path, "eval", EVAL_FORMAT, "use a new output directory, or delete this one to start over")

