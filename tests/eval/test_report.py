"""`exprl report` over two pipeline run directories built from small generated results and metrics."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from exprl.cli import main
from exprl.errors import ConfigError, RunStateError
from exprl.eval import report as report_module
from exprl.eval.evaluate import EVAL_FORMAT
from exprl.eval.passk import pass_at_k_curve
from exprl.eval.report import DYNAMICS, load_run, plot_dynamics, run_colours, write_report
from exprl.rewards.monitors import Alert
from exprl.runs import RUN_FORMAT, STAGES

N = 8


def _result(bench: str, correct: list[int], fingerprint: str) -> dict:
    return {"benchmark": bench, "n": N, "temperature": 0.8, "top_p": 1.0, "max_tokens": 64,
            "fingerprint": fingerprint, "num_problems": len(correct), "mean_length": 30.0,
            "pass_at_k": {str(k): v for k, v in pass_at_k_curve([(N, c) for c in correct]).items()},
            "problems": [{"id": f"{bench}/{i}", "n": N, "c": c} for i, c in enumerate(correct)]}


def _eval_dir(path, results: dict[str, dict]) -> None:
    path.mkdir(parents=True)
    (path / "eval.json").write_text(json.dumps({"format": EVAL_FORMAT, "benchmarks": list(results)}))
    for bench, result in results.items():
        (path / f"{bench}.json").write_text(json.dumps(result))


def make_run(root, name: str, method: str, skill: float, seed: int, stage2_done: bool = True,
             alerts: tuple[Alert, ...] = ()):
    rng = random.Random(seed)
    run = root / name
    run.mkdir()
    stages = {s: {"state": "done"} for s in STAGES}
    if not stage2_done:
        stages["stage2"]["state"] = stages["stage2_eval"]["state"] = "running"
    (run / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "exprl_version": "0.1.0", "name": name,
                                              "method": method, "stages": stages}))
    base = {b: _result(b, [rng.randint(0, 3) for _ in range(10)], "base-fp") for b in ("gsm8k", "math500")}
    _eval_dir(run / "eval" / "base", base)
    _eval_dir(run / "eval" / "stage1", {b: _result(b, [min(N, c + int(skill * 3)) for c in
                                                       (p["c"] for p in r["problems"])], name + "1")
                                        for b, r in base.items()})
    if stage2_done:
        _eval_dir(run / "eval" / "stage2", {b: _result(b, [min(N, c + int(skill * 5)) for c in
                                                           (p["c"] for p in r["problems"])], name + "2")
                                            for b, r in base.items()})
    for stage in ("stage1", "stage2"):
        (run / stage).mkdir()
        rows = []
        for step in range(1, 11):
            row = {"step": step, "entropy": 1.0 - 0.05 * step * skill, "kl": 0.002 * step,
                   "completions/mean_length": 40 + step, "exprl/sparse_correct": 0.1 + skill * step / 20,
                   "exprl/unsolved_share": 0.9 - skill * step / 20}
            if method.startswith("exprl") and stage == "stage1":
                row.update({"exprl/dense_reward_mean": 0.3 + 0.02 * step,
                            "exprl/steps_per_trace_1": 0.1, "exprl/steps_per_trace_2-3": 0.5,
                            "exprl/steps_per_trace_4-7": 0.3, "exprl/steps_per_trace_8+": 0.1,
                            "exprl/unscorable_share": 0.0, "exprl/judge_ok": 16.0, "exprl/judge_timeout": 0.0,
                            "exprl/judge_calls": 16.0})
            if method != "sft" or stage == "stage2":  # the monitors watch every RL stage
                row.update({"exprl/overlong_share": 0.01 * step, "exprl/response_tokens_mean": 40.0 + step,
                            "exprl/steps_per_trace_mean": 3.0, "exprl/bare_answer_share": 0.0,
                            "exprl/number_list_share": 0.0})
            rows.append(row)
            rows += [alert.record() for alert in alerts if stage == "stage1" and alert.step == step]
        (run / stage / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_report_over_two_runs_writes_tables_and_plots(tmp_path, capsys):
    a = make_run(tmp_path, "exprl-process", "exprl-process", skill=1.0, seed=1)
    b = make_run(tmp_path, "grpo", "grpo", skill=0.5, seed=1, stage2_done=False)
    out = tmp_path / "report"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    tables = (out / "tables.md").read_text()
    assert "## Table 1: pass@1 after Stage II" in report and "## Table 2: after Stage I only (pass@1 / pass@8)" in report
    assert "| method | gsm8k | math500 |" in tables
    base_row = next(line for line in tables.splitlines() if line.startswith("| base |"))
    # Only one base row: both runs share the same base model.
    assert tables.count("| base |") == 2
    base_p1 = 100 * json.loads((a / "eval/base/gsm8k.json").read_text())["pass_at_k"]["1"]
    assert f"{base_p1:.2f}" in base_row
    # grpo has not finished Stage II: its Table 1 row says so instead of vanishing.
    table1 = tables.split("## Table 2")[0]
    assert "| grpo | – | – |" in table1
    s1 = json.loads((a / "eval/stage1/math500.json").read_text())["pass_at_k"]
    assert f"{100 * s1['1']:.2f} / {100 * s1['8']:.2f}" in tables.split("## Table 2")[1]
    for png in ("pass_at_k_gsm8k.png", "pass_at_k_math500.png", "dynamics_stage1.png",
                "dynamics_stage2.png", "steps_per_trace.png", "monitors_stage1.png", "monitors_stage2.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png
        assert f"]({png})" in report


def test_alerts_section_lists_every_alert_with_its_step_and_says_none_for_an_honest_run(tmp_path):
    honest = make_run(tmp_path, "exprl-outcome", "exprl-outcome", skill=1.0, seed=1)
    collapse = Alert(4, "delimiter_collapse", 0.62, 0.5, "62% of rollouts are a single `###` step")
    overlong = Alert(9, "overlong", 0.3, 0.25, "30% of rollouts hit max_completion_length | cut")
    hacked = make_run(tmp_path, "exprl-process", "exprl-process", skill=0.0, seed=2, alerts=(overlong, collapse))
    (hacked / "stage1" / "recipe.yaml").write_text("method: exprl-process\nmonitor:\n  one_step_share: 0.5\n")
    sft = make_run(tmp_path, "sft", "sft", skill=0.3, seed=3)
    report = write_report([honest, hacked, sft], tmp_path / "report").read_text()
    alerts = report.split("## Alerts")[1]
    assert "- **exprl-outcome**, Stage I (10 monitored steps): none" in alerts
    assert "- **exprl-outcome**, Stage II (10 monitored steps): none" in alerts
    assert "- **exprl-process**, Stage I (10 monitored steps): 2 alerts" in alerts
    rows = [line for line in alerts.splitlines() if line.startswith("  | ") and "`" in line]
    assert rows[0].startswith("  | 4 | `delimiter_collapse` | 0.62 | 0.5 | 62% of rollouts")
    assert rows[1].startswith("  | 9 | `overlong` | 0.3 | 0.25 |") and "max_completion_length \\| cut" in rows[1]
    # SFT's Stage I samples no rollouts: not monitored, not listed; its Stage II (sparse GRPO) is.
    assert "**sft**, Stage I (" not in alerts and "- **sft**, Stage II (10 monitored steps): none" in alerts
    assert "](monitors_stage1.png)" in report and "](monitors_stage2.png)" in report
    assert (tmp_path / "report" / "monitors_stage1.png").stat().st_size > 10_000


def test_an_alert_record_is_not_a_metrics_row(tmp_path):
    run = make_run(tmp_path, "exprl-process", "exprl-process", skill=0.5, seed=4,
                   alerts=(Alert(3, "overlong", 0.4, 0.25, "40%"),))
    from exprl.eval.report import load_run

    view = load_run(run)
    assert [row["step"] for row in view.metrics["stage1"]] == list(range(1, 11))
    assert [(a["step"], a["name"]) for a in view.alerts["stage1"]] == [(3, "overlong")]


def test_k_larger_than_n_names_the_run_and_benchmark(tmp_path):
    a = make_run(tmp_path, "sft", "sft", skill=0.3, seed=2)
    with pytest.raises(ConfigError, match="k=16 is larger than n=8 samples of run 'sft'"):
        write_report([a], tmp_path / "r", k=16)


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(RunStateError, match="no run.json"):
        write_report([tmp_path], tmp_path / "r")
    (tmp_path / "run.json").write_text(json.dumps({"format": 99, "exprl_version": "7.0"}))
    with pytest.raises(RunStateError, match="written by exprl 7.0"):
        write_report([tmp_path], tmp_path / "r")


@pytest.fixture
def figures(monkeypatch):
    """The figures a report draws, by file name, kept instead of saved (rendering a PNG is the slow part)."""
    drawn = {}

    def keep(figure, path, **options):
        drawn[Path(path).name] = figure
        return Path(path)

    monkeypatch.setattr(report_module, "savefig_atomic", keep)
    return drawn


def _colours_by_run(figure, names: list[str]) -> dict[str, set[str]]:
    """Every colour each run is drawn in, over all the figure's panels (a monitor line's label starts with its run)."""
    from matplotlib.colors import to_hex

    seen: dict[str, set[str]] = {name: set() for name in names}
    for ax in figure.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            name = label.split(", ")[0]
            if name in seen:  # not the black dashed base row
                colour = handle.get_color() if hasattr(handle, "get_color") else handle.patches[0].get_facecolor()
                seen[name].add(to_hex(colour))
    return seen


def test_each_run_has_one_colour_in_every_panel_of_every_plot(tmp_path, figures):
    # grpo, first, logs no judge reward: the Stage-I judge-reward panel holds exprl-process alone.
    runs = [make_run(tmp_path, "grpo", "grpo", skill=0.5, seed=1),
            make_run(tmp_path, "exprl-process", "exprl-process", skill=1.0, seed=2),
            make_run(tmp_path, "sft", "sft", skill=0.3, seed=3)]
    write_report(runs, tmp_path / "report")
    assert {"pass_at_k_gsm8k.png", "dynamics_stage1.png", "dynamics_stage2.png", "steps_per_trace.png",
            "monitors_stage1.png", "monitors_stage2.png"} <= set(figures)
    colours = run_colours([load_run(run) for run in runs])
    assert len(set(colours.values())) == 3
    drawn_in: dict[str, set[str]] = {name: set() for name in colours}
    for png, figure in figures.items():
        for name, seen in _colours_by_run(figure, list(colours)).items():
            drawn_in[name] |= seen
    assert drawn_in == {name: {colour} for name, colour in colours.items()}
    judge_panel = next(ax for ax in figures["dynamics_stage1.png"].axes if ax.get_title().startswith("Dense judge"))
    assert [(line.get_label(), line.get_color()) for line in judge_panel.get_lines()] == \
        [("exprl-process", colours["exprl-process"])]


def test_dynamics_shows_only_the_logged_panels_and_nothing_when_nothing_was_logged(tmp_path, figures):
    grpo = make_run(tmp_path, "grpo", "grpo", skill=0.5, seed=1)
    (grpo / "stage2" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.3}) + "\n")
    report = write_report([grpo], tmp_path / "report").read_text()
    axes = figures["dynamics_stage1.png"].axes
    assert [ax.get_title() for ax in axes] == [f"{title} (Stage I)" for title, key, _ in DYNAMICS
                                               if key != "exprl/dense_reward_mean"]
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in axes} == {(2, 3)}
    assert "dynamics_stage2.png" not in figures and "](dynamics_stage2.png)" not in report
    assert plot_dynamics([load_run(grpo)], "stage2", tmp_path / "unused.png") is None
    (grpo / "stage1" / "metrics.jsonl").unlink()
    report = write_report([grpo], tmp_path / "again").read_text()
    assert "No stage has logged training metrics yet." in report and "dynamics_stage1.png" not in report
