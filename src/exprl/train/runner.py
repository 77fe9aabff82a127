"""`run_training`: one Stage-I (or Stage-II) run from a recipe, resumable, on TRL.

A run folder (its format is exprl.runs') holds `recipe.yaml` (the resolved recipe), TRL's
`checkpoint-N/` folders, `metrics.jsonl` (one line per logged step), `final/` (the trained model
and tokenizer) and `train_result.json`, written last: its presence means the run is finished and
is never redone.

One rule for reruns, as for every exprl run folder: the same command with the same recipe resumes
(from the last checkpoint, or returns the finished run); another recipe is refused naming what
changed; a non-empty folder that is not an exprl training run is refused. Everything that can be
checked without training (the recipe with TRL's field types, the data, TRL's own argument checks)
is checked before the folder is written.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from exprl.config import dump_yaml, to_dict
from exprl.data.problem import Problem
from exprl.data.prompts import policy_messages
from exprl.errors import ConfigError, RunStoppedError
from exprl.judge.cache import FETCH_ONLY_KEYS
from exprl.runs import (
    FINAL_DIR,
    METRICS_FILE,
    RECIPE_FILE,
    TRAIN_COMMAND,
    TRAIN_RESULT_FILE,
    TRAIN_WRITES,
    check_same_config,
    claim_output_dir,
    inspect_output_dir,
    write_json_atomic,
    write_text_atomic,
)
from exprl.train.config import JUDGED_METHODS, RL_METHODS, TrainConfig, load_train_config
from exprl.weights import resolve_policy_model

logger = logging.getLogger(__name__)

RESUMABLE_CHANGES = ("print_logs", "monitor", "launch", *(f"judge.{key}" for key in FETCH_ONLY_KEYS))
"""Recipe keys a resumed run may change: they change how it runs, not what it computes."""


@dataclass
class TrainResult:
    checkpoint_dir: Path   # the final model (HF folder: weights + tokenizer)
    metrics_path: Path     # metrics.jsonl, one JSON object per logged step
    method: str
    global_step: int
    resumed: bool = False
    already_done: bool = False  # the run had finished before this call; nothing was trained

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


def load_training_problems(config: TrainConfig) -> list[Problem]:
    """The problems a recipe trains on, in order: its files concatenated, or its mix drawn with its
    seed (exprl.data.mix). Each problem's domain must be one exprl knows; a method whose reward is the
    sparse verifier (grpo: Stage II, or the sparse baseline) refuses domains without a verifier."""
    from exprl.data.domains import DOMAINS, canonical_domain
    from exprl.data.loaders import load_problems
    from exprl.data.mix import mix_problems
    from exprl.rewards.verifier import has_verifier, refuse_unverifiable

    if not config.data.sources():
        raise ConfigError("data.train_files is empty: name at least one training file (or a data.mix)")
    if config.data.mix:
        problems = mix_problems([load_problems(m.path) for m in config.data.mix], config.data.mix, config.seed)
    else:
        problems = [p for path in config.data.train_files for p in load_problems(path)]
    if config.data.max_problems is not None:
        problems = problems[:config.data.max_problems]
    if not problems:
        raise ConfigError(f"no training problems in {', '.join(config.data.sources())}")
    # The judge's cache keys hold the domain as written: `physics` and `science` would not share entries.
    problems = [p if p.domain in DOMAINS else
                dataclasses.replace(p, domain=canonical_domain(p.domain, where=f"{p.source or 'data'}, problem {p.id}"))
                for p in problems]
    if config.method == "grpo":
        refuse_unverifiable(problems, "method grpo (Stage II, or the sparse baseline; its reward is the verifier)")
    elif config.method in JUDGED_METHODS and not all(has_verifier(p.domain) for p in problems):
        logger.warning("%d training problems are in a domain without a verifier (code): the judge alone rewards "
                       "them, and exprl/sparse_correct counts them as incorrect",
                       sum(not has_verifier(p.domain) for p in problems))
    return problems


def within_prompt_budget(problems: Sequence[Problem], config: TrainConfig, tokenizer: Any) -> list[Problem]:
    """The problems whose policy prompt fits `data.max_prompt_tokens` of the policy's tokenizer.

    The paper's code drops longer prompts rather than cutting them: a cut prompt would train the policy
    on a problem it cannot read whole."""
    limit = config.data.max_prompt_tokens
    if limit is None:
        return list(problems)
    def length(problem: Problem) -> int:
        text = tokenizer.apply_chat_template(policy_messages(problem.problem, config.system_prompt),
                                             add_generation_prompt=True, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    kept = [p for p in problems if length(p) <= limit]
    if len(kept) < len(problems):
        logger.warning("left out %d of %d training problems whose prompt is longer than data.max_prompt_tokens=%d",
                       len(problems) - len(kept), len(problems), limit)
    if not kept:
        raise ConfigError(f"no training problem's prompt fits data.max_prompt_tokens={limit}; raise it")
    return kept


def preflight_judge(config: TrainConfig, problem: Problem) -> None:
    """Before anything is written or loaded, each judge endpoint grades one real trace: the first
    training problem's own reference (`exprl.judge.service.preflight`). A judge that is down or
    misnamed stops the run here, in seconds, with its folder as it was."""
    import sys

    from exprl.judge.service import preflight
    from exprl.judge.types import JudgeRequest

    request = JudgeRequest(problem=problem.problem, reference=problem.reference, trace=problem.reference,
                           answer=problem.answer, domain=problem.domain, problem_id=problem.id)
    preflight(config.judge, request, log=lambda line: print(line, file=sys.stderr, flush=True))


def build_rows(problems: Sequence[Problem], config: TrainConfig) -> list[dict[str, Any]]:
    """Dataset rows. `prompt` comes only from policy_messages; the other columns are hidden from the
    policy (TRL hands them to reward functions, SFT uses `completion` as the target, self-distill's
    teacher alone sees `privileged_context`)."""
    rows = []
    for p in problems:
        prompt = policy_messages(p.problem, config.system_prompt)
        if config.method == "sft" and config.sft_prompt == "user-only":
            # The official SFT data: the problem text as it is, the only message.
            prompt = [{"role": "user", "content": p.problem}]
        if config.method == "sft":
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": p.reference}]})
        elif config.method == "self-distill":
            rows.append({"prompt": prompt, "privileged_context": p.reference})
        else:
            rows.append({"prompt": prompt, "problem_id": p.id, "problem_text": p.problem,
                         "reference": p.reference, "answer": p.answer, "domain": p.domain})
    return rows


def trl_config_class(method: str):
    if method in RL_METHODS:
        from trl import GRPOConfig

        return GRPOConfig
    if method == "sft":
        from trl import SFTConfig

        return SFTConfig
    from trl.experimental.sdft import SDFTConfig

    return SDFTConfig


def check_trl_keys(config: TrainConfig) -> type:
    """The method's TRL config class, after checking every `trl` key is one of its fields."""
    from exprl.train.trl_args import trl_arguments

    trl_arguments(config, world_size=1)
    return trl_config_class(config.method)


def build_trl_args(config: TrainConfig, output_dir: Path):
    """The TRL config object: `exprl.train.trl_args.trl_arguments` at this launch's world size."""
    import torch

    from exprl.train.trl_args import trl_arguments, world_size_from_environment

    cls = trl_config_class(config.method)
    world_size = world_size_from_environment()
    machine = {} if torch.cuda.is_available() else {"use_cpu": True, "bf16": False}
    values = trl_arguments(config, world_size, machine)
    values.update(output_dir=str(output_dir), seed=config.seed)
    try:
        with warnings.catch_warnings():
            _ignore_v6_renames()  # TrainingArguments warns here, before any trainer exists
            args = cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trl section: {exc}") from exc
    if args.world_size != world_size:
        raise ConfigError(f"this launch has {args.world_size} training processes but WORLD_SIZE says {world_size}; "
                          "launch with accelerate launch --num_processes N")
    return args


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = [p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                   and (p / "trainer_state.json").is_file()]
    return max(checkpoints, key=lambda p: int(p.name.split("-")[-1])) if checkpoints else None


def _trim_metrics(metrics_path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint a run resumes from: those steps are trained again."""
    if not metrics_path.is_file():
        return
    kept = [line for line in metrics_path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    write_text_atomic(metrics_path, "".join(line + "\n" for line in kept))


def run_training(config: TrainConfig | str | Path, output_dir: str | Path, *, overrides: list[str] | None = None,
                 callbacks: Sequence[Any] = (), judge: Any = None) -> TrainResult:
    """Train one method per `config` (a TrainConfig or a recipe path) into `output_dir`, or resume it.

    A finished run with the same recipe is returned as is (`already_done`); an unfinished one
    continues from its last checkpoint with the same data order and finishes at the same step
    count; a recipe that differs from the folder's is refused naming every changed key. `judge`
    replaces the judge built from `config.judge` (benchmarks, tests); `callbacks` are extra
    TrainerCallbacks.
    """
    from exprl.train.plan import plan_stage
    from exprl.train.trl_args import world_size_from_environment

    if not isinstance(config, TrainConfig):
        config = load_train_config(config, overrides)
    output_dir = Path(output_dir)
    # A recipe that cannot run at this world size, or that TRL would refuse, fails here, before a
    # folder, a model or a judge exists.
    plan = plan_stage(config, world_size_from_environment(), output_dir.name)
    folder = dict(adopt=(RECIPE_FILE, TRAIN_RESULT_FILE), flag="output directory")
    inspect_output_dir(output_dir, TRAIN_COMMAND, writes=TRAIN_WRITES, **folder)
    if (output_dir / RECIPE_FILE).is_file():
        check_same_config(output_dir / RECIPE_FILE, to_dict(config), what="recipe", ignore=RESUMABLE_CHANGES)
    result_path = output_dir / TRAIN_RESULT_FILE
    if result_path.is_file():
        stored = json.loads(result_path.read_text(encoding="utf-8"))
        return TrainResult(checkpoint_dir=Path(stored["checkpoint_dir"]), metrics_path=Path(stored["metrics_path"]),
                           method=stored["method"], global_step=stored["global_step"], already_done=True)
    logger.info("%s", plan.render())
    problems = load_training_problems(config)
    if config.method in JUDGED_METHODS and judge is None:
        from exprl.judge.service import check_judge

        check_judge(config.judge)
        preflight_judge(config, problems[0])
    args = build_trl_args(config, output_dir)

    checkpoint = latest_checkpoint(output_dir) if output_dir.is_dir() else None
    claim_output_dir(output_dir, TRAIN_COMMAND, TRAIN_WRITES, **folder)
    # Steps logged after the checkpoint (or before any, when the run stopped before its first) are
    # trained again.
    _trim_metrics(output_dir / METRICS_FILE,
                  json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] if checkpoint else 0)
    dump_yaml(config, output_dir / RECIPE_FILE)
    model_path = resolve_policy_model(config.model, output_dir)

    from datasets import Dataset
    from transformers import AutoTokenizer

    from exprl.train.callbacks import metrics_callback

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    problems = within_prompt_budget(problems, config, tokenizer)
    dataset = Dataset.from_list(build_rows(problems, config))
    all_callbacks = [metrics_callback(output_dir / METRICS_FILE, config), *callbacks]

    own_judge = None
    if config.method in JUDGED_METHODS and judge is None:
        from exprl.judge.service import build_judge

        judge = own_judge = build_judge(config.judge)
    try:
        trainer = _build_trainer(config, args, model_path, tokenizer, dataset, all_callbacks, judge)
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    finally:
        if own_judge is not None:
            own_judge.close()

    state = trainer.state
    metrics_path = output_dir / METRICS_FILE
    stopped = getattr(trainer, "judge_stopped", None)
    if stopped is not None:
        saved = latest_checkpoint(output_dir)
        raise RunStoppedError(f"training stopped at step {state.global_step}: {stopped}. "
                              + (f"A checkpoint is at {saved}: " if saved is not None else "")
                              + "bring the judge back (judge.base_urls may change on resume) and run the same "
                                "command to continue")
    if state.max_steps and state.global_step < state.max_steps:
        # Stopped early on purpose (a callback, a signal): resumable, not finished.
        return TrainResult(checkpoint_dir=output_dir, metrics_path=metrics_path, method=config.method,
                           global_step=state.global_step, resumed=checkpoint is not None)
    final_dir = output_dir / FINAL_DIR
    trainer.save_model(str(final_dir))
    tokenizer.save_pretrained(final_dir)
    result = TrainResult(checkpoint_dir=final_dir, metrics_path=metrics_path, method=config.method,
                         global_step=state.global_step, resumed=checkpoint is not None)
    if trainer.accelerator.is_main_process:
        write_json_atomic(result_path, result.to_dict())
    return result


def _build_trainer(config: TrainConfig, args: Any, model_path: str, tokenizer: Any, dataset: Any,
                   callbacks: list[Any], judge: Any):
    trainer = _trainer_for_method(config, args, model_path, tokenizer, dataset, callbacks, judge)
    if not config.print_logs:
        from transformers.trainer_callback import ProgressCallback

        from exprl.train.callbacks import BarOnlyProgressCallback

        if trainer.pop_callback(ProgressCallback) is not None:
            trainer.add_callback(BarOnlyProgressCallback())
    return trainer


def _ignore_v6_renames() -> None:
    # TRL 1.16 still calls transformers' pre-v6 gradient-checkpointing names (and TrainingArguments
    # reads its own `gradient_checkpointing` field so): a warning per run that a user can do nothing about.
    warnings.filterwarnings("ignore", category=FutureWarning,
                            message=r"`\w+` is deprecated and will be removed in v6")


def _trainer_for_method(config: TrainConfig, args: Any, model_path: str, tokenizer: Any, dataset: Any,
                        callbacks: list[Any], judge: Any):
    _ignore_v6_renames()
    if config.method in RL_METHODS:
        from exprl.train.trainer import ExpRLTrainer

        return ExpRLTrainer(model=model_path, args=args, train_dataset=dataset, processing_class=tokenizer,
                            callbacks=callbacks, method=config.method, reward=config.reward, judge=judge,
                            process_view=config.judge.process_view, monitor=config.monitor)
    if config.method == "sft":
        from trl import SFTTrainer

        return SFTTrainer(model=model_path, args=args, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=callbacks)
    from trl.experimental.sdft import SDFTTrainer

    return SDFTTrainer(model=model_path, args=args, train_dataset=dataset, processing_class=tokenizer,
                       callbacks=callbacks)
