"""Training on TRL: the only package that imports trl.

`run_training(config, output_dir)` (which also resumes) is the entry point the pipeline, the demo and
`exprl train` use. Attributes are imported lazily so `import exprl.train.cli` (and `exprl --help`)
does not pull in torch or trl.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ExpRLTrainer", "TrainConfig", "TrainResult", "load_train_config", "run_training"]

_WHERE = {
    "ExpRLTrainer": "exprl.train.trainer",
    "TrainConfig": "exprl.train.config",
    "load_train_config": "exprl.train.config",
    "TrainResult": "exprl.train.runner",
    "run_training": "exprl.train.runner",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'exprl.train' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
