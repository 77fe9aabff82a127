from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A saved tiny char-level Llama (random weights): real HF loading and generation, in seconds."""
    from exprl.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", hidden_size=32, num_layers=1)
