"""Trainer-side cost of one rollout batch on the reward path, at the paper's batch and lengths.

What the trainer's process does per rollout batch between generation and the loss, with the judge
answering instantly (so the figure is exprl's own work, not the judge's): decode the sampled ids
with character spans, split the steps, map tokens to steps, build the judge requests, run them
through the judge service (keys, de-duplication, results), write the records, compute advantages
and assemble the (B, T) advantage tensor. It calls the trainer's own functions
(`exprl.rewards.rollouts`, `exprl.judge.requests` and `exprl.train.trainer`: the ones
`ExpRLTrainer._find_rewards` and `_generate_and_score_completions` call, in their order; the inner
stages are timed where `exprl.judge.requests` looks them up) on
rollouts of exactly 1k, 4k and 16k tokens (SmolLM2's tokenizer; MATH reference solutions from
$EXPRL_DATA_DIR, else ../shared/data, as `###` steps, repeated to length, each ending with EOS),
576 rollouts = 36 prompts x 16 (method.md §3), on one process.

It prints the seconds of every stage at every length (the fastest of `--repeats` runs), the cost
per token, whether it grows linearly with length (per-token cost within 1.5x across lengths), and
the share of the batch's rollout time on one H100 at the anchor's generation speed (about 2k
completion tokens/s per GPU with HF generate, docs/facts.md); the target is under 10%. The sparse
verifier (math-verify on the last box: a cost per rollout, not per token) and the monitors'
detectors run for every method, sparse GRPO included: they are printed beside ExpRL's stages, not
in their total. The last line is one JSON object.

    OMP_NUM_THREADS=1 python benchmarks/reward_path.py [--lengths 1024 4096 16384] [--prompts 36]
        [--generations 16] [--signal process|outcome] [--repeats 2] [--smoke]

`--smoke`: rollouts of 64 and 128 tokens, 2 prompts x 2, one run, from a generated MATH-train-shaped
file (benchmarks/_smoke.py).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

import _smoke
from exprl.judge.service import build_judge
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

SHARED_DATA = Path(os.environ.get("EXPRL_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
ANCHOR_TOKENS_PER_S = 2000.0  # one H100, HF generate, Qwen3-0.6B shape (docs/facts.md)


class InstantJudge:
    """A backend that answers at once, with a score derived from the step text (varied, deterministic)."""

    name = "instant"
    requests_per_call = 16  # the slices the service used before backends declared their own

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return [JudgeResult(score=len(r.trace) % 5 + 1, status=JudgeStatus.OK) for r in requests]


def load_tokenizer():
    from transformers import AutoTokenizer

    from exprl.weights import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def build_rollouts(tokenizer, length: int, count: int, seed: int = 0) -> list[list[int]]:
    """`count` sampled-id sequences of exactly `length` tokens, the last one EOS.

    Each rollout is a run of MATH reference solutions, each opened by a `### Step k` heading, from
    its own starting point in a shuffled list, so no two rollouts share a step (the judge service
    would otherwise answer repeats from its de-duplication). Token lists are concatenated piece by
    piece, as a policy samples them, and the cut at `length` may fall inside a word or character.
    """
    path = SHARED_DATA / "math_train.jsonl"
    if not path.is_file():
        raise SystemExit(f"reward_path: {path} is missing (set EXPRL_DATA_DIR to the folder of the dataset catalog)")
    solutions = [json.loads(line)["solution"] for line in path.read_text().splitlines()]
    random.Random(seed).shuffle(solutions)
    pieces = tokenizer([f"{s}\n\n" for s in solutions], add_special_tokens=False)["input_ids"]
    headings: list[list[int]] = []
    eos = tokenizer.eos_token_id
    rollouts = []
    for r in range(count):
        ids: list[int] = []
        k, start = 0, (r * 997) % len(pieces)
        while len(ids) < length - 1:
            if k == len(headings):
                headings.append(tokenizer(f"### Step {k + 1}\n", add_special_tokens=False)["input_ids"])
            ids += headings[k] + pieces[(start + k) % len(pieces)]
            k += 1
        rollouts.append(ids[:length - 1] + [eos])
    return rollouts


STAGES = ("decode", "split", "token_steps", "requests", "judge_service", "records", "advantages", "tensor")
"""ExpRL's own stages. The sparse verifier and the monitors' detectors (`exprl.rewards.monitors`)
run for every method, sparse GRPO included: they are reported beside them."""
SHARED_STAGES = ("verifier", "monitors")
# Functions `judge_requests` calls by name, directly or through `exprl.rewards.steps.trace_steps`, timed
# where they are looked up (`exprl.judge.requests`, `exprl.rewards.steps`).
_INNER = {"decoded_offsets": "decode", "split_steps": "split", "token_step_ids": "token_steps",
          "tokens_per_step": "token_steps", "process_requests": "requests"}


@contextlib.contextmanager
def timed_names(modules, seconds: dict[str, float]):
    """Replace the inner functions `modules` look up by name with timed wrappers, for the duration."""
    originals = {(module, name): getattr(module, name) for module in modules for name in _INNER
                 if hasattr(module, name)}
    untimed = set(_INNER) - {name for _, name in originals}
    if untimed:  # a stage would read 0 s: the functions moved, and this benchmark must follow them
        raise SystemExit(f"reward_path: no module of {[m.__name__ for m in modules]} looks up {sorted(untimed)}")

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[_INNER[name]] += time.perf_counter() - start
        return wrapper

    for (module, name), function in originals.items():
        setattr(module, name, timed(name, function))
    try:
        yield
    finally:
        for (module, name), function in originals.items():
            setattr(module, name, function)


def run_batch(rows: list[dict[str, Any]], completion_ids: list[list[int]], tokenizer, generations: int, judge,
              signal: str, view: str) -> dict[str, float]:
    """Seconds per stage of the trainer's reward path over one local batch: the functions
    `ExpRLTrainer._find_rewards` and `_generate_and_score_completions` call, in their order."""
    import torch

    from exprl.judge import requests as asking
    from exprl.rewards import rollouts as path
    from exprl.rewards.config import RewardConfig
    from exprl.rewards.record import advantages
    from exprl.rewards import steps
    from exprl.rewards.monitors import read_traits
    from exprl.rewards.verifier import completion_text, sparse_rewards
    from exprl.train import trainer

    reward = RewardConfig()
    completions = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)  # TRL's own decode, not timed
    seconds = dict.fromkeys(STAGES + SHARED_STAGES, 0.0)
    clock = time.perf_counter

    t0 = clock()
    correct = sparse_rewards(completions, [row["answer"] for row in rows])
    seconds["verifier"] = clock() - t0
    t0 = clock()
    [read_traits(completion_text(c), len(ids), reward.delimiter) for c, ids in zip(completions, completion_ids)]
    seconds["monitors"] = clock() - t0
    t0 = clock()
    overlong = path.overlong_flags(completion_ids, {tokenizer.eos_token_id, tokenizer.pad_token_id},
                                   max(map(len, completion_ids)) + 1)
    seconds["records"] += clock() - t0
    t0 = clock()
    with timed_names([asking, steps], seconds):
        requests, step_tokens = asking.judge_requests(rows, completions, completion_ids, signal, reward.delimiter,
                                                      view, tokenizer)
    seconds["requests"] += clock() - t0 - sum(seconds[s] for s in ("decode", "split", "token_steps", "requests"))
    t0 = clock()
    asked = path.asked_rollouts(overlong, reward)
    results = asyncio.run(judge.judge_many([r for mine, ask in zip(requests, asked) if ask for r in mine]))
    seconds["judge_service"] = clock() - t0
    t0 = clock()
    rollouts = path.record_rollouts(overlong, correct, requests, step_tokens, asked, results)
    seconds["records"] += clock() - t0
    t0 = clock()
    group_ids = [i // generations for i in range(len(rollouts))]
    all_advantages = advantages(rollouts, group_ids, signal, reward)
    seconds["advantages"] = clock() - t0
    t0 = clock()
    if signal == "process":
        mask = torch.ones((len(rollouts), max(map(len, completion_ids))), dtype=torch.long)
        trainer.token_advantage_tensor(rollouts, all_advantages, mask)
    else:
        torch.tensor([0.0 if a is None else a for a in all_advantages], dtype=torch.float32)
    seconds["tensor"] = clock() - t0
    seconds["steps_per_rollout"] = sum(len(mine) for mine in requests) / len(requests)
    return seconds


def group_rows(prompts: int, generations: int) -> list[dict[str, Any]]:
    """The hidden dataset columns the trainer reads, for `prompts` MATH problems x `generations`."""
    path = SHARED_DATA / "math_train.jsonl"
    problems = [json.loads(line) for line in path.read_text().splitlines()[:prompts]]
    return [{"problem_text": p["problem"], "reference": p["solution"], "answer": p["answer"], "domain": "math",
             "problem_id": p["id"]} for p in problems for _ in range(generations)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384], help="completion tokens")
    parser.add_argument("--prompts", type=int, default=36)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--signal", choices=["process", "outcome"], default="process",
                        help="ExpRL-Process (per-step judging) or ExpRL-Outcome")
    parser.add_argument("--view", default=JudgeConfig().process_view, help="the judge's process view")
    parser.add_argument("--repeats", type=int, default=2, help="runs per length; the fastest is reported")
    parser.add_argument("--tokens-per-second", type=float, default=ANCHOR_TOKENS_PER_S,
                        help="rollout speed of one GPU the cost is compared with")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        global SHARED_DATA
        SHARED_DATA = _smoke.catalog_data()
        args.lengths, args.prompts, args.generations, args.repeats = [64, 128], 2, 2, 1

    tokenizer = load_tokenizer()
    judge = build_judge(JudgeConfig(cache_path=""), backend=InstantJudge())
    count = args.prompts * args.generations
    rows = group_rows(args.prompts, args.generations)
    report: dict[str, Any] = {"rollouts": count, "signal": args.signal, "view": args.view,
                              "tokens_per_second": args.tokens_per_second, "lengths": {}}
    print(f"{count} rollouts ({args.prompts} prompts x {args.generations}), ExpRL-{args.signal.title()}, "
          f"view {args.view}, SmolLM2 tokenizer, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'tokens':>7}{'steps':>7}" + "".join(f"{s[:13]:>14}" for s in STAGES)
          + f"{'total s':>9}{'us/token':>10}{'% rollout':>11}{'verifier s':>11}{'monitors s':>11}{'% rollout':>11}")
    from exprl.rewards.verifier import sparse_rewards
    sparse_rewards(["\\boxed{x^2}"], ["x^2"])  # math-verify's one-time set-up is the run's, not a batch's
    for length in args.lengths:
        completion_ids = build_rollouts(tokenizer, length, count)
        runs = []
        for _ in range(args.repeats):
            gc.collect()
            runs.append(run_batch(rows, completion_ids, tokenizer, args.generations, judge, args.signal, args.view))
        del completion_ids
        seconds = min(runs, key=lambda run: sum(run[s] for s in STAGES))  # the least disturbed repeat
        total = sum(seconds[s] for s in STAGES)
        tokens = count * length
        rollout_s = tokens / args.tokens_per_second
        row = {**{s: seconds[s] for s in STAGES}, "total_s": total, "us_per_token": total / tokens * 1e6,
               "rollout_s": rollout_s, "share_of_rollout": total / rollout_s, "verifier_s": seconds["verifier"],
               "monitors_s": seconds["monitors"],
               "shared_share_of_rollout": (seconds["verifier"] + seconds["monitors"]) / rollout_s,
               "steps_per_rollout": seconds["steps_per_rollout"]}
        report["lengths"][str(length)] = row
        print(f"{length:>7}{row['steps_per_rollout']:>7.1f}" + "".join(f"{seconds[s]:>14.3f}" for s in STAGES)
              + f"{total:>9.2f}{row['us_per_token']:>10.2f}{100 * row['share_of_rollout']:>10.2f}%"
              + f"{seconds['verifier']:>11.2f}{seconds['monitors']:>11.2f}"
              + f"{100 * row['shared_share_of_rollout']:>10.2f}%")
    per_token = [row["us_per_token"] for row in report["lengths"].values()]
    report["linear"] = max(per_token) / min(per_token) < 1.5
    report["max_share_of_rollout"] = max(row["share_of_rollout"] for row in report["lengths"].values())
    report["target_met"] = report["max_share_of_rollout"] < 0.10
    print(f"cost per token {min(per_token):.2f} to {max(per_token):.2f} us "
          f"({'linear' if report['linear'] else 'NOT linear'} in length: within 1.5x across lengths); "
          f"at most {100 * report['max_share_of_rollout']:.2f}% of the batch's rollout time at "
          f"{args.tokens_per_second:.0f} tokens/s per GPU (target < 10%); the verifier and monitors, which every "
          f"method runs, add up to {100 * max(r['shared_share_of_rollout'] for r in report['lengths'].values()):.2f}%")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
