"""TrainerCallbacks exprl adds to every run."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from exprl.rewards.monitors import Monitor
from exprl.train.config import RL_METHODS, TrainConfig

logger = logging.getLogger(__name__)


class MetricsJsonlCallback(TrainerCallback):
    """Appends every log TRL emits (its own metrics and exprl's `exprl/*`) to a local JSONL file,
    one object per logged step with `step` and `epoch`, whatever `report_to` is set to.

    With a `monitor` (RL methods), each logged row is also shown to it: an alert it raises is
    printed as a warning and appended as an `alert` record (`exprl.rewards.monitors.Alert.record`)
    after the row. A resumed run's monitor first reads back what the run logged before.
    """

    def __init__(self, path: str | Path, monitor: Monitor | None = None):
        self.path = Path(path)
        self.monitor = monitor

    def on_train_begin(self, args, state, control, **kwargs):
        if self.monitor is None or not state.is_world_process_zero or state.global_step == 0 or not self.path.is_file():
            return
        rows = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.monitor.restore(row for row in rows if row.get("step", 0) <= state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch}
        for key, value in logs.items():
            if isinstance(value, float) and not math.isfinite(value):
                value = None  # JSON has no NaN; a missing value is honest
            row[key] = value
        lines = [row]
        if self.monitor is not None:
            for alert in self.monitor.observe(state.global_step, row):
                logger.warning("exprl monitor alert at step %d, %s: %s", alert.step, alert.name, alert.message)
                lines.append(alert.record())
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(json.dumps(line, default=str) + "\n" for line in lines))


def metrics_callback(path: str | Path, config: TrainConfig) -> MetricsJsonlCallback:
    """The metrics.jsonl writer of a run, watched by the recipe's monitors where the method has rollouts
    the monitors read (ExpRLTrainer's RL methods)."""
    if config.method not in RL_METHODS:
        return MetricsJsonlCallback(path)
    from exprl.train.config import SIGNALS

    return MetricsJsonlCallback(path, Monitor(config.monitor, SIGNALS[config.method]))


class StopAfterStepsCallback(TrainerCallback):
    """Ends training after `steps` optimiser steps, leaving the run resumable (a planned interruption)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            control.should_save = True
            control.should_training_stop = True


class BarOnlyProgressCallback(ProgressCallback):
    """HF's progress bar without the dictionary of metrics it prints at every logged step.

    The metrics still reach `metrics.jsonl` and `report_to`; a console that shows five methods in a
    row (the demo) stays readable.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None
