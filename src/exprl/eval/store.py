"""Generations cached on disk so an interrupted evaluation resumes without regenerating.

One SQLite file per evaluation directory. A row is keyed by (generation key, benchmark, problem id,
sample index); the generation key hashes the model fingerprint together with every sampling setting
and the system prompt, because a sample drawn at another temperature is not a sample of this eval.
Each batch is committed as soon as it is generated: a crash loses at most the batch in flight.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from exprl.errors import RunStateError

_IDS_PER_QUERY = 500  # SQLite allows 999 bound parameters per statement in older builds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    gen_key TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    num_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    correct INTEGER,
    PRIMARY KEY (gen_key, benchmark, problem_id, sample_index)
)
"""


@dataclass(frozen=True)
class Generation:
    """One sampled completion. `finish_reason` is "stop" (ended itself) or "length" (cut off)."""

    text: str
    num_tokens: int
    finish_reason: str = "stop"


@dataclass(frozen=True)
class StoredSample:
    problem_id: str
    sample_index: int
    generation: Generation
    correct: bool | None


class GenerationStore:
    """SQLite-backed cache of generations; also holds each sample's verdict once verified."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise RunStateError(f"{self.path}: not a usable generation store ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "GenerationStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def done_indices(self, gen_key: str, benchmark: str) -> dict[str, set[int]]:
        rows = self._db.execute(
            "SELECT problem_id, sample_index FROM generations WHERE gen_key=? AND benchmark=?",
            (gen_key, benchmark))
        done: dict[str, set[int]] = {}
        for problem_id, index in rows:
            done.setdefault(problem_id, set()).add(index)
        return done

    def add(self, gen_key: str, benchmark: str,
            items: list[tuple[str, int, Generation]]) -> None:
        """Insert one batch atomically."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [(gen_key, benchmark, pid, index, g.text, g.num_tokens, g.finish_reason)
                 for pid, index, g in items])

    def samples(self, gen_key: str, benchmark: str, problem_ids: Sequence[str] | None = None) -> list[StoredSample]:
        """The stored samples of a benchmark (only those of `problem_ids` when given), by problem and index."""
        query = ("SELECT problem_id, sample_index, text, num_tokens, finish_reason, correct FROM generations "
                 "WHERE gen_key=? AND benchmark=?")
        if problem_ids is None:
            rows = list(self._db.execute(query, (gen_key, benchmark)))
        else:
            rows, ids = [], list(dict.fromkeys(problem_ids))
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start:start + _IDS_PER_QUERY]
                rows += self._db.execute(f"{query} AND problem_id IN ({','.join('?' * len(chunk))})",
                                         (gen_key, benchmark, *chunk))
        rows.sort(key=lambda row: (row[0], row[1]))
        return [StoredSample(pid, index, Generation(text, num_tokens, finish), None if ok is None else bool(ok))
                for pid, index, text, num_tokens, finish, ok in rows]

    def set_verdicts(self, gen_key: str, benchmark: str,
                     verdicts: list[tuple[str, int, bool]]) -> None:
        with self._db:
            self._db.executemany(
                "UPDATE generations SET correct=? WHERE gen_key=? AND benchmark=? "
                "AND problem_id=? AND sample_index=?",
                [(int(ok), gen_key, benchmark, pid, index) for pid, index, ok in verdicts])
