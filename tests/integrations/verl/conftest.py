"""Fixtures of the verl adapter's tests. They run in verl's own environment (`make test-verl`,
.venv-verl); tests/conftest.py leaves this folder out where verl is not installed."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import exprl.integrations.verl as exprl_verl


def compose(name: str, overrides: list[str] = ()) -> Any:
    """One of the shipped verl configs, composed by Hydra as `verl.trainer.main_ppo` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(exprl_verl.CONFIG_DIR), version_base=None):
        return hydra_compose(config_name=name, overrides=list(overrides))


@pytest.fixture(scope="session")
def tokenizer():
    from exprl.tiny import build_char_tokenizer

    return build_char_tokenizer()


@pytest.fixture(scope="session")
def tokenizer_dir(tokenizer, tmp_path_factory) -> Path:
    """The tokenizer saved where verl's reward-loop worker loads the policy's tokenizer from."""
    path = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(path)
    return path


def pytest_configure(config):
    # verl announces every training engine it could not import (megatron, veomni, ...) on import.
    config.addinivalue_line("filterwarnings", "ignore:.* engine is not available:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:Disabled critic as algorithm.adv_estimator:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:Ray state API is no longer experimental:DeprecationWarning")
