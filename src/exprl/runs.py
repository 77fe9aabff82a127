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
      filter/                the base model's hard set, when the pipeline filters (exprl.eval.filter)

Three rules hold in every run directory, and this module is where each is kept:

- A file is written whole or not at all (`atomic_path`, `write_text_atomic`, `write_json_atomic`):
  a crash, a full disk or a refused write never leaves half a file where a whole one is expected,
  and an operating-system error is one OutputError naming the path. A folder of several files is
  committed as a whole (`OutputDir.commit`): its manifest, written last, names each file with its
  size and sha256, and every reader checks it (`check_complete`), so a folder a killed rerun left
  half-rewritten is refused, never read.
- Outputs are regular files and folders: a named pipe, a device, a socket, or a symbolic link to
  one (or to nothing) is refused before any work (`refuse_special`), never replaced.
- A run continues only with the configuration it started with (`check_same_config`); a refusal
  names every changed key as a dotted path, `trl.max_steps: 4 -> 5`.
- A run.json written with another layout format is refused, never guessed at (`read_run`).

A stage records its state in run.json as it starts and ends (`stage`): pending, running, done,
failed, interrupted or skipped.

Every command that writes obeys three more rules, kept here too:

- Outputs never destroy what exprl did not write. A folder a command writes holds
  `exprl-manifest.json`, naming the command and every entry it writes there (`claim_output_dir`,
  recorded before anything is written). A non-empty folder without one is refused unless the user
  says `--overwrite`; even then only entries of exprl's own manifest are ever removed. An existing
  single file is replaced only when it is empty, recognisably the command's own output, or with
  `--overwrite` (`check_output_file`). No output may equal or contain an input (`check_not_inputs`).
- Interrupted work is kept. A command producing rows one by one appends each finished row to a
  journal beside its output (`RowJournal`, OUT.partial) and writes the output whole at the end; the
  same command resumes from the journal.
- A rerun of the same command with the same configuration resumes; with another configuration it
  is refused with the changed keys named (`check_same_config`, `refuse_changes`).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, get_args

from exprl import __version__
from exprl.errors import OutputError, RunStateError, os_error_reason

logger = logging.getLogger(__name__)

RUN_FORMAT = 1
"""Version of the run-directory layout; a run written with another one is refused, not guessed at."""
RUN_FILE = "run.json"
RESOLVED_CONFIG_FILE = "resolved-config.json"
TrainingStage = Literal["stage1", "stage2"]
"""The two training stages (`TrainConfig.stage`), each a folder of a pipeline run."""
TRAINING_STAGES: tuple[str, ...] = get_args(TrainingStage)
STAGES = ("base_eval", "filter", "stage1", "stage1_eval", "stage2", "stage2_eval")
"""A pipeline run's stages, in the order they run."""

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
TRAIN_RESULT_FILE = "train_result.json"
FINAL_DIR = "final"
TRAIN_COMMAND = "train"
TRAIN_WRITES = (RECIPE_FILE, METRICS_FILE, "checkpoint-*", FINAL_DIR, TRAIN_RESULT_FILE, "base-model", "completions")
"""What a training run writes in its folder (TRL's checkpoints included, and the completion tables TRL
keeps under `trl.log_completions`, which `exprl analyze` reads)."""
PIPELINE_COMMAND = "pipeline"
PIPELINE_WRITES = (RUN_FILE, RESOLVED_CONFIG_FILE, "pipeline.yaml", "plan.json", "base-model", "filter", "stage1", "stage2",
                   "stage1-recipe.yaml", "stage2-recipe.yaml", "stage2-prompts.jsonl", "eval", "report")


# -- whole files or none ------------------------------------------------------------------------
def refuse_special(path: str | os.PathLike, flag: str = "--out", *, folder_ok: bool = True) -> None:
    """OutputError when `path` exists and is not a regular file (or, with `folder_ok`, a folder),
    following symbolic links: a FIFO, a character or block device, a socket, or a link to one of them
    or to nothing. Replacing one would swap a device node or a pipe someone reads for a plain file."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise OutputError(f"{flag} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                              f"name the file itself, or remove the link") from None
        return
    except NotADirectoryError:
        return  # a file on the path above it: the folder checks say so
    except OSError as exc:
        raise OutputError.from_os_error(path, exc, "inspect") from None
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return
    kinds = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")]
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    via = f" (through the symbolic link to {os.readlink(path)})" if path.is_symlink() else ""
    raise OutputError(f"{flag} {path} is {kind}{via}; exprl writes only regular files and folders, and never "
                      f"replaces anything else: name a new file")


def check_parent_folder(path: str | os.PathLike, flag: str = "--out") -> None:
    """OutputError when a folder `path` would be written in cannot be: one on the way up is a file, or
    the nearest existing one refuses a new file (read-only, no permission). Probed by creating and
    removing a temporary file there, so nothing is left behind and nothing else is created."""
    path = Path(path)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputError(f"{flag} {path}: {ancestor} is a file, not a folder")
    probe = ancestor / f".exprl-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write in {ancestor}: {os_error_reason(exc)}") from None
    probe.unlink(missing_ok=True)


def _write_target(path: Path) -> Path:
    """Where a write to `path` lands: the file a symbolic link names (so the link stays a link), after
    refusing anything but a regular file there."""
    refuse_special(path, "output", folder_ok=True)
    return path.resolve() if path.is_symlink() else path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write a file or a folder to; when the block ends without an
    error it takes `path`'s place in one rename, otherwise it is removed.

    The temporary's name is the writer's own (process id and a random part): processes writing the
    same file at once (every rank of a distributed run claiming its output folder) each rename a
    whole file, and the last one stands. A folder cannot be renamed over a full one, so when another
    writer's whole folder got there first, it stands and this one is dropped.

    An operating-system error (a full disk, a read-only folder) is an OutputError naming `path`, with
    the temporary removed; the target is then as it was."""
    path = _write_target(Path(path))
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError.from_os_error(path, exc, "create the folder of") from None
        try:
            yield tmp
        except OSError as exc:
            if exc.filename is None or Path(exc.filename) in (tmp, path):
                raise OutputError.from_os_error(path, exc) from None
            raise
        try:
            tmp.replace(path)
        except OSError as exc:
            if not (tmp.is_dir() and path.is_dir()):
                raise OutputError.from_os_error(path, exc) from None
            shutil.rmtree(tmp, ignore_errors=True)
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


def savefig_atomic(figure: Any, path: str | os.PathLike, **options: Any) -> Path:
    """A matplotlib figure saved whole or not at all (the format from `path`'s suffix)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", **options)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    return write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


# -- outputs that never destroy what exprl did not write ----------------------------------------
MANIFEST_FILE = "exprl-manifest.json"
MANIFEST_FORMAT = 1


def check_not_inputs(out: str | os.PathLike, inputs: Iterable[str | os.PathLike], *, flag: str = "--out",
                     nested_ok: bool = False) -> None:
    """Refuse an output path equal to an input, or a folder containing one (writing there could
    replace or delete it). A folder inside an input folder is refused too, since reading that
    folder again would read exprl's own output, unless `nested_ok` (a report inside its run)."""
    target = Path(out).resolve()
    for given in inputs:
        source = Path(given)
        if not source.exists():
            continue  # a hub id, or a file another check reports as missing
        source = source.resolve()
        if source == target:
            raise OutputError(f"{flag} {out} is the input {given}; exprl never writes over an input, "
                              f"choose another path")
        if target in source.parents:
            raise OutputError(f"{flag} {out} contains the input {given}; writing there could replace or delete "
                              f"it, choose a folder that holds no input")
        if not nested_ok and source.is_dir() and source in target.parents:
            raise OutputError(f"{flag} {out} is inside the input folder {given}; choose a folder outside it")


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest exprl left in `folder`, or None when it has none."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: corrupt ({exc}); exprl cannot tell what it wrote in {folder}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise OutputError(f"{path}: written by another exprl version (format {manifest.get('format')!r} where "
                          f"this exprl {__version__} reads {MANIFEST_FORMAT}); use a new folder")
    return manifest


def inspect_output_dir(folder: str | os.PathLike, command: str, *, inputs: Iterable[str | os.PathLike] = (),
                       overwrite: bool = False, adopt: Iterable[str] = (), flag: str = "--out",
                       nested_ok: bool = False, writes: Iterable[str] = ()) -> dict[str, Any] | None:
    """Check, writing nothing, that `command` may write into `folder`; returns the manifest an
    earlier run of the command left there (None for a new, empty or --overwrite'd folder).

    Refused: a path that equals or contains an input; a file, a FIFO, a device or a socket; a path
    under a file or in a folder that refuses new files; a folder written by another command; a
    non-empty folder exprl did not write, unless `overwrite`; an entry the command `writes` there
    that is not a regular file or folder. `adopt` names files that mark a folder this command wrote
    before manifests existed (run.json of a pipeline run)."""
    folder = Path(folder)
    check_not_inputs(folder, inputs, flag=flag, nested_ok=nested_ok)
    refuse_special(folder, flag)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {folder} is a file, not a folder")
    check_parent_folder(folder / MANIFEST_FILE, flag)
    for name in writes:
        if not any(ch in name for ch in "*?["):
            refuse_special(folder / name, f"{flag} {folder}:", folder_ok=True)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is not None:
        if manifest.get("command") != command:
            raise OutputError(f"{flag} {folder} holds the output of `exprl {manifest.get('command')}`, not of "
                              f"`exprl {command}`; choose another folder")
        return manifest
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    if any((folder / name).exists() for name in adopt):
        return {"command": command, "writes": []}
    if overwrite:
        return None
    raise OutputError(f"{flag} {folder} is not empty and exprl did not write it (no {MANIFEST_FILE}); choose a new "
                      f"or empty folder" + (", or pass --overwrite to write into it (files of the names exprl "
                                            "writes are replaced; nothing else is touched)"
                                            if command in OVERWRITABLE else ""))


OVERWRITABLE = ("data prepare", "report")
"""Commands whose folders are plain outputs, offered --overwrite; a run folder (train, eval,
pipeline, demo) is resumable state and is only ever resumed or refused."""


@dataclass
class OutputDir:
    """A folder claimed by one command; `earlier` is what an earlier run of it recorded there."""

    path: Path
    command: str
    earlier: tuple[str, ...]

    def commit(self, written: Iterable[str | os.PathLike]) -> None:
        """Record, last, every file this run wrote (name, size, sha256): the folder is now whole, and
        `check_complete` will hold every reader to these files."""
        files = {}
        for entry in written:
            path = self.path / Path(entry).name
            if path.is_file():
                files[path.name] = file_record(path)
        manifest = read_manifest(self.path) or {}
        manifest.update(state="complete", committed=_now(), files=files)
        write_json_atomic(self.path / MANIFEST_FILE, manifest)

    def remove_stale(self, written: Iterable[str]) -> list[Path]:
        """Remove the entries an earlier run recorded and this one did not write again (a test split
        the new settings no longer make). Only manifest entries are ever removed."""
        keep = set(written)
        removed = []
        for pattern in self.earlier:
            for entry in sorted(self.path.glob(pattern)):
                if entry.name in keep or entry.name == MANIFEST_FILE or any(
                        fnmatch.fnmatch(entry.name, k) for k in keep):
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
        return removed


def claim_output_dir(folder: str | os.PathLike, command: str, writes: Iterable[str], **checks: Any) -> OutputDir:
    """`inspect_output_dir`, then create the folder and record in its manifest, before anything is
    written, every entry (name or glob pattern) `command` writes there."""
    folder = Path(folder)
    writes = tuple(writes)
    earlier = inspect_output_dir(folder, command, writes=writes, **checks)
    previous = tuple(earlier.get("writes", ())) if earlier else ()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.from_os_error(folder, exc, "create the folder") from None
    entries = sorted(set(previous) | set(writes))
    if command in COMMITTED:
        state = {"state": "writing"}  # until `commit`: a reader refuses the folder meanwhile
    else:
        state = {}
    if earlier is None or "format" not in earlier or entries != sorted(previous) or state:  # else it says so
        write_json_atomic(folder / MANIFEST_FILE, {
            "format": MANIFEST_FORMAT, "exprl_version": __version__, "command": command,
            "created": (earlier or {}).get("created") or _now(), "writes": entries, **state})
    return OutputDir(folder, command, previous)


COMMITTED = ("data prepare", "data filter")
"""Commands whose folder is read as a whole (a split in several files, a hard set with its counts):
claimed in state "writing", committed with every file's size and hash at the end (`OutputDir.commit`),
and held to that by every reader (`check_complete`)."""


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": os.path.getsize(path), "sha256": digest.hexdigest()}


def check_complete(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a folder a COMMITTED command wrote, after checking it is whole: committed, and
    every file it names of the size and hash it had then. A folder left half-written (a kill, a full
    disk, a rerun with other settings stopped part-way) or changed since is refused, saying how to
    rebuild it. None for a folder without a manifest; a manifest of an earlier exprl (no state) is
    taken as it is."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("command") not in COMMITTED or "state" not in manifest:
        return manifest
    command = manifest["command"]
    rebuild = (f"run `exprl {command}` into it again (the same command, --out {folder}) to rebuild it, or use "
               f"another folder")
    if manifest.get("state") != "complete":
        raise RunStateError(f"{folder}: incomplete: `exprl {command}` was writing it and did not finish (killed, "
                            f"or it failed), so its files may come from two different runs; {rebuild}")
    for name, record in sorted(manifest.get("files", {}).items()):
        path = folder / name
        if not path.is_file():
            raise RunStateError(f"{folder}: {name} is missing; `exprl {command}` wrote it; {rebuild}")
        size = path.stat().st_size
        if size != record.get("size") or file_record(path)["sha256"] != record.get("sha256"):
            raise RunStateError(f"{path}: changed since `exprl {command}` wrote it ({size} bytes, "
                                f"{record.get('size')} then), so the folder no longer holds one run's output; "
                                f"{rebuild}")
    return manifest


def check_output_file(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False,
                      ours: Callable[[Path], bool] | None = None, flag: str = "--out") -> Path:
    """Refuse a single output file that equals an input, is a folder, is not a regular file (a FIFO, a
    device, a socket, a link to one), cannot be written where it is (under a file, in a read-only
    folder), or exists and is not replaceable: an existing file is replaced only when it is empty,
    when `ours(path)` recognises it as this command's own output, or with `overwrite`."""
    path = Path(path)
    check_not_inputs(path, inputs, flag=flag)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; name a file")
    refuse_special(path, flag, folder_ok=False)
    check_parent_folder(path, flag)
    if path.is_file() and path.stat().st_size and not overwrite and not (ours is not None and ours(path)):
        raise OutputError(f"{flag} {path} exists and is not an output of this command; choose another file, "
                          f"or pass --overwrite to replace it")
    return path


# -- rows kept as they finish -------------------------------------------------------------------
class RowJournal:
    """The rows a long command has finished, appended and flushed one at a time to OUT.partial
    beside its output, so that Ctrl-C or kill -9 loses none; the output is written whole at the end
    (`finish`) and the journal removed.

    The journal's first line records the settings the rows were made with: the same command
    resumes from it, one with other settings is refused naming what changed (or, with
    `overwrite`, starts over). Rows are keyed (e.g. by a hash of the input row), so an input edited
    between runs keeps the results of the rows it still has. A last line cut off by a kill is dropped.
    """

    FORMAT = 1

    def __init__(self, out: str | os.PathLike, settings: Mapping[str, Any], *, command: str):
        self.out = Path(out)
        self.path = self.out.with_name(self.out.name + ".partial")
        self.settings = plain(settings)
        self.command = command
        self.dropped = 0  # rows of an interrupted run that `open(overwrite=True)` started over without
        self._handle = None

    def open(self, *, overwrite: bool = False, keep: Callable[[dict[str, Any]], bool] = lambda row: True
             ) -> dict[str, dict[str, Any]]:
        """Start appending; returns {key: row} of the earlier run's finished rows that `keep` accepts."""
        done: dict[str, dict[str, Any]] = {}
        refuse_special(self.path, "journal", folder_ok=False)
        if self.path.is_file() and overwrite:  # said by the command: --overwrite drops them
            self.dropped = max(sum(1 for line in self.path.read_bytes().split(b"\n") if line.strip()) - 1, 0)
        if self.path.is_file() and not overwrite:
            done = self._read()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"journal": self.FORMAT, "command": self.command,
                                     "settings": self.settings}, ensure_ascii=False) + "\n")
            for key, row in done.items():
                if keep(row):
                    handle.write(json.dumps({"key": key, "row": row}, ensure_ascii=False) + "\n")
        self._handle = open(self.path, "a", encoding="utf-8")
        return {key: row for key, row in done.items() if keep(row)}

    def _read(self) -> dict[str, dict[str, Any]]:
        lines = self.path.read_bytes().split(b"\n")
        try:
            header = json.loads(lines[0])
            assert isinstance(header, dict) and header.get("journal") == self.FORMAT
        except (ValueError, AssertionError):
            raise OutputError(f"{self.path}: not a journal of this exprl; remove it or pass --overwrite") from None
        refuse_changes(header.get("settings", {}), self.settings, where=self.out,
                       what=f"{self.command} settings", hint="run it with the same settings, or pass --overwrite "
                                                             "to start over (cached judgments are still reused)")
        done = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the line a kill cut off, or the empty string after the last newline
            if isinstance(entry, dict) and "key" in entry and isinstance(entry.get("row"), dict):
                done[str(entry["key"])] = entry["row"]
        return done

    def add(self, key: str, row: Mapping[str, Any]) -> None:
        try:
            self._handle.write(json.dumps({"key": key, "row": row}, ensure_ascii=False, default=str) + "\n")
            self._handle.flush()
        except OSError as exc:  # a full disk: the rows written so far stay, the same command resumes
            raise OutputError.from_os_error(self.path, exc, "append to the journal") from None

    def finish(self, rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write the output whole (one JSON object a line), then drop the journal."""
        self.close()
        with atomic_path(self.out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self.path.unlink(missing_ok=True)
        return self.out

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.close()
            except OSError:
                pass  # a full disk: `add` said so; a row cut off at the end is dropped when read


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
    JSON) when it started. `ignore` names keys, dotted for nested ones, that may change: the number
    of seeds when each seed has its own folder, or where a judge server listens (`judge.base_urls`),
    which changes how results are fetched, not what they are."""
    import yaml

    path = Path(stored)
    if not path.is_file():
        raise RunStateError(f"{path.parent}: no {path.name}; not a run exprl can resume")
    before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    now = plain(config)
    for key in ignore:
        for side in (before, now):
            *parents, last = key.split(".")
            node = side
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(last, None)
    refuse_changes(before, now, where=path.parent, what=what)


def refuse_changes(before: Any, now: Any, *, where: str | os.PathLike, what: str = "configuration",
                   hint: str = "resume with the same {what} or use a new directory") -> None:
    """RunStateError naming every changed key when `before` (stored) and `now` differ."""
    changes = config_changes(plain(before) if isinstance(before, Mapping) else before,
                             plain(now) if isinstance(now, Mapping) else now)
    if changes:
        raise RunStateError(f"cannot resume {where}: the {what} changed since it started "
                            f"({'; '.join(changes)}); {hint.format(what=what)}")


# -- run.json and its stages --------------------------------------------------------------------
def open_run(run_dir: str | os.PathLike, config: Mapping[str, Any], *, name: str, method: str,
             skipped: Iterable[str] = (), ignore: Iterable[str] = ()) -> dict[str, Any]:
    """A new run.json (every stage pending, `skipped` ones skipped), or the existing one after
    checking the run can be continued with `config` (`ignore`: keys that may change, as in
    `check_same_config`). A folder with other contents is refused."""
    run_dir = Path(run_dir)
    inspect_output_dir(run_dir, PIPELINE_COMMAND, adopt=(RUN_FILE,), flag="run directory")
    if (run_dir / RUN_FILE).is_file():
        state = read_run(run_dir)
        check_same_config(run_dir / RESOLVED_CONFIG_FILE, config, ignore=ignore)
        claim_output_dir(run_dir, PIPELINE_COMMAND, PIPELINE_WRITES, adopt=(RUN_FILE,), flag="run directory")
        return state
    claim_output_dir(run_dir, PIPELINE_COMMAND, PIPELINE_WRITES, adopt=(RUN_FILE,), flag="run directory")
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
    return read_versioned_json(path, "run", RUN_FORMAT, "start a new run directory")


def read_versioned_json(path: Path, kind: str, expected_format: int, remedy: str) -> dict[str, Any]:
    """A JSON record exprl wrote with a `format` number (run.json, eval.json, filter.json, analysis.json).
    A file that cannot be read, is not JSON, or has another format is a RunStateError naming the file,
    the exprl version that wrote it, and `remedy` (what the user does next)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunStateError(f"{path}: corrupt or unreadable ({exc}); {remedy}") from exc
    found = record.get("format") if isinstance(record, dict) else None
    if found != expected_format:
        written_by = record.get("exprl_version", "?") if isinstance(record, dict) else "?"
        raise RunStateError(f"{path}: written by exprl {written_by} with {kind} format {found!r}; this exprl "
                            f"{__version__} reads format {expected_format}: {remedy}")
    return record


def save_run(run_dir: str | os.PathLike, state: Mapping[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / RUN_FILE, state)


def stage_done(state: Mapping[str, Any], name: str) -> bool:
    return state["stages"].get(name, {}).get("state") == "done"


@contextmanager
def stage(run_dir: str | os.PathLike, state: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Marks stage `name` running in run.json, then done (unless the block set another state),
    failed or interrupted, whatever happens inside. Yields the stage's record to add results to."""
    from exprl.progress import stage_line

    record = state["stages"].setdefault(name, {})
    record.update(state="running", started=_now())
    record.pop("error", None)
    save_run(run_dir, state)
    # On stderr whatever it is (a terminal or a log file): which stage a long run is in.
    stage_line(f"exprl: {run_dir}: stage {name} starting")
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
        stage_line(f"exprl: {run_dir}: stage {name} {record['state']}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
