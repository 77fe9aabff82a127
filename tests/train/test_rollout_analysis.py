"""`exprl analyze` reads the rollouts TRL keeps when a recipe sets `trl.log_completions: true`."""
from __future__ import annotations

import pytest

from exprl.eval.analyze import find_groups, write_analysis
from exprl.eval.annotate import RuleAnnotator
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training


@pytest.mark.slow
def test_training_rollouts_are_analysed_per_stage(answer_model, problems_file, tmp_path):
    config = TrainConfig(method="grpo", model=str(answer_model), data=DataConfig(train_files=[str(problems_file)]),
                         rollout_batches=2, trl=dict(per_device_train_batch_size=4, num_generations=4,
                                                     max_completion_length=24, log_completions=True,
                                                     num_completions_to_print=0, save_steps=10))
    run_training(config, tmp_path / "run")
    tables = sorted((tmp_path / "run" / "completions").glob("completions_*.parquet"))
    assert len(tables) == 2  # one per logged step
    groups = find_groups([tmp_path / "run"])
    assert [(g.label, g.stage) for g in groups] == [("grpo", "rollouts")]
    assert len(groups[0].traces) == 8 and all(t.tokens is None for t in groups[0].traces)
    analysis = write_analysis([tmp_path / "run"], tmp_path / "analysis", RuleAnnotator(), groups=groups)
    # The answer model writes `### add` / `### mul ### so` headings or a bare box.
    assert analysis["groups"][0]["delimiters"]["mean"] > 0
    assert analysis["groups"][0]["mean_tokens"] is None and "| grpo / rollouts | 8 | – |" in (
        tmp_path / "analysis" / "behaviours.md").read_text()
