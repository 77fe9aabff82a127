"""How much of the reference judge's credit on the synthetic task is coincidence?

    .venv/bin/python benchmarks/demo_judge_coincidences.py MODEL PROBLEMS.jsonl [--matching any chain]
    .venv/bin/python benchmarks/demo_judge_coincidences.py --smoke

Samples MODEL (e.g. a demo base model, `runs/demo/cache/base-*`) 8 times on the first 32 problems
of a synthetic split (e.g. `runs/demo/seed-0/data/train-hard.jsonl`) at T = 0.8 and judges each
sample with the reference judge under each matching rule. A credited checkpoint is a coincidence
when the trace states its value, but not as the result of the step that computes it: values are
numbers below the modulus, so a wrong trace often states one by chance.
`--smoke`: the smallest demo's base model and train-hard split (benchmarks/_smoke.py's overrides), 2
samples each, in a temporary folder.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

import _smoke

_STEP_RESULT = re.compile(r"### (\d+): .*? = (-?\d+)")


def main(argv: list[str] | None = None) -> int:
    from typing import get_args

    from exprl.judge.types import ReferenceMatching

    matchings = list(get_args(ReferenceMatching))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("problems", nargs="?")
    parser.add_argument("--matching", nargs="+", default=matchings, choices=matchings)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.model, args.problems, args.samples = *smoke_inputs(), 2
    elif args.model is None or args.problems is None:
        parser.error("MODEL and PROBLEMS are required (or --smoke)")

    from exprl.data.loaders import load_problems
    from exprl.data.prompts import policy_messages
    from exprl.eval.generate import HFGenerator, SamplingSettings
    from exprl.judge.backends.reference import ReferenceBackend
    from exprl.judge.reference.statements import stated_results
    from exprl.judge.types import JudgeConfig, JudgeRequest

    problems = load_problems(args.problems)[:32]
    generator = HFGenerator(args.model, SamplingSettings(temperature=0.8, max_new_tokens=128), batch_size=256)
    requests = [p for p in problems for _ in range(args.samples)]
    outputs = generator.generate([policy_messages(p.problem, None) for p in requests], list(range(len(requests))))
    for matching in args.matching:
        judge = ReferenceBackend(JudgeConfig(reference_matching=matching))
        credited = coincidental = 0
        scores: Counter = Counter()
        for problem, output in zip(requests, outputs):
            request = JudgeRequest(problem=problem.problem, reference=problem.reference, trace=output.text,
                                   answer=problem.answer)
            checkpoints = judge.checkpoints_for(request)
            reached = judge.reached(stated_results(output.text), checkpoints)
            step_results = {int(step): value for step, value in _STEP_RESULT.findall(output.text)}
            true_values = [str(v) for v in problem.meta["values"]]
            for checkpoint, hit in zip(checkpoints, reached):
                if hit:
                    credited += 1
                    steps = [i for i, value in enumerate(true_values, 1) if value == checkpoint]
                    coincidental += not any(step_results.get(i) == checkpoint for i in steps)
            scores[judge.judge_one(request).score] += 1
        print(f"{matching}: {len(outputs)} samples; credited checkpoints {credited}, of which coincidental "
              f"{coincidental} ({100 * coincidental / max(1, credited):.0f}%); scores {dict(sorted(scores.items()))}")
    return 0


def smoke_inputs() -> tuple[str, str]:
    """The smallest demo's base model and train-hard file, as `exprl demo` writes them."""
    from exprl.config import load_config
    from exprl.demo.config import DemoConfig
    from exprl.demo.runner import base_model, write_task_data

    out = _smoke.folder()
    config = load_config(DemoConfig, overrides=_smoke.DEMO_OVERRIDES)
    model = base_model(config, 0, out / "cache", log=lambda m: print(m, file=sys.stderr, flush=True))
    return str(model), str(write_task_data(config, 0, out / "data")["train-hard"])


if __name__ == "__main__":
    sys.exit(main())
