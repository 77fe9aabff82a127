"""Every shipped training recipe loads, and its `trl` section names real TRL config fields."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exprl.cli import main
from exprl.errors import ConfigError
from exprl.recipes import RECIPES_DIR
from exprl.train.config import load_train_config
from exprl.train.runner import check_trl_keys

CONFIGS = RECIPES_DIR
RECIPES = sorted(p for p in CONFIGS.glob("*.yaml") if p.name.startswith(("paper-exprl", "paper-grpo", "paper-sft",
                                                                          "paper-self", "paper-stage2", "cpu-")))


def test_all_recipes_are_present():
    names = {p.stem for p in RECIPES}
    for method in ("exprl-outcome", "exprl-process", "grpo", "sft", "self-distill"):
        assert f"paper-{method}" in names and f"cpu-tiny-{method}" in names
    assert {"paper-stage2", "cpu-smollm2-outcome"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_trl_keys_exist(recipe):
    config = load_train_config(recipe)
    check_trl_keys(config)
    # A bundled recipe's data never resolves against the package folder: names and paths stay as written.
    assert config.data.train_files == yaml.safe_load(recipe.read_text())["data"]["train_files"]


def test_unknown_recipe_key_names_it():
    with pytest.raises(ConfigError, match="reward.proces_mode"):
        load_train_config(CONFIGS / "cpu-tiny-exprl-process.yaml", ["reward.proces_mode=end"])


@pytest.mark.slow
@pytest.mark.parametrize("catalog_data", ["generated"], indirect=True)  # the behaviour is not the data's
def test_cli_trains_a_cpu_recipe_and_then_finds_it_done(catalog_data, tmp_path, capsys):
    # The bundled recipe by name, on gsm8k-train from the catalog's data folder ($EXPRL_DATA_DIR).
    args = ["train", "--config", "cpu-tiny-grpo", "--output-dir", str(tmp_path / "run"), "--set", "data.max_problems=2",
            "--set", "rollout_batches=1", "--set", "trl.max_completion_length=8", "--set", "trl.num_generations=2",
            "--set", "trl.per_device_train_batch_size=2"]
    assert main(args) == 0
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    capsys.readouterr()
    assert main(args) == 0
    assert "already finished" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("catalog_data", ["generated"], indirect=True)  # the behaviour is not the data's
@pytest.mark.parametrize("print_logs", [True, False])
def test_print_logs_switches_the_per_step_metrics_on_the_console(catalog_data, tmp_path, capsys, print_logs):
    run = tmp_path / "run"
    args = ["train", "--config", str(CONFIGS / "cpu-tiny-grpo.yaml"), "--output-dir", str(run),
            "--set", f"data.train_files=[{catalog_data / 'gsm8k_train.jsonl'}]", "--set", "data.max_problems=2",
            "--set", "rollout_batches=1", "--set", "trl.max_completion_length=8", "--set", "trl.num_generations=2",
            "--set", "trl.per_device_train_batch_size=2", "--set", f"print_logs={str(print_logs).lower()}"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert ("'loss'" in captured.out + captured.err) is print_logs
    assert "loss" in (run / "metrics.jsonl").read_text()  # the metrics are kept either way
