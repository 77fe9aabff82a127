"""Is the demo's base model what the synthetic task needs? (architecture §7, property 1)

    .venv/bin/python benchmarks/demo_base.py [--seed 0] [--n 16] [--set KEY=VALUE ...]

Pre-trains (or reuses, from --output-dir's cache) the base model of `exprl demo` with the same
config and overrides, then samples it on the held-out easy and hard problems and prints:

- pass@1 / pass@n at the evaluation temperature and greedy pass@1, per split;
- mean `###` steps per hard sample (does the base write long chains at all?);
- where the steps go wrong, each step checked on its own inputs: operation and operand copied from
  the problem, input taken from the previous result, and the arithmetic right given those.

A base that meets property 1 solves easy problems (high easy pass@1) while hard pass@n stays near
the floor that guessing alone gives, 1 - (1 - 1/modulus)^n.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_STEP = re.compile(r"### (\d+): (-?\d+) ([-+*]) (-?\d+) = (-?\d+)")


def step_checks(problem, completion: str) -> list[tuple[bool, bool, bool]]:
    """(operation and operand right, input right, arithmetic right given the step's own inputs)."""
    from exprl.data.synthetic import OPERATIONS, chain_of

    chain = chain_of(problem)
    symbols = {symbol: fn for _, symbol, fn in OPERATIONS.values()}
    checks, previous = [], chain.start
    for match in _STEP.finditer(completion):
        index, left, symbol, operand, result = match.groups()
        index, left, operand, result = int(index), int(left), int(operand), int(result)
        if not 1 <= index <= len(chain.steps):
            break
        name, true_operand = chain.steps[index - 1]
        copied = OPERATIONS[name][1] == symbol and operand == true_operand
        arithmetic = symbols[symbol](left, operand) % chain.modulus == result
        checks.append((copied, left == previous, arithmetic))
        previous = result
    return checks


def measure(config, seed: int, n: int, log) -> dict:
    from exprl.data.answers import last_boxed
    from exprl.data.prompts import policy_messages
    from exprl.demo.runner import base_model, task_problems
    from exprl.eval.generate import HFGenerator, SamplingSettings, sample_seed
    from exprl.eval.passk import mean_pass_at_k

    started = time.monotonic()
    model = base_model(config, seed, Path(config.output_dir) / "cache", log=log)
    pretrain_s = time.monotonic() - started
    done = json.loads((model / "base_done.json").read_text())
    problems = task_problems(config, seed)
    benches = {name: problems[name] for name in ("easy", "hard")}
    row: dict = {"pretrain_s": pretrain_s, "final loss": done["final_loss"]}
    for temperature, samples in ((config.eval.temperature, n), (0.0, 1)):
        settings = SamplingSettings(temperature=temperature, max_new_tokens=config.eval.max_tokens,
                                    system_prompt=config.system_prompt)
        generator = HFGenerator(str(model), settings, batch_size=config.eval.batch_size)
        for name, bench in benches.items():
            requests = [(p, i) for p in bench for i in range(samples)]
            outputs = generator.generate([policy_messages(p.problem, config.system_prompt) for p, _ in requests],
                                         [sample_seed(seed, name, p.id, i) for p, i in requests])
            correct = {p.id: 0 for p in bench}
            checks, steps = [], []
            for (problem, _), output in zip(requests, outputs):
                correct[problem.id] += last_boxed(output.text) == problem.answer
                found = step_checks(problem, output.text)
                checks.extend(found)
                steps.append(len(found))
            counts = [(samples, c) for c in correct.values()]
            if temperature > 0:
                row[f"{name} pass@1"] = 100 * mean_pass_at_k(counts, 1)
                row[f"{name} pass@{n}"] = 100 * mean_pass_at_k(counts, n)
                row[f"{name} steps"] = sum(steps) / len(steps)
                for label, column in (("copy", 0), ("input", 1), ("arith", 2)):
                    row[f"{name} {label}"] = 100 * sum(c[column] for c in checks) / max(1, len(checks))
            else:
                row[f"{name} greedy"] = 100 * mean_pass_at_k(counts, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=16, help="Samples per problem at the eval temperature.")
    parser.add_argument("--output-dir", default="runs/demo-base", help="Holds the base-model cache.")
    parser.add_argument("--config", default=str(REPO / "src/exprl/recipes/demo.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from exprl.config import load_config
    from exprl.demo.config import DemoConfig

    config = load_config(DemoConfig, args.config, [*args.overrides, f"output_dir={args.output_dir}"])
    row = measure(config, args.seed, args.n, log=lambda m: print(m, file=sys.stderr, flush=True))
    floor = 100 * (1 - (1 - 1 / config.task.modulus) ** args.n)
    print(f"overrides: {' '.join(args.overrides) or '(defaults)'}; seed {args.seed}; "
          f"T={config.eval.temperature}; guessing floor of pass@{args.n}: {floor:.1f}")
    print(" | ".join(f"{key} {value:.3g}" if key == "final loss" else f"{key} {value:.1f}"
                     for key, value in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
