"""`exprl pipeline`: the paper's two-stage protocol in one resumable run directory.

    evaluate base -> [keep the Stage-I problems the base model cannot solve] -> Stage I (any method)
    -> evaluate -> Stage II (sparse GRPO from the Stage-I checkpoint, same prompts, references
    removed) -> evaluate

Run directory (its format is exprl.runs'):

    run.json              exprl version, layout format, label, Stage-I method, state and recipe of every stage
    resolved-config.json  the pipeline config and both training recipes the run started with
    pipeline.yaml         the resolved PipelineConfig, for reading
    plan.json             what each training stage does (exprl.train.plan), checked before anything ran
    base-model/           only for `model: tiny`: the fresh model that both base eval and Stage I use
    stage1/, stage2/      training runs (recipe.yaml, checkpoint-N/, metrics.jsonl, final/)
    stage2-prompts.jsonl  Stage-I problems with the reference solution replaced by the boxed answer
    eval/{base,stage1,stage2}/   evaluation directories (see exprl.eval.evaluate)
    filter/               with `filter.enabled`: the base model's hard set (exprl.eval.filter), Stage I's data

Stage II is one recipe for every Stage-I method (`stage2.recipe`; the paper's is
the bundled paper-stage2.yaml): nothing of the Stage-I recipe carries over but the checkpoint and the
problems, so every method is compared after the same downstream RL. Before anything runs, both
training stages are planned (`exprl.train.plan`; a dry run plans each at its recipe's
`launch.num_processes`, as the paper's node runs them, a real run at this launch's world size): a
stage that cannot run stops the pipeline before Stage I spends its hours. The run folder defaults to
runs/<label>, the label being `name`, else the Stage-I method.

Every stage records its state in run.json as it starts and ends. Re-running the same command skips
finished stages and resumes an interrupted one (training from its last checkpoint, evaluation from
its generation cache).

The package: `config.py` (PipelineConfig and how a pipeline file is read), `run.py` (planning and
running the stages: `run_pipeline`), `cli.py` (the `exprl pipeline` command). Its public names are
importable from `exprl.pipeline` itself.
"""
from __future__ import annotations

from exprl.pipeline.config import (FilterStageConfig, PipelineConfig, StageOneConfig, StageTwoConfig,
                                   load_pipeline_config)
from exprl.pipeline.run import (PLAN_FILE, PipelineRecipes, check_pipeline_inputs, default_run_dir, pipeline_recipes,
                                plan_document, plan_pipeline, run_pipeline)

__all__ = ["FilterStageConfig", "PLAN_FILE", "PipelineConfig", "PipelineRecipes", "StageOneConfig", "StageTwoConfig",
           "check_pipeline_inputs", "default_run_dir", "load_pipeline_config", "pipeline_recipes", "plan_document",
           "plan_pipeline", "run_pipeline"]
