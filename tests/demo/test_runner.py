"""`exprl demo`: option validation before any work, and a reduced demo end to end."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exprl.config import load_config
from exprl.data.synthetic import parse_problem_text
from exprl.demo.config import DemoConfig
from exprl.demo.runner import run_demo
from exprl.errors import ConfigError, RunStateError, ServerError
from exprl.recipes import RECIPES_DIR

REPO = Path(__file__).resolve().parents[2]

# Sized for seconds per stage on 2 cores: a 1-layer base, one optimiser step per stage, 2 samples.
REDUCED = [
    "task.num_train_hard=4", "task.num_eval_hard=3", "task.num_eval_easy=3",
    "base.hidden_size=32", "base.num_layers=1", "base.num_heads=2", "base.steps=40",
    "base.num_problems=400", "base.batch_size=16",
    "training.stage1_steps=1", "training.stage2_steps=1", "training.num_generations=2",
    "training.prompts_per_step=2", "training.max_completion_length=24",
    "eval.n=2", "eval.max_tokens=24",
]


def assert_conditions_come_first_and_from_this_run(report: str, seed_dir: Path) -> None:
    """The report opens with C1-C4, each measured on this run's base model, before any method table."""
    from exprl.demo.runner import CONDITION_GROUPS_PER_PROBLEM
    from exprl.eval.evaluate import read_results

    assert report.index("## Conditions") < report.index("## Table 1") < report.index("## Table 2")
    section = report[report.index("## Conditions"):report.index("## Table 1")]
    for name in ("C1 competence", "C2 no sparse signal", "C3 partial coverage", "C4 guess-free metric"):
        assert name in section
    train_hard = json.loads((seed_dir / "train-hard-base.json").read_text())
    # several groups a problem: one group a problem made C2's estimate too noisy to decide on
    assert train_hard["samples_per_problem"] == CONDITION_GROUPS_PER_PROBLEM * train_hard["group_size"] > 2
    easy_pass1 = 100 * read_results(seed_dir / "sft" / "eval" / "base")["easy"]["pass_at_k"]["1"]
    assert f"easy pass@1 {easy_pass1:.1f}%" in section
    assert f"{train_hard['group_success']:.1f}% of groups" in section
    assert f"first step right {train_hard['first_step_right']:.1f}%" in section
    assert "every step right pass@1" in report[report.index("## Table 1"):]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exprl.cli", "demo", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shipped_recipe_loads_and_matches_the_defaults():
    config = load_config(DemoConfig, RECIPES_DIR / "demo.yaml")
    assert config == DemoConfig()


def test_seeds_below_one_is_a_clear_error_before_any_work(tmp_path):
    out = run_cli("--seeds", "0", "--output-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert out.returncode == 2
    assert "'seeds' must be at least 1" in out.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="training.stage1_stepz"):
        load_config(DemoConfig, overrides=["training.stage1_stepz=3"])
    with pytest.raises(ConfigError, match="methods"):
        load_config(DemoConfig, overrides=["methods=[ppo]"])


def test_judge_url_that_does_not_answer_fails_before_training(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = load_config(DemoConfig, overrides=["judge=openai", f"judge_url={url}", f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(ServerError, match="does not answer"):
        run_demo(config, log=lambda m: None)
    assert not (tmp_path / "run").exists()
    out = run_cli("--judge-url", url, "--output-dir", str(tmp_path / "run2"), cwd=tmp_path)
    assert out.returncode != 0 and "does not answer" in out.stderr
    assert not (tmp_path / "run2").exists()


@pytest.mark.slow
def test_reduced_demo_runs_end_to_end_and_resumes(tmp_path):
    run_dir = tmp_path / "demo"
    config = load_config(DemoConfig, overrides=REDUCED + [f"output_dir={run_dir}"])

    def interrupt_at_third_method(message: str) -> None:
        if "self-distill: Stage I" in message:
            raise KeyboardInterrupt  # what Ctrl-C does between two methods

    with pytest.raises(KeyboardInterrupt):
        run_demo(config, log=interrupt_at_third_method)
    finished_before = {m: json.loads((run_dir / "seed-0" / m / "run.json").read_text()) for m in ("sft", "grpo")}
    assert all(state["finished"] for state in finished_before.values())
    assert not (run_dir / "seed-0" / "self-distill").exists()

    messages: list[str] = []
    report = run_demo(config, log=messages.append)
    for method, before in finished_before.items():  # resumed: finished methods were not redone
        assert json.loads((run_dir / "seed-0" / method / "run.json").read_text()) == before

    assert report == run_dir / "report.md"
    text = report.read_text()
    for method in ("sft", "grpo", "self-distill", "exprl-outcome", "exprl-process"):
        assert method in text
        state = json.loads((run_dir / "seed-0" / method / "run.json").read_text())
        assert state["finished"], (method, state)
    assert "Table 1" in text and "Table 2" in text
    assert_conditions_come_first_and_from_this_run(text, run_dir / "seed-0")
    process_metrics = (run_dir / "seed-0" / "exprl-process" / "stage1" / "metrics.jsonl").read_text()
    assert "exprl/process_advantage_step_1" in process_metrics
    # The plots come after the tables, and every image the report shows exists.
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert any(Path(image).name.startswith("pass_at_k") for image in images), images
    assert text.index("## Table 2") < text.index("![")
    for image in images:
        assert (run_dir / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The held-out benchmarks are the two difficulty splits, and the reference never reached a prompt.
    hard = [json.loads(line) for line in (run_dir / "seed-0" / "data" / "hard.jsonl").read_text().splitlines()]
    lengths = range(config.task.hard_min_steps, config.task.hard_max_steps + 1)
    assert {len(parse_problem_text(p["problem"]).steps) for p in hard} <= set(lengths)
    assert any("reusing" in m for m in messages)  # the base model trained before the interrupt

    # Run again: every stage is finished, so nothing is trained and the base model is reused.
    again: list[str] = []
    assert run_demo(config, log=again.append) == report
    assert any("reusing" in m for m in again)

    # Another setting on the same directory is refused rather than mixed in.
    changed = load_config(DemoConfig, overrides=REDUCED + [f"output_dir={run_dir}", "eval.n=3"])
    with pytest.raises(RunStateError, match="eval"):
        run_demo(changed, log=lambda m: None)


@pytest.mark.slow
def test_judge_url_sends_the_exprl_methods_judgments_to_that_server(tmp_path):
    from testing.loopback import LoopbackJudgeServer

    run_dir = tmp_path / "demo"
    with LoopbackJudgeServer() as server:
        config = load_config(DemoConfig, overrides=REDUCED + [
            f"output_dir={run_dir}", "judge=openai", f"judge_url={server.base_url}", "judge_model=loopback",
            "methods=[exprl-outcome, exprl-process]", "training.stage2_steps=1"])
        report = run_demo(config, log=lambda m: None)
        assert server.request_count > 0
    assert report.is_file()
    recipe = (run_dir / "seed-0" / "exprl-outcome" / "stage1" / "recipe.yaml").read_text()
    assert "backend: openai" in recipe and server.base_url in recipe


def test_long_pretraining_traces_can_stop_short_of_the_hard_split():
    from exprl.demo.runner import task_splits

    default = task_splits(load_config(DemoConfig), seed=0)
    assert default["pretrain-long"].max_steps == default["hard"].max_steps
    shorter = task_splits(load_config(DemoConfig, overrides=["task.pretrain_long_max_steps=6"]), seed=0)
    assert (shorter["pretrain-long"].min_steps, shorter["pretrain-long"].max_steps) == (4, 6)
    with pytest.raises(ConfigError, match="pretrain_long_max_steps"):
        load_config(DemoConfig, overrides=["task.pretrain_long_max_steps=3"])
