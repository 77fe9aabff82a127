"""`exprl analyze` over a pipeline run whose evaluations were written by `evaluate` itself, and the behaviour
section `exprl report` builds from it."""
from __future__ import annotations

import hashlib
import json

import pytest

from exprl.cli import main
from exprl.data.loaders import write_problems
from exprl.data.problem import Problem
from exprl.errors import RunStateError
from exprl.eval import evaluate
from exprl.eval.analyze import count_delimiters, find_groups, write_analysis
from exprl.eval.annotate import RuleAnnotator
from exprl.eval.store import Generation
from exprl.runs import RUN_FORMAT, STAGES

PNG = b"\x89PNG\r\n\x1a\n"


class Writes:
    """Stands in for a policy whose way of writing is the test's to choose: `write(problem text)` gives
    each sample's text. The evaluation around it (prompts, store, verdicts, result files) is the real one."""

    def __init__(self, write):
        self.write = write

    def generate(self, conversations, seeds):
        return [Generation(self.write(c[-1]["content"]), 20) for c in conversations]


BASE = "### 1: add 2\n### 2: double it\n### 3: done\n\\boxed{7}"
CHECKING = "Wait, the sum is off by one. Let me check: 3 + 4 = 7. \\boxed{7}"   # backtracking and verification
PLAIN = "The sum is 7. \\boxed{7}"
PLANNING = "First, we need to find the sum. ### 1: 3 + 4 = 7\n\\boxed{7}"        # subgoal, one delimiter


@pytest.fixture()
def pipeline_run(tmp_path):
    """A pipeline run folder whose base writes three `###` steps and nothing else; after Stage I, problems
    q0 and q1 are answered with a backtrack and a check and no `###`; after Stage II every answer states
    a subgoal."""
    from exprl.tiny import save_tiny_model

    bench = write_problems(tmp_path / "bench.jsonl", [
        Problem(id=f"q{i}", problem=f"Question q{i}: what is 3 + 4?", reference="", answer="7") for i in range(4)])
    run = tmp_path / "runs" / "exprl-process"
    writers = {"base": lambda text: BASE,
               "stage1": lambda text: CHECKING if ("q0" in text or "q1" in text) else PLAIN,
               "stage2": lambda text: PLANNING}
    for seed, (stage, write) in enumerate(writers.items()):
        model = save_tiny_model(tmp_path / f"model-{stage}", hidden_size=16, num_layers=1, seed=seed)
        evaluate(model, [str(bench)], run / "eval" / stage, generator=Writes(write), n=3, max_tokens=8)
    (run / "run.json").write_text(json.dumps({
        "format": RUN_FORMAT, "exprl_version": "0.1.0", "name": "exprl-process", "method": "exprl-process",
        "stages": {s: {"state": "done"} for s in STAGES}}))
    return run


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_behaviours_delimiters_and_the_change_against_base(pipeline_run, tmp_path):
    inputs_before = digest(pipeline_run)
    analysis = write_analysis([pipeline_run], tmp_path / "analysis", RuleAnnotator())
    assert digest(pipeline_run) == inputs_before  # analysing never writes into an input
    groups = {g["name"]: g for g in analysis["groups"]}
    assert list(groups) == ["base", "exprl-process / stage1", "exprl-process / stage2"]
    base, stage1, stage2 = groups.values()
    assert base["traces"] == stage1["traces"] == 12 and base["problems"] == 4
    assert base["delimiters"]["mean"] == 3 and base["delimiters"]["histogram"]["3"] == 12
    assert stage1["delimiters"]["zero_share"] == 1.0 and stage2["delimiters"]["histogram"]["1"] == 12
    assert base["correct_share"] == 1.0 and base["mean_tokens"] == 20
    assert {b: v["share"] for b, v in base["behaviours"].items()} == dict.fromkeys(
        ("verification", "backtracking", "enumeration", "subgoal_setting"), 0.0)
    assert stage1["behaviours"]["backtracking"]["share"] == stage1["behaviours"]["verification"]["share"] == 0.5
    assert stage2["behaviours"]["subgoal_setting"]["share"] == 1.0
    changes = {c["name"]: c["behaviours"] for c in analysis["changes"]}
    assert changes["exprl-process / stage1"]["backtracking"] == {"gained": 2, "lost": 0, "net": 2}
    assert changes["exprl-process / stage2"]["subgoal_setting"] == {"gained": 4, "lost": 0, "net": 4}
    assert changes["exprl-process / stage2"]["verification"]["net"] == 0

    out = tmp_path / "analysis"
    table = (out / "behaviours.md").read_text()
    assert "| exprl-process / stage1 | 12 | 20.0 | 0.00 | 100.0 | 50.0 | 50.0 | 0.0 | 0.0 |" in table
    assert "+2 / -0 (+2)" in table
    for png in ("delimiters.png", "behaviours.png"):
        assert (out / png).read_bytes()[:8] == PNG
    assert json.loads((out / "analysis.json").read_text())["annotator_version"] == "rules-v1"


def test_cli_analyze_then_report_shows_the_behaviours(pipeline_run, capsys):
    assert main(["analyze", str(pipeline_run)]) == 0
    printed = capsys.readouterr().out
    assert "exprl-process / stage2" in printed and (pipeline_run / "analysis" / "behaviours.md").is_file()
    assert main(["analyze", str(pipeline_run)]) == 0  # a rerun replaces its own output
    assert main(["report", str(pipeline_run)]) == 0
    report = (pipeline_run / "report" / "report.md").read_text()
    assert "## Reasoning behaviours" in report and "+2 / -0 (+2)" in report
    assert "![delimiters](delimiters.png)" in report and "![behaviours](behaviours.png)" in report
    assert (pipeline_run / "report" / "delimiters.png").read_bytes()[:8] == PNG


def test_a_folder_of_runs_a_sample_cap_and_an_eval_folder(pipeline_run, tmp_path):
    groups = find_groups([pipeline_run.parent], max_per_problem=1)  # every run below the folder
    assert [g.name for g in groups] == ["base", "exprl-process / stage1", "exprl-process / stage2"]
    assert all(len(g.traces) == 4 for g in groups)
    alone = find_groups([pipeline_run / "eval" / "stage1"])
    assert [(g.label, g.stage, len(g.traces)) for g in alone] == [("stage1", "eval", 12)]


def test_what_cannot_be_analysed_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStateError, match="not a pipeline run, evaluation, filter or training folder"):
        find_groups([tmp_path / "empty"])
    assert main(["analyze", str(tmp_path / "nowhere"), "--out", str(tmp_path / "a")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # nothing is written before every input has been read


def test_an_evaluation_of_another_format_is_refused_with_its_version(pipeline_run, tmp_path):
    eval_dir = pipeline_run / "eval" / "stage1"
    manifest = json.loads((eval_dir / "eval.json").read_text())
    (eval_dir / "eval.json").write_text(json.dumps({**manifest, "format": 99, "exprl_version": "9.9.9"}))
    with pytest.raises(RunStateError, match=r"eval\.json: written by exprl 9\.9\.9 with eval format 99"):
        find_groups([eval_dir])
    (eval_dir / "eval.json").write_text("{not json")
    with pytest.raises(RunStateError, match="eval.json: corrupt"):
        find_groups([eval_dir])


def test_the_llm_annotator_from_the_command_line_with_its_cache(pipeline_run, tmp_path, capsys):
    from exprl.eval.annotate import BEHAVIOURS
    from testing.loopback import LoopbackJudgeServer

    def verdict(body: dict) -> str:  # an annotator that sees backtracking wherever the trace says "Wait"
        return json.dumps({name: int(name == "backtracking" and "Wait" in body["messages"][-1]["content"])
                           for name in BEHAVIOURS})

    out = tmp_path / "llm"
    with LoopbackJudgeServer(reply=verdict) as server:
        argv = ["analyze", str(pipeline_run), "--out", str(out), "--annotator", "llm", "--backend", "openai",
                "--base-url", server.base_url, "--model", "loopback"]
        assert main(argv) == 0
        asked = server.request_count
        assert asked == 4  # one call per distinct trace text: BASE, CHECKING, PLAIN, PLANNING
        assert main(argv) == 0
        assert server.request_count == asked  # the second run is answered from DIR/annotations.sqlite
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["annotator"] == "openai:loopback" and (out / "annotations.sqlite").is_file()
    stage1 = next(g for g in analysis["groups"] if g["stage"] == "stage1")
    assert stage1["behaviours"]["backtracking"]["share"] == 0.5 and stage1["behaviours"]["verification"]["share"] == 0
    assert main(["analyze", str(pipeline_run), "--out", str(tmp_path / "x"), "--annotator", "llm"]) == 2
    assert "reads no prose" in capsys.readouterr().err


def test_delimiters_are_counted_as_steps_are_split():
    assert count_delimiters("### a\n### b\n#### c\n###### d") == 4
    assert count_delimiters("no headings") == 0


def test_the_command_writes_the_documented_files_and_takes_only_known_annotators(pipeline_run, tmp_path, capsys):
    """What `exprl analyze --help` promises DIR holds (annotations.sqlite only with --annotator llm)."""
    out = tmp_path / "out"
    assert main(["analyze", str(pipeline_run), "--out", str(out), "--annotator", "rules"]) == 0
    written = {p.name for p in out.iterdir()}
    assert {"behaviours.md", "delimiters.png", "behaviours.png", "analysis.json"} <= written
    assert "annotations.sqlite" not in written
    assert json.loads((out / "analysis.json").read_text())["annotator"] == "rules"
    assert (out / "behaviours.md").read_text().startswith("# Reasoning behaviours")
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["analyze", str(pipeline_run), "--out", str(tmp_path / "other"), "--annotator", "vibes"])
    assert refused.value.code == 2 and "invalid choice: 'vibes'" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_a_run_without_its_own_base_evaluation_is_compared_with_the_base_read(pipeline_run, tmp_path):
    """As in the demo, which evaluates the base model in its first method's run only."""
    import shutil

    other = pipeline_run.parent / "grpo"
    shutil.copytree(pipeline_run, other)
    shutil.rmtree(other / "eval" / "base")
    state = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**state, "name": "grpo", "method": "grpo"}))
    analysis = write_analysis([pipeline_run.parent], tmp_path / "a", RuleAnnotator())
    changes = {c["name"]: c["behaviours"] for c in analysis["changes"]}
    assert changes["grpo / stage1"]["backtracking"] == {"gained": 2, "lost": 0, "net": 2}
    assert [g["name"] for g in analysis["groups"]][:3] == ["base", "exprl-process / stage1", "grpo / stage1"]
    assert analysis["groups"][0]["traces"] == 12  # one base, read once
