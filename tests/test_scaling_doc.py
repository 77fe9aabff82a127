"""docs/scaling.md and the paper recipes' headers say what the recipes do, line by line: every launch
line is the one the plan prints, the judge's port and GPUs are the recipes', the process counts, config
files and memory figures of the table are the plan's, and nothing turns on the judge's JSON mode."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from exprl.recipes import RECIPES_DIR, find_recipe, shipped_accelerate_configs
from exprl.train.config import load_train_config
from exprl.train.plan import plan_stage

DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
PAPER = sorted(p.stem for p in RECIPES_DIR.glob("paper-*.yaml"))
JUDGED = ("paper-exprl-outcome", "paper-exprl-process")


def commands(text: str) -> list[str]:
    """The commands of the ```bash blocks, continuation lines joined."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        found += [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    return found


def header_commands(recipe: str) -> list[str]:
    """The commands a recipe's header comment shows (lines indented under '#   ')."""
    lines = [line[1:].strip() for line in find_recipe(recipe).read_text().splitlines() if line.startswith("#   ")]
    return [line for line in re.sub(r"\\\n\s*", "", "\n".join(lines)).splitlines() if line]


def planned_line(line: str) -> str:
    """The launch line the plan prints for the recipe, output folder and overrides `line` names."""
    words = shlex.split(line.split(" -m exprl.cli train ")[1])
    recipe = words[words.index("--config") + 1]
    sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    output = words[words.index("--output-dir") + 1] if "--output-dir" in words else ""
    config = load_train_config(recipe, sets)
    plan = plan_stage(config, config.launch.num_processes, recipe=str(find_recipe(recipe)), output_dir=output,
                      overrides=sets)
    return plan.launch["command"]


def launch_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "accelerate launch" in line and "--config paper-" in line]


def test_the_docs_launch_lines_are_the_plans():
    lines = launch_lines(commands(DOC.read_text()))
    single_node = [line for line in lines if "--num_machines" not in line]
    assert {shlex.split(l.split(" -m exprl.cli train ")[1])[1] for l in single_node} >= \
        {"paper-exprl-outcome", "paper-grpo", "paper-self-distill", "paper-sft", "paper-stage2"}
    for line in single_node:
        assert line == planned_line(line)
    for line in lines:  # the multi-node example too: a shipped config, a world size that holds the batch
        config_name = re.search(r'--config_file "\$\(exprl recipes path accelerate/(\w+)\)"', line).group(1)
        assert config_name in shipped_accelerate_configs()
        recipe = shlex.split(line.split(" -m exprl.cli train ")[1])[1]
        world = int(re.search(r"--num_processes (\d+)", line).group(1))
        plan_stage(load_train_config(recipe), world)  # a world size that cannot hold the batch raises


@pytest.mark.parametrize("recipe", PAPER)
def test_recipe_headers_show_the_plans_launch_line(recipe):
    lines = launch_lines(header_commands(recipe))
    assert lines, recipe
    for line in lines:
        assert line == planned_line(line), recipe


def test_the_judge_is_where_the_recipes_look_for_it():
    text = DOC.read_text()
    doc_judges = [line for line in commands(text) if " vllm serve " in f" {line}"]
    assert doc_judges
    for recipe in JUDGED:
        config = load_train_config(recipe)
        ports = {int(re.search(r":(\d+)/", url).group(1)) for url in config.judge.base_urls}
        header_judges = [line for line in header_commands(recipe) if "vllm serve" in line]
        assert header_judges and set(header_judges) <= set(doc_judges), recipe
        for line in header_judges:
            assert int(re.search(r"--port (\d+)", line).group(1)) in ports
            judge_gpus = set(re.match(r"CUDA_VISIBLE_DEVICES=([\d,]+)", line).group(1).split(","))
            assert not judge_gpus & set(config.launch.gpus.split(",")), recipe  # training keeps off them
            assert len(judge_gpus) + config.launch.num_processes == 8  # the paper's one node
    assert "json_mode: true" not in text and "trl vllm-serve" not in " ".join(commands(text))


def test_the_docs_recipe_table_is_the_plans():
    rows = re.findall(r"^\| `(paper-[\w-]+)` \| (\d+)[^|]*\|[^|]*\|[^|]*\| (\w+) \| ([\d.]+) GiB \|$",
                      DOC.read_text(), flags=re.M)
    assert sorted(r[0] for r in rows) == PAPER
    for recipe, processes, accelerate_config, gib in rows:
        config = load_train_config(recipe)
        plan = plan_stage(config, config.launch.num_processes)
        assert (int(processes), accelerate_config) == (config.launch.num_processes, config.launch.accelerate_config)
        assert float(gib) == round(plan.memory["total_gib"], 1), recipe
