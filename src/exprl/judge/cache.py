"""A persistent SQLite cache of judgments, shared by every process on the machine.

Judging is the expensive part of ExpRL (one LLM call per rollout, or per step); the same
(problem, reference, trace) reaches the judge again on resume, in evaluation, in calibration and in
repeated CLI runs. One row per judgment, keyed by a hash of everything that can change the answer:
the request, the backend and prompt version, and every judge setting (`judgment_settings`), so a
judgment made with 16 new tokens or at temperature 1.5 is never served to a run with 2048 or 0.

Concurrency and crash safety: WAL journal (readers never block the writer), a busy timeout so that
several trainer or CLI processes can write to one file, and one short transaction per `put_many`.
The service commits each judgment as it arrives (those arriving during a commit go in the next),
so a process killed mid-run leaves every judgment that had arrived readable, and only the ones in
flight absent.
Only OK and UNPARSEABLE results are stored: a timeout or a server error says nothing about the
trace and must be retried next time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from exprl.errors import JudgeError
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

CACHEABLE = frozenset({JudgeStatus.OK, JudgeStatus.UNPARSEABLE})
FETCH_ONLY_KEYS = ("base_urls", "api_key", "concurrency", "timeout_s", "max_retries", "cache_path", "retry_backoff_s",
                   "preflight_timeout_s")
"""JudgeConfig fields that change how judgments are fetched, not what they are: outside the cache
key, and free to change when a run resumes (a judge server restarted on another port)."""
KEYED_ELSEWHERE = ("process_view", "rubric_path")
"""JudgeConfig fields whose effect is already in each request: its mode is the process view it was
built under, and its rubric (the checkpoints themselves) is read from the store at rubric_path."""
_SCHEMA_VERSION = 2  # 2: every judgment setting is part of the key (1 had the backend and prompt only)


def judgment_settings(config: JudgeConfig) -> dict[str, Any]:
    """Every JudgeConfig setting that can change a judgment: all fields but the fetch-only ones and
    those each request already carries. A new field is in the key unless it is listed above, so a
    setting added later can never be served a judgment made under another value of it."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in FETCH_ONLY_KEYS and f.name not in KEYED_ELSEWHERE}
_BUSY_TIMEOUT_MS = 30_000


def default_cache_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("exprl")) / "judge.sqlite"


def cache_key(backend_name: str, prompt_version: str, request: JudgeRequest,
              max_trace_tokens: int | None, settings: Mapping[str, Any] | None = None) -> str:
    """sha256 over everything that can change a judgment: the backend, the prompt's version, the
    request, and the judge's settings (`judgment_settings`: temperature, max new tokens, ...). JSON
    keeps field boundaries unambiguous."""
    payload = [_SCHEMA_VERSION, backend_name, prompt_version, request.mode, request.domain,
               request.problem, request.reference, list(request.rubric) if request.rubric else None,
               request.trace, request.context, request.answer, max_trace_tokens,
               sorted((settings or {}).items())]
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out another process that is switching the same file at that moment.

    SQLite answers that race with an immediate "database is locked", without calling the busy
    handler, so the busy timeout alone does not cover it (the two writer processes of
    test_two_processes_write_concurrently hit it).
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class JudgeCache:
    """`get_many(keys)` and `put_many(rows)` over one SQLite file; safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so each batch is one transaction.
            self._db = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            _enable_wal(self._db)
            # NORMAL under WAL: a committed batch survives a killed process; only an OS crash can
            # lose the last commits, which a judge cache can afford.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS judgments ("
                " key TEXT PRIMARY KEY, score INTEGER, status TEXT NOT NULL, raw TEXT NOT NULL,"
                " latency_s REAL NOT NULL, truncated INTEGER NOT NULL, backend TEXT NOT NULL,"
                " prompt_version TEXT NOT NULL, created REAL NOT NULL)")
        except sqlite3.Error as exc:
            raise JudgeError(f"judge cache {self.path}: cannot open it as SQLite ({exc}); "
                             "pass --cache '' to run without a cache or point it at another file") from exc

    def get_many(self, keys: Sequence[str]) -> dict[str, JudgeResult]:
        """Cached results for those keys that have one (marked cached=True); counts hits and misses."""
        found: dict[str, JudgeResult] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            # SQLite caps bound parameters per statement; 500 stays well below every build's limit.
            for i in range(0, len(unique), 500):
                chunk = unique[i:i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, score, status, raw, latency_s, truncated FROM judgments "
                    f"WHERE key IN ({marks})", chunk).fetchall()
                for key, score, status, raw, latency, truncated in rows:
                    found[key] = JudgeResult(score=score, status=JudgeStatus(status), raw=raw,
                                             latency_s=latency, cached=True, truncated=bool(truncated))
            self.hits += len(found)
            self.misses += len(unique) - len(found)
        return found

    def put_many(self, rows: Iterable[tuple[str, JudgeResult, str, str]]) -> int:
        """Store (key, result, backend_name, prompt_version) rows whose status is cacheable.

        One transaction for the whole batch. Returns how many rows were written.
        """
        keep = [(key, r.score, r.status.value, r.raw, float(r.latency_s), int(r.truncated), backend,
                 version, time.time()) for key, r, backend, version in rows if r.status in CACHEABLE]
        if not keep:
            return 0
        with self._lock:
            # IMMEDIATE takes the write lock up front, so a busy database waits (busy_timeout) here
            # instead of failing half-way through the batch.
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("INSERT OR REPLACE INTO judgments VALUES (?,?,?,?,?,?,?,?,?)", keep)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:  # a full disk, a read-only file: the path, in one line
                raise JudgeError(f"judge cache {self.path}: cannot write ({exc}); free disk space, or pass "
                                 f"--cache '' to run without a cache") from None
        return len(keep)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_cache(setting: str | None) -> JudgeCache | None:
    """JudgeConfig.cache_path semantics: None = the user's cache dir, '' = no cache, else that file."""
    if setting == "":
        return None
    return JudgeCache(default_cache_path() if setting is None else setting)
