"""How much of ExpRL-Process's Stage I goes to rollouts with a single step (no `###`), on the demo task.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/single_step_share.py --output-dir runs/single-step \
        --label after [--steps 100] [--seed 0] [--set demo.key=value ...]

Pre-trains (or reuses, from OUTPUT_DIR/cache) the demo's base model for the seed, runs only Stage I of
exprl-process with the demo's settings, and records at every rollout batch:

- the share of rollouts with one step (T = 1);
- the share of the gradient's weight they carry: sum over their tokens of |advantage| divided by the
  same sum over every rollout (the token-mean loss weighs each token's |advantage| alike);
- the mean |advantage| per trained token of one-step and of multi-step rollouts.

It prints the shares for the first and last 10 batches and the whole of Stage I, and, on a tree with
the new rule, what the old rule (the group z-score of s_T) would have given the same one-step rollouts.
`--single-step RULE` compares the rules on one tree (issue 23: `raw`, the official code's A = s_1,
against exprl's `outcome`), e.g.

    B="benchmarks/single_step_share.py --output-dir runs/single-step --steps 40 --set base.steps=900 \
       --set task.easy_max_steps=1 --set task.hard_min_steps=2 --set task.hard_max_steps=4 \
       --set task.pretrain_long_share=0.1 --set base.num_problems=1500"
    OMP_NUM_THREADS=1 .venv/bin/python $B --label raw --single-step raw
    OMP_NUM_THREADS=1 .venv/bin/python $B --label outcome --single-step outcome

Or run it once on a tree with the old single-step rule and once on one with the new (`--label` names the
run folder), with the same output directory so both start from the same base model, e.g.

    git archive a59d75f src | tar -x -C /tmp/before    # the old rule
    B="benchmarks/single_step_share.py --output-dir runs/single-step --steps 40 --set base.steps=900 \
       --set task.easy_max_steps=1 --set task.hard_min_steps=2 --set task.hard_max_steps=4 \
       --set task.pretrain_long_share=0.1 --set base.num_problems=1500"
    PYTHONPATH=/tmp/before/src OMP_NUM_THREADS=1 .venv/bin/python $B --label before
    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python $B --label after

`--smoke`: 2 rollout batches on the smallest demo (benchmarks/_smoke.py's overrides) in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _smoke


def _z_scored_single_step_abs(trainer) -> float:
    """Sum over the tokens of this batch's one-step rollouts of |advantage| under the old rule (the
    final-step score z-scored in its group), from the same rollouts: the scale the fix removed."""
    from exprl.rewards.advantages import apply_overlong, outcome_advantages

    rollouts = trainer._batch.rollouts
    groups = [i // trainer.num_generations for i in range(len(rollouts))]
    finals = apply_overlong([r.dense_reward for r in rollouts], [r.overlong for r in rollouts],
                            trainer.reward.overlong)
    z = outcome_advantages(finals, groups, "std")
    return sum(abs(a) * sum(r.tokens_per_step) for r, a in zip(rollouts, z)
               if r.num_steps == 1 and a is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs/single-step"))
    parser.add_argument("--label", help="run folder name under OUTPUT_DIR (e.g. before, after); required")
    parser.add_argument("--steps", type=int, default=None, help="Stage-I rollout batches (default: the demo's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single-step", choices=("outcome", "zero", "raw"), default=None,
                        help="reward.single_step of the run (default: the demo's, RewardConfig's default); "
                             "raw is the official code's A = s_1")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="demo config override (exprl.demo.config.DemoConfig)")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.output_dir, args.label, args.steps = _smoke.folder(), args.label or "smoke", 2
        args.overrides = [*_smoke.DEMO_OVERRIDES, *args.overrides]
    elif args.label is None:
        parser.error("--label is required (or --smoke)")

    import torch

    from exprl.config import load_config
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import base_model, stage1_config, write_task_data
    from exprl.train.runner import run_training
    from exprl.train.trainer import ExpRLTrainer

    config = load_config(DemoConfig, overrides=args.overrides)
    run_dir = args.output_dir / args.label / f"seed-{args.seed}"
    data = write_task_data(config, args.seed, run_dir / "data")  # the task settings may differ per label
    model = base_model(config, args.seed, args.output_dir / "cache", log=print)
    train = stage1_config(config, "exprl-process", str(model), data["train-hard"], args.seed, run_dir)
    if args.single_step is not None:
        train.reward.single_step = args.single_step
    if args.steps is not None:
        train.trl["max_steps"] = args.steps
        train.trl["save_steps"] = args.steps

    records: list[dict[str, float]] = []
    original = ExpRLTrainer._generate_and_score_completions

    def observe(self, inputs):
        output = original(self, inputs)
        # One process: the local batch is the whole batch. Older trees kept the records in `_rollouts`,
        # and before exprl.rewards.record the step counts in `_gathered`.
        steps = ([r.num_steps for r in self._batch.rollouts] if hasattr(self, "_batch")
                 else [r.num_steps for r in self._rollouts] if hasattr(self, "_rollouts")
                 else self._gathered["num_steps"])
        mask = output["completion_mask"]
        advantages = output["advantages"] if output["advantages"].dim() == 2 else output["advantages"].unsqueeze(1)
        weight = (advantages.abs() * mask).sum(dim=1)
        tokens = mask.sum(dim=1)
        single = torch.tensor([n == 1 for n in steps])
        z_abs = _z_scored_single_step_abs(self) if hasattr(self, "_rollouts") else None
        records.append({"single_share": single.float().mean().item(), "single_abs_if_z": z_abs,
                        "single_weight": (weight[single].sum() / weight.sum().clamp(min=1e-12)).item(),
                        "single_abs": weight[single].sum().item(), "single_tokens": tokens[single].sum().item(),
                        "multi_abs": weight[~single].sum().item(), "multi_tokens": tokens[~single].sum().item(),
                        "steps_mean": sum(steps) / len(steps)})
        return output

    ExpRLTrainer._generate_and_score_completions = observe
    run_training(train, run_dir / "stage1")
    (run_dir / "single_step.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")

    def mean(rows, key):
        return sum(r[key] for r in rows) / max(len(rows), 1)

    print(f"exprl-process Stage I on the demo task, seed {args.seed}, {len(records)} rollout batches, "
          f"single_step={train.reward.single_step}, label {args.label}")
    print("| batches | one-step rollouts | their share of sum |A| over tokens | steps per trace |")
    print("| --- | --- | --- | --- |")
    for name, rows in (("first 10", records[:10]), ("last 10", records[-10:]), ("all", records)):
        print(f"| {name} | {100 * mean(rows, 'single_share'):.1f}% | {100 * mean(rows, 'single_weight'):.1f}% | "
              f"{mean(rows, 'steps_mean'):.2f} |")

    def per_token(kind):
        tokens = sum(r[f"{kind}_tokens"] for r in records)
        return f"{sum(r[f'{kind}_abs'] for r in records) / tokens:.3f}" if tokens else "-"

    print(f"mean |advantage| per trained token over Stage I: one-step rollouts {per_token('single')}, "
          f"multi-step rollouts {per_token('multi')}")
    if records and records[0]["single_abs_if_z"] is not None:
        tokens = sum(r["single_tokens"] for r in records)
        z = f"{sum(r['single_abs_if_z'] for r in records) / tokens:.3f}" if tokens else "-"
        print(f"the same one-step rollouts under the old rule (group z-score of s_T): {z} per token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
