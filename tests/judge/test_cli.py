"""`exprl judge run` end to end against a real loopback server, and its input validation."""
from __future__ import annotations

import json

import pytest

from exprl.cli import main
from exprl.errors import DataError
from exprl.judge.run import read_trace_rows
from testing.loopback import LoopbackJudgeServer

ROWS = [
    {"id": "a", "problem": "What is 2+3?", "reference": "2+3=5, \\boxed{5}", "answer": "5",
     "trace": "### Add the numbers: SCORE_HINT=4 ### Hence \\boxed{5} SCORE_HINT=5"},
    {"id": "b", "problem": "What is 2*3?", "reference": "\\boxed{6}", "trace": "It is \\boxed{7} SCORE_HINT=1"},
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_out(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(tmp_path, server, *extra, out="out.jsonl"):
    inp = write_rows(tmp_path / "in.jsonl", ROWS)
    code = main(["judge", "run", "--input", str(inp), "--out", str(tmp_path / out), "--backend", "openai",
                 "--base-url", server.base_url, "--model", "loopback", "--no-progress",
                 "--set", "retry_backoff_s=0.01", *extra])
    return code, read_out(tmp_path / out) if (tmp_path / out).exists() else None


def test_outcome_run_writes_one_row_per_trace_and_uses_the_cache(tmp_path, capsys):
    cache = str(tmp_path / "cache.sqlite")
    with LoopbackJudgeServer() as server:
        code, rows = run(tmp_path, server, "--cache", cache)
        assert code == 0 and server.request_count == 2
        code, again = run(tmp_path, server, "--cache", cache, out="again.jsonl")
        assert server.request_count == 2
    assert [r["id"] for r in rows] == ["a", "b"]
    assert [r["score"] for r in rows] == [5, 1] and [r["reward"] for r in rows] == [1.0, 0.0]
    assert all(r["status"] == "ok" and r["cached"] is False and r["latency_s"] > 0 for r in rows)
    assert [r["cached"] for r in again] == [True, True]
    assert "ok 2" in capsys.readouterr().err


@pytest.mark.parametrize("view", ["prefix", "step"])
def test_process_run_judges_each_step_with_what_its_view_shows(tmp_path, view):
    with LoopbackJudgeServer() as server:
        code, rows = run(tmp_path, server, "--mode", "process", "--view", view, "--cache", "")
        sent = [body["messages"][1]["content"] for body in server.requests]
    assert code == 0
    a = rows[0]
    trace = ROWS[0]["trace"]
    assert [s["text"] for s in a["steps"]] == [trace[s["start"]:s["end"]] for s in a["steps"]]
    assert len(a["steps"]) == 2 and a["steps"][0]["text"].endswith("###")
    assert [s["score"] for s in a["steps"]] == [4, 5] and a["score"] == 5 and a["status"] == "ok"
    second_step_prompt = next(p for p in sent if "Hence" in p and "Add the numbers" in p)
    if view == "prefix":  # the work so far, in one block, graded as a whole
        block = second_step_prompt.split("BEGIN WORK SO FAR>>>")[1].split("END WORK SO FAR")[0]
        assert block.index("Add the numbers") < block.index("Hence")
    else:  # the earlier steps as context, the new step graded
        assert "Add the numbers" in second_step_prompt.split("Step to grade")[0]


def test_unscorable_rows_are_reported_not_zeroed(tmp_path, capsys):
    with LoopbackJudgeServer("status", status=503) as server:
        code, rows = run(tmp_path, server, "--cache", "", "--set", "max_retries=0")
    assert code == 1  # rows that never reached a judgment make the run fail, with the count
    assert [(r["status"], r["score"], r["reward"]) for r in rows] == [("error", None, None)] * 2
    assert "503" in rows[0]["error"]
    err = capsys.readouterr().err
    assert "error 2" in err and "2 of 2 traces could not be judged" in err


@pytest.mark.parametrize("line,field,message", [
    ('{"id": "x", "problem": "p", "reference": "r"}', "trace", "missing"),
    ('{"id": "x", "problem": "p", "reference": "r", "trace": 5}', "trace", "must be a string"),
    ('{"id": "x", "problem": "  ", "reference": "r", "trace": "t"}', "problem", "is empty"),
    ('{"id": "x", "problem": "p", "reference": "r", "trace": "t", "answer": 3}', "answer", "must be a string"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, line, field, message):
    good = json.dumps({"id": "ok", "problem": "p", "reference": "r", "trace": "t"})
    path = tmp_path / "in.jsonl"
    path.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        list(read_trace_rows(path))
    assert info.value.line == 3 and info.value.field == field and message in str(info.value)
    assert str(path) in str(info.value)


def test_bad_json_and_missing_file(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"in.jsonl:1: malformed JSON"):
        list(read_trace_rows(path))
    code = main(["judge", "run", "--input", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"),
                 "--backend", "reference", "--cache", ""])
    assert code == 2 and "nope.jsonl" in capsys.readouterr().err


def test_null_reference_is_allowed_for_calibration(tmp_path):
    path = write_rows(tmp_path / "in.jsonl", [{"id": 1, "problem": "p", "reference": None, "trace": "t"}])
    assert [row["id"] for _, row in read_trace_rows(path)] == [1]


def test_unknown_config_key_is_a_config_error(tmp_path, capsys):
    inp = write_rows(tmp_path / "in.jsonl", ROWS)
    code = main(["judge", "run", "--input", str(inp), "--out", str(tmp_path / "o.jsonl"), "--set", "nope=1"])
    assert code == 2 and "nope" in capsys.readouterr().err
