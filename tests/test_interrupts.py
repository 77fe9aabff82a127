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
import textwrap
import time
from pathlib import Path

import pytest

from testing.loopback import LoopbackJudgeServer

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


# -- Issue 25: kill a data prepare rerun at several moments; a full disk; a long trace; a judge that stops
KILL_AT = textwrap.dedent("""
    # Runs `exprl` with one function wrapped to SIGKILL this process right after a given write, so a
    # kill lands at an exact moment of the command (a timer could not aim between two renames).
    import importlib, os, signal, sys
    prepare = importlib.import_module("exprl.data.prepare")  # the module (exprl.data exports a function of its name)
    moment, argv = sys.argv[1], sys.argv[2:]

    def kill_after(name, test):
        original = getattr(prepare, name)

        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            if test(args):
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(prepare, name, wrapped)

    if moment == "claimed":
        kill_after("claim_output_dir", lambda args: True)
    elif moment == "train-written":
        kill_after("write_problems", lambda args: str(args[0]).endswith("train.jsonl"))
    elif moment == "stats-written":
        kill_after("write_json_atomic", lambda args: str(args[0]).endswith("stats.json"))
    from exprl.cli import main
    sys.exit(main(argv))
""")


def run_exprl(argv: list[str], cwd: Path, *, prefix: list[str] | None = None, limit_bytes: int | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}

    def limits():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if limit_bytes is not None:  # a disk that fills up: writes past this size fail with EFBIG
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    command = [sys.executable, *(prefix or ["-m", "exprl.cli"]), *argv]
    return subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout,
                          preexec_fn=limits)


def problems_file(path: Path, count: int) -> Path:
    from exprl.data.loaders import write_problems
    from exprl.data.problem import Problem

    return write_problems(path, [Problem(id=f"p{i}", problem=f"Start at {i}. Add {i % 7 + 2}. Then double it. Result?",
                                         reference=f"{i} + {i % 7 + 2} = {i + i % 7 + 2}, doubled "
                                                   f"{2 * (i + i % 7 + 2)}, so \\boxed{{{2 * (i + i % 7 + 2)}}}",
                                         answer=str(2 * (i + i % 7 + 2))) for i in range(count)])


@pytest.mark.parametrize("moment", ["claimed", "train-written", "stats-written"])
def test_a_prepare_rerun_killed_at_any_moment_leaves_a_folder_every_reader_refuses(moment, tmp_path):
    """The issue's case: a rerun into its own folder with other settings (another test share), killed
    while writing, once left a new train.jsonl beside the old test.jsonl and loaded without a word."""
    from exprl.data.loaders import load_problems
    from exprl.errors import RunStateError

    problems_file(tmp_path / "corpus.jsonl", 200)
    first = run_exprl(["data", "prepare", "corpus.jsonl", "--out", "prep", "--set", "test_fraction=0.5"], tmp_path)
    assert first.returncode == 0, first.stderr
    rerun = ["data", "prepare", "corpus.jsonl", "--out", "prep", "--set", "test_fraction=0.1"]
    killed = run_exprl(rerun, tmp_path, prefix=["-c", KILL_AT, moment])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not list((tmp_path / "prep").glob("*.tmp")), "a temporary was left beside the outputs"

    for split in (None, "test"):
        with pytest.raises(RunStateError, match="incomplete.*exprl data prepare.*rebuild"):
            load_problems(tmp_path / "prep", split=split)
    stats = run_exprl(["data", "stats", "prep"], tmp_path)
    assert stats.returncode == 2 and "incomplete" in stats.stderr and "Traceback" not in stats.stderr
    train = run_exprl(["train", "--config", "cpu-tiny-sft", "--dry-run", "--set", "data.train_files=[prep/train.jsonl]",
                       "--output-dir", "run"], tmp_path)
    assert train.returncode == 0  # a plan reads no data; the run itself would refuse, as load_problems does

    again = run_exprl(rerun, tmp_path)  # the same command rebuilds it
    assert again.returncode == 0, again.stderr
    train_ids = {p.id for p in load_problems(tmp_path / "prep")}
    test_ids = {p.id for p in load_problems(tmp_path / "prep", split="test")}
    assert len(train_ids) + len(test_ids) == 200 and not train_ids & test_ids
    assert 5 <= len(test_ids) <= 40  # the rerun's 10%, not the first run's 50%


@pytest.mark.parametrize("command", ["judge run", "data prepare"])
def test_a_disk_that_fills_up_is_one_line_naming_the_path_and_leaves_nothing_half_written(command, tmp_path):
    """RLIMIT_FSIZE makes every write past 64 KiB fail (EFBIG), as a full disk makes it fail (ENOSPC):
    the same OSError at the same call, and unlike a full disk it can be set up without root."""
    limit = 64 * 1024
    if command == "judge run":
        rows = [{"id": f"t{i}", "problem": f"What is {i} + 1?", "reference": f"{i} + 1 = {i + 1}, \\boxed{{{i + 1}}}",
                 "trace": ("It is a long way. " * 40) + f"\\boxed{{{i + 1}}}"} for i in range(200)]
        (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        argv = ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl", "--cache", "", "--no-progress",
                "--mode", "process"]
        out = tmp_path / "judged.jsonl"
    else:
        problems_file(tmp_path / "corpus.jsonl", 2000)
        argv = ["data", "prepare", "corpus.jsonl", "--out", "prep"]
        out = tmp_path / "prep" / "train.jsonl"
    full = run_exprl(argv, tmp_path, limit_bytes=limit)
    lines = [line for line in full.stderr.splitlines() if line.strip()]
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr and lines[-1].startswith(f"exprl {command}: error: ")
    assert "larger than this file system or process allows" in lines[-1] and str(out.name) in lines[-1]
    assert not out.exists() and not list(tmp_path.rglob("*.tmp")), "half a file was left"

    again = run_exprl(argv, tmp_path)  # room again: the same command finishes
    assert again.returncode == 0, again.stderr
    assert out.is_file()


def long_trace(path: Path, steps: int = 48, equations: int = 250) -> Path:
    """One trace of `steps` `###` steps of `equations` equations each (about 4,000 characters a step):
    under the prefix view the reference judge grades longer and longer prefixes, up to seconds each."""
    def step(s: int) -> str:
        return f"### step {s}\n" + " ".join(f"{k} + 1 = {k + 1}." for k in range(s * equations, (s + 1) * equations))

    body = "".join(step(s) + "\n" for s in range(steps))
    row = {"id": "long", "problem": "Count up by one from 0. Where do you stop?",
           "reference": "0 + 1 = 1. 1 + 1 = 2. Keep going, so \\boxed{12000}", "answer": "12000",
           "trace": body + "### so \\boxed{12000}"}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_long_trace_shows_progress_off_a_terminal_and_stops_within_two_seconds_of_ctrl_c(tmp_path):
    import threading

    long_trace(tmp_path / "long.jsonl", steps=64, equations=300)
    argv = ["judge", "run", "--input", "long.jsonl", "--out", "out.jsonl", "--mode", "process", "--view", "prefix",
            "--cache", str(tmp_path / "judge.sqlite")]
    first = exprl(*argv, cwd=tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(first.stderr), daemon=True)
    reader.start()

    def judged() -> int:
        found = [int(m.group(1)) for line in list(lines) if (m := re.match(r"judge run: (\d+)/65 judgments", line))]
        return found[-1] if found else 0

    # Lines, though stderr is a pipe; Ctrl-C once the prefixes are long (a backend batch takes seconds).
    wait_for(lambda: judged() >= 24 or first.poll() is not None, timeout=300)
    assert first.poll() is None, "".join(lines)
    stopped = time.monotonic()
    first.send_signal(signal.SIGINT)
    first.wait(timeout=120)
    took = time.monotonic() - stopped
    reader.join(timeout=10)
    err = "".join(lines)
    assert first.returncode == 130, err
    assert took < 2.0, f"Ctrl-C took {took:.1f} s to be honoured"
    assert err.strip().splitlines()[-1].startswith("exprl judge run: interrupted")
    cached = cached_judgments(tmp_path / "judge.sqlite")
    assert cached >= judged()

    again = exprl(*argv, "--no-progress", cwd=tmp_path)
    _, err = again.communicate(timeout=900)
    assert again.returncode == 0, err
    assert f"{cached} cache hits" in err  # nothing judged before the stop is judged again


@pytest.mark.slow
@pytest.mark.llama_server
def test_a_judge_that_is_down_or_stops_answering_stops_training_resumably(tmp_path):
    """A CPU recipe judged by the real llama.cpp server. Down at the start: refused in seconds, before
    the model loads, the run folder untouched. Stopped mid-run: the breaker stops training after two
    unscorable rollout batches, exit 1 naming the cause, with a checkpoint; back up on another port,
    the same command (the new URL set, which a resume may change) finishes the run. No judge cache:
    judgments an earlier run left in the user's cache answered for the stopped judge, and the run finished."""
    from exprl.judge.server import JudgeServer
    from exprl.weights import smollm2_gguf_path

    problems_file(tmp_path / "problems.jsonl", 16)
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent("""\
        method: exprl-outcome
        model: tiny
        data: {train_files: [problems.jsonl]}
        judge: {backend: openai, model: smollm2, json_mode: true, max_new_tokens: 192, max_retries: 0, timeout_s: 120,
                concurrency: 4, max_trace_tokens: 256, cache_path: ''}
        monitor: {stop_unscorable_share: 0.5, stop_unscorable_batches: 2}
        rollout_batches: 6
        trl: {per_device_train_batch_size: 4, num_generations: 4, max_completion_length: 16, save_steps: 1,
              learning_rate: 1.0e-4, use_cpu: true, bf16: false}
        """), encoding="utf-8")
    argv = ["train", "--config", "recipe.yaml", "--output-dir", "run"]
    run_dir = tmp_path / "run"

    started = time.monotonic()
    down = run_exprl([*argv, "--set", "judge.base_urls=[http://127.0.0.1:9/v1]"], tmp_path)
    assert down.returncode == 2 and time.monotonic() - started < 60
    assert "the judge at http://127.0.0.1:9/v1 did not answer" in down.stderr and not run_dir.exists()

    server = JudgeServer(smollm2_gguf_path(), threads=1, startup_timeout_s=120).start()
    try:
        with_judge = [*argv, "--set", f"judge.base_urls=[{server.base_url}]"]
        first = exprl(*with_judge, cwd=tmp_path)
        wait_for(lambda: (run_dir / "checkpoint-1" / "trainer_state.json").is_file() or first.poll() is not None,
                 timeout=600)
    finally:
        server.stop()  # the judge goes away mid-run: its port now refuses every connection
    _, err = first.communicate(timeout=600)
    assert first.returncode == 1, err
    message = [line for line in err.splitlines() if line.startswith("exprl train: error: ")][-1]
    assert "training stopped at step" in message and "could not score" in message
    assert "monitor.stop_unscorable_batches 2" in message and "the last error: connection to" in message
    step = int(re.search(r"stopped at step (\d+)", message).group(1))
    assert step < 6 and (run_dir / f"checkpoint-{step}" / "trainer_state.json").is_file()
    assert not (run_dir / "train_result.json").exists()
    assert "FutureWarning" not in err

    server = JudgeServer(smollm2_gguf_path(), threads=1, startup_timeout_s=120).start()
    try:
        resumed = run_exprl([*argv, "--set", f"judge.base_urls=[{server.base_url}]"], tmp_path, timeout=900)
    finally:
        server.stop()
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout[resumed.stdout.rindex("\n{\n") + 1:])
    assert result["resumed"] and result["global_step"] == 6
