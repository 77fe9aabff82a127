"""`exprl pipeline`: the paper's two-stage protocol in one resumable run directory.

    evaluate base -> Stage I (any method) -> evaluate -> Stage II (sparse GRPO from the Stage-I
    checkpoint, same prompts, references removed) -> evaluate

Run directory (its format is exprl.runs'):

    run.json              exprl version, layout format, label, Stage-I method, state of every stage
    resolved-config.json  the pipeline config and the Stage-I recipe the run started with
    pipeline.yaml         the resolved PipelineConfig, for reading
    base-model/           only for `model: tiny`: the fresh model that both base eval and Stage I use
    stage1/, stage2/      training runs (recipe.yaml, checkpoint-N/, metrics.jsonl, final/)
    stage2-prompts.jsonl  Stage-I problems with the reference solution replaced by the boxed answer
    eval/{base,stage1,stage2}/   evaluation directories (see exprl.eval.evaluate)

Every stage records its state in run.json as it starts and ends. Re-running the same command skips
finished stages and resumes an interrupted one (training from its last checkpoint, evaluation from
its generation cache).
"""
from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from exprl.config import add_override_argument, dump_yaml, from_dict, load_config, parse_override, set_dotted, to_dict
from exprl.errors import ConfigError
from exprl.eval.config import EvalConfig
from exprl.runs import STAGES, TRAIN_RESULT_FILE, open_run, save_run, stage, stage_done
from exprl.weights import resolve_policy_model


@dataclass
class StageOneConfig:
    recipe: str = field(default="", metadata={
        "help": "Training recipe YAML for Stage I (method, model, data, judge, trl). Relative to this file."})
    overrides: list[str] = field(default_factory=list, metadata={
        "help": "key=value overrides applied to the Stage-I recipe, e.g. trl.max_steps=2."})


@dataclass
class StageTwoConfig:
    enabled: bool = field(default=True, metadata={"help": "Run Stage II (sparse GRPO) after Stage I."})
    recipe: str | None = field(default=None, metadata={
        "help": "Training recipe for Stage II. Default: the Stage-I recipe with method grpo, its trl "
                "section kept for RL methods. Method, model and prompts are always set by the pipeline."})
    overrides: list[str] = field(default_factory=list, metadata={
        "help": "key=value overrides for Stage II, e.g. trl.max_steps=500 trl.epsilon_high=0.26."})


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


def load_pipeline_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """A pipeline YAML plus overrides; recipe and benchmark paths become absolute (relative to the file)."""
    config = load_config(PipelineConfig, path, overrides)
    base = Path(path).resolve().parent

    def absolute(p: str) -> str:
        # Files are read beside the config (like the training recipes' data paths) unless they
        # exist from the working directory; anything else (a hub id) is passed on as written.
        if not p or Path(p).is_absolute() or (Path(p).exists() and not (base / p).exists()):
            return p
        if (base / p).exists() or Path(p).suffix in (".yaml", ".yml", ".jsonl", ".parquet", ".json"):
            return str((base / p).resolve())
        return p

    config.stage1.recipe = absolute(config.stage1.recipe)
    if config.stage2.recipe:
        config.stage2.recipe = absolute(config.stage2.recipe)
    config.eval.benches = [absolute(b) for b in config.eval.benches]
    return config


def run_pipeline(config: PipelineConfig, run_dir: str | Path, *, stage1_config: Any = None,
                 judge: Any = None, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run (or resume) every stage into `run_dir`; returns the final run.json contents.

    `stage1_config` (a TrainConfig) replaces `config.stage1.recipe` for callers that build recipes
    in code; `judge` and `callbacks` are passed to Stage I's `run_training`.
    """
    from exprl.train.config import RL_METHODS, TrainConfig, load_train_config

    run_dir = Path(run_dir)
    if stage1_config is None:
        if not config.stage1.recipe:
            raise ConfigError("pipeline: stage1.recipe is required (a training recipe YAML)")
        stage1_config = load_train_config(config.stage1.recipe, config.stage1.overrides)
    elif not isinstance(stage1_config, TrainConfig):
        raise ConfigError(f"pipeline: stage1_config must be a TrainConfig, got {type(stage1_config).__name__}")
    else:
        stage1_config = copy.deepcopy(stage1_config)
    if not config.eval.benches:
        raise ConfigError("pipeline: eval.benches is empty; name at least one benchmark")

    skipped = [] if config.evaluate_base else ["base_eval"]
    if not config.stage2.enabled:
        skipped += ["stage2", "stage2_eval"]
    state = open_run(run_dir, {"pipeline": to_dict(config), "stage1": to_dict(stage1_config)},
                     name=config.name or stage1_config.method, method=stage1_config.method, skipped=skipped)
    dump_yaml(config, run_dir / "pipeline.yaml")
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

    stage1_model = _train_stage(run_dir, state, "stage1", stage1_config, judge=judge, callbacks=callbacks)
    if stage1_model is None:
        return state
    if not stage_done(state, "stage1_eval"):
        eval_stage("stage1_eval", stage1_model)

    if config.stage2.enabled:
        stage2_config = _stage2_config(config, stage1_config, stage1_model, run_dir, RL_METHODS)
        dump_yaml(stage2_config, run_dir / "stage2-recipe.yaml")
        stage2_model = _train_stage(run_dir, state, "stage2", stage2_config)
        if stage2_model is None:
            return state
        if not stage_done(state, "stage2_eval"):
            eval_stage("stage2_eval", stage2_model)
    state["finished"] = all(stage_done(state, s) for s in STAGES if s in state["stages"] and
                            state["stages"][s]["state"] != "skipped")
    save_run(run_dir, state)
    return state


def _train_stage(run_dir: Path, state: dict, name: str, train_config: Any, **kwargs) -> str | None:
    """The stage's final checkpoint, or None when training stopped before its last step."""
    from exprl.train.runner import run_training

    if stage_done(state, name):
        return state["stages"][name]["checkpoint"]
    with stage(run_dir, state, name) as record:
        result = run_training(train_config, run_dir / name, resume=True, **kwargs)
        record.update(method=result.method, global_step=result.global_step,
                      metrics=str(result.metrics_path))
        if not (run_dir / name / TRAIN_RESULT_FILE).is_file():
            record["state"] = "interrupted"
            return None
        record["checkpoint"] = str(result.checkpoint_dir)
    return str(result.checkpoint_dir)


def _stage2_config(config: PipelineConfig, stage1: Any, stage1_model: str, run_dir: Path, rl_methods) -> Any:
    from exprl.train.config import TrainConfig, load_train_config
    from exprl.train.runner import load_training_problems

    if config.stage2.recipe:
        raw = to_dict(load_train_config(config.stage2.recipe))
    else:
        raw = to_dict(stage1)
        raw["reward"]["outcome_normalize"] = "mean"  # the paper's Stage II centres rewards without scaling
        if stage1.method not in rl_methods:
            raw["trl"] = {}  # SFT / self-distillation keys mean nothing to GRPOConfig
    for item in config.stage2.overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    raw.update(method="grpo", model=stage1_model)
    raw["data"] = {"train_files": [str(_stage2_prompts(stage1, run_dir, load_training_problems))],
                   "max_problems": None}
    return from_dict(TrainConfig, raw, where="stage2")


def _stage2_prompts(stage1: Any, run_dir: Path, load_training_problems) -> Path:
    """Stage I's problems with the reference solution removed (method.md: Stage II sees no
    reference). The loaders require a reference text, so it is the boxed final answer, which is
    exactly what the sparse verifier already knows."""
    from dataclasses import replace

    from exprl.data.loaders import write_problems

    path = run_dir / "stage2-prompts.jsonl"
    if not path.is_file():
        problems = [replace(p, reference=f"\\boxed{{{p.answer}}}") for p in load_training_problems(stage1)]
        write_problems(path, problems)
    return path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pipeline", help="base eval -> Stage I -> eval -> Stage II (sparse GRPO) -> eval, resumable",
        description="Run the two-stage protocol into one run directory. Re-running the same command "
                    "skips finished stages and resumes an interrupted one.")
    p.add_argument("--config", required=True, help="pipeline YAML (see configs/pipeline-*.yaml)")
    p.add_argument("--run-dir", default=None, help="run directory (default: runs/<name or method>)")
    add_override_argument(p, "pipeline", "eval.n=4")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    config = load_pipeline_config(args.config, args.overrides)
    run_dir = args.run_dir
    if run_dir is None:
        from exprl.config import read_yaml

        stage1 = read_yaml(config.stage1.recipe) if config.stage1.recipe else {}
        run_dir = Path("runs") / (config.name or str(stage1.get("method", "run")))
    state = run_pipeline(config, run_dir)
    for name in STAGES:
        record = state["stages"].get(name, {})
        extra = record.get("pass_at_1") or record.get("checkpoint") or record.get("error") or ""
        print(f"{name:12s} {record.get('state', '?'):12s} {extra}")
    print(f"run directory: {run_dir}  (exprl report {run_dir})")
    return 0 if state.get("finished") else 1
