"""The pipeline's run: both training stages resolved and planned before anything runs, then every
stage (base evaluation, hard-set filter, Stage I, its evaluation, Stage II, its evaluation) run or
resumed in one run directory (the layout is in the package docstring, `exprl.pipeline`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

from exprl.config import dump_yaml, to_dict
from exprl.errors import ConfigError
from exprl.eval.config import FilterConfig
from exprl.pipeline.config import FilterStageConfig, PipelineConfig
from exprl.runs import STAGES, TRAIN_RESULT_FILE, TRAINING_STAGES, open_run, save_run, stage, stage_done, write_json_atomic
from exprl.weights import resolve_policy_model

PLAN_FILE = "plan.json"

STAGE1_MODEL = "the Stage-I final checkpoint"
STAGE1_PROMPTS = "the Stage-I problems, references removed"


@dataclass
class PipelineRecipes:
    """The training recipes of a pipeline, resolved before anything runs."""

    stage1: Any                 # TrainConfig
    stage1_source: str          # the recipe file, or "given in code"
    stage2: Any = None          # TrainConfig (model and data still the recipe's), None when disabled
    stage2_source: str = ""


def pipeline_recipes(config: PipelineConfig, stage1_config: Any = None, stage2_config: Any = None) -> PipelineRecipes:
    """Stage I's recipe and the one Stage-II recipe, from the files (plus overrides) or given in code."""
    from exprl.train.config import TrainConfig, load_train_config

    def resolve(stage: str, given: Any, recipe: str, overrides: list[str]) -> tuple[Any, str]:
        if given is not None:
            if not isinstance(given, TrainConfig):
                raise ConfigError(f"pipeline: {stage}_config must be a TrainConfig, got {type(given).__name__}")
            if overrides:
                raise ConfigError(f"pipeline: {stage}.overrides apply to {stage}.recipe; a {stage}_config given "
                                  f"in code already holds its values")
            return copy.deepcopy(given), "given in code"
        if not recipe:
            raise ConfigError(f"pipeline: {stage}.recipe is required (a training recipe YAML)")
        return load_train_config(recipe, overrides), recipe

    stage1, stage1_source = resolve("stage1", stage1_config, config.stage1.recipe, config.stage1.overrides)
    recipes = PipelineRecipes(stage1, stage1_source)
    if config.stage2.enabled:
        recipes.stage2, recipes.stage2_source = resolve("stage2", stage2_config, config.stage2.recipe,
                                                        config.stage2.overrides)
        if recipes.stage2.method != "grpo":
            raise ConfigError(f"pipeline: stage2 ({recipes.stage2_source}): Stage II is sparse-reward GRPO, so its "
                              f"recipe's method must be grpo, not {recipes.stage2.method}")
    return recipes


def plan_pipeline(config: PipelineConfig, recipes: PipelineRecipes, world_size: int | None = None, *,
                  gpu_memory_gib: float = 80.0, run_dir: str | Path | None = None) -> list[Any]:
    """Every training stage planned (exprl.train.plan), each at `world_size` or, when None, at its
    own recipe's `launch.num_processes` (else 1): the paper's node runs ExpRL's Stage I on 6 GPUs and
    Stage II on 8. A ConfigError names the stage and the key if one cannot run, or if the stages and
    the evaluation prompt the policy differently."""
    from exprl.train.plan import plan_stage

    def world(recipe: Any) -> int:
        return world_size if world_size is not None else (recipe.launch.num_processes or 1)

    if not config.eval.benches:
        raise ConfigError("pipeline: eval.benches is empty; name at least one benchmark")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config, recipes)
    from exprl.eval.evaluate import check_benchmark

    for bench in config.eval.benches:
        check_benchmark(bench)
    hard_set = None
    if config.filter.enabled:
        if recipes.stage1.data.mix:
            raise ConfigError("pipeline: filter.enabled with a data.mix in Stage I: filter each source with "
                              "`exprl data filter` and mix the filtered folders instead")
        hard_set = (f"the base model's hard set of {recipes.stage1.data.describe()} (solved at most "
                    f"{config.filter.max_solved} of {config.filter.n} samples; RUN/filter)")
    plans = [plan_stage(recipes.stage1, world(recipes.stage1), "stage1", recipes.stage1_source, data=hard_set,
                        gpu_memory_gib=gpu_memory_gib, output_dir=str(run_dir / "stage1"),
                        overrides=config.stage1.overrides)]
    prompts = {"stage1 system_prompt": recipes.stage1.system_prompt, "eval.system_prompt": config.eval.system_prompt}
    if config.filter.enabled:
        prompts["filter.system_prompt"] = config.filter.system_prompt
    if recipes.stage2 is not None:
        # Stage II trains on the Stage-I problems: its epochs count those.
        stage2 = replace(recipes.stage2, data=replace(recipes.stage1.data,
                                                      max_prompt_tokens=recipes.stage2.data.max_prompt_tokens))
        plans.append(plan_stage(stage2, world(recipes.stage2), "stage2", recipes.stage2_source, model=STAGE1_MODEL,
                                data=STAGE1_PROMPTS, gpu_memory_gib=gpu_memory_gib,
                                output_dir=str(run_dir / "stage2"),
                                overrides=[f"model={run_dir / 'stage1' / 'final'}", *config.stage2.overrides],
                                architecture=recipes.stage1.model))
        prompts["stage2 system_prompt"] = recipes.stage2.system_prompt
    if len({repr(p) for p in prompts.values()}) > 1:
        shown = "; ".join(f"{k} = {v!r}" for k, v in prompts.items())
        raise ConfigError(f"pipeline: the policy would be prompted differently in training and evaluation ({shown}); "
                          f"make them equal (set eval.system_prompt or the recipes' system_prompt)")
    return plans


def default_run_dir(config: PipelineConfig, recipes: PipelineRecipes) -> Path:
    """runs/<label>: the label is `name`, else the Stage-I method, so two methods never share a folder."""
    return Path("runs") / run_label(config, recipes)


def run_label(config: PipelineConfig, recipes: PipelineRecipes) -> str:
    return config.name or recipes.stage1.method


def evaluation_points(config: PipelineConfig, recipes: PipelineRecipes) -> list[str]:
    return (["base"] if config.evaluate_base else []) + ["stage1"] + (["stage2"] if recipes.stage2 is not None else [])


def plan_document(config: PipelineConfig, recipes: PipelineRecipes, plans: list[Any], run_dir: Path) -> dict[str, Any]:
    """plan.json and `--dry-run --json`: the run folder and label, every training stage, the evaluation."""
    from exprl.eval.plan import plan_evaluation

    return {"run_dir": str(run_dir), "label": run_label(config, recipes),
            "stages": [p.to_dict() for p in plans],
            "evaluation": plan_evaluation(config.eval, evaluation_points(config, recipes))}


def run_pipeline(config: PipelineConfig, run_dir: str | Path, *, stage1_config: Any = None,
                 stage2_config: Any = None, judge: Any = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run (or resume) every stage into `run_dir`; returns the final run.json contents.

    `stage1_config` and `stage2_config` (TrainConfigs) replace `config.stage1.recipe` and
    `config.stage2.recipe` for callers that build recipes in code; `judge` and `callbacks` are passed
    to Stage I's `run_training`. Both training stages are planned first: nothing runs if one cannot.
    """
    from exprl.train.trl_args import world_size_from_environment

    run_dir = Path(run_dir)
    recipes = pipeline_recipes(config, stage1_config, stage2_config)
    plans = plan_pipeline(config, recipes, world_size_from_environment(), run_dir=run_dir)
    stage1_config = recipes.stage1

    skipped = ([] if config.evaluate_base else ["base_eval"]) + ([] if config.filter.enabled else ["filter"])
    if recipes.stage2 is None:
        skipped += ["stage2", "stage2_eval"]
    from exprl.train.runner import RESUMABLE_CHANGES

    pipeline = to_dict(config)
    if not config.filter.enabled:
        del pipeline["filter"]  # runs started before the filter existed resume unchanged
    state = open_run(run_dir, {"pipeline": pipeline, "stage1": to_dict(stage1_config),
                               "stage2": to_dict(recipes.stage2) if recipes.stage2 is not None else None},
                     name=config.name or stage1_config.method, method=stage1_config.method, skipped=skipped,
                     ignore=[f"{stage}.{key}" for stage in TRAINING_STAGES for key in RESUMABLE_CHANGES])
    dump_yaml(config, run_dir / "pipeline.yaml")
    write_json_atomic(run_dir / PLAN_FILE, plan_document(config, recipes, plans, run_dir))
    for plan in plans:
        state["stages"][plan.name]["recipe"] = plan.recipe
    save_run(run_dir, state)
    # The base model is resolved once, so base eval and Stage I start from the same weights.
    stage1_config.model = resolve_policy_model(stage1_config.model, run_dir)
    dump_yaml(stage1_config, run_dir / "stage1-recipe.yaml")

    def eval_stage(name: str, model: str) -> None:
        from exprl.eval.evaluate import evaluate_config

        with stage(run_dir, state, name) as record:
            results = evaluate_config(model, config.eval, run_dir / "eval" / name.removesuffix("_eval"))
            record["model"] = model
            record["pass_at_1"] = {bench: r["pass_at_k"]["1"] for bench, r in results.items()}

    if config.evaluate_base and not stage_done(state, "base_eval"):
        eval_stage("base_eval", stage1_config.model)
    if config.filter.enabled:
        stage1_config = _filter_stage(run_dir, state, config.filter, stage1_config)
        dump_yaml(stage1_config, run_dir / "stage1-recipe.yaml")

    stage1_model = _train_stage(run_dir, state, "stage1", stage1_config, judge=judge, callbacks=callbacks)
    if stage1_model is None:
        return state
    if not stage_done(state, "stage1_eval"):
        eval_stage("stage1_eval", stage1_model)

    if recipes.stage2 is not None:
        stage2 = _stage2_config(recipes.stage2, stage1_config, stage1_model, run_dir)
        dump_yaml(stage2, run_dir / "stage2-recipe.yaml")
        stage2_model = _train_stage(run_dir, state, "stage2", stage2)
        if stage2_model is None:
            return state
        if not stage_done(state, "stage2_eval"):
            eval_stage("stage2_eval", stage2_model)
    state["finished"] = all(stage_done(state, s) for s in STAGES if s in state["stages"] and
                            state["stages"][s]["state"] != "skipped")
    save_run(run_dir, state)
    return state


def _filter_stage(run_dir: Path, state: dict, settings: FilterStageConfig, stage1: Any) -> Any:
    """Stage I's recipe on the base model's hard set (exprl data filter into RUN/filter, once)."""
    from exprl.eval.filter import filter_problems
    from exprl.train.config import DataConfig

    hard = run_dir / "filter"
    if not stage_done(state, "filter"):
        with stage(run_dir, state, "filter") as record:
            options = {f.name: getattr(settings, f.name) for f in fields(FilterConfig)}
            options["limit"] = stage1.data.max_problems if settings.limit is None else settings.limit
            report = filter_problems(stage1.model, stage1.data.train_files, hard, FilterConfig(**options))
            record.update(kept=report.stats["kept"], problems=report.stats["problems"])
            if not report.stats["kept"]:
                raise ConfigError(f"pipeline: the filter kept no problem: the base model solves each of the "
                                  f"{report.stats['problems']} Stage-I problems more than filter.max_solved = "
                                  f"{settings.max_solved} of {settings.n} times (see {hard}/stats.json); raise "
                                  f"filter.max_solved or train on harder problems")
    return replace(stage1, data=DataConfig(train_files=[str(hard)]))


def _train_stage(run_dir: Path, state: dict, name: str, train_config: Any, **kwargs) -> str | None:
    """The stage's final checkpoint, or None when training stopped before its last step."""
    from exprl.train.runner import run_training

    if stage_done(state, name):
        return state["stages"][name]["checkpoint"]
    with stage(run_dir, state, name) as record:
        result = run_training(train_config, run_dir / name, **kwargs)
        record.update(method=result.method, global_step=result.global_step,
                      metrics=str(result.metrics_path))
        if not (run_dir / name / TRAIN_RESULT_FILE).is_file():
            record["state"] = "interrupted"
            return None
        record["checkpoint"] = str(result.checkpoint_dir)
    return str(result.checkpoint_dir)


def _stage2_config(recipe: Any, stage1: Any, stage1_model: str, run_dir: Path) -> Any:
    """The Stage-II recipe as it trains: from the Stage-I checkpoint, on the Stage-I problems."""
    from exprl.train.config import DataConfig
    from exprl.train.runner import load_training_problems

    prompts = _stage2_prompts(stage1, run_dir, load_training_problems)
    return replace(copy.deepcopy(recipe), model=stage1_model,
                   data=DataConfig(train_files=[str(prompts)], max_prompt_tokens=recipe.data.max_prompt_tokens))


def _stage2_prompts(stage1: Any, run_dir: Path, load_training_problems) -> Path:
    """Stage I's problems with the reference solution removed (docs/method.md §7: Stage II sees no
    reference). The loaders require a reference text, so it is the boxed final answer, which is
    exactly what the sparse verifier already knows."""
    from dataclasses import replace

    from exprl.data.loaders import write_problems

    path = run_dir / "stage2-prompts.jsonl"
    if not path.is_file():
        problems = [replace(p, reference=f"\\boxed{{{p.answer}}}") for p in load_training_problems(stage1)]
        write_problems(path, problems)
    return path


def check_pipeline_inputs(config: PipelineConfig, recipes: PipelineRecipes, run_dir: Path) -> None:
    """What a pipeline would otherwise find wrong only hours in, found before any folder or model:
    a run folder that cannot take this run, training data or a benchmark that does not load, a judge
    endpoint that does not answer."""
    from exprl.eval.evaluate import load_benchmark
    from exprl.runs import RUN_FILE, inspect_output_dir
    from exprl.train.runner import load_training_problems

    inspect_output_dir(run_dir, "pipeline", adopt=(RUN_FILE,), flag="run directory",
                       inputs=[*recipes.stage1.data.sources(), *config.eval.benches])
    problems = load_training_problems(recipes.stage1)
    if recipes.stage2 is not None:
        from exprl.rewards.verifier import refuse_unverifiable

        refuse_unverifiable(problems, "stage2 (sparse GRPO on the Stage-I problems)")
    for bench in config.eval.benches:
        load_benchmark(bench, config.eval.limit)
    from exprl.train.config import JUDGED_METHODS
    from exprl.train.runner import preflight_judge

    if recipes.stage1.method in JUDGED_METHODS:
        preflight_judge(recipes.stage1, problems[0])  # the judge answers now, not after the base evaluation
