"""`exprl pipeline` on a tiny model: SFT Stage I -> sparse GRPO Stage II, one step each, real TRL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from exprl.cli import main
from exprl.errors import ConfigError, OutputError, RunStateError
from exprl.pipeline import load_pipeline_config, pipeline_recipes, plan_pipeline, run_pipeline
from exprl.recipes import RECIPES_DIR
from exprl.runs import read_run

CANARY = "REFERENCE-CANARY-51c2"
CONFIGS = RECIPES_DIR
PIPELINES = sorted(CONFIGS.glob("pipeline-*.yaml"))
STAGE1_RECIPES = sorted(p for p in CONFIGS.glob("*.yaml") if p.name.startswith(("paper-", "cpu-"))
                        and p.stem not in ("paper-stage2", "cpu-tiny-stage2"))


@pytest.fixture()
def pipeline_files(tmp_path, generated_data):
    rows = [json.loads(line) for line in (generated_data / "gsm8k_train.jsonl").read_text().splitlines()[:4]]
    with (tmp_path / "train.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps({**row, "solution": f"{row['solution']} {CANARY}\n#### {row['answer']}"}) + "\n")
    (tmp_path / "stage1.yaml").write_text(
        "method: sft\nmodel: tiny\ndata:\n  train_files: [train.jsonl]\n"
        "trl:\n  max_steps: 1\n  per_device_train_batch_size: 2\n  save_steps: 1\n")
    (tmp_path / "stage2.yaml").write_text(
        "method: grpo\nmodel: unused\nreward:\n  outcome_normalize: mean\nrollout_batches: 1\n"
        "trl:\n  num_generations: 2\n  per_device_train_batch_size: 2\n  max_completion_length: 8\n"
        "  save_steps: 1\n")
    (tmp_path / "pipeline.yaml").write_text(
        "name: sft-tiny\nstage1:\n  recipe: stage1.yaml\nstage2:\n  recipe: stage2.yaml\n"
        f"eval:\n  benches: [{generated_data / 'gsm8k_test.jsonl'}]\n  limit: 3\n  n: 2\n  max_tokens: 8\n")
    return tmp_path


@pytest.mark.slow
def test_pipeline_runs_every_stage_then_skips_them_when_rerun(pipeline_files, capsys):
    run_dir = pipeline_files / "run"
    assert main(["pipeline", "--config", str(pipeline_files / "pipeline.yaml"), "--run-dir", str(run_dir)]) == 0
    state = read_run(run_dir)
    assert state["finished"] and state["method"] == "sft" and state["name"] == "sft-tiny"
    assert {s: r["state"] for s, r in state["stages"].items()} == {
        "filter": "skipped", "base_eval": "done", "stage1": "done", "stage1_eval": "done", "stage2": "done",
        "stage2_eval": "done"}
    assert state["stages"]["stage2"]["method"] == "grpo"
    # The pipeline states which Stage II it runs, and what each stage was planned to do.
    assert state["stages"]["stage2"]["recipe"].endswith("stage2.yaml")
    plan = json.loads((run_dir / "plan.json").read_text())
    assert [(s["name"], s["method"], s["rollout_batches"]) for s in plan["stages"]] == [
        ("stage1", "sft", None), ("stage2", "grpo", 1)]
    # Stage II starts from the Stage-I checkpoint and never sees a reference solution.
    stage2_recipe = (run_dir / "stage2-recipe.yaml").read_text()
    assert str(run_dir / "stage1" / "final") in stage2_recipe
    assert CANARY not in (run_dir / "stage2-prompts.jsonl").read_text()
    for stage in ("base", "stage1", "stage2"):
        result = json.loads((run_dir / "eval" / stage / "gsm8k_test.json").read_text())
        assert result["num_problems"] == 3 and result["n"] == 2
    assert (run_dir / "stage1" / "metrics.jsonl").is_file() and (run_dir / "stage2" / "metrics.jsonl").is_file()

    stamps = {s: r.get("started") for s, r in state["stages"].items()}  # a skipped stage never started
    assert main(["pipeline", "--config", str(pipeline_files / "pipeline.yaml"), "--run-dir", str(run_dir)]) == 0
    again = read_run(run_dir)
    assert {s: r.get("started") for s, r in again["stages"].items()} == stamps

    assert main(["report", str(run_dir)]) == 0
    report = (run_dir / "report" / "report.md").read_text()
    assert "| sft-tiny |" in report and (run_dir / "report" / "pass_at_k_gsm8k_test.png").is_file()


@pytest.mark.slow
def test_a_failed_stage_is_recorded_and_resumed(pipeline_files, monkeypatch):
    import importlib

    evaluate_module = importlib.import_module("exprl.eval.evaluate")

    run_dir = pipeline_files / "run"
    config = load_pipeline_config(pipeline_files / "pipeline.yaml", ["stage2.enabled=false"])
    real = evaluate_module.evaluate_config
    calls = []

    def failing_once(model, cfg, out_dir, generator=None):
        calls.append(str(out_dir))
        if str(out_dir).endswith("stage1") and len([c for c in calls if c.endswith("stage1")]) == 1:
            raise KeyboardInterrupt
        return real(model, cfg, out_dir, generator)

    monkeypatch.setattr(evaluate_module, "evaluate_config", failing_once)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, run_dir)
    state = read_run(run_dir)
    assert state["stages"]["stage1"]["state"] == "done"
    assert state["stages"]["stage1_eval"]["state"] == "interrupted"
    assert state["stages"]["stage2"]["state"] == "skipped"

    state = run_pipeline(config, run_dir)
    assert state["finished"] and state["stages"]["stage1_eval"]["state"] == "done"
    assert [c.rsplit("/", 1)[-1] for c in calls] == ["base", "stage1", "stage1"]


def test_incompatible_or_foreign_run_dirs_are_refused(pipeline_files):
    config = load_pipeline_config(pipeline_files / "pipeline.yaml")
    foreign = pipeline_files / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty and exprl did not write it"):
        run_pipeline(config, foreign)
    old = pipeline_files / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"format": 0, "exprl_version": "0.0.1"}))
    with pytest.raises(RunStateError, match="written by exprl 0.0.1"):
        run_pipeline(config, old)


def test_cli_override_of_an_unknown_key_is_refused_before_anything_runs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["pipeline", "--config", str(CONFIGS / "pipeline-cpu-smoke.yaml"),
                 "--run-dir", str(run_dir), "--set", "eval.nn=4"])
    assert code == 2
    assert "'eval.nn'" in capsys.readouterr().err
    assert not run_dir.exists()


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.stem)
@pytest.mark.parametrize("world_size", [None, 1, 2])
def test_every_shipped_pipeline_plans_every_stage1_recipe(pipeline, world_size):
    stage2_plans = {}
    for recipe in STAGE1_RECIPES:
        config = load_pipeline_config(pipeline, [f"stage1.recipe={recipe}"])
        plans = plan_pipeline(config, pipeline_recipes(config), world_size)
        assert [p.name for p in plans] == ["stage1", "stage2"]
        # The launch line names the method's run folder and the memory plan is for the Stage-I model's
        # shape (Stage II trains its checkpoint); the rest is Stage II's own.
        stage2_plans[recipe.stem] = {k: v for k, v in plans[1].to_dict().items() if k not in ("launch", "memory")}
    # Stage II is one recipe for every Stage-I method: nothing of Stage I shows in its plan.
    assert len(stage2_plans) == len(STAGE1_RECIPES) > 1
    first = next(iter(stage2_plans.values()))
    assert all(plan == first for plan in stage2_plans.values())


def test_paper_pipeline_dry_run_for_every_method_gives_one_stage2(capsys, tmp_path, monkeypatch):
    """Each stage at the paper's world size (ExpRL's Stage I on 6 GPUs beside the judge, the rest on 8),
    one run folder and label per method, and one Stage II for all."""
    monkeypatch.chdir(tmp_path)
    stage2, folders = [], set()
    for method in ("exprl-outcome", "exprl-process", "grpo", "sft", "self-distill"):
        assert main(["pipeline", "--config", str(CONFIGS / "pipeline-paper-qwen3-4b.yaml"), "--set",
                     f"stage1.recipe=paper-{method}.yaml", "--dry-run", "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        stage1, second = document["stages"]
        assert stage1["method"] == method and document["label"] == method
        assert (stage1["world_size"], second["world_size"]) == (6 if method.startswith("exprl") else 8, 8)
        assert f"--output-dir runs/{method}/stage1" in stage1["launch"]["command"]
        assert f"--set model=runs/{method}/stage1/final" in second["launch"]["command"]
        assert stage1["memory"]["fits"] and second["memory"]["fits"]
        if method != "sft":
            assert stage1["rollout_batches"] == 230
        folders.add(document["run_dir"])
        stage2.append({k: v for k, v in second.items() if k != "launch"})
    assert folders == {f"runs/{m}" for m in ("exprl-outcome", "exprl-process", "grpo", "sft", "self-distill")}
    assert all(s == stage2[0] for s in stage2)
    assert not list(tmp_path.iterdir())  # a dry run writes nothing
    assert (stage2[0]["method"], stage2[0]["num_generations"], stage2[0]["rollout_batches"]) == ("grpo", 32, 500)
    assert (stage2[0]["loss"]["beta"], stage2[0]["loss"]["clip_high"], stage2[0]["optimizer"]["max_grad_norm"],
            stage2[0]["advantages"]["outcome_normalize"]) == (0.0, 4.0, 0.3, "mean")


def test_a_doomed_stage2_is_refused_before_stage1_starts(pipeline_files, capsys):
    run_dir = pipeline_files / "run"
    args = ["pipeline", "--config", str(pipeline_files / "pipeline.yaml"), "--run-dir", str(run_dir),
            "--set", "stage2.trl.num_generations=3"]
    assert main(args + ["--dry-run"]) == 2
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "stage2" in err and "trl.num_generations" in err
    assert not run_dir.exists()  # nothing was trained, evaluated or even written


def test_stage2_must_be_sparse_grpo_and_prompts_must_agree(pipeline_files):
    config = load_pipeline_config(pipeline_files / "pipeline.yaml", ["stage2.recipe=stage1.yaml"])
    with pytest.raises(ConfigError, match="method must be grpo, not sft"):
        pipeline_recipes(config)
    config = load_pipeline_config(pipeline_files / "pipeline.yaml", ["eval.system_prompt=Answer."])
    with pytest.raises(ConfigError, match="eval.system_prompt"):
        plan_pipeline(config, pipeline_recipes(config), 1)


@pytest.mark.slow
def test_a_filter_step_trains_stage1_on_the_base_models_hard_set(tmp_path, capsys):
    """The tiny random base solves nothing, so its hard set is every problem; Stage I trains on RUN/filter."""
    rows = [{"id": f"t{i}", "problem": f"What is {i} + {i}?", "reference": f"{i} + {i} = \\boxed{{{2 * i}}}",
             "answer": str(2 * i)} for i in range(3)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "stage1.yaml").write_text(
        "method: sft\nmodel: tiny\ndata:\n  train_files: [train.jsonl]\n"
        "trl:\n  max_steps: 1\n  per_device_train_batch_size: 2\n  save_steps: 1\n")
    (tmp_path / "pipeline.yaml").write_text(
        "name: filtered\nevaluate_base: false\nstage1:\n  recipe: stage1.yaml\nstage2:\n  enabled: false\n"
        "filter:\n  enabled: true\n  n: 2\n  max_tokens: 6\n"
        "eval:\n  benches: [train.jsonl]\n  n: 2\n  max_tokens: 6\n")
    run_dir = tmp_path / "run"
    args = ["pipeline", "--config", str(tmp_path / "pipeline.yaml"), "--run-dir", str(run_dir)]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "the base model's hard set of" in out  # the plan says what Stage I trains on
    state = read_run(run_dir)
    assert state["stages"]["filter"]["state"] == "done" and state["stages"]["filter"]["kept"] == 3
    stats = json.loads((run_dir / "filter" / "stats.json").read_text())
    assert stats["solve_counts"]["0"] == 3 and stats["samples"]["generated"] == 6
    recipe = (run_dir / "stage1" / "recipe.yaml").read_text()
    assert str(run_dir / "filter") in recipe
    assert main(args) == 0  # resumed: every stage done, the filter is not run again
    assert read_run(run_dir)["stages"]["filter"] == state["stages"]["filter"]

    (tmp_path / "pipeline.yaml").write_text((tmp_path / "pipeline.yaml").read_text().replace(
        "enabled: true", "enabled: true\n  system_prompt: null"))
    config = load_pipeline_config(tmp_path / "pipeline.yaml")
    with pytest.raises(ConfigError, match="filter.system_prompt"):  # it must sample as training and eval prompt
        plan_pipeline(config, pipeline_recipes(config), 1)
