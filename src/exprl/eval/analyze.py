"""`exprl analyze`: how training changes the policy's reasoning, read from the generations exprl already stores.

Inputs, each a folder:

- a pipeline run (run.json): its evaluations eval/base, eval/stage1, eval/stage2 (every benchmark in
  them), and the training rollouts TRL keeps in stage1/completions/ and stage2/completions/ when
  the recipe sets `trl.log_completions: true`;
- an evaluation folder (eval.json), a hard-set filter folder (filter.json), or a training run
  (recipe.yaml) with completions/;
- any other folder: every pipeline run below it (a demo's runs/demo, say).

Traces are grouped by method and stage: (run name, base | stage1 | stage2 | stage1 rollouts | ...),
benchmarks pooled; every base evaluation read forms one `base` group (samples reached twice, a base
evaluated alike by several runs, are read once). The demo evaluates its base in one run only, and
its seeds' problems have distinct ids, so each trained stage meets its own base problem by problem.
Per group it measures the response length, the `###` delimiters per trace (their histogram is the
paper's Fig. 6) and four reasoning behaviours (exprl.eval.annotate: verification, backtracking,
enumeration, subgoal setting; rule-based by default, an LLM annotator as the option). Per trained
stage it also counts, problem by problem against the base model's samples of the same problem, how
many problems gained and how many lost each behaviour (the paper's Fig. 5 and its aggregation,
docs/method.md §9.1).

Output folder (--out):

    exprl-manifest.json   what exprl wrote here
    analysis.json         inputs, annotator and version, one entry per group, the changes against base
    behaviours.md         the tables: per group, and gained / lost / net against base
    delimiters.png        share of traces by number of `###` delimiters, a panel per stage
    behaviours.png        share of traces showing each behaviour; net problems gained against base
    annotations.sqlite    the LLM annotator's cache (only with --annotator llm)
"""
from __future__ import annotations

import json
import re
import sqlite3
import statistics
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from exprl import __version__
from exprl.errors import RunStateError
from exprl.eval.annotate import BEHAVIOURS, Annotator
from exprl.runs import TRAINING_STAGES, read_versioned_json, savefig_atomic, write_json_atomic, write_text_atomic

ANALYZE_COMMAND = "analyze"
ANALYSIS_FILE = "analysis.json"
TABLE_FILE = "behaviours.md"
DELIMITER_PLOT = "delimiters.png"
BEHAVIOUR_PLOT = "behaviours.png"
ANNOTATION_CACHE = "annotations.sqlite"
ANALYZE_WRITES = (ANALYSIS_FILE, TABLE_FILE, DELIMITER_PLOT, BEHAVIOUR_PLOT, ANNOTATION_CACHE)
ANALYSIS_FORMAT = 1
DELIMITER = "###"
HISTOGRAM_TOP = 30
"""Delimiter counts above this share the last histogram bin."""
TRAINED_STAGES = TRAINING_STAGES
STAGE_ORDER = ("base", "stage1", "stage2", "stage1 rollouts", "stage2 rollouts", "eval", "filter", "rollouts")
_RUN_MARKERS = ("run.json", "eval.json", "filter.json", "recipe.yaml")


@dataclass
class Trace:
    problem: str            # benchmark/problem id: traces of one problem are compared with base's
    text: str
    tokens: int | None      # None where the store has no token count (TRL's completion tables)
    truncated: bool | None
    correct: bool | None


@dataclass
class Group:
    label: str              # the method or run ("base" for a base model)
    stage: str
    folders: list[str] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)
    against_base: bool = False    # an evaluation after a pipeline's training stage: compared with `base`
    base: "Group | None" = None

    @property
    def name(self) -> str:
        return self.label if self.label == "base" else f"{self.label} / {self.stage}"


# ---------------------------------------------------------------------------------------- reading
def find_groups(paths: Sequence[str | Path], max_per_problem: int | None = None) -> list[Group]:
    """Every group of traces in `paths` (see the module docstring), in a stable order."""
    groups: dict[tuple[str, str], Group] = {}
    seen_sources: set[tuple[str, str]] = set()
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise RunStateError(f"{path}: not a folder")
        for folder in _folders(path):
            _read_folder(folder, groups, seen_sources, max_per_problem)
    if not groups:
        raise RunStateError(f"no stored generations in {', '.join(map(str, paths))}: evaluate a model (exprl eval, "
                            f"exprl pipeline) or train with trl.log_completions: true first")
    base = groups.get(("base", "base"))
    for group in groups.values():
        if group.against_base and base is not None and base.traces:
            group.base = base
    return sorted(groups.values(), key=lambda g: (g.label != "base", _stage_rank(g.stage), g.label))


def _stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def _folders(path: Path) -> list[Path]:
    if any((path / marker).is_file() for marker in _RUN_MARKERS):
        return [path]
    runs = sorted({p.parent for p in path.rglob("run.json") if p.parent.is_dir()})
    if not runs:
        raise RunStateError(f"{path}: not a pipeline run, evaluation, filter or training folder, and no pipeline "
                            f"run below it (none has run.json, eval.json, filter.json or recipe.yaml)")
    return runs


def _read_folder(folder: Path, groups: dict, seen: set, cap: int | None) -> None:
    def group(label: str, stage: str) -> Group:
        return groups.setdefault((label, stage), Group(label, stage))

    if (folder / "run.json").is_file():
        from exprl.runs import read_run

        state = read_run(folder)
        label = state.get("name") or folder.name
        for stage in ("base", *TRAINED_STAGES):
            eval_dir = folder / "eval" / stage
            if (eval_dir / "eval.json").is_file():
                target = group("base", "base") if stage == "base" else group(label, stage)
                target.against_base = stage != "base"
                _read_store(eval_dir, target, seen, cap)
        for stage in TRAINED_STAGES:
            if (folder / stage / "completions").is_dir():
                _read_completions(folder / stage / "completions", group(label, f"{stage} rollouts"), seen, cap)
    elif (folder / "eval.json").is_file():
        _read_store(folder, group(folder.name, "eval"), seen, cap)
    elif (folder / "filter.json").is_file():
        _read_store(folder, group(folder.name, "filter"), seen, cap)
    elif (folder / "completions").is_dir():
        import yaml

        method = (yaml.safe_load((folder / "recipe.yaml").read_text(encoding="utf-8")) or {}).get("method")
        _read_completions(folder / "completions", group(method or folder.name, "rollouts"), seen, cap)


def _read_store(folder: Path, group: Group, seen: set, cap: int | None) -> None:
    """The samples of an evaluation or filter folder: its generation key, every benchmark, the first
    n indices (or `cap`). Read-only: analysing never writes into an input."""
    from exprl.eval.evaluate import read_eval_manifest
    from exprl.eval.filter import read_filter_manifest

    manifest = read_eval_manifest(folder) or read_filter_manifest(folder) or {}
    key, n = manifest.get("generation_key"), manifest.get("settings", {}).get("n")
    store = folder / "generations.sqlite"
    if not key or not store.is_file():
        return
    limit = min(n, cap) if n and cap else (n or cap or 10**9)
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            benchmarks = [b for (b,) in db.execute("SELECT DISTINCT benchmark FROM generations WHERE gen_key=?", (key,))]
            for bench in benchmarks:
                if (group.label, group.stage, key, bench) in seen:
                    continue  # the same samples reached twice (a base evaluated alike by several runs)
                seen.add((group.label, group.stage, key, bench))
                rows = db.execute("SELECT problem_id, text, num_tokens, finish_reason, correct FROM generations "
                                  "WHERE gen_key=? AND benchmark=? AND sample_index<? ORDER BY problem_id, "
                                  "sample_index", (key, bench, limit))
                group.traces += [Trace(f"{bench}/{pid.split('#')[0]}", text, tokens, finish == "length",
                                       None if ok is None else bool(ok)) for pid, text, tokens, finish, ok in rows]
    except sqlite3.DatabaseError as exc:
        raise RunStateError(f"{store}: not a readable generation store ({exc})") from exc
    group.folders.append(str(folder))


def _read_completions(folder: Path, group: Group, seen: set, cap: int | None) -> None:
    """TRL's completion tables (completions_NNNNN.parquet, one per logged step, with `trl.log_completions`)."""
    import pyarrow.parquet as pq

    from exprl.rewards.verifier import completion_text

    if (group.label, group.stage, str(folder.resolve())) in seen:
        return
    seen.add((group.label, group.stage, str(folder.resolve())))
    per_prompt: Counter = Counter()
    for path in sorted(folder.glob("completions_*.parquet")):
        try:
            table = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise RunStateError(f"{path}: not a readable completion table ({exc})") from exc
        for row in table:
            prompt = json.dumps(row.get("prompt"), sort_keys=True, default=str)
            if cap is not None and per_prompt[prompt] >= cap:
                continue
            per_prompt[prompt] += 1
            group.traces.append(Trace(f"rollout/{zlib.crc32(prompt.encode()):08x}", completion_text(row["completion"]),
                                      None, None, None))
    group.folders.append(str(folder))


# -------------------------------------------------------------------------------------- measuring
def count_delimiters(text: str, delimiter: str = DELIMITER) -> int:
    """`###` headings in a trace, touching or overlapping markers (`####`) counted once, as
    exprl.rewards.steps splits them."""
    return len(re.findall(f"(?:{re.escape(delimiter)})+", text))


def analyze_groups(groups: Sequence[Group], annotator: Annotator) -> dict[str, Any]:
    """The per-group measurements and the changes against base (what analysis.json holds)."""
    flags: dict[int, list[dict[str, bool] | None]] = {}
    entries = []
    for group in groups:
        annotations = annotator.annotate([t.text for t in group.traces])
        flags[id(group)] = [a.flags for a in annotations]
        entries.append(_measure(group, annotations))
    changes = []
    for group in groups:
        if group.base is not None and group.traces:
            changes.append(_change(group, flags[id(group)], group.base, flags[id(group.base)]))
    return {"groups": entries, "changes": changes}


def _measure(group: Group, annotations) -> dict[str, Any]:
    traces = group.traces
    delimiters = [count_delimiters(t.text) for t in traces]
    histogram = Counter(min(d, HISTOGRAM_TOP) for d in delimiters)
    annotated = [a.counts for a in annotations if a.counts is not None]
    tokens = [t.tokens for t in traces if t.tokens is not None]
    known = [t for t in traces if t.correct is not None]
    return {
        "name": group.name, "label": group.label, "stage": group.stage, "folders": group.folders,
        "traces": len(traces), "problems": len({t.problem for t in traces}),
        "mean_tokens": statistics.fmean(tokens) if tokens else None,
        "mean_words": statistics.fmean(len(t.text.split()) for t in traces) if traces else 0.0,
        "truncated_share": (sum(bool(t.truncated) for t in traces) / len(traces)
                            if traces and all(t.truncated is not None for t in traces) else None),
        "correct_share": sum(bool(t.correct) for t in known) / len(known) if known else None,
        "delimiters": {"mean": statistics.fmean(delimiters) if delimiters else 0.0,
                       "zero_share": delimiters.count(0) / len(delimiters) if delimiters else 0.0,
                       "at_most_one_share": sum(d <= 1 for d in delimiters) / len(delimiters) if delimiters else 0.0,
                       "histogram": {str(k): histogram.get(k, 0) for k in range(HISTOGRAM_TOP + 1)}},
        "behaviours": {name: {"share": sum(c[name] > 0 for c in annotated) / len(annotated) if annotated else None,
                              "per_trace": statistics.fmean(c[name] for c in annotated) if annotated else None}
                       for name in BEHAVIOURS},
        "unannotated": len(traces) - len(annotated),
    }


def _per_problem(traces: Sequence[Trace], flags: Sequence[dict[str, bool] | None]) -> dict[str, dict[str, float]]:
    """Per problem, the share of its annotated samples showing each behaviour."""
    seen: dict[str, list[dict[str, bool]]] = {}
    for trace, flag in zip(traces, flags):
        if flag is not None:
            seen.setdefault(trace.problem, []).append(flag)
    return {problem: {name: sum(f[name] for f in found) / len(found) for name in BEHAVIOURS}
            for problem, found in seen.items()}


def _change(group: Group, flags, base: Group, base_flags) -> dict[str, Any]:
    """Problems (present in both) whose share of samples showing a behaviour rose or fell against base."""
    mine, theirs = _per_problem(group.traces, flags), _per_problem(base.traces, base_flags)
    common = sorted(set(mine) & set(theirs))
    result: dict[str, Any] = {"name": group.name, "label": group.label, "stage": group.stage, "problems": len(common),
                              "behaviours": {}}
    for name in BEHAVIOURS:
        gained = sum(mine[p][name] > theirs[p][name] for p in common)
        lost = sum(mine[p][name] < theirs[p][name] for p in common)
        result["behaviours"][name] = {"gained": gained, "lost": lost, "net": gained - lost}
    return result


# ---------------------------------------------------------------------------------------- writing
def write_analysis(paths: Sequence[str | Path], out: str | Path, annotator: Annotator,
                   max_per_problem: int | None = None, groups: Sequence[Group] | None = None) -> dict[str, Any]:
    """Analyse `paths` (or the `groups` already found in them) into the folder `out` (claimed by the
    caller); returns analysis.json's contents."""
    out = Path(out)
    groups = find_groups(paths, max_per_problem) if groups is None else groups
    analysis = {"exprl_version": __version__, "format": ANALYSIS_FORMAT, "inputs": [str(p) for p in paths],
                "annotator": annotator.name, "annotator_version": annotator.version,
                "max_per_problem": max_per_problem, "delimiter": DELIMITER, **analyze_groups(groups, annotator)}
    write_json_atomic(out / ANALYSIS_FILE, analysis)
    write_text_atomic(out / TABLE_FILE, "# Reasoning behaviours\n\n" + "\n".join(behaviour_markdown(analysis)) + "\n")
    plot_delimiters(analysis, out / DELIMITER_PLOT)
    plot_behaviours(analysis, out / BEHAVIOUR_PLOT)
    return analysis


def read_analysis(folder: str | Path) -> dict[str, Any]:
    return read_versioned_json(Path(folder) / ANALYSIS_FILE, "analysis", ANALYSIS_FORMAT, "run exprl analyze again")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def behaviour_markdown(analysis: dict[str, Any]) -> list[str]:
    """The tables of behaviours.md (and of the report's behaviour section), as markdown lines."""
    names = [b.replace("_", " ") for b in BEHAVIOURS]
    header = ["method / stage", "traces", "mean tokens", "`###` per trace", "no `###` (%)", *[f"{n} (%)" for n in names]]
    lines = [f"Annotator: {analysis['annotator']} ({analysis['annotator_version']}). A behaviour's column is the share "
             f"of traces showing it at least once; `###` per trace counts the delimiters (the paper's Fig. 6).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in analysis["groups"]:
        tokens = "–" if g["mean_tokens"] is None else f"{g['mean_tokens']:.1f}"
        cells = [g["name"], str(g["traces"]), tokens, f"{g['delimiters']['mean']:.2f}",
                 _percent(g["delimiters"]["zero_share"]), *[_percent(g["behaviours"][b]["share"]) for b in BEHAVIOURS]]
        lines.append("| " + " | ".join(cells) + " |")
    unannotated = [f"{g['name']}: {g['unannotated']}" for g in analysis["groups"] if g["unannotated"]]
    if unannotated:
        lines += ["", f"Traces the annotator could not annotate (left out of the shares): {', '.join(unannotated)}."]
    if analysis["changes"]:
        header = ["method / stage", "problems", *names]
        lines += ["", "Against the base model, problem by problem (the paper's Fig. 5): problems where a larger / "
                  "smaller share of the samples shows the behaviour than the base model's samples of the same "
                  "problem, `+gained / -lost (net)`.", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for c in analysis["changes"]:
            cells = [c["name"], str(c["problems"])]
            cells += [f"+{c['behaviours'][b]['gained']} / -{c['behaviours'][b]['lost']} ({c['behaviours'][b]['net']:+d})"
                      for b in BEHAVIOURS]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_delimiters(analysis: dict[str, Any], path: Path) -> Path:
    """Share of traces by number of `###` delimiters, one panel per stage, a line per method."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    by_stage: dict[str, list[dict[str, Any]]] = {}
    for g in analysis["groups"]:
        by_stage.setdefault(g["stage"], []).append(g)
    stages = sorted(by_stage, key=_stage_rank)
    fig, axes = plt.subplots(1, len(stages), figsize=(4.6 * len(stages), 3.8), sharey=True, squeeze=False)
    top = max([int(k) for g in analysis["groups"] for k, v in g["delimiters"]["histogram"].items() if v] or [1])
    for ax, stage in zip(axes[0], stages):
        for g in by_stage[stage]:
            counts = [g["delimiters"]["histogram"][str(k)] for k in range(top + 1)]
            total = sum(counts) or 1
            ax.plot(range(top + 1), [100 * c / total for c in counts], marker="o", markersize=3,
                    label=f"{g['label']} (mean {g['delimiters']['mean']:.1f})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"`###` per trace: {stage}")
        ax.set_xlabel("delimiters in a trace" + (f" ({HISTOGRAM_TOP} = {HISTOGRAM_TOP}+)" if top == HISTOGRAM_TOP else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("share of traces (%)")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def plot_behaviours(analysis: dict[str, Any], path: Path) -> Path:
    """Left: share of traces showing each behaviour, a bar per method and stage. Right: net problems
    gained against base per behaviour (when any stage has a base to compare with)."""
    plt = _pyplot()
    panels = 2 if analysis["changes"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(7.5 * panels, 4.2), squeeze=False)
    _bars(axes[0][0], [(g["name"], [100 * (g["behaviours"][b]["share"] or 0.0) for b in BEHAVIOURS])
                       for g in analysis["groups"]], "share of traces (%)", "Behaviours per method and stage")
    if analysis["changes"]:
        _bars(axes[0][1], [(c["name"], [c["behaviours"][b]["net"] for b in BEHAVIOURS]) for c in analysis["changes"]],
              "problems gained - lost", "Against the base model, per problem")
        axes[0][1].axhline(0, color="black", linewidth=0.8)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def _bars(ax, series: Iterable[tuple[str, list[float]]], ylabel: str, title: str) -> None:
    series = list(series)
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series):
        ax.bar([x + i * width for x in range(len(BEHAVIOURS))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(BEHAVIOURS))],
                  [b.replace("_", " ") for b in BEHAVIOURS])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    if not any(v for _, values in series for v in values):
        ax.text(0.5, 0.5, "all zero: no trace shows a behaviour", ha="center", va="center",
                transform=ax.transAxes, color="gray")
