"""`exprl eval`'s settings: flags, --config and --set build one EvalConfig (no model is loaded)."""
from __future__ import annotations

from exprl.cli import build_parser, main
from exprl.data.prompts import POLICY_SYSTEM_PROMPT, POLICY_TEMPERATURE
from exprl.eval.cli import eval_config_from_args


def settings(*argv: str):
    return eval_config_from_args(build_parser().parse_args(["eval", "--model", "m", *argv]))


def test_defaults_are_the_eval_configs_and_training_temperature():
    config = settings("--bench", "a.jsonl")
    assert config.benches == ["a.jsonl"] and config.n == 16
    assert config.temperature == POLICY_TEMPERATURE and config.system_prompt == POLICY_SYSTEM_PROMPT


def test_set_and_config_reach_the_settings_and_flags_win(tmp_path):
    recipe = tmp_path / "pipeline.yaml"
    recipe.write_text("eval:\n  benches: [b.jsonl]\n  n: 4\n  max_tokens: 32\n")
    config = settings("--config", str(recipe), "--set", "temperature=0.5", "--set", "n=8", "--max-tokens", "64",
                      "--system-prompt", "")
    assert (config.benches, config.n, config.temperature, config.max_tokens) == (["b.jsonl"], 8, 0.5, 64)
    assert config.system_prompt is None


def test_bad_settings_are_refused_before_any_model_is_loaded(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "missing"), "--bench", "a.jsonl", "--set", "nn=4"]) == 2
    assert "'nn'" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "missing"), "--bench", "a.jsonl", "--n", "0"]) == 2
    assert "n must be at least 1" in capsys.readouterr().err
