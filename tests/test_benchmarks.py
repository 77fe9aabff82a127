"""Every script in benchmarks/ run in its smallest mode (`--smoke`, benchmarks/_smoke.py): tiny inputs
that still go through the whole script, on any clone (generated data, no ../shared/data, no GPU).

The scripts are found by glob, so a new benchmark fails here until it has a smallest mode and a check
below of what it prints. A check reads the script's real output (its table, its JSON line) and asserts
its shape: a number where a number is printed, every row and key the script promises. The figures of a
smoke run mean nothing; that the script runs and prints them does.

Each run also gets a TMPDIR of its own, where no smoke folder may remain at exit: a smoke run leaves
nothing behind (no tiny model in a cache a real run would reuse).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))

NUMBER = r"-?\d+(?:\.\d+)?"
DEMO_METHODS = ("sft", "grpo", "self-distill", "exprl-outcome", "exprl-process")


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def table_rows(stdout: str, first_cell: str) -> list[list[str]]:
    """The cells of the markdown table rows whose first cell is `first_cell`."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells[1:])
    return rows


def assert_numbers(cells: list[str], count: int, pattern: str = NUMBER) -> None:
    assert len(cells) == count, cells
    for cell in cells:
        assert re.fullmatch(pattern, cell), cells


def check_data_prepare(out: str) -> None:
    loaded, kept = map(int, re.search(r"^rows loaded (\d+), kept (\d+), removed \{.+\}$", out, re.M).groups())
    assert 0 < kept <= loaded
    assert re.search(rf"wall time over 1 runs: median {NUMBER} s, min {NUMBER} s, max {NUMBER} s", out)


def check_demo_base(out: str) -> None:
    for split in ("easy", "hard", "train-hard"):
        (cells,) = table_rows(out, split)
        assert_numbers(cells, 12)
    for name in ("C1 competence", "C2 no sparse signal", "C3 partial coverage", "C4 guess-free metric"):
        assert re.search(rf"^{name}: .+: (holds|FAILS)$", out, re.M), name


def check_demo_filter(out: str) -> None:
    for split in ("easy", "hard"):
        found = re.search(rf"^{split}: 3 problems, solve rate per sample {NUMBER}%; kept (\d+), dropped (\d+) "
                          rf"\(kept {NUMBER}%\); solve counts 0:\d+ 1:\d+ 2:\d+$", out, re.M)
        assert found and sum(map(int, found.groups())) == 3, split
    assert re.search(r"^samples: 12 generated, 0 reused; ", out, re.M)  # 6 problems x n=2


def check_demo_judge_coincidences(out: str) -> None:
    for matching in ("any", "chain"):
        found = re.search(rf"^{matching}: 8 samples; credited checkpoints (\d+), of which coincidental (\d+) "
                          rf"\(\d+%\); scores (\{{.+\}})$", out, re.M)
        assert found, matching
        assert int(found[2]) <= int(found[1])
        assert sum(int(n) for n in re.findall(r": (\d+)", found[3])) == 8


def check_demo_learning(out: str) -> None:
    for table in ("## Table 1", "## Table 2", "## Table 3"):
        assert table in out
    for method in ("base", *DEMO_METHODS):
        rows = table_rows(out, method)
        assert len(rows) == 3, method  # one per table
        for cells in rows:
            for cell in cells:
                assert re.fullmatch(rf"{NUMBER}( ± {NUMBER})?", cell), (method, cells)
    assert re.search(r"^seeds: 1; wall time of this run \d+ s; report: .+report\.md$", out, re.M)


def check_demo_steps(out: str) -> None:
    for model in ("base", "exprl-process"):
        (cells,) = table_rows(out, model)
        assert_numbers(cells, 5)
    (positions,) = table_rows(out, "step")
    assert positions[-1] == "last" and positions[0] == "1"
    (advantages,) = table_rows(out, "A_t")
    assert_numbers(advantages, len(positions))


def check_gpu_acceptance(out: str) -> None:
    (line,) = out.splitlines()  # one JSON line on stdout, progress on stderr
    result = json.loads(line)
    assert set(result["rows"]) == {"exprl-outcome", "exprl-process", "trl-grpo"}
    assert (result["accelerate_config"], result["num_processes"], result["vllm"]) == ("fsdp2", 1, False)
    for name, row in result["rows"].items():
        assert len(row["steps"]) == result["steps"] and row["step_s"] > 0, name
        assert row["plan_strategy"] == "fsdp2" and row["plan_gib"] > 0, name  # the planner's estimate beside it
    assert "judge calls" in result["rows"]["exprl-process"]["note"]
    assert set(result["ratios"]) == {"exprl-outcome/trl-grpo", "exprl-process/trl-grpo"}


def check_gpu_step_time(out: str) -> None:
    result = last_json(out)
    assert result["shape"] == "tiny"
    rows = result["rows"]
    assert set(rows) == {"generate-dynamic", "generate-static", "exprl-process", "exprl-outcome-static", "anchor"}
    assert "skipped" in rows.pop("anchor")  # no --anchor: a row that says why
    for name, row in rows.items():
        assert row["s"] > 0 and row["tokens"] > 0 and row["tok_per_s"] > 0, name
        assert table_rows(out, name), name
    assert "steps/trace" in rows["exprl-process"]["note"]
    assert set(result["ratios"]) == {"static_speedup"}


def check_judge_hacking(out: str) -> None:
    assert re.search(r"^4 problems \(2 GSM8K train, 2 MATH train, rows from 1000\), (\d+) traces, 4 CLI runs", out, re.M)
    assert re.search(r"^clean right traces: outcome score 5 for \d/4, lowest \d; clean wrong traces: highest outcome "
                     r"score \d$", out, re.M)
    header = out.index("| attack family |")
    families = [line for line in out[header:].splitlines()[2:] if line.startswith("| ")]
    assert len(families) == 9
    for line in families:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert re.fullmatch(r"[a-z_]+", cells[0]) and re.fullmatch(r"\d", cells[1]), line
        assert re.fullmatch(r"[+-]\d", cells[3]), line
        for counts in (cells[2], cells[4]):
            assert re.fullmatch(r"\d+/\d+/\d+/\d+", counts), line


def check_judge_prefill(out: str) -> None:
    result = last_json(out)
    assert result["problems"] == 1
    for key in ("outcome", "process", "prefix", "segment", "step", "llama_shared-first_segment",
                "llama_shared-first_prefix"):
        assert 0 < result[f"{key}_share"] <= 1, key
    for mode in ("outcome", "prefix", "segment", "step"):
        assert re.search(rf"^ *{mode} +\d+ +\d+ +[\d,]+ +[\d,]+ +{NUMBER}$", out, re.M), mode


def check_judge_throughput(out: str) -> None:
    loopback = out[out.index("(b) loopback"):out.index("client overhead")]
    llama = out[out.index("(a) llama.cpp"):]
    for c in (1, 4, 16, 64):
        assert re.search(rf"^ +{c} +{c} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}% +{NUMBER}$", loopback, re.M), c
        assert re.search(rf"^ +{c} +1 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} \{{'\w+': 1\}}$", llama, re.M), c
    assert len(re.findall(rf"16 calls, {NUMBER} ms wall/call, {NUMBER} ms client CPU/call", out)) == 2
    assert re.search(rf"^cache hits: 32 judgments in {NUMBER} ms", out, re.M)


def check_monitor_detectors(out: str) -> None:
    for name in ("gsm8k_train", "gsm8k_test", "math_train", "math_test_excl_math500", "math500"):
        assert re.search(rf"^{name}\.jsonl +\d+ +{NUMBER} +{NUMBER} +\d+$", out, re.M), name
    families = re.findall(rf"^([a-z_]+(?: \((?:right|wrong)\))?) +(\d+) +({NUMBER}) +({NUMBER})$", out, re.M)
    assert {"clean (right)", "clean (wrong)", "number_list", "bare_answer"} <= {f[0] for f in families}
    assert re.search(r"^read_traits: \d+ us per trace over \d+ suite traces$", out, re.M)
    assert re.search(rf"^read_traits: {NUMBER} ms on a 60,000-character trace", out, re.M)


def check_monitor_tiny_runs(out: str) -> None:
    assert re.search(r"^exprl-process-lr0\.001: 2 steps in \d+ s$", out, re.M)
    steps = re.findall(rf"^ +(\d) +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}$",
                       out, re.M)
    assert steps == ["1", "2"]
    assert re.search(r"^report: .+report\.md$", out, re.M)


def check_reference_judge_speed(out: str) -> None:
    for label, count in (("synthetic, prefix-mode steps", 20), ("MATH-500, wrong-reference outcome", 4)):
        for state in ("cold", "warm"):
            assert re.search(rf"^{re.escape(label)} +{state}: {count} judgments in {NUMBER} s \([\d,]+/s\), "
                             rf"{count} scored$", out, re.M), (label, state)


def check_reward_path(out: str) -> None:
    result = last_json(out)
    assert result["rollouts"] == 4 and set(result["lengths"]) == {"64", "128"}
    for row in result["lengths"].values():
        for stage in ("decode", "split", "token_steps", "requests", "judge_service", "records", "advantages",
                      "tensor"):
            assert row[stage] >= 0, stage
        assert row["total_s"] > 0 and row["steps_per_rollout"] >= 1
    assert isinstance(result["linear"], bool) and isinstance(result["target_met"], bool)


def check_single_step_share(out: str) -> None:
    assert re.search(r"2 rollout batches, single_step=\w+, label smoke$", out, re.M)
    for name in ("first 10", "last 10", "all"):
        (cells,) = table_rows(out, name)
        assert_numbers(cells[:2], 2, rf"{NUMBER}%")
        assert_numbers(cells[2:], 1)
    assert re.search(rf"one-step rollouts ({NUMBER}|-), multi-step rollouts ({NUMBER}|-)$", out, re.M)


def check_step_overhead(out: str) -> None:
    result = last_json(out)
    assert result["completions"] == 4
    for method in ("grpo", "exprl_outcome", "exprl_process"):
        row = result[method]
        assert row["step_s"] > 0 and row["judge_calls"] >= 0 and row["x_grpo"] > 0, method
    assert result["grpo"]["judge_calls"] == 0 < result["exprl_outcome"]["judge_calls"]


def check_demo_machinery(out: str) -> None:
    row = last_json(out)
    assert row["design"] == "smoke" and row["budget"] == 1 and row["fresh_pool"] is True
    assert [name.split()[0] for name in row["base"]["conditions"]] == ["C1", "C2", "C3", "C4"]
    assert set(row["methods"]) == {"grpo", "exprl-outcome"} and row["oracle_method"] == "exprl-outcome"
    for method in row["methods"].values():
        for split in ("hard", "easy"):
            assert 0 <= method[split]["every_step_pass_n"] <= 100 and 0 <= method[split]["pass1"] <= 100
    assert isinstance(row["machinery_holds"], bool)


CHECKS: dict[str, Callable[[str], None]] = {
    "data_prepare.py": check_data_prepare,
    "demo_base.py": check_demo_base,
    "demo_filter.py": check_demo_filter,
    "demo_judge_coincidences.py": check_demo_judge_coincidences,
    "demo_learning.py": check_demo_learning,
    "demo_machinery.py": check_demo_machinery,
    "demo_steps.py": check_demo_steps,
    "gpu_acceptance.py": check_gpu_acceptance,
    "gpu_step_time.py": check_gpu_step_time,
    "judge_hacking.py": check_judge_hacking,
    "judge_prefill.py": check_judge_prefill,
    "judge_throughput.py": check_judge_throughput,
    "monitor_detectors.py": check_monitor_detectors,
    "monitor_tiny_runs.py": check_monitor_tiny_runs,
    "reference_judge_speed.py": check_reference_judge_speed,
    "reward_path.py": check_reward_path,
    "single_step_share.py": check_single_step_share,
    "step_overhead.py": check_step_overhead,
}
# Near 10 s or over at one thread on one core (the durations in docs/architecture.md's Tests section).
SLOW = {"demo_learning.py", "demo_steps.py", "gpu_acceptance.py", "gpu_step_time.py", "judge_prefill.py",
        "judge_throughput.py", "monitor_tiny_runs.py", "reward_path.py", "step_overhead.py"}
# They start the real llama.cpp judge server (SmolLM2-135M GGUF), as `exprl judge serve` does.
LLAMA = {"judge_prefill.py", "judge_throughput.py"}


def marks(script: str) -> list:
    return [*([pytest.mark.slow] if script in SLOW else []), *([pytest.mark.llama_server] if script in LLAMA else [])]


def test_every_benchmark_is_found():
    assert len(SCRIPTS) >= 17 and "reward_path.py" in SCRIPTS and "_smoke.py" not in SCRIPTS


@pytest.mark.parametrize("script", [pytest.param(s, marks=marks(s)) for s in SCRIPTS])
def test_smallest_mode_runs_and_prints_the_scripts_figure(script, tmp_path):
    check = CHECKS.get(script)
    assert check is not None, (f"benchmarks/{script} has no check in tests/test_benchmarks.py: give it a --smoke "
                               f"mode (benchmarks/_smoke.py) and a check of what it prints")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    try:
        check(done.stdout)
    except Exception as error:
        raise AssertionError(f"{script} --smoke printed an unexpected shape:\n{done.stdout[-4000:]}") from error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"], "a smoke run wrote outside its temporary folder"
    # torch's own compile cache (torchinductor_<user>) may stay: it is not the script's.
    left = sorted(p.name for p in scratch.glob("exprl-smoke-*"))
    assert not left, f"a smoke run left {left} behind"
