"""The pipeline's settings (`PipelineConfig`, the YAML of `exprl pipeline --config`) and how a pipeline
file and its overrides are read (`load_pipeline_config`): which recipe each stage trains, the
evaluation after each, and the optional hard-set filter before Stage I.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from exprl.config import load_config
from exprl.eval.config import EvalConfig, FilterConfig
from exprl.recipes import find_recipe, recipe_folder, resolve_entry


@dataclass
class StageOneConfig:
    recipe: str = field(default="", metadata={
        "help": "Training recipe for Stage I (method, model, data, judge, trl): a YAML file (beside this one, or "
                "in the working directory) or a bundled recipe's name."})
    overrides: list[str] = field(default_factory=list, metadata={
        "help": "key=value overrides applied to the Stage-I recipe, e.g. rollout_batches=2."})


@dataclass
class StageTwoConfig:
    enabled: bool = field(default=True, metadata={"help": "Run Stage II (sparse GRPO) after Stage I."})
    recipe: str = field(default="", metadata={
        "help": "Training recipe for Stage II (method grpo), the same whatever the Stage-I method: the "
                "paper's is paper-stage2.yaml. Its model and data are replaced by the Stage-I checkpoint and "
                "the Stage-I problems with the reference removed. A file or a bundled recipe, as stage1.recipe."})
    overrides: list[str] = field(default_factory=list, metadata={
        "help": "key=value overrides applied to the Stage-II recipe, e.g. rollout_batches=2."})


@dataclass
class FilterStageConfig(FilterConfig):
    """`exprl data filter` as the pipeline's first step (its settings, plus `enabled`)."""

    enabled: bool = field(default=False, metadata={
        "help": "Train Stage I (and Stage II) on the base model's own hard set: the Stage-I problems it solves "
                "at most max_solved of n times (exprl data filter into RUN/filter; the paper's protocol, "
                "docs/method.md §5.1)."})


@dataclass
class PipelineConfig:
    """Stage I, Stage II and the evaluations around them (the paper's two-stage protocol)."""

    name: str = field(default="", metadata={
        "help": "Label of this run in reports (default: the Stage-I method)."})
    evaluate_base: bool = field(default=True, metadata={
        "help": "Evaluate the base model before Stage I (the paper's base row)."})
    stage1: StageOneConfig = field(default_factory=StageOneConfig, metadata={"help": "Stage I (mid-training)."})
    stage2: StageTwoConfig = field(default_factory=StageTwoConfig, metadata={"help": "Stage II (sparse RL)."})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={
        "help": "Evaluation after each stage (benches, n, temperature, max_tokens, ...)."})
    filter: FilterStageConfig = field(default_factory=FilterStageConfig, metadata={
        "help": "Optional first step: keep only the Stage-I problems the base model cannot solve (enabled, n, "
                "max_solved, and sampling settings as in eval)."})


def load_pipeline_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """A pipeline YAML (a file, or a bundled recipe's name) plus overrides. Stage recipes and benchmarks
    are files beside a user's pipeline file, files in the working directory, or bundled recipes, in that
    order (exprl.recipes.resolve_entry); a benchmark may also be a catalog dataset or data file.

    An override of a recipe key goes through its stage: `stage2.trl.num_generations=7` is appended
    to `stage2.overrides` as `trl.num_generations=7`."""
    stage_keys = {"stage1": {f.name for f in fields(StageOneConfig)}, "stage2": {f.name for f in fields(StageTwoConfig)}}
    own, recipe_overrides = [], {"stage1": [], "stage2": []}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        stage, _, rest = key.strip().partition(".")
        if sep and stage in stage_keys and rest and rest.split(".")[0] not in stage_keys[stage]:
            recipe_overrides[stage].append(f"{rest}={value}")
        else:
            own.append(item)
    config = load_config(PipelineConfig, path, own)
    config.stage1.overrides += recipe_overrides["stage1"]
    config.stage2.overrides += recipe_overrides["stage2"]
    folder = recipe_folder(find_recipe(path))
    config.stage1.recipe = resolve_entry(config.stage1.recipe, folder, recipes=True)
    config.stage2.recipe = resolve_entry(config.stage2.recipe, folder, recipes=True)
    config.eval.benches = [resolve_entry(b, folder, recipes=True) for b in config.eval.benches]
    return config
