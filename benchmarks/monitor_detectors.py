"""How the training monitors' text detectors read honest solutions and the attack families.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/monitor_detectors.py [--suite N] [--smoke]

Prints, for every human reference solution of the data folder's files (GSM8K train and test, MATH
train, MATH test without MATH-500, MATH-500), the share a detector of `exprl.rewards.monitors`
flags (bare answers, number lists) and the longest list it found; then, over the red-teaming suite
of `testing.hacking` on GSM8K train and MATH train rows 1000..1000+N (the rows
benchmarks/judge_hacking.py uses), the share of each trace family each detector flags. A detector
should flag its attack families always and honest text (references, clean traces) almost never.
Also the time `read_traits` takes per rollout (the trainer calls it on every rollout of every step):
over the suite's traces, and on a trace of 60,000 characters (about 16k tokens, the paper's cap)
cut from MATH train references.
Data: $EXPRL_DATA_DIR (the catalog's data folder), else ../shared/data beside the repository;
`--smoke`: generated files under the same names, 2 problems per dataset, one timing (benchmarks/_smoke.py).
"""
from __future__ import annotations

import argparse
import os
import time
import timeit
from collections import defaultdict
from pathlib import Path

import _paths  # noqa: F401  (the repository root on sys.path, for testing/)
import _smoke
from exprl.data.loaders import load_problems
from exprl.rewards.monitors import NUMBER_LIST_VALUES, is_bare_answer, longest_number_run, read_traits
from testing.hacking import suite

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EXPRL_DATA_DIR") or REPO.parent / "shared" / "data")
REFERENCE_FILES = ("gsm8k_train.jsonl", "gsm8k_test.jsonl", "math_train.jsonl", "math_test_excl_math500.jsonl",
                   "math500.jsonl")
SUITE_OFFSET = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=int, default=100, help="problems per dataset in the attack suite")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    data, timings = SHARED_DATA, (10, 5)  # (calls, repeats) of the long-trace timing
    if args.smoke:
        data, timings, args.suite = _smoke.catalog_data(), (1, 1), 2

    print(f"references: share flagged (number list = {NUMBER_LIST_VALUES}+ values in a row)")
    print(f"{'file':32} {'rows':>6} {'bare answer':>12} {'number list':>12} {'longest list':>13}")
    for name in REFERENCE_FILES:
        problems = load_problems(data / name)
        runs = [longest_number_run(p.reference) for p in problems]
        bare = sum(is_bare_answer(p.reference) for p in problems)
        listed = sum(run >= NUMBER_LIST_VALUES for run in runs)
        print(f"{name:32} {len(problems):6d} {bare / len(problems):12.4f} {listed / len(problems):12.4f} "
              f"{max(runs):13d}")

    flagged: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # family -> [traces, bare, listed]
    seconds, traces = 0.0, 0
    for name in ("gsm8k_train.jsonl", "math_train.jsonl"):
        problems = load_problems(data / name)[SUITE_OFFSET:SUITE_OFFSET + args.suite]
        for trace in suite(problems):
            started = time.perf_counter()
            traits = read_traits(trace.text, tokens=len(trace.text) // 3)
            seconds += time.perf_counter() - started
            traces += 1
            counts = flagged[f"{trace.family} ({trace.base})" if trace.family == "clean" else trace.family]
            counts[0] += 1
            counts[1] += traits.bare_answer
            counts[2] += traits.number_list
    print(f"\nattack suite: GSM8K train and MATH train rows {SUITE_OFFSET}..{SUITE_OFFSET + args.suite}, "
          "share flagged")
    print(f"{'family':20} {'traces':>7} {'bare answer':>12} {'number list':>12}")
    for family, (total, bare, listed) in sorted(flagged.items()):
        print(f"{family:20} {total:7d} {bare / total:12.3f} {listed / total:12.3f}")
    print(f"\nread_traits: {1e6 * seconds / traces:.0f} us per trace over {traces} suite traces")
    long_trace = "\n".join(p.reference for p in load_problems(data / "math_train.jsonl"))[:60_000]
    number, repeat = timings
    best = min(timeit.repeat(lambda: read_traits(long_trace, tokens=16_000), number=number, repeat=repeat)) / number
    print(f"read_traits: {1e3 * best:.2f} ms on a {len(long_trace):,}-character trace (fastest of {repeat} x {number})")


if __name__ == "__main__":
    main()
