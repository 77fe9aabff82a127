"""Progress of long work, on a terminal and off one.

On a terminal, tqdm's bar. Anywhere else (a log file, a pipe, a job scheduler's output) tqdm either
draws nothing (`disable=None`) or one line that grows by carriage returns, so a user tailing a log
cannot tell a slow step from a hung one. There, `Progress` prints a plain line instead, every
`fraction` of the total or every `seconds`, whichever comes first, and one at the end:

    judge run: 150/3001 judgments (5%), 14 s
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """`update(n)` as items finish; a context manager. `disable` turns every output off."""

    def __init__(self, total: int, desc: str, unit: str, *, initial: int = 0, disable: bool = False,
                 stream: TextIO | None = None, seconds: float = 10.0, fraction: float = 0.05):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = initial
        self.stream = stream if stream is not None else sys.stderr
        self.disable = disable
        self.seconds = seconds
        self.every = max(1, int(total * fraction))
        self.started = time.monotonic()
        self._last_time = self.started
        self._last_count = initial
        self._bar: Any = None
        if disable:
            return
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream)
        else:
            self._line()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self.done - self._last_count >= self.every or now - self._last_time >= self.seconds:
            self._line(now)

    def _line(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        print(f"{self.desc}: {self.done}/{self.total} {self.unit}s{share}, {now - self.started:.0f} s",
              file=self.stream, flush=True)
        self._last_time, self._last_count = now, self.done

    def close(self) -> None:
        if self.disable:
            return
        if self._bar is not None:
            self._bar.close()
        elif self.done != self._last_count:
            self._line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def stage_line(text: str) -> None:
    """One line announcing a stage of a long command, on stderr, flushed (seen in a log at once)."""
    print(text, file=sys.stderr, flush=True)
