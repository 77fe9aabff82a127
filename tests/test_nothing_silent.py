"""Issue 25: the command succeeds and the result is right, or it says what it did.

The cases here are not refusals (those are tests/test_bad_input.py's table): they are legitimate
inputs and settings a user meets, each once turned into a silently wrong result, and each run as a
user runs it, through the real CLI (`exprl.cli.main`) or the real judge service:

- an empty trace (the policy stopped at once) is judged, with the lowest score, by every backend;
- `judge run --skip-invalid` judges the good rows and writes the bad ones, with their reasons, aside;
- process-mode judging caps the steps of a trace and gives the rest an explicit status;
- a judgment cached under one judge setting is not served to a run under another (CLI level);
- `--overwrite`, and a rerun of `data prepare` with other settings, say what they drop;
- the segment view's row score, and a prepare without a test split, are explained;
- a pipeline stage announces itself on stderr whatever stderr is, and so does long work;
- every `exprl ... --flag` the docs show is a flag of that command;
- the judge breaker stops after enough unscorable rollout batches, and not before.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from exprl.cli import main
from testing.loopback import LoopbackJudgeServer

REPO = Path(__file__).resolve().parents[1]
GOOD = {"id": "g", "problem": "What is 2+3?", "reference": "2 + 3 = 5, so \\boxed{5}", "answer": "5",
        "trace": "### 2 + 3 = 5 ### so \\boxed{5}"}


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- 8. empty traces are scored ---------------------------------------------------------------------
EMPTY = [{**GOOD, "id": "empty", "trace": ""}, {**GOOD, "id": "blank", "trace": "  \n "}, GOOD]


@pytest.mark.parametrize("mode", ["outcome", "process"])
def test_an_empty_trace_is_judged_with_the_lowest_score_by_the_reference_backend(tmp_path, mode, capsys):
    source = write_rows(tmp_path / "traces.jsonl", EMPTY)
    code = main(["judge", "run", "--input", str(source), "--out", str(tmp_path / "out.jsonl"), "--mode", mode,
                 "--cache", "", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = {r["id"]: r for r in read_rows(tmp_path / "out.jsonl")}
    for key in ("empty", "blank"):
        assert rows[key]["status"] == "ok" and rows[key]["score"] == 1 and rows[key]["reward"] == 0.0
    assert rows["g"]["status"] == "ok"


def test_an_empty_trace_is_judged_with_the_lowest_score_by_an_llm_backend_without_a_call(tmp_path):
    source = write_rows(tmp_path / "traces.jsonl", EMPTY)
    with LoopbackJudgeServer(scorer=lambda body: 4) as server:
        code = main(["judge", "run", "--input", str(source), "--out", str(tmp_path / "out.jsonl"), "--backend",
                     "openai", "--base-url", server.base_url, "--model", "loopback", "--cache", "", "--no-progress"])
        calls = server.request_count
    rows = {r["id"]: r for r in read_rows(tmp_path / "out.jsonl")}
    assert code == 0 and calls == 1  # only the trace with text reached the judge
    assert rows["empty"]["score"] == rows["blank"]["score"] == 1 and rows["g"]["score"] == 4


def test_eval_traces_with_an_empty_sample_go_through_judge_run(tmp_path):
    """The README's flow: `exprl eval --traces` writes every sample, an empty one included; `exprl judge
    run` takes the file as it is (the rows below have the columns eval's traces.jsonl has)."""
    rows = [{"id": "math/1#0", "problem_id": "math/1", "problem": "What is 1+1?", "reference": "1+1=2, \\boxed{2}",
             "answer": "2", "trace": "", "correct": False, "sample": 0},
            {"id": "math/1#1", "problem_id": "math/1", "problem": "What is 1+1?", "reference": "1+1=2, \\boxed{2}",
             "answer": "2", "trace": "1+1=2 \\boxed{2}", "correct": True, "sample": 1}]
    source = write_rows(tmp_path / "traces.jsonl", rows)
    assert main(["judge", "run", "--input", str(source), "--out", str(tmp_path / "j.jsonl"), "--cache", "",
                 "--no-progress"]) == 0
    assert [r["status"] for r in read_rows(tmp_path / "j.jsonl")] == ["ok", "ok"]


# -- judge run --skip-invalid ------------------------------------------------------------------------
def test_skip_invalid_judges_the_good_rows_and_writes_the_bad_ones_aside(tmp_path, capsys):
    source = write_rows(tmp_path / "traces.jsonl", [
        GOOD, "{not json", {k: v for k, v in GOOD.items() if k != "trace"} | {"id": "no-trace"},
        {**GOOD, "id": "typed", "problem": 7}, {**GOOD, "id": "g2"}])
    out = tmp_path / "out.jsonl"
    code = main(["judge", "run", "--input", str(source), "--out", str(out), "--cache", "", "--no-progress",
                 "--skip-invalid"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert [r["id"] for r in read_rows(out)] == ["g", "g2"]
    rejected = read_rows(tmp_path / "out.rejected.jsonl")
    assert [(r["line"], r["field"]) for r in rejected] == [(2, None), (3, "trace"), (4, "problem")]
    assert "skipped 3 invalid rows" in err and "out.rejected.jsonl" in err and "line 2" in err


def test_skip_invalid_with_no_good_row_left_is_still_an_error(tmp_path, capsys):
    source = write_rows(tmp_path / "traces.jsonl", ["{not json", {"id": "x", "problem": "p"}])
    code = main(["judge", "run", "--input", str(source), "--out", str(tmp_path / "out.jsonl"), "--cache", "",
                 "--skip-invalid"])
    assert code == 2 and "0 usable rows" in capsys.readouterr().err


# -- 7. a process-mode step cap with an explicit status --------------------------------------------
def test_process_mode_caps_the_steps_of_a_trace_with_an_explicit_status(tmp_path, capsys):
    long_trace = {**GOOD, "id": "long", "trace": "".join(f"### {k} + 1 = {k + 1} " for k in range(5))}
    source = write_rows(tmp_path / "traces.jsonl", [long_trace, GOOD])
    out = tmp_path / "out.jsonl"
    code = main(["judge", "run", "--input", str(source), "--out", str(out), "--mode", "process", "--max-steps", "3",
                 "--cache", "", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    rows = {r["id"]: r for r in read_rows(out)}
    assert rows["long"]["status"] == "over_step_cap" and rows["long"]["score"] is None
    assert [s["status"] for s in rows["long"]["steps"]] == ["ok", "ok", "ok", "not_judged", "not_judged"]
    assert rows["g"]["status"] == "ok" and rows["g"]["score"] is not None
    assert "more than --max-steps 3 steps" in err


def test_process_mode_progress_counts_judgments_in_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    trace = {**GOOD, "id": "t", "trace": "".join(f"### {k} + 1 = {k + 1} " for k in range(40))}
    source = write_rows(tmp_path / "traces.jsonl", [trace])
    assert main(["judge", "run", "--input", str(source), "--out", str(tmp_path / "o.jsonl"), "--mode", "process",
                 "--cache", ""]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("judge run: ")]
    counts = [int(re.match(r"judge run: (\d+)/40 judgments", line).group(1)) for line in lines]
    assert counts[0] == 0 and counts[-1] == 40 and len(counts) >= 3, lines


# -- 3. the cache answers only for the settings it was asked under (through the CLI) ---------------
@pytest.mark.parametrize("setting", ["max_new_tokens=16", "temperature=1.5"])
def test_judge_run_under_another_setting_asks_the_judge_again(tmp_path, setting):
    source = write_rows(tmp_path / "traces.jsonl", [GOOD])
    cache = str(tmp_path / "judge.sqlite")
    with LoopbackJudgeServer() as server:
        common = ["judge", "run", "--input", str(source), "--backend", "openai", "--base-url", server.base_url,
                  "--model", "loopback", "--cache", cache, "--no-progress"]
        assert main([*common, "--out", str(tmp_path / "a.jsonl"), "--set", setting]) == 0
        assert main([*common, "--out", str(tmp_path / "b.jsonl")]) == 0
        assert main([*common, "--out", str(tmp_path / "c.jsonl")]) == 0  # the same settings: a cache hit
        calls = server.request_count
    assert calls == 2
    assert read_rows(tmp_path / "b.jsonl")[0]["cached"] is False and read_rows(tmp_path / "c.jsonl")[0]["cached"]


# -- 9. what a command does, said -------------------------------------------------------------------
def test_judge_run_overwrite_says_it_drops_the_interrupted_rows(tmp_path, capsys):
    from exprl.runs import RowJournal

    source = write_rows(tmp_path / "traces.jsonl", [GOOD])
    out = tmp_path / "out.jsonl"
    journal = RowJournal(out, {"mode": "outcome", "delimiter": None, "judge": {"backend": "other"}},
                         command="judge run")
    journal.open()
    journal.add("k1", {"id": "x", "mode": "outcome", "status": "ok", "score": 5})
    journal.add("k2", {"id": "y", "mode": "outcome", "status": "ok", "score": 4})
    journal.close()
    code = main(["judge", "run", "--input", str(source), "--out", str(out), "--cache", "", "--no-progress",
                 "--overwrite"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "--overwrite: starting over; the 2 rows the interrupted run kept" in err and "dropped" in err


def test_the_segment_views_row_score_is_explained(tmp_path, capsys):
    source = write_rows(tmp_path / "traces.jsonl", [{**GOOD, "trace": GOOD["reference"]}])
    assert main(["judge", "run", "--input", str(source), "--out", str(tmp_path / "o.jsonl"), "--mode", "process",
                 "--cache", "", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "under --view segment each step is graded alone" in err and "--view prefix" in err


def test_prepare_says_it_held_nothing_out_and_what_a_rerun_removed(tmp_path, capsys):
    from exprl.data.loaders import write_problems
    from exprl.data.problem import Problem

    source = write_problems(tmp_path / "p.jsonl", [Problem(id=f"p{i}", problem=f"What is {i} + 1?",
                                                           reference=f"{i} + 1 = {i + 1}", answer=str(i + 1))
                                                   for i in range(20)])
    out = tmp_path / "prep"
    assert main(["data", "prepare", str(source), "--out", str(out), "--set", "test_fraction=0.5"]) == 0
    assert "no test split" not in capsys.readouterr().out
    assert main(["data", "prepare", str(source), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "no test split: test_fraction is 0" in said
    assert "removed test.jsonl, test.parquet" in said and not (out / "test.jsonl").exists()
    assert "replaced what was there before" in said


def test_rubrics_build_overwrite_says_it_replaces_the_store(tmp_path, capsys):
    from exprl.data.loaders import write_problems
    from exprl.data.problem import Problem

    source = write_problems(tmp_path / "p.jsonl", [Problem(id="p0", problem="What is 2+3?", reference="2+3=5, \\boxed{5}",
                                                           answer="5")])
    store = tmp_path / "rubrics.jsonl"
    store.write_text("my notes\nmore notes\n", encoding="utf-8")
    assert main(["rubrics", "build", "--input", str(source), "--out", str(store), "--overwrite", "--no-progress"]) == 0
    assert f"--overwrite: {store} (2 lines) is replaced" in capsys.readouterr().err


def test_a_data_folder_that_is_a_file_is_called_a_file(tmp_path, monkeypatch, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n", encoding="utf-8")
    monkeypatch.setenv("EXPRL_DATA_DIR", str(notes))
    assert main(["data", "list"]) == 0
    said = capsys.readouterr().out
    assert f"$EXPRL_DATA_DIR={notes} is a file, not a folder" in said and "does not exist" not in said


def test_a_pipeline_stage_says_when_it_starts_and_ends_on_any_stderr(tmp_path, capsys):
    from exprl.runs import open_run, stage

    state = open_run(tmp_path / "run", {"k": 1}, name="n", method="grpo")
    with stage(tmp_path / "run", state, "stage1"):
        pass
    with pytest.raises(RuntimeError), stage(tmp_path / "run", state, "stage2"):
        raise RuntimeError("boom")
    err = capsys.readouterr().err
    assert "stage stage1 starting" in err and "stage stage1 done" in err and "stage stage2 failed" in err


def test_progress_lines_when_stderr_is_not_a_terminal():
    import io

    from exprl.progress import Progress

    stream = io.StringIO()
    with Progress(100, "eval bench", "sample", stream=stream) as bar:
        for _ in range(100):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("eval bench: 0/100 samples") and lines[-1].startswith("eval bench: 100/100 samples")
    assert len(lines) == 21  # the start, and one line per 5%


# -- docs name only flags that exist -----------------------------------------------------------------
def _documented_commands() -> list[tuple[str, str]]:
    """Every `exprl ...` the README and docs show: in inline code, and as lines of code blocks."""
    found = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        found += [(doc.name, span) for span in re.findall(r"`(exprl [^`]+)`", text)]
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
            lines = block.replace("\\\n", " ").splitlines()
            found += [(doc.name, line.split("#")[0]) for line in lines
                      if re.match(r"\s*(?:[A-Z_]+=\S+\s+)*exprl ", line)]
    return found


def test_every_flag_the_docs_show_is_a_flag_of_its_command():
    from exprl.cli import build_parser

    parser = build_parser()
    checked = 0
    for doc, span in _documented_commands():
        try:
            words = [w.strip("[]()") for w in shlex.split(span.replace("...", " ").replace("|", " "))]
        except ValueError:
            continue
        words = words[next(i for i, w in enumerate(words) if w == "exprl"):]
        node, path = parser, []
        for word in words[1:]:
            sub = next((a for a in node._actions if a.__class__.__name__ == "_SubParsersAction"), None)
            if sub is None or word not in sub.choices:
                break
            node, path = sub.choices[word], path + [word]
        if not path:
            continue
        known = {option for action in node._actions for option in action.option_strings}
        for word in words:
            flag = word.split("=")[0]
            if re.fullmatch(r"--[a-z][a-z0-9-]*", flag):
                checked += 1
                assert flag in known, f"{doc}: `{span}` shows {flag}, which `exprl {' '.join(path)}` does not take"
    assert checked > 30


# -- 4. the breaker -----------------------------------------------------------------------------------
def test_the_judge_breaker_trips_after_enough_bad_batches_in_a_row_and_not_before():
    from exprl.rewards.monitors import JudgeBreaker, MonitorConfig
    from exprl.rewards.record import Judgment, Rollout

    def batch(bad: int, size: int = 4) -> list[Rollout]:
        return [Rollout(overlong=False, correct=0.0, step_rewards=[None if i < bad else 0.5],
                        judgments=[Judgment("error" if i < bad else "ok", False, 0.0)]) for i in range(size)]

    breaker = JudgeBreaker(MonitorConfig(stop_unscorable_share=0.5, stop_unscorable_batches=3))
    assert [breaker.observe(batch(b)) for b in (4, 4, 1, 2, 4)] == [False, False, False, False, False]
    assert breaker.observe(batch(3)) is True  # 2, 4, 3 bad of 4: three batches in a row at 50% or more
    assert "the last error: refused" in breaker.reason({"error": 3, "ok": 1}, "refused") and "error 3" in \
        breaker.reason({"error": 3, "ok": 1}, "refused")
    never = JudgeBreaker(MonitorConfig(stop_unscorable_share=None))
    assert not any(never.observe(batch(4)) for _ in range(10))
    unjudged = JudgeBreaker(MonitorConfig(stop_unscorable_batches=1))
    assert not unjudged.observe([Rollout(overlong=True, correct=0.0, step_rewards=[0.0])])  # never asked
    # A judge that is down trips it however many rollouts the overlong policy set aside unasked: 1 asked, failed.
    cut = [Rollout(overlong=True, correct=0.0, step_rewards=[0.0]) for _ in range(3)]
    assert unjudged.observe(batch(1, size=1) + cut) is True
