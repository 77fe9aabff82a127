"""`run_demo`: the whole protocol on the synthetic coverage task, resumable, in one run directory.

    runs/demo/
      demo.yaml                  the resolved DemoConfig
      cache/base-<hash>/         pre-trained base models, keyed by everything they depend on
      seed-<s>/data/             train-hard (Stage I/II prompts), hard and easy held-out benchmarks
      seed-<s>/train-hard-base.json  the base model's samples on train-hard, measured (conditions C2-C4)
      seed-<s>/<method>/         one `exprl pipeline` run per Stage-I method (exprl.pipeline)
      seed-<s>/report.md + PNGs  exprl report over that seed's runs (exprl.eval.report)
      report.md                  conditions, then tables as mean ± std over seeds, then plots (exprl.demo.report)

Every stage below the demo is already resumable (the base cache, the pipeline's run.json, the
trainer's checkpoints, the eval's generation cache), so re-running the command after an
interruption continues where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from exprl.config import dump_yaml, to_dict
from exprl.data.synthetic import SyntheticTaskConfig, generate
from exprl.demo.base import pretrain_base
from exprl.demo.config import DemoConfig
from exprl.demo.report import TRAIN_HARD_BASE_FILE, write_demo_report
from exprl.errors import RunStateError, ServerError
from exprl.runs import check_same_config, read_run, write_json_atomic

Log = Callable[[str], None]

BENCHES = ("hard", "easy")


def task_splits(config: DemoConfig, seed: int) -> dict[str, SyntheticTaskConfig]:
    """The demo's splits for one seed: easy pre-training, hard training, hard and easy held out."""
    t = config.task
    common = dict(modulus=t.modulus, operations=list(t.operations), min_operand=t.min_operand,
                  max_operand=t.max_operand, step_labels=t.step_labels,
                  last_first=t.last_first, seed=seed)
    long_count = round(config.base.num_problems * t.pretrain_long_share)
    return {
        "pretrain": SyntheticTaskConfig(num_problems=config.base.num_problems - long_count,
                                        min_steps=t.easy_min_steps, max_steps=t.easy_max_steps,
                                        split="pretrain", **common),
        "pretrain-long": SyntheticTaskConfig(num_problems=max(long_count, 0), min_steps=t.easy_max_steps + 1,
                                             max_steps=t.pretrain_long_max_steps or t.hard_max_steps,
                                             split="pretrain-long", **common),
        "train-hard": SyntheticTaskConfig(num_problems=t.num_train_hard, min_steps=t.hard_min_steps,
                                          max_steps=t.hard_max_steps, split="train-hard", **common),
        "hard": SyntheticTaskConfig(num_problems=t.num_eval_hard, min_steps=t.hard_min_steps,
                                    max_steps=t.hard_max_steps, split="eval-hard", **common),
        "easy": SyntheticTaskConfig(num_problems=t.num_eval_easy, min_steps=t.easy_min_steps,
                                    max_steps=t.easy_max_steps, split="eval-easy", **common),
    }


def task_problems(config: DemoConfig, seed: int) -> dict[str, list]:
    """One seed's Stage-I problems and held-out benchmarks. Held-out problems never repeat a training
    or pre-training one."""
    splits = task_splits(config, seed)
    pretrain = generate(splits["pretrain"])
    pretrain_long = generate(splits["pretrain-long"])
    train_hard = generate(splits["train-hard"], exclude={p.problem for p in pretrain_long})
    hard = generate(splits["hard"], exclude={p.problem for p in train_hard + pretrain_long})
    easy = generate(splits["easy"], exclude={p.problem for p in pretrain})
    return {"train-hard": train_hard, "hard": hard, "easy": easy}


def write_task_data(config: DemoConfig, seed: int, data_dir: Path) -> dict[str, Path]:
    """The JSONL files of one seed (`task_problems`)."""
    from exprl.data.loaders import write_problems

    paths = {}
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, problems in task_problems(config, seed).items():
        path = data_dir / f"{name}.jsonl"
        if not path.is_file():  # fixed by the seed; rewriting would only change the mtime
            write_problems(path, problems)
        paths[name] = path
    return paths


def base_model(config: DemoConfig, seed: int, cache_dir: Path, log: Log = print) -> Path:
    """One seed's base model, pre-trained (or reused from `cache_dir`) on the easy split and the long traces."""
    splits = task_splits(config, seed)
    return pretrain_base(replace(config.base, seed=seed), [splits["pretrain"], splits["pretrain-long"]], cache_dir,
                         system_prompt=config.system_prompt, log=log)


def judge_config(config: DemoConfig, run_dir: Path):
    from exprl.judge.types import JudgeConfig

    view = config.judge_process_view
    cache = str(run_dir / "judge-cache.sqlite")
    if config.judge == "openai":
        return JudgeConfig(backend="openai", base_urls=[config.judge_url], model=config.judge_model,
                           process_view=view, cache_path=cache)
    # Each value of a chain builds on all before it, so only checkpoints reached in order are progress.
    return JudgeConfig(backend="reference", process_view=view, cache_path=cache, reference_matching="chain")


def check_judge_url(url: str, timeout_s: float = 5.0) -> None:
    """Fail before any training when the judge endpoint does not answer `GET /models`."""
    import urllib.error
    import urllib.request

    target = url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as response:
            if response.status != 200:
                raise ServerError(f"judge URL {url} answered GET /models with HTTP {response.status}")
            json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ServerError(f"judge URL {url} does not answer (GET {target}: {exc}); start the server "
                          f"(e.g. `exprl judge serve`) or drop --judge-url to use the reference judge") from exc


def stage1_config(config: DemoConfig, method: str, model: str, train_file: Path, seed: int, run_dir: Path):
    from exprl.train.config import DataConfig, TrainConfig

    t = config.training
    common = dict(max_steps=t.stage1_steps, save_steps=max(1, t.stage1_steps // 3), logging_steps=1,
                  lr_scheduler_type="constant", weight_decay=0.0, report_to="none")
    if method == "sft":
        # One reference per prompt of a step: the same number of problems per step as the RL methods.
        trl = dict(common, learning_rate=t.sft_learning_rate, per_device_train_batch_size=t.prompts_per_step,
                   max_length=512)
    elif method == "self-distill":
        trl = dict(common, learning_rate=t.distill_learning_rate,
                   per_device_train_batch_size=t.prompts_per_step * t.num_generations,
                   num_generations=t.num_generations, max_completion_length=t.max_completion_length,
                   temperature=t.temperature)
    else:
        trl = dict(common, learning_rate=t.learning_rate,
                   per_device_train_batch_size=t.prompts_per_step * t.num_generations,
                   num_generations=t.num_generations, max_completion_length=t.max_completion_length,
                   temperature=t.temperature, beta=t.beta)
    return TrainConfig(method=method, model=model, data=DataConfig(train_files=[str(train_file)]),
                       judge=judge_config(config, run_dir), system_prompt=config.system_prompt, seed=seed,
                       print_logs=False, trl=trl)


def stage2_config(config: DemoConfig, seed: int):
    """Stage II: the same sparse GRPO after every Stage-I method, centred rewards as in the paper.
    The pipeline sets its model (the Stage-I checkpoint) and data (the Stage-I problems)."""
    from exprl.rewards.config import RewardConfig
    from exprl.train.config import TrainConfig

    t = config.training
    trl = dict(max_steps=t.stage2_steps, save_steps=max(1, t.stage2_steps // 3), logging_steps=1,
               lr_scheduler_type="constant", weight_decay=0.0, report_to="none",
               learning_rate=t.learning_rate, per_device_train_batch_size=t.prompts_per_step * t.num_generations,
               num_generations=t.num_generations, max_completion_length=t.max_completion_length,
               temperature=t.temperature, beta=t.beta)
    return TrainConfig(method="grpo", reward=RewardConfig(outcome_normalize="mean"), system_prompt=config.system_prompt,
                       seed=seed, print_logs=False, trl=trl)


def pipeline_config(config: DemoConfig, method: str, data: dict[str, Path], evaluate_base: bool):
    from exprl.eval.config import EvalConfig
    from exprl.pipeline import PipelineConfig

    e = config.eval
    return PipelineConfig(
        name=method, evaluate_base=evaluate_base,
        eval=EvalConfig(benches=[str(data[b]) for b in BENCHES], n=e.n, temperature=e.temperature,
                        max_tokens=e.max_tokens, batch_size=e.batch_size, seed=0,
                        system_prompt=config.system_prompt, engine="hf"))


def run_demo(config: DemoConfig, run_dir: str | Path | None = None, log: Log = print) -> Path:
    """Run (or resume) the demo; returns the path of the report."""
    run_dir = Path(run_dir or config.output_dir)
    if config.judge == "openai":
        check_judge_url(config.judge_url)
    _check_same_config(config, run_dir)
    started = time.monotonic()
    seeds = [config.seed + i for i in range(config.seeds)]
    seed_reports = []
    for seed in seeds:
        seed_dir = run_dir / f"seed-{seed}"
        log(f"[demo] seed {seed}: task data and base model")
        data = write_task_data(config, seed, seed_dir / "data")
        model = base_model(config, seed, run_dir / "cache", log=lambda m: log(f"[demo] {m}"))
        _measure_train_hard(config, seed, str(model), seed_dir, log)
        runs = []
        for index, method in enumerate(config.methods):
            log(f"[demo] seed {seed}: {method}: Stage I -> eval -> Stage II -> eval "
                f"({time.monotonic() - started:.0f}s so far)")
            run_path = seed_dir / method
            _run_method(config, method, str(model), data, seed, run_path, evaluate_base=index == 0,
                        run_dir=run_dir)
            runs.append(run_path)
        seed_reports.append(_write_seed_report(runs, seed_dir))
        log(f"[demo] seed {seed}: report {seed_reports[-1]}")
    report = write_demo_report(run_dir, config, seeds, seed_reports)
    log(f"[demo] done in {time.monotonic() - started:.0f}s: {report}")
    return report


def _run_method(config: DemoConfig, method: str, base_model: str, data: dict[str, Path], seed: int,
                run_path: Path, evaluate_base: bool, run_dir: Path) -> dict[str, Any]:
    from exprl.pipeline import run_pipeline

    train = stage1_config(config, method, base_model, data["train-hard"], seed, run_dir)
    judge = method_judge(config, method)
    state = run_pipeline(pipeline_config(config, method, data, evaluate_base), run_path, stage1_config=train,
                         stage2_config=stage2_config(config, seed), judge=judge)
    if not state.get("finished"):
        failed = {s: r.get("error") for s, r in state["stages"].items() if r.get("state") not in ("done", "skipped")}
        raise RunStateError(f"{run_path}: the pipeline stopped before finishing ({failed}); run the demo "
                            "again to resume")
    return state


def method_judge(config: DemoConfig, method: str):
    """The judge object a Stage-I method trains with, or None: the pipeline then builds the one its
    TrainConfig declares (`judge_config`: the reference judge, or the endpoint)."""
    from exprl.train.config import JUDGED_METHODS

    if config.judge == "oracle" and method in JUDGED_METHODS:
        from exprl.demo.oracle import OracleJudge

        return OracleJudge()
    if config.judge == "step" and method == "exprl-process":
        from exprl.demo.step_judge import StepJudge

        return StepJudge()
    return None


def _write_seed_report(runs: list[Path], seed_dir: Path) -> Path:
    from exprl.eval.report import write_report

    return write_report(runs, out_dir=seed_dir)


# One group a problem (64 groups) put seed 4's C2 at 12.5% where 16 samples a problem gave 5.5%:
# four groups' worth, counted by the unbiased pass@k estimator, cost about 3 s more per seed.
CONDITION_GROUPS_PER_PROBLEM = 4


def _measure_train_hard(config: DemoConfig, seed: int, model: str, seed_dir: Path, log: Log) -> None:
    """The base model on the hard training problems (conditions C2-C4): `CONDITION_GROUPS_PER_PROBLEM`
    groups of `training.num_generations` samples per problem at the rollout temperature and length, as
    Stage I draws its groups; the share of groups with a right answer is the unbiased estimate over all
    of a problem's samples. Sampled once per seed and stored; the report reads it back (`exprl.demo.report`)."""
    from exprl.demo.conditions import sample_stats

    path = seed_dir / TRAIN_HARD_BASE_FILE
    if path.is_file():
        return
    started = time.monotonic()
    problems = task_problems(config, seed)["train-hard"]
    stats = sample_stats(model, problems, n=CONDITION_GROUPS_PER_PROBLEM * config.training.num_generations,
                         temperature=config.training.temperature,
                         max_tokens=config.training.max_completion_length, group_size=config.training.num_generations,
                         seed=seed, name="train-hard", system_prompt=config.system_prompt,
                         batch_size=config.eval.batch_size)
    write_json_atomic(path, stats.to_dict())
    log(f"[demo] seed {seed}: base on the hard training problems: {stats.group_success:.1f}% of groups of "
        f"{stats.group_size} hold a right answer, first step right {stats.first_step_right:.0f}%, right prefix "
        f"{stats.right_prefix:.2f} steps ({time.monotonic() - started:.0f}s)")


# Seeds live in their own folders, so asking for more seeds extends a run without mixing.
_EXTENDABLE = ("output_dir", "seeds")


def _check_same_config(config: DemoConfig, run_dir: Path) -> None:
    """A resumed demo must be the same demo: otherwise finished stages would mix two settings."""
    path = run_dir / "demo.yaml"
    if path.is_file():
        check_same_config(path, to_dict(config), what="demo configuration", ignore=_EXTENDABLE)
    dump_yaml(config, path)
