"""Reference-judge speed: judgments/s on the synthetic task's steps and on MATH-500 solutions.

Prints, each cold (fresh memo caches) and then warm:
  - 500 prefix-mode step judgments of the synthetic task (5-step chains, the demo's shape);
  - N outcome judgments of MATH-500 solutions against another problem's reference (the slow case:
    symbolic values that need a sympy fingerprint), when the data folder
    ($EXPRL_DATA_DIR, else ../shared/data) has math500.jsonl.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reference_judge_speed.py [--math N] [--smoke]

`--smoke`: 4 synthetic problems and 4 rows of a generated MATH-500-shaped file (benchmarks/_smoke.py).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import _smoke
from exprl.data.synthetic import SyntheticTaskConfig, generate, policy_trace
from exprl.judge.backends.reference import ReferenceBackend
from exprl.judge.reference import arithmetic, checkpoints, statements
from exprl.judge.types import JudgeRequest

# The same default as tests/conftest.py: $EXPRL_DATA_DIR (the catalog's data folder), else ../shared/data
# beside the repository.
SHARED_DATA = Path(os.environ.get("EXPRL_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
MATH500 = SHARED_DATA / "math500.jsonl"


def synthetic_steps(count: int = 100) -> list[JudgeRequest]:
    requests = []
    for problem in generate(SyntheticTaskConfig(num_problems=count, min_steps=5, max_steps=5, seed=1)):
        steps = policy_trace(problem).split("\n")[:5]
        requests += [JudgeRequest(problem=problem.problem, reference=problem.reference, trace=step,
                                  mode="prefix", context="".join(s + "\n" for s in steps[:i]))
                     for i, step in enumerate(steps)]
    return requests


def math_cross(count: int, path: Path = MATH500) -> list[JudgeRequest]:
    rows = [json.loads(line) for line in path.open()][:count]
    return [JudgeRequest(problem=row["problem"], reference=row["solution"], answer=row["answer"],
                         trace=rows[(i + 1) % len(rows)]["solution"]) for i, row in enumerate(rows)]


def clear_memos() -> None:
    """Empty every memo of the reference judge (whatever its version names them)."""
    for value in [*vars(arithmetic).values(), *vars(statements).values(), *vars(checkpoints).values()]:
        if hasattr(value, "cache_clear"):
            value.cache_clear()


def timed(label: str, requests: list[JudgeRequest]) -> None:
    backend = ReferenceBackend()
    for state in ("cold", "warm"):
        if state == "cold":
            clear_memos()
        started = time.perf_counter()
        results = backend.judge_all(requests)
        elapsed = time.perf_counter() - started
        ok = sum(r.ok for r in results)
        print(f"{label:<40} {state}: {len(requests)} judgments in {elapsed:.3f} s "
              f"({len(requests) / elapsed:,.0f}/s), {ok} scored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--math", type=int, default=50, help="MATH-500 rows to judge (0 = skip)")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    synthetic, math500 = 100, MATH500
    if args.smoke:
        synthetic, math500, args.math = 4, _smoke.catalog_data() / MATH500.name, 4
    timed("synthetic, prefix-mode steps", synthetic_steps(synthetic))
    if args.math and math500.is_file():
        import math_verify  # noqa: F401 - import time is not judging time

        timed("MATH-500, wrong-reference outcome", math_cross(args.math, math500))
    elif args.math:
        print(f"MATH-500 skipped: {math500} not found")


if __name__ == "__main__":
    main()
