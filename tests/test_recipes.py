"""Bundled recipes (exprl.recipes): found by name, shown, copied, and never reading the install folder."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from exprl.cli import build_parser, main
from exprl.config import load_config
from exprl.data.catalog import find_entry
from exprl.demo.config import DemoConfig
from exprl.errors import ConfigError
from exprl.eval.config import BenchmarkConfig
from exprl.eval.evaluate import load_benchmark
from exprl.pipeline import load_pipeline_config, pipeline_recipes, plan_pipeline
from exprl.recipes import RECIPES_DIR, bundled_recipes, find_recipe
from exprl.train.config import load_train_config

RECIPES = bundled_recipes()


def raw(name: str) -> dict:
    """The recipe's keys, with the recipe it `extends` merged under them."""
    from exprl.recipes import read_yaml

    return read_yaml(RECIPES[name])


def test_every_yaml_beside_the_package_is_a_recipe_and_package_data():
    assert sorted(RECIPES) == sorted(p.stem for p in RECIPES_DIR.glob("*.y*ml"))
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"recipes/*.yaml"' in pyproject  # the wheel test checks they really ship


def test_shipped_recipes_name_datasets_never_paths_outside_the_working_directory():
    for name, path in RECIPES.items():
        text = path.read_text()
        assert "shared/data" not in text and "../" not in text, name
        recipe = raw(name)
        for item in (recipe.get("data") or {}).get("train_files", []):
            # a catalog dataset, or a file the user prepares in the working directory
            assert find_entry(item) or item.startswith("data/"), (name, item)
        if "path" in recipe:
            assert find_entry(recipe["path"]) or recipe["path"].startswith("data/"), name


@pytest.mark.parametrize("spec", ["cpu-tiny-grpo", "cpu-tiny-grpo.yaml"])
def test_config_name_finds_the_bundled_recipe(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_recipe(spec) == RECIPES["cpu-tiny-grpo"]
    config = load_train_config(spec)
    assert (config.method, config.data.train_files) == ("grpo", ["gsm8k-train"])


def test_a_file_of_that_name_wins_over_the_bundled_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu-tiny-grpo.yaml").write_text("method: sft\ndata:\n  train_files: [mine.jsonl]\n")
    (tmp_path / "mine.jsonl").write_text("")
    config = load_train_config("cpu-tiny-grpo.yaml")
    assert config.method == "sft" and config.data.train_files == [str(tmp_path / "mine.jsonl")]
    assert load_train_config("cpu-tiny-grpo").method == "grpo"  # no file called cpu-tiny-grpo: the bundled one


def test_an_unknown_name_is_one_line_with_the_near_matches(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for command in (["train", "--config", "cpu-tiny-grp", "--dry-run"], ["pipeline", "--config", "pipeline-cpu-smok"],
                    ["demo", "--config", "dmeo"], ["recipes", "show", "bench-math50"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "did you mean " in err and "Traceback" not in err, command
    with pytest.raises(ConfigError, match="did you mean cpu-tiny-grpo"):
        find_recipe("configs/cpu-tiny-grpo.yaml")  # the old checkout path says where the recipe went


def test_bundled_data_paths_resolve_in_the_working_directory_never_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_train_config("paper-grpo").data.train_files == ["data/int_pope_stage1.jsonl"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "int_pope_stage1.jsonl").write_text("")
    assert load_train_config("paper-grpo").data.train_files == [str(tmp_path / "data" / "int_pope_stage1.jsonl")]


def test_a_user_recipe_reads_files_beside_itself_first(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "mine.yaml").write_text("method: sft\ndata:\n  train_files: [train.jsonl, gsm8k-train, missing.jsonl]\n")
    (folder / "train.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    files = load_train_config(folder / "mine.yaml").data.train_files
    # beside the recipe; a catalog name as written; a missing file named where it was expected
    assert files == [str(folder / "train.jsonl"), "gsm8k-train", str(folder / "missing.jsonl")]


def test_bundled_pipeline_stages_and_benches_are_bundled_recipes_unless_the_user_has_a_copy(tmp_path, monkeypatch,
                                                                                              capsys):
    monkeypatch.chdir(tmp_path)
    config = load_pipeline_config("pipeline-cpu-smoke")
    assert config.stage1.recipe == str(RECIPES["cpu-tiny-exprl-outcome"])
    assert config.stage2.recipe == str(RECIPES["cpu-tiny-stage2"])
    assert config.eval.benches == [str(RECIPES["bench-gsm8k"])]
    config = load_pipeline_config("pipeline-paper-qwen3-4b", ["stage1.recipe=paper-sft"])
    assert config.stage1.recipe == str(RECIPES["paper-sft"])

    assert main(["recipes", "copy", "cpu-tiny-stage2", "."]) == 0
    mine = tmp_path / "cpu-tiny-stage2.yaml"
    mine.write_text(mine.read_text().replace("rollout_batches: 2", "rollout_batches: 3"))
    config = load_pipeline_config("pipeline-cpu-smoke")
    assert config.stage2.recipe == str(mine)
    plans = plan_pipeline(config, pipeline_recipes(config), world_size=1)
    assert plans[1].rollout_batches == 3


def test_bundled_benchmarks_load_catalog_data(catalog_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = sum(1 for line in (catalog_data / "math500.jsonl").open() if line.strip())
    for spec in ("bench-math500", "bench-math500.yaml", str(RECIPES["bench-math500"]), "math500"):
        name, source, problems = load_benchmark(spec)
        assert (name, source, len(problems)) == ("math500", "math500", rows), spec
    name, _, problems = load_benchmark("bench-gsm8k", limit=3)
    assert (name, [p.id for p in problems]) == ("gsm8k", ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"])


def test_every_bundled_recipe_loads_with_its_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in RECIPES:
        kind = raw(name)
        if "stage1" in kind:
            load_pipeline_config(name)
        elif "method" in kind:
            load_train_config(name)
        elif "path" in kind:
            load_config(BenchmarkConfig, name)
        else:
            assert load_config(DemoConfig, name) == DemoConfig()


def test_recipes_list_show_and_copy(tmp_path, capsys):
    assert main(["recipes", "list"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[:len(RECIPES)]}
    assert set(listed) == set(RECIPES)
    assert "train exprl-process" in listed["paper-exprl-process"] and "pipeline" in listed["pipeline-cpu-smoke"]
    assert "benchmark math500" in listed["bench-math500"]

    assert main(["recipes", "show", "paper-stage2.yaml"]) == 0
    assert capsys.readouterr().out == RECIPES["paper-stage2"].read_text()

    assert main(["recipes", "diff", "paper-sft", "exprl-sft"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["sft_prompt", "user-only", "policy"]
    assert main(["recipes", "diff", "paper-grpo", "paper-grpo"]) == 0
    assert "alike" in capsys.readouterr().out

    out = tmp_path / "mine"
    assert main(["recipes", "copy", "pipeline-cpu-smoke", "cpu-tiny-sft", str(out)]) == 0
    for name in ("pipeline-cpu-smoke", "cpu-tiny-sft"):
        assert (out / f"{name}.yaml").read_text() == RECIPES[name].read_text()
    capsys.readouterr()
    (out / "cpu-tiny-sft.yaml").write_text("method: sft\n")
    assert main(["recipes", "copy", "bench-gsm8k", "cpu-tiny-sft", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "cpu-tiny-sft.yaml").read_text() == "method: sft\n" and not (out / "bench-gsm8k.yaml").exists()
    assert main(["recipes", "copy", "nonesuch", str(tmp_path / "other")]) == 2
    assert not (tmp_path / "other").exists()
    # a copied variant still finds the bundled recipe it extends
    assert main(["recipes", "copy", "exprl-process", str(out)]) == 0
    assert load_train_config(out / "exprl-process.yaml").reward.single_step == "outcome"


def test_pipeline_dry_run_by_name_from_an_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline", "--config", "pipeline-cpu-smoke", "--dry-run", "--json"]) == 0
    stages = json.loads(capsys.readouterr().out)["stages"]
    assert [(s["name"], s["method"]) for s in stages] == [("stage1", "exprl-outcome"), ("stage2", "grpo")]
    assert list(tmp_path.iterdir()) == []  # planned, nothing written


def readme_pipeline_commands() -> list[list[str]]:
    """The commands of README's Pipeline code block, comments dropped."""
    section = (Path(__file__).resolve().parents[1] / "README.md").read_text().split("## Pipeline", 1)[1]
    block = section.split("```", 2)[1]
    return [shlex.split(line, comments=True) for line in block.splitlines()[1:] if line.strip()]


def test_readme_pipeline_commands_parse_and_their_recipes_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = readme_pipeline_commands()
    assert {argv[1] for argv in commands} >= {"data", "train", "pipeline", "eval", "report"}
    for argv in commands:
        assert argv[0] == "exprl", argv
        args = build_parser().parse_args(argv[1:])
        if args.command in ("train", "pipeline"):  # planned, not run: seconds, no model
            assert main(argv[1:] + ([] if args.dry_run else ["--dry-run"])) == 0, argv
        for bench in getattr(args, "bench", None) or []:
            assert find_recipe(bench) if bench.startswith("bench-") else find_entry(bench), bench
    assert list(tmp_path.iterdir()) == []
