"""Wall time of `exprl data prepare` on the real corpora (MATH train + GSM8K train, decontaminated
against MATH-500 and GSM8K test): the command a user runs, in a fresh process, timed end to end.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_prepare.py [--data DIR] [--repeat 3]
    (--data defaults to $EXPRL_DATA_DIR, else ../shared/data)
    --smoke: generated files under the catalog's names, one run (benchmarks/_smoke.py)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("EXPRL_DATA_DIR") or REPO.parent / "shared" / "data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.data, args.repeat = _smoke.catalog_data(), 1
    inputs = [args.data / "math_train.jsonl", args.data / "gsm8k_train.jsonl"]
    evals = [args.data / "math500.jsonl", args.data / "gsm8k_test.jsonl"]
    missing = [str(p) for p in inputs + evals if not p.is_file()]
    if missing:
        print(f"missing data: {', '.join(missing)}", file=sys.stderr)
        return 2
    walls, stats = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            out = Path(tmp) / f"run{run}"
            command = [sys.executable, "-m", "exprl.cli", "data", "prepare", *map(str, inputs),
                       "--decontaminate", *map(str, evals), "--out", str(out)]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            stats = json.loads((out / "stats.json").read_text())
    counts = stats["counts"]
    print(f"rows loaded {counts['loaded']}, kept {counts['kept']}, removed {stats['removed_by_reason']}")
    print(f"exprl data prepare wall time over {args.repeat} runs: median {statistics.median(walls):.1f} s, "
          f"min {min(walls):.1f} s, max {max(walls):.1f} s (in-process work {stats['seconds']} s on the last run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
