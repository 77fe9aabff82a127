"""Interrupted work is kept, and the same command resumes it.

`exprl judge run` runs as its own process against a slow real HTTP judge (the loopback server, on
a thread of this test process, which counts and records every request). It is stopped with SIGINT
(Ctrl-C) or SIGKILL once some judgments have arrived, then run again with the same command: a
judgment that arrived is never asked for again (only the calls still in flight at the stop, at most
`--concurrency`, are repeated: their answers never came), and the output is complete and in input
order. `exprl rubrics build` the same. `exprl train` is interrupted after its first checkpoint and
resumed by the same command, without a flag; a changed recipe is refused, naming what changed.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exprl.judge.loopback import LoopbackJudgeServer

SRC = Path(__file__).resolve().parents[1] / "src"
ROWS = 40
CONCURRENCY = 2
LATENCY_S = 0.2


def traces(path: Path) -> Path:
    rows = [{"id": f"t{i}", "problem": f"What is {i} + 1?", "reference": f"{i} + 1 = {i + 1}, so \\boxed{{{i + 1}}}",
             "answer": str(i + 1), "trace": f"ROW-{i}: adding one gives {i + 1}. \\boxed{{{i + 1}}}"}
            for i in range(ROWS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def exprl(*argv: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    # A shell's background job starts with SIGINT ignored, and a child inherits that: Ctrl-C must
    # reach exprl as it does in a terminal, whatever started this test run.
    return subprocess.Popen([sys.executable, "-m", "exprl.cli", *argv], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def asked_rows(requests: list[dict]) -> list[int]:
    """The input row each judge request was about (every trace names its row)."""
    return [int(re.search(r"ROW-(\d+)", json.dumps(r["messages"])).group(1)) for r in requests]


def journal_rows(path: Path) -> list[int]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    rows = []
    for line in lines:
        try:
            rows.append(int(json.loads(line)["row"]["id"][1:]))
        except (ValueError, KeyError):
            pass  # the line a kill cut off
    return rows


def cached_judgments(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_judge_run_interrupted_then_rerun_asks_no_judgment_twice(stop, cache, tmp_path):
    source = traces(tmp_path / "traces.jsonl")
    out = tmp_path / "judged.jsonl"
    with LoopbackJudgeServer(latency_s=LATENCY_S) as server:
        argv = ["judge", "run", "--input", str(source), "--out", str(out), "--backend", "openai",
                "--base-url", server.base_url, "--model", "loopback", "--concurrency", str(CONCURRENCY),
                "--cache", str(tmp_path / "judge.sqlite") if cache else ""]
        first = exprl(*argv, cwd=tmp_path)
        partial = out.with_name(out.name + ".partial")
        wait_for(lambda: len(journal_rows(partial)) >= 8 or first.poll() is not None)
        first.send_signal(getattr(signal, stop))
        _, err = first.communicate(timeout=60)
        asked_first = asked_rows(server.requests)
        kept = journal_rows(partial)
        committed = cached_judgments(tmp_path / "judge.sqlite") if cache else 0

        assert first.returncode == (130 if stop == "SIGINT" else -signal.SIGKILL), err
        assert not out.exists()  # the output appears whole, at the end
        assert 8 <= len(kept) < ROWS
        if stop == "SIGINT":
            last = err.strip().splitlines()[-1]
            assert last == "exprl judge run: interrupted; what finished is kept, run the same command again to resume."
            assert "Traceback" not in err and "Event loop is closed" not in err and "destroyed" not in err
            # The bar moved with each result, not only at the end.
            assert re.search(r"\b[1-9]\d*/40\b", err), err
        if cache:  # each judgment committed as it arrived, not at the end of the batch of 40
            assert committed >= len(kept) - CONCURRENCY

        again = exprl(*argv, "--no-progress", cwd=tmp_path)
        _, err2 = again.communicate(timeout=300)
        asked_second = asked_rows(server.requests[len(asked_first):])

    assert again.returncode == 0, err2
    assert f"{len(kept)} rows kept from the interrupted run" in err2
    repeated = set(asked_first) & set(asked_second)
    assert not repeated & set(kept), "a row whose judgment had arrived was judged again"
    assert len(repeated) <= CONCURRENCY  # only calls in flight at the stop, whose answers never came
    assert sorted(set(asked_first) | set(asked_second)) == list(range(ROWS))
    assert len(asked_first) + len(asked_second) == ROWS + len(repeated)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"t{i}" for i in range(ROWS)]
    assert all(r["status"] == "ok" and r["score"] in range(1, 6) for r in rows)
    assert not out.with_name(out.name + ".partial").exists()


@pytest.mark.slow
def test_judge_run_rebuilds_from_the_cache_alone(tmp_path):
    """Killed, with its journal lost too: every judgment that was committed is a cache hit."""
    source = traces(tmp_path / "traces.jsonl")
    out = tmp_path / "judged.jsonl"
    cache = tmp_path / "judge.sqlite"
    with LoopbackJudgeServer(latency_s=LATENCY_S) as server:
        argv = ["judge", "run", "--input", str(source), "--out", str(out), "--backend", "openai",
                "--base-url", server.base_url, "--model", "loopback", "--concurrency", str(CONCURRENCY),
                "--cache", str(cache), "--no-progress"]
        first = exprl(*argv, cwd=tmp_path)
        wait_for(lambda: server.request_count >= 12)
        first.kill()
        first.communicate(timeout=60)
        committed = cached_judgments(cache)
        out.with_name(out.name + ".partial").unlink()
        before = server.request_count
        again = exprl(*argv, cwd=tmp_path)
        _, err = again.communicate(timeout=300)
        second = server.request_count - before
    assert again.returncode == 0, err
    assert committed >= 12 - 2 * CONCURRENCY
    assert second == ROWS - committed


def test_a_changed_judge_setting_does_not_mix_into_an_interrupted_run(tmp_path):
    source = traces(tmp_path / "traces.jsonl")
    out = tmp_path / "judged.jsonl"
    from exprl.runs import RowJournal

    journal = RowJournal(out, {"mode": "outcome", "delimiter": None, "judge": {"process_view": "segment"}},
                         command="judge run")
    journal.open()
    journal.add("k", {"id": "t0", "mode": "outcome", "status": "ok", "score": 5})
    journal.close()
    with LoopbackJudgeServer() as server:
        run = exprl("judge", "run", "--input", str(source), "--out", str(out), "--backend", "openai",
                    "--base-url", server.base_url, "--model", "loopback", "--cache", "", cwd=tmp_path)
        _, err = run.communicate(timeout=120)
        assert server.request_count == 0
    assert run.returncode == 2
    assert "judge run settings changed" in err and "judge.backend" in err and "--overwrite" in err


class ChecklistServer(LoopbackJudgeServer):
    """The loopback server answering as a rubric-writing LLM does: a JSON checklist."""

    def _good_text(self, payload):
        return json.dumps({"checkpoints": ["the sum", "the final answer"]})


@pytest.mark.slow
def test_rubrics_build_interrupted_then_rerun_asks_no_problem_twice(tmp_path):
    from exprl.data.loaders import write_problems
    from exprl.data.problem import Problem

    problems = write_problems(tmp_path / "problems.jsonl", [
        Problem(id=f"p{i}", problem=f"ROW-{i}: what is {i} + 1?", reference=f"{i} + 1 = {i + 1}",
                answer=str(i + 1)) for i in range(20)])
    store = tmp_path / "rubrics.jsonl"
    with ChecklistServer(latency_s=LATENCY_S) as server:
        argv = ["rubrics", "build", "--input", str(problems), "--out", str(store), "--backend", "openai",
                "--base-url", server.base_url, "--model", "loopback"]
        first = exprl(*argv, cwd=tmp_path)
        wait_for(lambda: store.is_file() and len(store.read_text().splitlines()) >= 5)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
        asked_first = asked_rows(server.requests)
        stored = [json.loads(line)["id"] for line in store.read_text().splitlines()]
        again = exprl(*argv, "--no-progress", cwd=tmp_path)
        out2, err2 = again.communicate(timeout=300)
        asked_second = asked_rows(server.requests[len(asked_first):])
    assert first.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("exprl rubrics build: interrupted")
    assert again.returncode == 0, err2
    assert f"{len(stored)} already stored" in out2
    assert not set(asked_second) & {int(i[1:]) for i in stored}
    assert len(set(asked_first) & set(asked_second)) <= 1  # the one call in flight at the stop
    assert sorted(json.loads(line)["id"] for line in store.read_text().splitlines()) == sorted(f"p{i}" for i in range(20))


RECIPE = """method: sft
model: tiny
data:
  train_files: [problems.jsonl]
trl:
  max_steps: 3
  per_device_train_batch_size: 4
  save_steps: 1
  learning_rate: 1.0e-4
  use_cpu: true
  bf16: false
"""


@pytest.mark.slow
def test_train_interrupted_resumes_with_the_same_command_and_refuses_another_recipe(tmp_path):
    from exprl.data.loaders import write_problems
    from exprl.data.problem import Problem

    write_problems(tmp_path / "problems.jsonl", [
        Problem(id=f"p{i}", problem=f"What is {i} + 2?", reference=f"{i} + 2 = {i + 2}, so \\boxed{{{i + 2}}}",
                answer=str(i + 2)) for i in range(8)])
    (tmp_path / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    argv = ["train", "--config", "recipe.yaml", "--output-dir", "run"]
    first = exprl(*argv, cwd=tmp_path)
    wait_for(lambda: (tmp_path / "run" / "checkpoint-1" / "trainer_state.json").is_file() or first.poll() is not None,
             timeout=600)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "Traceback" not in err
    # One line says so (the trainer's progress bar may redraw after it as the process exits).
    assert [line for line in err.splitlines() if "interrupted" in line] == [
        "exprl train: interrupted; what finished is kept, run the same command again to resume."]

    changed = exprl(*argv, "--set", "method=grpo", "--set", "trl.num_generations=4", cwd=tmp_path)
    _, err = changed.communicate(timeout=120)
    assert changed.returncode == 2
    assert 'method: "sft" -> "grpo"' in err and "trl.num_generations: (absent) -> 4" in err

    again = exprl(*argv, cwd=tmp_path)  # the same command: no --resume to remember
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    result = json.loads(out[out.rindex("\n{\n") + 1:])  # the result, printed last
    assert result["resumed"] and result["global_step"] == 3 and not result["already_done"]

    finished = exprl(*argv, "--set", "trl.learning_rate=0.1", cwd=tmp_path)
    _, err = finished.communicate(timeout=120)
    assert finished.returncode == 2  # a finished run is never reported as the new one
    assert "trl.learning_rate: 0.0001 -> 0.1" in err
    same = exprl(*argv, cwd=tmp_path)
    out, _ = same.communicate(timeout=120)
    assert same.returncode == 0 and "already finished, with this recipe (step 3)" in out
