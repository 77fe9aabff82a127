"""`exprl data filter`: the hard set, its statistics, its output rules, and resuming without resampling."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from exprl.cli import main
from exprl.data.loaders import load_problems, write_problems
from exprl.data.problem import Problem
from exprl.errors import ConfigError, DataError, OutputError, RunStateError
from exprl.eval.config import FilterConfig
from exprl.eval.filter import filter_problems
from exprl.eval.store import Generation

SRC = Path(__file__).resolve().parents[2] / "src"


class ScriptedPolicy:
    """A policy whose skill each problem states: `RATE=r` in the problem text means a share r of its
    samples box the right answer (decided by the request's seed, so reruns draw the same). It stands
    in for a model that solves some problems and not others, which the random tiny model never does;
    the real sampler is tested end to end below. Counts every completion it is asked for."""

    def __init__(self, answers: dict[str, str]):
        self.answers, self.requests = answers, 0

    def generate(self, conversations, seeds):
        out = []
        for conversation, seed in zip(conversations, seeds):
            text = conversation[-1]["content"]
            rate = float(text.split("RATE=")[1].split()[0])
            right = (zlib.crc32(str(seed).encode()) % 1000) / 1000 < rate
            answer = self.answers[text.strip()] if right else "-1"
            out.append(Generation(f"### 1: thinking\n\\boxed{{{answer}}}", 7))
        self.requests += len(conversations)
        return out


def problems(rates: dict[str, float], source: str = "toy") -> list[Problem]:
    return [Problem(id=f"{source}/{name}", problem=f"Problem {name}: RATE={rate} what is {i}+{i}?",
                    reference=f"{i}+{i}={2 * i}, so \\boxed{{{2 * i}}}", answer=str(2 * i), source=source,
                    meta={"level": 1 + i % 2})
            for i, (name, rate) in enumerate(rates.items(), start=1)]


def policy_for(rows: list[Problem]) -> ScriptedPolicy:
    return ScriptedPolicy({p.problem.strip(): p.answer for p in rows})


@pytest.fixture()
def toy(tmp_path):
    rows = problems({"never1": 0.0, "never2": 0.0, "always1": 1.0, "always2": 1.0, "half1": 0.5, "half2": 0.5})
    return write_problems(tmp_path / "toy.jsonl", rows), rows


def counts(out: Path) -> dict[str, int]:
    return {row["id"]: row["solved"] for row in map(json.loads, (out / "solve_counts.jsonl").read_text().splitlines())}


def test_filter_keeps_the_problems_solved_at_most_max_solved_times(tiny_model, toy, tmp_path):
    source, rows = toy
    out = tmp_path / "hard"
    policy = policy_for(rows)
    report = filter_problems(tiny_model, source, out, FilterConfig(n=8, max_solved=0), generator=policy)
    solved = counts(out)
    assert solved["toy/never1"] == solved["toy/never2"] == 0
    assert solved["toy/always1"] == solved["toy/always2"] == 8
    assert 0 < solved["toy/half1"] < 8 and 0 < solved["toy/half2"] < 8
    # The solve counts are the verifier's verdicts on the stored samples, one per sample.
    with sqlite3.connect(out / "generations.sqlite") as db:
        graded = dict(db.execute("SELECT substr(problem_id, 1, instr(problem_id, '#') - 1), SUM(correct) "
                                 "FROM generations GROUP BY problem_id"))
    assert graded == solved

    kept = load_problems(out)  # the folder reads as its kept problems, full Problem rows, reference and all
    assert [p.id for p in kept] == ["toy/never1", "toy/never2"]
    assert kept[0] == rows[0]
    assert [p.id for p in load_problems(out, split="dropped")] == ["toy/always1", "toy/always2", "toy/half1",
                                                                  "toy/half2"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats == report.stats
    assert stats["solve_counts"]["0"] == 2 and stats["solve_counts"]["8"] == 2
    assert sum(stats["solve_counts"].values()) == 6 and list(stats["solve_counts"]) == [str(c) for c in range(9)]
    assert stats["kept"] == 2 and stats["dropped"] == 4 and stats["kept_share"] == pytest.approx(2 / 6)
    assert stats["per_source"] == {"toy": {"problems": 6, "kept": 2, "kept_share": pytest.approx(2 / 6)}}
    assert stats["per_level"]["2"]["kept"] + stats["per_level"]["1"]["kept"] == 2
    assert stats["samples"] == {"generated": 48, "reused": 0} and policy.requests == 48
    assert not (out / "solve_counts.jsonl.partial").exists()


def test_more_samples_and_another_threshold_reuse_every_stored_sample(tiny_model, toy, tmp_path):
    source, rows = toy
    out = tmp_path / "hard"
    filter_problems(tiny_model, source, out, FilterConfig(n=4), generator=policy_for(rows))
    again = policy_for(rows)
    report = filter_problems(tiny_model, source, out, FilterConfig(n=6, max_solved=1), generator=again)
    assert again.requests == 6 * 2  # only samples 4 and 5 of each problem are new
    assert report.stats["samples"] == {"generated": 12, "reused": 24}
    counts = [json.loads(line) for line in (out / "solve_counts.jsonl").read_text().splitlines()]
    assert [row["n"] for row in counts] == [6] * len(rows) and rows
    kept = {p.id for p in load_problems(out)}
    assert {"toy/never1", "toy/never2"} <= kept and not {"toy/always1", "toy/always2"} & kept

    finished = policy_for(rows)  # the same command on a finished folder samples nothing
    assert filter_problems(tiny_model, source, out, FilterConfig(n=6, max_solved=1), generator=finished).stats[
        "kept"] == report.stats["kept"]
    assert finished.requests == 0

    with pytest.raises(RunStateError, match="temperature: 0.8 -> 1.0"):
        filter_problems(tiny_model, source, out, FilterConfig(n=6, temperature=1.0), generator=policy_for(rows))


def test_an_edited_problem_is_sampled_again(tiny_model, tmp_path):
    rows = problems({"a": 0.0, "b": 0.0})
    source = write_problems(tmp_path / "toy.jsonl", rows)
    filter_problems(tiny_model, source, tmp_path / "hard", FilterConfig(n=2), generator=policy_for(rows))
    edited = [rows[0], Problem(**{**rows[1].to_dict(), "problem": rows[1].problem.replace("RATE=0.0", "RATE=1.0")})]
    write_problems(source, edited)
    policy = policy_for(edited)
    report = filter_problems(tiny_model, source, tmp_path / "hard", FilterConfig(n=2), generator=policy)
    assert policy.requests == 2 and report.stats["kept"] == 1  # b's old samples answered its old text


def test_the_tiny_model_end_to_end_through_the_cli(tiny_model, tmp_path, capsys):
    rows = problems({"x": 0.0, "y": 0.0, "z": 0.0})
    source = write_problems(tmp_path / "toy.jsonl", rows)
    code = main(["data", "filter", "--model", str(tiny_model), "--input", str(source), "--out", str(tmp_path / "f"),
                 "--n", "2", "--max-tokens", "6", "--system-prompt", ""])
    assert code == 0
    printed = capsys.readouterr().out
    assert "kept 3 of 3 problems" in printed and "6 generated, 0 reused" in printed
    assert [p.id for p in load_problems(tmp_path / "f")] == ["toy/x", "toy/y", "toy/z"]


def test_outputs_follow_the_folder_rules(tiny_model, toy, tmp_path):
    source, rows = toy
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty and exprl did not write it"):
        filter_problems(tiny_model, source, stranger, generator=policy_for(rows))
    assert (stranger / "notes.txt").read_text() == "mine" and len(list(stranger.iterdir())) == 1

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_problems(data_dir / "toy.jsonl", rows)
    with pytest.raises(OutputError, match="inside the input folder"):
        filter_problems(tiny_model, data_dir, data_dir / "hard", generator=policy_for(rows))
    with pytest.raises(OutputError, match="contains the input"):
        filter_problems(tiny_model, data_dir / "toy.jsonl", tmp_path, generator=policy_for(rows))


def test_bad_input_is_named_before_any_sampling(tiny_model, tmp_path):
    rows = problems({"a": 0.0})
    twice = write_problems(tmp_path / "twice.jsonl", rows + rows)
    with pytest.raises(DataError, match="twice.jsonl:2, field 'id': duplicate id 'toy/a'"):
        filter_problems(tiny_model, twice, tmp_path / "out1")
    code = [Problem(id="lcb/1", problem="Write a program that prints 1.", reference="print(1)", answer="1",
                    domain="code", source="lcb")]
    with pytest.raises(ConfigError, match="domain 'code'.*no verifier"):
        filter_problems(tiny_model, write_problems(tmp_path / "code.jsonl", code), tmp_path / "out2")
    with pytest.raises(ConfigError, match="max_solved must be between 0 and n = 8"):
        FilterConfig(max_solved=9)
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_the_output_folder_holds_the_documented_files_and_reads_back(tiny_model, toy, tmp_path):
    """What `exprl data filter --help` promises DIR holds, and each file's contents as a reader sees them."""
    source, rows = toy
    out = tmp_path / "hard"
    filter_problems(tiny_model, source, out, FilterConfig(n=2, max_solved=0), generator=policy_for(rows))
    documented = {"kept.jsonl", "dropped.jsonl", "solve_counts.jsonl", "stats.json", "generations.sqlite",
                  "filter.json"}
    assert documented <= {p.name for p in out.iterdir()}
    never = ["toy/never1", "toy/never2"]
    assert [p.id for p in load_problems(out / "kept.jsonl")] == never
    assert len(load_problems(out / "dropped.jsonl")) == len(rows) - 2
    assert [(r["id"], r["n"], r["kept"]) for r in map(json.loads, (out / "solve_counts.jsonl").read_text().splitlines())
            ][:2] == [(never[0], 2, True), (never[1], 2, True)]
    assert json.loads((out / "stats.json").read_text())["kept"] == 2
    with sqlite3.connect(out / "generations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM generations").fetchone() == (2 * len(rows),)
    assert json.loads((out / "filter.json").read_text())


def stored_samples(path: Path) -> set[tuple[str, int]]:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return set(db.execute("SELECT problem_id, sample_index FROM generations"))
    except sqlite3.Error:
        return set()  # not created yet, or created but without its table yet


@pytest.mark.slow
def test_killed_filter_resumes_without_generating_a_sample_twice(tiny_model, tmp_path):
    """kill -9 mid-run (the real CLI, the real HF sampler), then the same command: the second run
    generates exactly the samples the first had not stored."""
    rows = problems({f"p{i}": 0.0 for i in range(12)})
    source = write_problems(tmp_path / "toy.jsonl", rows)
    out = tmp_path / "hard"
    argv = [sys.executable, "-m", "exprl.cli", "data", "filter", "--model", str(tiny_model), "--input", str(source),
            "--out", str(out), "--n", "4", "--batch-size", "4", "--max-tokens", "24", "--system-prompt", ""]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while len(stored_samples(out / "generations.sqlite")) < 12 and first.poll() is None:
        assert time.monotonic() < deadline, "the filter stored nothing"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    before = stored_samples(out / "generations.sqlite")
    assert first.returncode == -signal.SIGKILL
    assert 12 <= len(before) < 48 and not (out / "solve_counts.jsonl").exists()

    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples"] == {"generated": 48 - len(before), "reused": len(before)}
    assert len(stored_samples(out / "generations.sqlite")) == 48
    assert stats["problems"] == 12 and stats["kept"] == 12
