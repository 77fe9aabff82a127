"""TrainerCallbacks exprl adds to every run."""
from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback


class MetricsJsonlCallback(TrainerCallback):
    """Appends every log TRL emits (its own metrics and exprl's `exprl/*`) to a local JSONL file,
    one object per logged step with `step` and `epoch`, whatever `report_to` is set to."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch}
        for key, value in logs.items():
            if isinstance(value, float) and not math.isfinite(value):
                value = None  # JSON has no NaN; a missing value is honest
            row[key] = value
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")


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
