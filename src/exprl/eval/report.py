"""`exprl report`: the paper's Tables 1 and 2, pass@k curves, training dynamics, the training
monitors and their alerts over pipeline runs.

Table 1 is pass@1 after Stage II (plus the base row), Table 2 is pass@1 / pass@k after Stage I.
Plots read each stage's metrics.jsonl (written by the trainer) and each stage's evaluation results;
a stage that has not run yet shows as "–" rather than being left out silently. The monitor plots
and the Alerts section read the same metrics.jsonl: its monitor metrics and its `alert` records
(`exprl.rewards.monitors`), with each stage's thresholds from its recipe.yaml.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exprl.config import load_config
from exprl.errors import ConfigError, RunStateError
from exprl.eval.evaluate import read_results
from exprl.judge.types import JudgeStatus
from exprl.rewards import monitors
from exprl.rewards.monitors import ALERT_RECORD, MonitorConfig
from exprl.runs import METRICS_FILE, RECIPE_FILE, TRAINING_STAGES, read_run, savefig_atomic, write_text_atomic

# Panel title -> (metrics.jsonl key, y label). Keys are TRL's own and the ExpRL trainer's `exprl/*`.
DYNAMICS = [
    ("Dense judge reward", "exprl/dense_reward_mean", "mean judge score"),
    ("Sparse correctness", "exprl/sparse_correct", "fraction correct"),
    ("Unsolved prompts", "exprl/unsolved_share", "share of prompts, 0 correct"),
    ("Entropy", "entropy", "nats / token"),
    ("Response length", "completions/mean_length", "tokens"),
    ("KL to reference policy", "kl", "KL"),
]
STEP_BUCKETS = [label for label, *_ in monitors.STEP_BUCKETS]
STAGE_NAMES = {"stage1": "Stage I", "stage2": "Stage II"}


@dataclass(frozen=True)
class MonitorPanel:
    """One panel of the monitor plot: its lines (metrics.jsonl key, label, line style), the
    MonitorConfig field holding its threshold, and the alerts it marks."""

    title: str
    ylabel: str
    lines: tuple[tuple[str, str, str], ...]
    thresholds: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()


MONITOR_PANELS = [
    MonitorPanel("Judge reward vs sparse correctness", "mean reward / share correct",
                 (("exprl/dense_reward_mean", "judge reward", "-"), ("exprl/sparse_correct", "correct", "--")),
                 alerts=("reward_hacking",)),
    MonitorPanel("Response length", "tokens", (("exprl/response_tokens_mean", "", "-"),)),
    MonitorPanel("Overlong rollouts", "share of rollouts", (("exprl/overlong_share", "", "-"),),
                 ("overlong_share",), ("overlong",)),
    MonitorPanel("`###` steps per trace", "mean steps", (("exprl/steps_per_trace_mean", "", "-"),)),
    MonitorPanel("One-step rollouts", "share of rollouts", (("exprl/steps_per_trace_1", "", "-"),),
                 ("one_step_share",), ("delimiter_collapse",)),
    MonitorPanel("Bare answers and number lists", "share of rollouts",
                 (("exprl/bare_answer_share", "bare answer", "-"), ("exprl/number_list_share", "number list", "--")),
                 ("bare_answer_share", "number_list_share"), ("bare_answers", "number_lists")),
    MonitorPanel("Judge statuses", "share of judge calls",
                 tuple((f"exprl/judge_{status.value}", status.value, style) for status, style in
                       zip([s for s in JudgeStatus if s is not JudgeStatus.OK], ("-", "--", ":")))),
    MonitorPanel("Unscorable rollouts", "share of rollouts", (("exprl/unscorable_share", "", "-"),),
                 ("unscorable_share",), ("unscorable",)),
]
MONITORED_KEY = "exprl/overlong_share"  # logged at every step by every method the monitors watch
EVAL_STAGES = {"base": "base_eval", "stage1": "stage1_eval", "stage2": "stage2_eval"}


@dataclass
class RunView:
    """What a report needs from one pipeline run directory."""

    path: Path
    name: str
    method: str
    states: dict[str, str]
    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # stage -> bench -> result
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)       # stage -> rows
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)        # stage -> alert records
    monitor: dict[str, MonitorConfig] = field(default_factory=dict)              # stage -> its thresholds


def load_run(path: str | Path) -> RunView:
    path = Path(path)
    state = read_run(path)
    view = RunView(path=path, name=state.get("name") or path.name, method=state.get("method", "?"),
                   states={s: r.get("state", "?") for s, r in state.get("stages", {}).items()})
    for stage, key in EVAL_STAGES.items():
        if view.states.get(key) == "done":
            view.results[stage] = read_results(path / "eval" / stage)
    for stage in TRAINING_STAGES:
        metrics = path / stage / METRICS_FILE
        if metrics.is_file():
            rows = _read_metrics(metrics)
            view.metrics[stage] = [row for row in rows if row.get("record") != ALERT_RECORD]
            view.alerts[stage] = [row for row in rows if row.get("record") == ALERT_RECORD]
        recipe = path / stage / RECIPE_FILE
        if recipe.is_file():
            view.monitor[stage] = load_config(MonitorConfig, recipe, section="monitor")
    return view


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RunStateError(f"{path}:{number}: not a JSON line ({exc})") from exc
    return rows


def write_report(run_dirs: list[str | Path], out_dir: str | Path | None = None, k: int | None = None,
                 analyses: list[str | Path] | None = None) -> Path:
    """Write report.md, tables.md and PNG plots; returns the path of report.md. `analyses`: `exprl
    analyze` folders whose behaviour tables and plots are shown (default: each run's own analysis/)."""
    if not run_dirs:
        raise ConfigError("report: name at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # two runs of one method: tell them apart by folder
        for run in runs:
            run.name = f"{run.name} ({run.path.name})"
    out = Path(out_dir) if out_dir else (runs[0].path / "report" if len(runs) == 1 else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    benches = _benchmarks(runs)
    k = _choose_k(runs, k)

    table1 = stage_table(runs, benches, "stage2", ks=[1])
    table2 = stage_table(runs, benches, "stage1", ks=[1, k] if k and k > 1 else [1])
    write_text_atomic(out / "tables.md", f"## Table 1\n\n{table1}\n## Table 2\n\n{table2}")
    figures = []
    for bench in benches:
        figures.append(plot_pass_at_k(runs, bench, out / f"pass_at_k_{_slug(bench)}.png"))
    figures += [plot_dynamics(runs, stage, out / f"dynamics_{stage}.png") for stage in STAGE_NAMES]
    figures.append(plot_steps_histogram(runs, out / "steps_per_trace.png"))
    figures = [p for p in figures if p]  # a plot with nothing to show writes no file
    monitor_figures = [plot_monitors(runs, stage, out / f"monitors_{stage}.png") for stage in STAGE_NAMES
                       if any(_monitored(run, stage) for run in runs)]
    monitor_figures = [p for p in monitor_figures if p]

    lines = ["# exprl report", "", "Runs:", ""]
    for run in runs:
        states = ", ".join(f"{s} {st}" for s, st in run.states.items())
        lines.append(f"- **{run.name}** (Stage-I method `{run.method}`, `{run.path}`): {states}")
    settings = _eval_settings(runs)
    lines += ["", f"Evaluation: {settings}. pass@k in %, unbiased estimator (Chen et al. 2021); "
              "'–' marks a stage that has not finished.", "",
              "## Table 1: pass@1 after Stage II (sparse GRPO)", "",
              "The base row is the base model without any training.", "", table1,
              f"## Table 2: after Stage I only (pass@1 / pass@{k})", "", table2,
              "## pass@k curves", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures if p.name.startswith("pass_at_k")]
    lines += ["", "## Training dynamics", "",
              "Per optimiser step, read from each stage's metrics.jsonl (a method without a line in a panel "
              "did not log it, e.g. no judge reward for SFT or GRPO; a metric no method logged has no panel).", ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures if not p.name.startswith("pass_at_k")] \
        or ["No stage has logged training metrics yet."]
    lines += ["", "## Training monitors", "",
              "What the rollouts of each RL stage looked like, per optimiser step (`exprl.rewards.monitors`): "
              "the judge's reward against sparse correctness (a rising judge reward over flat or falling "
              "correctness is the signature of reward hacking), response length and overlong rollouts, `###` "
              "steps and one-step rollouts (delimiter collapse), bare answers and number lists, the judge's "
              "failures. Dotted lines: alert thresholds; red lines: the step an alert fired.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in monitor_figures] or ["No RL stage has logged monitor metrics yet."]
    lines += ["", *alerts_section(runs)]
    lines += behaviour_section(analysis_folders(run_dirs) if analyses is None else analyses, out)
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _benchmarks(runs: list[RunView]) -> list[str]:
    seen: list[str] = []
    for run in runs:
        for stage in run.results.values():
            seen += [b for b in stage if b not in seen]
    return seen


def _choose_k(runs: list[RunView], k: int | None) -> int:
    ns = [(run.name, stage, bench, r["n"]) for run in runs for stage, results in run.results.items()
          for bench, r in results.items()]
    if not ns:
        return 1
    n_min = min(n for *_, n in ns)
    if k is None:
        return 2 ** int(math.log2(n_min))
    if k < 1:
        raise ConfigError(f"report: k must be at least 1, got {k}")
    for name, stage, bench, n in ns:
        if k > n:
            raise ConfigError(f"report: k={k} is larger than n={n} samples of run '{name}', "
                              f"{stage} evaluation on {bench}; use --k {n} or fewer")
    return k


def _base_rows(runs: list[RunView]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """One base row per distinct base model (usually all runs share one)."""
    rows: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for run in runs:
        results = run.results.get("base")
        if not results:
            continue
        fingerprint = next(iter(results.values()))["fingerprint"]
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        rows.append(("base", results))
    if len(rows) > 1:
        rows = [(f"base ({i + 1})", r) for i, (_, r) in enumerate(rows)]
    return rows


def stage_table(runs: list[RunView], benches: list[str], stage: str, ks: list[int]) -> str:
    """Markdown: a row per method (plus base), a column per benchmark, cells pass@k1 / pass@k2."""
    header = ["method"] + benches
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = _base_rows(runs) + [(run.name, run.results.get(stage, {})) for run in runs]
    for label, results in rows:
        cells = [label]
        for bench in benches:
            r = results.get(bench)
            cells.append(" / ".join(f"{100 * r['pass_at_k'][str(k)]:.2f}" for k in ks) if r else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _eval_settings(runs: list[RunView]) -> str:
    for run in runs:
        for results in run.results.values():
            r = next(iter(results.values()))
            return f"n={r['n']} samples per problem, temperature {r['temperature']}, top-p {r['top_p']}, " \
                   f"max {r['max_tokens']} new tokens"
    return "no finished evaluation yet"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_colours(runs: list[RunView]) -> dict[str, str]:
    """Each run's colour (tab10, by its place among `runs`), the same in every plot of a report: a
    colour cycle would shift every later run's colour in a panel where an earlier run logged nothing."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = colormaps["tab10"].colors
    return {run.name: to_hex(palette[i % len(palette)]) for i, run in enumerate(runs)}


def _panel_grid(n: int, columns: int, size: tuple[float, float]):
    """A figure with `n` panels in rows of at most `columns`; returns it and its axes."""
    plt = _pyplot()
    columns = min(n, columns)
    rows = math.ceil(n / columns)
    fig = plt.figure(figsize=(size[0] * columns, size[1] * rows))
    return fig, [fig.add_subplot(rows, columns, i + 1) for i in range(n)]


def _points(run: RunView, stage: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of each of the stage's metrics rows that logged `key` (`_panel_value`)."""
    points = [(row["step"], _panel_value(row, key)) for row in run.metrics.get(stage, []) if "step" in row]
    return [(step, value) for step, value in points if value is not None]


def plot_pass_at_k(runs: list[RunView], bench: str, path: Path) -> Path:
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    colours = run_colours(runs)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, stage, title in ((axes[0], "stage1", "after Stage I"), (axes[1], "stage2", "after Stage II")):
        for label, results in _base_rows(runs):
            _curve(ax, results.get(bench), label, style="--", color="black")
        for run in runs:
            _curve(ax, run.results.get(stage, {}).get(bench), run.name, color=colours[run.name])
        ax.set_title(f"{bench}: pass@k {title}")
        ax.set_xlabel("k (samples per problem)")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no finished evaluation", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel("pass@k (%)")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path


def _curve(ax, result: dict[str, Any] | None, label: str, style: str = "-", color: str | None = None) -> None:
    if not result:
        return
    ks = sorted(int(k) for k in result["pass_at_k"])
    ax.plot(ks, [100 * result["pass_at_k"][str(k)] for k in ks], style, marker="o", markersize=3,
            label=label, color=color)


def plot_dynamics(runs: list[RunView], stage: str, path: Path) -> Path | None:
    """A stage's training curves, one panel per `DYNAMICS` metric some run logged; None if none was."""
    colours = run_colours(runs)
    panels = [panel for panel in DYNAMICS if any(_points(run, stage, panel[1]) for run in runs)]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = _panel_grid(len(panels), columns=3, size=(4.7, 3.75))
    for ax, (title, key, ylabel) in zip(axes, panels):
        for run in runs:
            if points := _points(run, stage, key):
                steps, values = zip(*points)
                ax.plot(steps, values, color=colours[run.name], marker="o" if len(points) < 30 else None,
                        markersize=3, label=run.name)
        ax.set_title(f"{title} ({STAGE_NAMES[stage]})")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def _monitored(run: RunView, stage: str) -> bool:
    return any(MONITORED_KEY in row for row in run.metrics.get(stage, []))


def alerts_section(runs: list[RunView]) -> list[str]:
    """The report's "Alerts" section: every alert of every monitored stage, with the step it fired
    at; "none" for a stage whose monitors stayed quiet."""
    lines = ["## Alerts", "",
             "Each alert fires once a run, at the step its threshold (the stage recipe's `monitor:` section) was "
             "crossed, and is printed as a warning during training. It is a reason to read that stage's rollouts, "
             "not a verdict.", ""]
    monitored = [(run, stage) for run in runs for stage in STAGE_NAMES if _monitored(run, stage)]
    if not monitored:
        return lines + ["No RL stage has logged monitor metrics yet."]
    for run, stage in monitored:
        steps = len({row["step"] for row in run.metrics[stage] if MONITORED_KEY in row})
        alerts = sorted(run.alerts.get(stage, []), key=lambda a: (a.get("step", 0), a.get("name", "")))
        heading = f"- **{run.name}**, {STAGE_NAMES[stage]} ({steps} monitored steps):"
        if not alerts:
            lines.append(f"{heading} none")
            continue
        lines += [f"{heading} {len(alerts)} alert{'s' if len(alerts) > 1 else ''}", "",
                  "  | step | alert | value | threshold | what the monitor saw |", "  |---|---|---|---|---|"]
        for alert in alerts:
            message = str(alert.get("message", "")).replace("|", "\\|")
            lines.append(f"  | {alert.get('step')} | `{alert.get('name')}` | {_number(alert.get('value'))} | "
                         f"{_number(alert.get('threshold'))} | {message} |")
        lines.append("")
    return lines


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "–"


def plot_monitors(runs: list[RunView], stage: str, path: Path) -> Path | None:
    """The monitors over training, one panel per monitor (`MONITOR_PANELS`) some run logged, every run in
    its own colour; None if no monitor was logged."""
    colours = run_colours(runs)
    panels = [panel for panel in MONITOR_PANELS
              if any(_points(run, stage, key) for run in runs for key, *_ in panel.lines)]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = _panel_grid(len(panels), columns=4, size=(4.75, 4))
    for ax, panel in zip(axes, panels):
        for run in runs:
            for key, label, style in panel.lines:
                if points := _points(run, stage, key):
                    steps, values = zip(*points)
                    name = ", ".join(part for part in (run.name if len(runs) > 1 else "", label) if part) or run.name
                    ax.plot(steps, values, style, color=colours[run.name], marker="o" if len(points) < 30 else None,
                            markersize=3, label=name)
            for alert in run.alerts.get(stage, []):
                if alert.get("name") in panel.alerts and isinstance(alert.get("step"), int):
                    ax.axvline(alert["step"], color="red", linestyle="--", linewidth=1)
                    ax.annotate(alert["name"], (alert["step"], 1.0), xycoords=("data", "axes fraction"),
                                xytext=(3, -12), textcoords="offset points", color="red", fontsize=8)
        thresholds = {getattr(run.monitor.get(stage, MonitorConfig()), name) for run in runs if _monitored(run, stage)
                      for name in panel.thresholds}
        for threshold in sorted(t for t in thresholds if t is not None):
            ax.axhline(threshold, color="gray", linestyle=":", linewidth=1.2)
            ax.annotate(f"alert at {threshold:g}", (0.0, threshold), xycoords=("axes fraction", "data"),
                        xytext=(3, 2), textcoords="offset points", color="gray", fontsize=7)
        ax.set_title(f"{panel.title} ({STAGE_NAMES[stage]})", fontsize=10)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
    plt.close(fig)
    return path


def _panel_value(row: dict[str, Any], key: str) -> float | None:
    """A row's value for a panel line; a judge status as its share of the step's judge calls."""
    value = row.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if key.startswith("exprl/judge_") and key.removeprefix("exprl/judge_") in {s.value for s in JudgeStatus}:
        calls = row.get("exprl/judge_calls")
        return value / calls if isinstance(calls, (int, float)) and calls > 0 else None
    return float(value)


def plot_steps_histogram(runs: list[RunView], path: Path) -> Path | None:
    """Share of Stage-I traces with 1, 2-3, 4-7, 8+ steps, averaged over training; None if not logged."""
    shares: dict[str, list[float]] = {}
    for run in runs:
        rows = run.metrics.get("stage1", [])
        per_bucket = []
        for bucket in STEP_BUCKETS:
            values = [row[f"exprl/steps_per_trace_{bucket}"] for row in rows
                      if isinstance(row.get(f"exprl/steps_per_trace_{bucket}"), (int, float))]
            per_bucket.append(sum(values) / len(values) if values else None)
        if any(v is not None for v in per_bucket):
            shares[run.name] = [v or 0.0 for v in per_bucket]
    if not shares:
        return None
    plt = _pyplot()
    colours = run_colours(runs)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / len(shares)
    for i, (name, values) in enumerate(shares.items()):
        ax.bar([x + i * width for x in range(len(STEP_BUCKETS))], [100 * v for v in values], width, label=name,
               color=colours[name])
    ax.set_xticks([x + width * (len(shares) - 1) / 2 for x in range(len(STEP_BUCKETS))], STEP_BUCKETS)
    ax.set_title("Steps per trace (Stage I, averaged over training)")
    ax.set_xlabel("steps in a rollout")
    ax.set_ylabel("share of rollouts (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# -- reasoning behaviours (exprl analyze) ---------------------------------------------------------
def analysis_folders(run_dirs: list[str | Path], extra: list[str | Path] = ()) -> list[Path]:
    """The analyses a report shows: each run's own RUN/analysis (where `exprl analyze RUN` wrote it),
    then the folders named with --analysis."""
    from exprl.eval.analyze import ANALYSIS_FILE, read_analysis

    found = [Path(run) / "analysis" for run in run_dirs if (Path(run) / "analysis" / ANALYSIS_FILE).is_file()]
    for folder in extra:
        read_analysis(folder)  # a folder named on the command line must be an analysis
        if Path(folder).resolve() not in {f.resolve() for f in found}:
            found.append(Path(folder))
    return found


def behaviour_section(folders: list[str | Path], out: Path) -> list[str]:
    """The report's behaviour section: each analysis's tables, with its plots redrawn into the report folder."""
    from exprl.eval.analyze import behaviour_markdown, plot_behaviours, plot_delimiters, read_analysis

    if not folders:
        return []
    lines = ["", "## Reasoning behaviours", "",
             "From `exprl analyze` (exprl.eval.annotate): response length, `###` delimiters per trace and "
             "reasoning behaviours, per method and stage.", ""]
    for i, folder in enumerate(folders):
        analysis = read_analysis(folder)
        suffix = f"_{i + 1}" if len(folders) > 1 else ""
        delimiters = plot_delimiters(analysis, out / f"delimiters{suffix}.png")
        behaviours = plot_behaviours(analysis, out / f"behaviours{suffix}.png")
        lines += [f"### {folder}" if len(folders) > 1 else f"Read from `{folder}`.", "", *behaviour_markdown(analysis),
                  "", f"![{delimiters.stem}]({delimiters.name})", "", f"![{behaviours.stem}]({behaviours.name})", ""]
    return lines
