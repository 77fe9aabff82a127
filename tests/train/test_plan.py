"""The plan of a training stage (exprl.train.plan): batch arithmetic, budgets in rollout batches,
refusals that name the key, and TRL's defaults read without importing TRL."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from exprl.cli import main
from exprl.errors import ConfigError
from exprl.recipes import RECIPES_DIR
from exprl.train.config import DataConfig, TrainConfig, load_train_config
from exprl.train.batch import BatchConfig
from exprl.train.plan import plan_stage
from exprl.train.trl_args import trl_arguments
from exprl.train.trl_fields import Computed, trl_defaults

REPO = Path(__file__).resolve().parents[2]
CONFIGS = RECIPES_DIR


def paper_plan(path):
    """A paper recipe planned at its own world size (launch.num_processes)."""
    config = load_train_config(path)
    return plan_stage(config, config.launch.num_processes)


def rl_config(method="grpo", rollout_batches=10, **trl):
    values = dict(per_device_train_batch_size=4, num_generations=4)
    values.update(trl)
    return TrainConfig(method=method, data=DataConfig(train_files=["absent.jsonl"]),
                       rollout_batches=rollout_batches, trl=values)


@pytest.mark.parametrize("method", ["grpo", "sft", "self-distill"])
def test_trl_defaults_read_from_source_match_the_classes(method):
    from exprl.train.runner import trl_config_class

    read = trl_defaults(method)
    for f in dataclasses.fields(trl_config_class(method)):
        if not f.init:
            continue
        assert f.name in read, f.name
        if isinstance(read[f.name], Computed) or f.default is dataclasses.MISSING:
            continue
        if isinstance(f.default, (bool, int, float, str, type(None))):
            assert read[f.name] == f.default, (f.name, read[f.name], f.default)


def test_max_steps_is_rollout_batches_times_optimiser_steps_per_batch():
    # 4 per process x 2 processes x 4 micro-batches = 32 completions, optimiser every 2: two steps a batch
    two = rl_config(gradient_accumulation_steps=2, steps_per_generation=4)
    assert trl_arguments(two, world_size=2)["max_steps"] == 20
    plan = plan_stage(two, world_size=2)
    assert (plan.prompts_per_batch, plan.completions_per_batch, plan.optimizer_steps_per_batch) == (8, 32, 2)
    assert (plan.rollout_batches, plan.optimizer_steps, plan.total_completions) == (10, 20, 320)
    one = rl_config(gradient_accumulation_steps=4)  # steps_per_generation defaults to it: one step a batch
    assert trl_arguments(one, world_size=2)["max_steps"] == 10
    # A recipe that counts optimiser steps itself is read back in rollout batches.
    legacy = rl_config(rollout_batches=None, max_steps=6, gradient_accumulation_steps=1, steps_per_generation=2)
    assert plan_stage(legacy, world_size=1).rollout_batches == 3


def test_an_sft_epoch_budget_counts_optimiser_steps_from_the_data(tmp_path):
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "problem": "p", "reference": "r"}) + "\n" for i in range(100)))
    config = TrainConfig(method="sft", data=DataConfig(train_files=[str(data)]),
                         trl={"num_train_epochs": 2, "per_device_train_batch_size": 4})
    plan = plan_stage(config, world_size=8)  # 13 problems per process -> 4 batches of 4, twice
    assert (plan.sequences_per_optimizer_step, plan.epochs, plan.optimizer_steps) == (32, 2.0, 8)
    absent = TrainConfig(method="sft", data=DataConfig(train_files=[str(tmp_path / "absent.jsonl")]),
                         trl={"num_train_epochs": 2})
    assert plan_stage(absent, world_size=8).optimizer_steps is None  # a plan never needs the data


def test_budget_refusals_name_the_key():
    with pytest.raises(ConfigError, match="rollout_batches or trl.max_steps"):
        plan_stage(rl_config(max_steps=5), world_size=1)
    with pytest.raises(ConfigError, match="rollout_batches: method sft"):
        plan_stage(TrainConfig(method="sft", rollout_batches=3), world_size=1)
    with pytest.raises(ConfigError, match="rollout_batches = 3 does not give a whole number"):
        plan_stage(rl_config(rollout_batches=3, gradient_accumulation_steps=2, steps_per_generation=1), world_size=1)
    with pytest.raises(ConfigError, match="trl.num_generations = 3"):
        plan_stage(rl_config(num_generations=3), world_size=1)
    with pytest.raises(ConfigError, match="trl.num_generations must be"):
        plan_stage(rl_config(num_generations=1), world_size=1)
    with pytest.raises(ConfigError, match="trl.generation_batch_size = 12"):
        plan_stage(rl_config(generation_batch_size=12), world_size=2)
    with pytest.raises(ConfigError, match="'trl.no_such_key'"):
        plan_stage(rl_config(no_such_key=1), world_size=1)


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_paper_rl_recipes_get_the_papers_rollout_budget(world_size):
    budgets = {}
    for method in ("exprl-outcome", "exprl-process", "grpo", "self-distill"):
        plan = plan_stage(load_train_config(CONFIGS / f"paper-{method}.yaml"), world_size)
        budgets[method] = plan.rollout_batches
        assert plan.optimizer_steps == plan.rollout_batches * plan.optimizer_steps_per_batch
    assert set(budgets.values()) == {230}, budgets  # method.md §7: 230 Stage-I steps, one rollout batch each


# method.md §3 and §7: (prompts, rollouts, optimiser steps) per rollout batch; SFT: sequences per step.
PAPER_BATCHES = {"exprl-outcome": (36, 10, 2), "exprl-process": (36, 16, 1), "grpo": (32, 16, 2),
                 "self-distill": (32, 16, 1), "stage2": (16, 32, 1)}
PAPER_WORLD = {"exprl-outcome": 6, "exprl-process": 6, "grpo": 8, "self-distill": 8, "stage2": 8, "sft": 8}


@pytest.mark.parametrize("recipe", sorted(PAPER_BATCHES))
def test_paper_batch_is_the_same_at_every_world_size_that_holds_it(recipe):
    """The batch is declared: at every accepted world size among 1-8 the plan has the paper's prompts,
    rollouts and optimiser steps per rollout batch; the others are refused naming those that fit."""
    prompts, rollouts, steps = PAPER_BATCHES[recipe]
    per_step = prompts * rollouts // steps
    config = load_train_config(CONFIGS / f"paper-{recipe}.yaml")
    assert config.launch.num_processes == PAPER_WORLD[recipe]
    for world in (1, 2, 3, 4, 5, 6, 7, 8):
        if per_step % world:
            with pytest.raises(ConfigError, match=rf"needs a world size dividing {per_step}: 1, 2, .*; got {world}"):
                plan_stage(config, world)
            continue
        plan = plan_stage(config, world)
        assert (plan.prompts_per_batch, plan.num_generations, plan.optimizer_steps_per_batch) == \
            (prompts, rollouts, steps), (recipe, world)
        assert plan.sequences_per_optimizer_step == per_step and plan.rollout_batches == plan.trl["max_steps"] / steps
        trl = plan.trl
        assert trl["per_device_train_batch_size"] * trl["gradient_accumulation_steps"] * world == per_step
        assert trl["steps_per_generation"] == trl["gradient_accumulation_steps"] * steps
    assert PAPER_WORLD[recipe] in plan_stage(config, PAPER_WORLD[recipe]).batch["valid_world_sizes"]


def test_sft_declares_sequences_per_optimiser_step():
    config = load_train_config(CONFIGS / "paper-sft.yaml")
    for world in (1, 2, 4, 8):
        plan = plan_stage(config, world)
        assert plan.sequences_per_optimizer_step == 32
        assert plan.trl["per_device_train_batch_size"] == 1 and plan.trl["gradient_accumulation_steps"] == 32 // world
    with pytest.raises(ConfigError, match="dividing 32: 1, 2, 4, 8, 16, 32; got 6"):
        plan_stage(config, 6)


def test_a_declared_batch_takes_the_largest_micro_batch_that_divides_a_process_share():
    from exprl.train.batch import derive_batch

    batch = BatchConfig(prompts=36, rollouts=10, optimizer_steps=2, max_per_device=8)
    assert derive_batch(batch, 6).trl_values() == {"per_device_train_batch_size": 6, "gradient_accumulation_steps": 5,
                                                   "steps_per_generation": 10, "num_generations": 10}
    assert derive_batch(batch, 9).per_device == 5 and derive_batch(batch, 1).per_device == 6
    odd = dataclasses.replace(load_train_config(CONFIGS / "paper-grpo.yaml"),
                              batch=BatchConfig(prompts=36, rollouts=10, optimizer_steps=7))
    with pytest.raises(ConfigError, match="batch.optimizer_steps = 7 .* choose one of 1, 2, 3"):
        plan_stage(odd, 1)


def test_a_declared_batch_leaves_trls_batch_keys_to_the_derivation():
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation",
                "num_generations", "generation_batch_size"):
        with pytest.raises(ConfigError, match=f"trl.{key}: set by the batch section"):
            plan_stage(load_train_config(CONFIGS / "paper-grpo.yaml", [f"trl.{key}=4"]), 8)
    with pytest.raises(ConfigError, match="needs both batch.prompts and batch.rollouts"):
        plan_stage(load_train_config(CONFIGS / "paper-grpo.yaml", ["batch.rollouts=null"]), 8)
    with pytest.raises(ConfigError, match="declare batch.sequences"):
        plan_stage(load_train_config(CONFIGS / "paper-sft.yaml", ["batch.prompts=4"]), 8)
    with pytest.raises(ConfigError, match="'batch.rollouts' must be at least 2"):
        plan_stage(load_train_config(CONFIGS / "paper-grpo.yaml", ["batch.rollouts=1"]), 8)


@pytest.mark.parametrize("name", ["cpu-tiny-exprl-outcome", "cpu-tiny-grpo", "cpu-tiny-sft", "cpu-tiny-self-distill"])
def test_recipes_without_a_batch_section_keep_their_trl_keys(name):
    """Old-style recipes still plan; the plan says their batch follows the world size."""
    config = load_train_config(CONFIGS / f"{name}.yaml")
    assert not config.batch.declared
    one, two = plan_stage(config, 1), plan_stage(config, 2)
    assert two.sequences_per_optimizer_step == 2 * one.sequences_per_optimizer_step
    assert "follows the world size" in one.render()


def test_paper_recipes_and_eval_prompt_the_policy_as_the_paper_does():
    from exprl.data.prompts import POLICY_SYSTEM_PROMPT
    from exprl.eval.config import EvalConfig

    assert "###" not in POLICY_SYSTEM_PROMPT and "\\boxed{}" in POLICY_SYSTEM_PROMPT  # method.md §2.1
    assert EvalConfig().system_prompt == POLICY_SYSTEM_PROMPT
    recipes = sorted(CONFIGS.glob("paper-*.yaml"))
    assert len(recipes) >= 5
    for recipe in recipes:
        plan = paper_plan(recipe)
        assert plan.policy_prompt == {"name": "paper", "text": POLICY_SYSTEM_PROMPT}, recipe.name


def test_trls_silent_defaults_are_set_to_what_the_papers_trainers_do():
    for method in ("exprl-outcome", "exprl-process", "grpo"):  # verl (method.md §3)
        loss = paper_plan(CONFIGS / f"paper-{method}.yaml").loss
        assert loss["importance_sampling"] == "off", method  # TRL: a sequence_mask weight on by default
        assert loss["dual_clip"] == 3.0 and loss["kl_weighted_by_ratio"] is False
        assert (loss["loss_type"], loss["entropy_coef"], loss["num_iterations"]) == ("dapo", 0.0, 1)
    stage2 = plan_stage(load_train_config(CONFIGS / "paper-stage2.yaml"), 8)  # PipelineRL (method.md §7)
    assert stage2.loss["importance_sampling"] == "token_truncate [None, 5.0]"
    assert (stage2.loss["dual_clip"], stage2.loss["entropy_coef"], stage2.loss["beta"]) == (None, 1e-4, 0.0)
    assert plan_stage(load_train_config(CONFIGS / "paper-self-distill.yaml"), 8).sampling["max_prompt_length"] is None
    sft = plan_stage(load_train_config(CONFIGS / "paper-sft.yaml"), 8)
    assert (sft.optimizer["lr_scheduler_type"], sft.optimizer["warmup_steps"], sft.optimizer["adam_betas"]) == \
        ("cosine", 0.1, [0.9, 0.95])
    assert (sft.sequences_per_optimizer_step, sft.epochs) == (32, 2.0)


def test_paper_rollout_batches_have_the_papers_shape_on_their_layout():
    """method.md §3: Outcome 36 prompts x 10 in 2 optimiser steps, Process 36 x 16 in 1, GRPO 32 x 16
    in 2, self-distillation 32 x 16 in 1 (ExpRL trains on 6 GPUs beside a 2-GPU judge)."""
    expected = {"exprl-outcome": (6, 36, 10, 2), "exprl-process": (6, 36, 16, 1), "grpo": (8, 32, 16, 2),
                "self-distill": (8, 32, 16, 1)}
    for method, (world, prompts, generations, steps) in expected.items():
        plan = plan_stage(load_train_config(CONFIGS / f"paper-{method}.yaml"), world)
        assert (plan.prompts_per_batch, plan.num_generations, plan.optimizer_steps_per_batch) == \
            (prompts, generations, steps), method


def test_cli_dry_run_prints_the_plan_and_refuses_an_unrunnable_recipe(capsys, tmp_path):
    recipe = str(CONFIGS / "paper-exprl-outcome.yaml")
    assert main(["train", "--config", recipe, "--dry-run", "--num-processes", "6", "--json"]) == 0
    (stage,) = json.loads(capsys.readouterr().out)["stages"]
    assert (stage["method"], stage["rollout_batches"], stage["prompts_per_batch"]) == ("exprl-outcome", 230, 36)
    assert stage["judge"]["calls_per_batch"] == 360 and stage["trl"]["max_steps"] == 460
    out_dir = tmp_path / "never"
    assert main(["train", "--config", str(CONFIGS / "paper-grpo.yaml"), "--output-dir", str(out_dir),
                 "--set", "trl.num_generations=7"]) == 2
    assert "trl.num_generations" in capsys.readouterr().err
    assert not out_dir.exists()  # refused before a folder, a model or a judge existed
    assert main(["train", "--config", recipe, "--num-processes", "8"]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_dry_run_imports_neither_torch_nor_trl():
    code = ("import sys; from exprl.cli import main; "
            f"rc = main(['train', '--config', {str(CONFIGS / 'paper-exprl-process.yaml')!r}, '--dry-run', "
            "'--num-processes', '8', '--json']); "
            "assert rc == 0; assert not {'torch', 'trl', 'transformers'} & set(sys.modules), sys.modules.keys()")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=REPO,
                   env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def test_plan_lists_the_stages_departures_from_the_official_code(capsys):
    # a declared batch of 24 prompts, not the official 36
    config = load_train_config(CONFIGS / "paper-exprl-process.yaml")
    config.reward.single_step = "outcome"
    config.batch.prompts = 24
    plan = plan_stage(config, 6)
    switches = {d["key"]: (d["value"], d["official"]) for d in plan.departures if d["kind"] == "switch"}
    assert switches == {"reward.single_step": ("outcome", "raw"), "plan.prompts_per_batch": (24, 36)}
    assert "2 setting(s) differ" in plan.render() and "[TRL cannot] KL clamp" in plan.render()
    assert plan.to_dict()["departures"] == plan.departures
    # a pipeline's Stage II is compared with PipelineRL whatever its recipe says
    stage2 = load_train_config(CONFIGS / "paper-stage2.yaml")
    stage2.stage = "stage1"
    assert not [d for d in plan_stage(stage2, 8, "stage2").departures if d["kind"] == "switch"]
    as_stage1 = {d["key"] for d in plan_stage(stage2, 8).departures if d["kind"] == "switch"}
    assert {"trl.num_generations", "trl.beta", "trl.epsilon"} <= as_stage1
