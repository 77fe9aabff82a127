"""Fixtures shared by every test package."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EXPRL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# One torch process on 2 cores: keep OpenMP from spinning threads the machine does not have.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (MATH, MATH-500, GSM8K). A user's clone has no such folder: skip there."""
    if not (SHARED_DATA / "math500.jsonl").is_file():
        pytest.skip(f"real-data test: {SHARED_DATA} is absent (it exists beside the repo in CI)")
    return SHARED_DATA
