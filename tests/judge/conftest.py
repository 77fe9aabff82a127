"""Judge-test fixtures: one real llama.cpp server (SmolLM2-135M GGUF) for the whole session.

Not skipped when llama-cpp-python is missing: `make test` installs it, so a missing server is a
broken environment and its tests must fail loudly.
"""
from __future__ import annotations

import pytest

from exprl.judge.server import JudgeServer
from exprl.weights import smollm2_gguf_path


@pytest.fixture(scope="session")
def llama_judge_server():
    # One thread: the server shares two cores with the test process (docs: OpenMP contention).
    with JudgeServer(smollm2_gguf_path(), threads=1, startup_timeout_s=120) as server:
        yield server
