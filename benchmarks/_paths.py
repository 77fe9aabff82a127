"""The one way a benchmark script reaches the test tooling in `testing/` (outside src/, so outside the wheel).

A script run as `python benchmarks/NAME.py` has its own folder first on sys.path, so `import _paths`
finds this module, which puts the repository root on sys.path: `from testing.hacking import ...`
then works from any working directory. A judge server a benchmark starts as its own process runs
testing/loopback.py by its path (`LOOPBACK_SERVER`), which needs nothing on the child's path.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# the command line of the loopback judge server in its own process; add --latency S, --behaviour B
LOOPBACK_SERVER = [sys.executable, str(REPO / "testing" / "loopback.py")]
