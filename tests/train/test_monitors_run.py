"""The training monitors in real (tiny, two-step) training runs judged by the reference judge: the
monitor metrics reach metrics.jsonl, an honest policy raises no alert and its report shows the
monitor plots and an empty Alerts section, and a policy that writes bare answers raises one."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from exprl.eval.report import write_report
from exprl.judge.types import JudgeConfig
from exprl.rewards.monitors import MonitorConfig
from exprl.runs import RUN_FORMAT, STAGES
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training

from .conftest import HONEST_TARGETS, build_answer_model

pytestmark = pytest.mark.slow

MONITOR_KEYS = ("exprl/dense_reward_mean", "exprl/sparse_correct", "exprl/response_tokens_mean",
                "exprl/overlong_share", "exprl/steps_per_trace_mean", "exprl/steps_per_trace_1",
                "exprl/bare_answer_share", "exprl/number_list_share", "exprl/unscorable_share", "exprl/judge_ok")


@pytest.fixture(scope="module")
def honest_model(tmp_path_factory):
    return build_answer_model(tmp_path_factory.mktemp("honest-model") / "model", targets=HONEST_TARGETS)


def stage1_config(model, problems_file, method: str) -> TrainConfig:
    return TrainConfig(method=method, model=str(model), data=DataConfig(train_files=[str(problems_file)]),
                       judge=JudgeConfig(backend="reference", cache_path=""),
                       trl=dict(max_steps=2, per_device_train_batch_size=4, num_generations=4,
                                max_completion_length=64, learning_rate=1e-3, save_strategy="no"))


def train_stage1(model, problems_file, run_dir, method: str):
    """A pipeline run folder whose Stage I is a real two-step run (the report reads pipeline runs)."""
    run_dir.mkdir()
    stages = {stage: {"state": "done" if stage == "stage1" else "pending"} for stage in STAGES}
    (run_dir / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "exprl_version": "test", "name": method,
                                                  "method": method, "stages": stages}))
    result = run_training(stage1_config(model, problems_file, method), run_dir / "stage1")
    return [json.loads(line) for line in result.metrics_path.read_text().splitlines()]


def test_an_honest_run_logs_the_monitors_and_its_report_has_no_alert(honest_model, problems_file, tmp_path):
    rows = train_stage1(honest_model, problems_file, tmp_path / "run", "exprl-process")
    logged = [row for row in rows if "loss" in row]
    assert [row["step"] for row in logged] == [1, 2]
    for key in MONITOR_KEYS:
        assert all(isinstance(row.get(key), float) for row in logged), key
    assert all(row["exprl/steps_per_trace_mean"] >= 2 for row in logged)  # it writes its `###` steps
    assert not [row for row in rows if row.get("record") == "alert"]

    report = write_report([tmp_path / "run"], tmp_path / "report").read_text()
    assert "](monitors_stage1.png)" in report
    assert (tmp_path / "report" / "monitors_stage1.png").stat().st_size > 10_000
    assert "- **exprl-process**, Stage I (2 monitored steps): none" in report.split("## Alerts")[1]
    # Thresholds change what is reported, not what is trained: a rerun with others is no changed recipe.
    stricter = dataclasses.replace(stage1_config(honest_model, problems_file, "exprl-process"),
                                   monitor=MonitorConfig(overlong_share=0.05))
    assert run_training(stricter, tmp_path / "run" / "stage1").already_done


def test_bare_answers_raise_an_alert_on_the_console_in_metrics_and_in_the_report(answer_model, problems_file,
                                                                                tmp_path, caplog):
    # answer_model writes nothing but boxes: `\boxed{12}`, `### add\n\boxed{5}`.
    with caplog.at_level(logging.WARNING, logger="exprl.train.callbacks"):
        rows = train_stage1(answer_model, problems_file, tmp_path / "run", "exprl-outcome")
    alerts = [row for row in rows if row.get("record") == "alert"]
    bare = [alert for alert in alerts if alert["name"] == "bare_answers"]
    assert len(bare) == 1 and bare[0]["step"] == 1 and bare[0]["value"] >= bare[0]["threshold"] == 0.25
    assert set(bare[0]) == {"record", "step", "name", "value", "threshold", "message"}
    assert len(alerts) == len({alert["name"] for alert in alerts})  # each fires once, not at both steps
    assert any("bare_answers" in message and "step 1" in message for message in caplog.messages)

    report = write_report([tmp_path / "run"], tmp_path / "report").read_text()
    assert f"  | 1 | `bare_answers` | {bare[0]['value']:.3g} | 0.25 |" in report.split("## Alerts")[1]
