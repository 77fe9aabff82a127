"""A recipe's `data.mix`: weighted sources with domains, the judge prompt per domain, and no sparse reward
where the domain has no verifier."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from exprl.cli import main
from exprl.data.loaders import write_problems
from exprl.data.problem import Problem
from exprl.errors import ConfigError
from exprl.judge.prompts import build_prompt
from exprl.judge.types import JudgeRequest
from exprl.train.config import load_train_config
from exprl.train.plan import plan_stage
from exprl.train.runner import build_rows, load_training_problems


def rows(prefix: str, n: int, domain: str = "math") -> list[Problem]:
    return [Problem(id=f"{prefix}/{i}", problem=f"{prefix} task {i}", reference=f"worked {i} \\boxed{{{i}}}",
                    answer=str(i), domain=domain, source=prefix) for i in range(n)]


@pytest.fixture()
def sources(tmp_path):
    write_problems(tmp_path / "math.jsonl", rows("math", 40))
    write_problems(tmp_path / "phys.jsonl", rows("phys", 20, domain="physics"))
    write_problems(tmp_path / "lcb.jsonl", rows("lcb", 20))  # no domain column of its own: the mix says code
    return tmp_path


def recipe(folder, method: str, mix: str) -> str:
    path = folder / f"{method}.yaml"
    path.write_text(f"method: {method}\nmodel: tiny\ndata:\n  mix: {mix}\nrollout_batches: 1\n"
                    "trl:\n  num_generations: 2\n  per_device_train_batch_size: 2\n"
                    if method != "sft" else f"method: sft\nmodel: tiny\ndata:\n  mix: {mix}\ntrl:\n  max_steps: 1\n")
    return str(path)


MIXED = ("[{path: math.jsonl, weight: 0.5}, {path: phys.jsonl, weight: 0.25}, "
         "{path: lcb.jsonl, weight: 0.25, domain: code}]")


def test_a_mixed_recipe_trains_on_each_domain_with_its_share_and_its_judge_prompt(sources):
    config = load_train_config(recipe(sources, "exprl-outcome", MIXED))
    assert [m.path for m in config.data.mix] == [str(sources / f"{n}.jsonl") for n in ("math", "phys", "lcb")]
    problems = load_training_problems(config)
    assert len(problems) == 80
    assert Counter(p.domain for p in problems) == {"math": 40, "science": 20, "code": 20}
    assert load_training_problems(config) == problems  # drawn with the recipe's seed: the same on a resume
    built = build_rows(problems, config)
    versions = {row["domain"]: build_prompt(JudgeRequest(problem=row["problem_text"], reference=row["reference"],
                                                         trace="x", domain=row["domain"])).version
                for row in built}
    assert versions == {"math": "math-outcome-v2", "science": "science-outcome-v2", "code": "code-outcome-v2"}
    assert "mix of" in plan_stage(config, 1).data and "(code)" in plan_stage(config, 1).data


def test_sparse_grpo_refuses_a_domain_without_a_verifier(sources):
    with pytest.raises(ConfigError) as info:
        load_training_problems(load_train_config(recipe(sources, "grpo", MIXED)))
    message = str(info.value)
    assert "method grpo" in message and "20 problem(s) are in domain 'code'" in message
    assert "no verifier" in message and "math and science" in message
    only_verified = "[{path: math.jsonl, weight: 1}, {path: phys.jsonl, weight: 1}]"
    assert len(load_training_problems(load_train_config(recipe(sources, "grpo", only_verified)))) == 60


def test_train_files_and_mix_together_are_refused(sources):
    with pytest.raises(ConfigError, match="train_files or mix, not both"):
        load_train_config(recipe(sources, "sft", MIXED), ["data.train_files=[math.jsonl]"])


def test_a_pipeline_whose_stage2_would_meet_code_is_refused_before_anything_runs(sources, capsys):
    recipe(sources, "sft", MIXED)
    (sources / "stage2.yaml").write_text("method: grpo\nmodel: unused\nrollout_batches: 1\n"
                                        "trl:\n  num_generations: 2\n  per_device_train_batch_size: 2\n")
    (sources / "bench.jsonl").write_text(json.dumps({"id": "b", "problem": "1+1?", "answer": "2"}) + "\n")
    (sources / "pipeline.yaml").write_text("stage1:\n  recipe: sft.yaml\nstage2:\n  recipe: stage2.yaml\n"
                                          "eval:\n  benches: [bench.jsonl]\n")
    run_dir = sources / "run"
    assert main(["pipeline", "--config", str(sources / "pipeline.yaml"), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "stage2 (sparse GRPO on the Stage-I problems)" in err and "domain 'code'" in err
    assert not run_dir.exists()
