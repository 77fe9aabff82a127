"""The memory plan per GPU (exprl.train.memory, exprl.train.resources): parameter counts against
transformers, model states against accelerate's estimator, the shipped accelerate configs, and the
dry run that refuses a stage over the GPU naming what would make it fit."""
from __future__ import annotations

import json

import pytest

from exprl.cli import main
from exprl.recipes import RECIPES_DIR, accelerate_config_path, shipped_accelerate_configs
from exprl.train.config import load_train_config
from exprl.train.launch import launch_strategy
from exprl.train.memory import KNOWN_SHAPES, ddp_training_usage, model_shape
from exprl.train.plan import plan_stage

PAPER = ("exprl-outcome", "exprl-process", "grpo", "self-distill", "stage2", "sft")


@pytest.mark.parametrize("name", sorted(KNOWN_SHAPES))
def test_parameter_counts_are_transformers_own(name):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    shape = KNOWN_SHAPES[name]
    kind = Qwen3Config if shape.qk_norm else LlamaConfig
    config = kind(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                  intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_hidden_layers,
                  num_attention_heads=shape.num_attention_heads, num_key_value_heads=shape.num_key_value_heads,
                  head_dim=shape.head_dim, tie_word_embeddings=shape.tie_word_embeddings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.layer_params == sum(p.numel() for p in model.model.layers[0].parameters())


def test_a_model_folder_is_read_from_its_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
        "tie_word_embeddings": True}))
    shape, source = model_shape(str(tmp_path))
    assert shape == KNOWN_SHAPES["Qwen/Qwen3-0.6B"] and source == str(tmp_path / "config.json")
    missing, why = model_shape(str(tmp_path / "absent"))
    assert missing is None and "launch.architecture" in why


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_plain_ddp_model_states_are_accelerates_estimate(precision):
    from accelerate.commands.estimate import estimate_training_usage

    model_bytes = 4 * KNOWN_SHAPES["Qwen/Qwen3-4B-Instruct-2507"].params
    theirs = estimate_training_usage(model_bytes, precision)
    ours = ddp_training_usage(model_bytes, precision)
    assert {k: theirs[k] for k in ours} == ours


@pytest.mark.parametrize("name", sorted(shipped_accelerate_configs()))
def test_shipped_accelerate_configs_are_accelerates_and_launch_what_they_say(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = accelerate_config_path(f"accelerate/{name}")
    assert path.parent == RECIPES_DIR / "accelerate"
    load_config_from_file(str(path))  # accelerate reads it (an unknown key would raise)
    strategy, found = launch_strategy(name, bf16=True)
    assert found == path and strategy.name == name and strategy.mixed_precision == "bf16"


def dry_run(capsys, *args):
    code = main(["train", "--dry-run", "--json", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("recipe", PAPER)
def test_paper_recipes_fit_80_gib_at_their_world_size_with_their_launch_line(recipe, capsys):
    code, out, err = dry_run(capsys, "--config", f"paper-{recipe}")
    assert code == 0, err
    (stage,) = json.loads(out)["stages"]
    memory, launch = stage["memory"], stage["launch"]
    assert memory["fits"] and memory["total_gib"] <= 80 and memory["strategy"] == "fsdp2"
    assert set(memory["components_gib"]) == {"params", "gradients", "optimizer", "reference", "activations", "vllm",
                                             "runtime_allowance"}
    assert memory["components_gib"]["vllm"] == (0 if recipe == "sft" else 28.0)  # 0.35 of 80 GiB, held throughout
    assert (memory["components_gib"]["reference"] > 0) == (recipe not in ("stage2", "sft"))  # beta 0 / no rollouts
    assert "float32 master weights" in memory["dtype"]["policy"] and "bfloat16" in memory["dtype"]["policy"]
    assert launch["command"].startswith(("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5 accelerate launch", "accelerate launch"))
    assert f'--config_file "$(exprl recipes path accelerate/fsdp2)" --num_processes {stage["world_size"]} ' \
           f"-m exprl.cli train --config paper-{recipe}" in launch["command"]
    assert launch["config_file"] == str(accelerate_config_path("fsdp2"))


def test_a_plan_over_the_gpu_is_refused_naming_what_would_fit(capsys):
    # Plain data parallelism without bf16: a whole 4B policy, its states and a reference on every GPU.
    code, out, err = dry_run(capsys, "--config", "paper-grpo", "--set", "trl.bf16=false",
                             "--set", "launch.accelerate_config=ddp", "--set", "trl.vllm_enable_sleep_mode=false")
    assert code == 2
    (stage,) = json.loads(out)["stages"]  # the plan is printed, then refused
    assert not stage["memory"]["fits"] and stage["memory"]["total_gib"] > 80
    assert "needs" in err and "GiB per GPU of 80 (--gpu-memory-gib) with ddp on 8 processes" in err
    assert "launch.accelerate_config=fsdp2" in err or "trl.vllm_enable_sleep_mode=true" in err
    # ExpRL-Outcome on one GPU: the sharded states need more processes.
    code, _, err = dry_run(capsys, "--config", "paper-exprl-outcome", "--num-processes", "1")
    assert code == 2 and "with fsdp2 on 1 process" in err and "--num-processes 3" in err
    code, _, err = dry_run(capsys, "--config", "paper-exprl-outcome", "--gpu-memory-gib", "40")
    assert code == 2 and "of 40 (--gpu-memory-gib)" in err


def test_a_checkpoint_not_written_yet_is_planned_with_its_architecture():
    config = load_train_config(RECIPES_DIR / "paper-stage2.yaml")
    assert config.model == "runs/exprl-outcome/stage1/final"
    plan = plan_stage(config, 8)
    assert plan.memory["params_billions"] == pytest.approx(4.022, abs=1e-3)
    unknown = plan_stage(load_train_config(RECIPES_DIR / "paper-stage2.yaml", ["launch.architecture="]), 8)
    assert not unknown.memory["estimated"] and "no config.json" in unknown.memory["why"]


def test_bf16_weights_under_plain_ddp_are_named_as_losing_small_updates():
    plan = plan_stage(load_train_config(RECIPES_DIR / "paper-grpo.yaml", ["launch.accelerate_config=ddp"]), 8)
    assert any("rounded away" in note for note in plan.memory["notes"])
    assert "no float32 master copy" in plan.memory["dtype"]["policy"]
