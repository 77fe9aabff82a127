"""benchmarks/gpu_acceptance.py --tiny: the GPU acceptance script's own code, run on a CPU (no vLLM, a
tiny model), so that the one command a GPU session runs is known to work before the device time is
spent. It checks the script, not a speed: the figures come from a GPU (docs/scaling.md, "On a GPU")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_acceptance_script_prints_one_json_line_with_every_row(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_acceptance.py"), "--tiny",
                           "--workdir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (line,) = done.stdout.splitlines()  # one JSON line on stdout, progress on stderr
    result = json.loads(line)
    assert set(result["rows"]) == {"exprl-outcome", "exprl-process", "trl-grpo"}
    assert (result["accelerate_config"], result["num_processes"], result["vllm"]) == ("fsdp2", 1, False)
    for name, row in result["rows"].items():
        assert len(row["steps"]) == result["steps"] and row["step_s"] > 0, name
        assert row["plan_strategy"] == "fsdp2" and row["plan_gib"] > 0, name  # the planner's estimate beside it
    assert "judge calls" in result["rows"]["exprl-process"]["note"]
    assert set(result["ratios"]) == {"exprl-outcome/trl-grpo", "exprl-process/trl-grpo"}
