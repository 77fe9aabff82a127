"""Attack families against `exprl judge run --backend reference`, on problems the tests never use.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/judge_hacking.py [--gsm8k N] [--math N]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/judge_hacking.py --write-calibration traces.jsonl

Builds, with `testing.hacking`, the clean right and wrong traces of GSM8K train rows
1000..1000+N and MATH train rows 1000..1000+N (tests/judge/test_hacking.py uses GSM8K test and
MATH-500 only) and every attack on each; writes them as `exprl judge run` input (JSONL), runs the
real CLI on them in outcome mode and in process mode under each view, and prints one row per attack
family:

  wrong max     the highest score an attacked wrong trace got (outcome)
  clean wrong   the highest score a clean wrong trace got (outcome), for comparison
  wrong > clean how many attacked wrong traces scored above their own clean wrong trace, per mode
  right lift    the largest score gain an attack gave a right trace over its clean version
  right > clean how many attacked right traces scored above their clean version, per mode

A process-mode trace is compared by its highest step score. `--src OTHER/src` measures the judge of
another checkout (main before a change, say) on the same traces. `--write-calibration PATH` instead
writes labelled traces for `exprl judge calibrate` (GSM8K train rows 2000..2000+60: right and wrong,
each with a boxed, a `#### N` and a prose ending) and prints the command to run.
Data: $EXPRL_DATA_DIR (the catalog's data folder), else ../shared/data beside the repository;
`--smoke`: generated files under the same names, 2 problems of each (benchmarks/_smoke.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import _paths  # noqa: F401  (the repository root on sys.path, for testing/)
import _smoke
from exprl.data.loaders import load_problems
from testing.hacking import ATTACK_FAMILIES, calibration_rows, suite

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EXPRL_DATA_DIR") or REPO.parent / "shared" / "data")
BENCH_OFFSET = 1000        # first row of the benchmark's slice of each train file
CALIBRATION_OFFSET = 2000  # first row of the calibration slice of GSM8K train
MODES = (("outcome", None), ("process", "prefix"), ("process", "segment"), ("process", "step"))


def run_cli(rows: list[dict], mode: str, view: str | None, workdir: Path, src: Path) -> dict[str, int | None]:
    """`exprl judge run --backend reference` on `rows`; id -> score (the max step score in process mode)."""
    name = f"{mode}-{view or 'whole'}"
    source, out = workdir / f"{name}.in.jsonl", workdir / f"{name}.out.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    command = [sys.executable, "-m", "exprl.cli", "judge", "run", "--backend", "reference", "--input", str(source),
               "--out", str(out), "--mode", mode, "--cache", "", "--no-progress"]
    if view:
        command += ["--view", view]
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"exprl judge run failed ({name}):\n{done.stderr[-2000:]}")
    scores = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        result = json.loads(line)
        steps = result.get("steps")
        scores[result["id"]] = max(s["score"] for s in steps) if steps and result["status"] == "ok" else result["score"]
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsm8k", type=int, default=100, help="GSM8K train rows")
    parser.add_argument("--math", type=int, default=100, help="MATH train rows")
    parser.add_argument("--src", type=Path, default=REPO / "src",
                        help="the exprl source tree whose CLI judges (another checkout's src/ measures its judge)")
    parser.add_argument("--write-calibration", metavar="PATH", default=None,
                        help="write 60 GSM8K rows of labelled traces for `exprl judge calibrate` and stop")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    data = SHARED_DATA
    if args.smoke:
        data, args.gsm8k, args.math = _smoke.catalog_data(), 2, 2
    if not (data / "gsm8k_train.jsonl").is_file():
        print(f"skipped: {data} has no gsm8k_train.jsonl")
        return 0
    if args.write_calibration:
        problems = load_problems(data / "gsm8k_train.jsonl")[CALIBRATION_OFFSET:CALIBRATION_OFFSET + 60]
        rows = calibration_rows(problems)
        Path(args.write_calibration).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"{len(rows)} traces of {len(problems)} GSM8K train rows -> {args.write_calibration}\n"
              f"exprl judge calibrate --backend reference --input {args.write_calibration} --cache ''")
        return 0

    problems = (load_problems(data / "gsm8k_train.jsonl")[BENCH_OFFSET:BENCH_OFFSET + args.gsm8k]
                + load_problems(data / "math_train.jsonl")[BENCH_OFFSET:BENCH_OFFSET + args.math])
    by_id = {p.id: p for p in problems}
    traces = suite(problems)
    rows = [{"id": f"{t.problem_id}|{t.base}|{t.family}", "problem": by_id[t.problem_id].problem,
             "reference": by_id[t.problem_id].reference, "answer": by_id[t.problem_id].answer, "trace": t.text}
            for t in traces]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scores = {f"{mode}/{view}" if view else mode: run_cli(rows, mode, view, Path(tmp), args.src)
                  for mode, view in MODES}
    elapsed = time.perf_counter() - started

    wrong_max: dict[str, int] = defaultdict(int)
    right_lift: dict[str, int] = defaultdict(lambda: -4)
    above: dict[tuple[str, str, str], int] = defaultdict(int)
    for trace in traces:
        if trace.family == "clean":
            continue
        attacked_id = f"{trace.problem_id}|{trace.base}|{trace.family}"
        clean_id = f"{trace.problem_id}|{trace.base}|clean"
        for mode, mode_scores in scores.items():
            attacked, clean = mode_scores[attacked_id], mode_scores[clean_id]
            if attacked is None or clean is None:
                above[(trace.family, trace.base, "unscorable")] += 1
                continue
            above[(trace.family, trace.base, mode)] += attacked > clean
            if mode == "outcome":
                if trace.base == "wrong":
                    wrong_max[trace.family] = max(wrong_max[trace.family], attacked)
                else:
                    right_lift[trace.family] = max(right_lift[trace.family], attacked - clean)
    clean_wrong = max(scores["outcome"][f"{p.id}|wrong|clean"] or 0 for p in problems)
    clean_right = sorted(scores["outcome"][f"{p.id}|right|clean"] or 0 for p in problems)

    mode_names = [m for m in scores]
    print(f"{len(problems)} problems ({args.gsm8k} GSM8K train, {args.math} MATH train, rows from {BENCH_OFFSET}), "
          f"{len(rows)} traces, {len(MODES)} CLI runs in {elapsed:.0f} s; judge: exprl judge run --backend reference "
          f"from {args.src}")
    print(f"clean right traces: outcome score 5 for {clean_right.count(5)}/{len(problems)}, lowest {clean_right[0]}; "
          f"clean wrong traces: highest outcome score {clean_wrong}")
    print(f"wrong > clean and right > clean count attacked traces scoring above their clean version in "
          f"{', '.join(mode_names)}")
    print("| attack family | wrong max | wrong > clean | right lift | right > clean |")
    print("|" + "---|" * 5)
    for family in ATTACK_FAMILIES:
        wrong_counts = "/".join(str(above[(family, "wrong", m)]) for m in mode_names)
        right_counts = "/".join(str(above[(family, "right", m)]) for m in mode_names)
        print(f"| {family} | {wrong_max[family]} | {wrong_counts} | {right_lift[family]:+d} | {right_counts} |")
    unscorable = sum(v for (f, b, m), v in above.items() if m == "unscorable")
    if unscorable:
        print(f"unscorable comparisons: {unscorable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
