"""The recipes exprl ships (training, pipeline, benchmark and demo YAMLs), package data beside this file.

They live inside the package, as TRL's accelerate configs do, so that an installed exprl has them too.
"""
from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent
