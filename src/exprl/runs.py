"""Run directories: the one owner of their format on disk.

    <pipeline run>/
      run.json               exprl version, layout format, label, Stage-I method, state of every stage
      resolved-config.json   the configuration the run started with (compared on every resume)
      stage1/, stage2/       training runs:
        recipe.yaml            the resolved recipe (compared when a run resumes from a checkpoint)
        checkpoint-N/          TRL's checkpoints
        metrics.jsonl          one JSON object per logged step
        final/                 the trained model and tokenizer
        train_result.json      written last: its presence means the run is finished
      eval/<stage>/          evaluation directories (exprl.eval.evaluate)

Three rules hold in every run directory, and this module is where each is kept:

- A file is written whole or not at all (`atomic_path`, `write_text_atomic`, `write_json_atomic`):
  a crash never leaves half a file where a whole one is expected.
- A run continues only with the configuration it started with (`check_same_config`); a refusal
  names every changed key as a dotted path, `trl.max_steps: 4 -> 5`.
- A run.json written with another layout format is refused, never guessed at (`read_run`).

A stage records its state in run.json as it starts and ends (`stage`): pending, running, done,
failed, interrupted or skipped.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from exprl import __version__
from exprl.errors import RunStateError

logger = logging.getLogger(__name__)

RUN_FORMAT = 1
"""Version of the run-directory layout; a run written with another one is refused, not guessed at."""
RUN_FILE = "run.json"
RESOLVED_CONFIG_FILE = "resolved-config.json"
STAGES = ("base_eval", "stage1", "stage1_eval", "stage2", "stage2_eval")
"""A pipeline run's stages, in the order they run."""

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
TRAIN_RESULT_FILE = "train_result.json"
FINAL_DIR = "final"


# -- whole files or none ------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write a file or a folder to; when the block ends without an
    error it takes `path`'s place in one rename, otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    return write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


# -- the same configuration, or a refusal naming what changed ------------------------------------
def plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` as JSON would store it (tuples as lists, paths as strings): what gets compared."""
    return json.loads(json.dumps(config, default=str))


def config_changes(before: Any, now: Any, prefix: str = "") -> list[str]:
    """Every difference between two configurations, one `dotted.key: old -> new` line each."""
    if isinstance(before, dict) and isinstance(now, dict):
        changes = []
        for key in sorted(set(before) | set(now), key=str):
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if key not in now:
                changes.append(f"{dotted}: {_short(before[key])} -> (absent)")
            elif key not in before:
                changes.append(f"{dotted}: (absent) -> {_short(now[key])}")
            else:
                changes.extend(config_changes(before[key], now[key], dotted))
        return changes
    return [] if before == now else [f"{prefix or '(whole)'}: {_short(before)} -> {_short(now)}"]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_same_config(stored: str | os.PathLike, config: Mapping[str, Any], *, what: str = "configuration",
                      ignore: Iterable[str] = ()) -> None:
    """Refuse to continue a run whose configuration differs from the one stored in `stored` (YAML or
    JSON) when it started. `ignore` names top-level keys that may change (e.g. the number of seeds,
    when each seed has its own folder)."""
    import yaml

    path = Path(stored)
    if not path.is_file():
        raise RunStateError(f"{path.parent}: no {path.name}; not a run exprl can resume")
    before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    now = plain(config)
    for key in ignore:
        before.pop(key, None)
        now.pop(key, None)
    changes = config_changes(before, now)
    if changes:
        raise RunStateError(f"cannot resume {path.parent}: the {what} changed since it started "
                            f"({'; '.join(changes)}); resume with the same {what} or use a new directory")


# -- run.json and its stages --------------------------------------------------------------------
def open_run(run_dir: str | os.PathLike, config: Mapping[str, Any], *, name: str, method: str,
             skipped: Iterable[str] = ()) -> dict[str, Any]:
    """A new run.json (every stage pending, `skipped` ones skipped), or the existing one after
    checking the run can be continued with `config`. A folder with other contents is refused."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).is_file():
        state = read_run(run_dir)
        check_same_config(run_dir / RESOLVED_CONFIG_FILE, config)
        return state
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunStateError(f"{run_dir} exists and is not an exprl pipeline run (no {RUN_FILE}); "
                            f"choose an empty or new directory")
    write_json_atomic(run_dir / RESOLVED_CONFIG_FILE, plain(config))
    state = {"exprl_version": __version__, "format": RUN_FORMAT, "name": name, "method": method,
             "created": _now(), "finished": False,
             "stages": {s: {"state": "skipped" if s in set(skipped) else "pending"} for s in STAGES}}
    save_run(run_dir, state)
    return state


def read_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """run.json of a pipeline run, checked for a compatible layout."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise RunStateError(f"{run_dir}: no {RUN_FILE}; not an exprl pipeline run directory")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunStateError(f"{path}: corrupt ({exc})") from exc
    if state.get("format") != RUN_FORMAT:
        raise RunStateError(f"{path}: written by exprl {state.get('exprl_version', '?')} (run format "
                            f"{state.get('format')!r}); this exprl {__version__} reads format {RUN_FORMAT}. "
                            f"Start a new run directory.")
    return state


def save_run(run_dir: str | os.PathLike, state: Mapping[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / RUN_FILE, state)


def stage_done(state: Mapping[str, Any], name: str) -> bool:
    return state["stages"].get(name, {}).get("state") == "done"


@contextmanager
def stage(run_dir: str | os.PathLike, state: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Marks stage `name` running in run.json, then done (unless the block set another state),
    failed or interrupted, whatever happens inside. Yields the stage's record to add results to."""
    record = state["stages"].setdefault(name, {})
    record.update(state="running", started=_now())
    record.pop("error", None)
    save_run(run_dir, state)
    logger.info("run %s: %s", run_dir, name)
    try:
        yield record
    except BaseException as exc:
        record["state"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        raise
    else:
        if record["state"] == "running":
            record["state"] = "done"
    finally:
        record["ended"] = _now()
        save_run(run_dir, state)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
