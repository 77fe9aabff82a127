"""Read problem corpora (JSONL, Parquet, Hugging Face `datasets`) into `Problem` records, and write them.

A source's columns are mapped onto `Problem` fields. Known layouts are recognised from their
columns (see `PRESETS`); anything else is described with a user mapping such as
`{"problem": "question", "reference": "solution"}`, which also overrides a preset field by field.

Every unusable row is a `DataError` naming the file, the 1-based line (JSONL) or row (other
formats) and the field. With `skip_invalid=True` a bad row is instead appended, with its reason and
raw content, to the caller's `rejects` list: nothing is dropped without a record.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from exprl.data.answers import extract_answer, gsm8k_answer, last_boxed
from exprl.data.catalog import DATA_DIR_ENV, CatalogEntry, find_entry, hub_ids, locate, without
from exprl.data.problem import Problem
from exprl.errors import DataError
from exprl.runs import atomic_path, check_complete

logger = logging.getLogger(__name__)

PROBLEM_FIELDS = ("id", "problem", "reference", "answer", "domain", "source")
REQUIRED_TEXT_FIELDS = ("problem", "reference")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Formats handed to `datasets.load_dataset` as data files (its builder name by suffix).
DATASETS_FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".arrow": "arrow", ".txt": "text"}
DATA_SUFFIXES = (*JSONL_SUFFIXES, *PARQUET_SUFFIXES, *DATASETS_FILE_BUILDERS)
"""Suffixes that make a source a data file (a missing one is "file not found", never a hub id)."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")
LAYOUT_SAMPLE_ROWS = 1000
_DATASETS_FOLDER_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")  # save_to_disk output
_LEVEL_TEXT = re.compile(r"^\s*(?:level\s*)?(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rejection:
    """A row that could not become a Problem, kept so that `--skip-invalid` never drops silently."""

    path: str
    line: int | None
    field: str | None
    reason: str
    raw: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "field": self.field, "reason": self.reason,
                "raw": self.raw}

    @classmethod
    def from_error(cls, error: DataError, raw: Any) -> "Rejection":
        return cls(path=str(error.path), line=error.line, field=error.field, reason=error.reason, raw=raw)


@dataclass(frozen=True)
class Preset:
    """A known corpus layout: which columns identify it and how they become Problem fields.

    `fields` maps Problem fields (and `meta.KEY`) to source columns; `convert` then rewrites the
    mapped values (e.g. splitting GSM8K's `#### N` off the solution).
    """

    name: str
    signature: frozenset[str]
    fields: dict[str, str]
    default_source: str = ""
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    excludes: frozenset[str] = frozenset()

    def matches(self, columns: set[str]) -> bool:
        return self.signature <= columns and not (self.excludes & columns)


def gsm8k_reference(solution: str) -> str:
    """GSM8K's worked solution without the final `#### N` line and without `<<48/2=24>>` annotations."""
    before, _, _ = solution.rpartition("####")
    text = before if "####" in solution else solution
    return _CALCULATOR_ANNOTATION.sub("", text).strip()


def parse_level(value: Any) -> int | None:
    """MATH's `Level 3` (or 3, or "3") -> 3; `Level ?` and blanks -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    match = _LEVEL_TEXT.match(str(value))
    return int(match.group(1)) if match else None


def _convert_gsm8k(values: dict[str, Any]) -> dict[str, Any]:
    raw_solution = values.get("reference")
    if isinstance(raw_solution, str):
        values["answer"] = gsm8k_answer(raw_solution)
        values["reference"] = gsm8k_reference(raw_solution)
    return values


def _convert_math(values: dict[str, Any]) -> dict[str, Any]:
    meta = values.setdefault("meta", {})
    if "level" in meta:
        meta["level"] = parse_level(meta["level"])
    if isinstance(values.get("reference"), str) and not values.get("answer"):
        values["answer"] = last_boxed(values["reference"])
    return values


# Order matters: the first preset whose signature is present (and exclusions absent) wins.
PRESETS: tuple[Preset, ...] = (
    Preset("exprl", frozenset({"problem", "reference"}),
           {"id": "id", "problem": "problem", "reference": "reference", "answer": "answer",
            "domain": "domain", "source": "source", "meta": "meta"}),
    Preset("shared", frozenset({"problem", "solution", "answer", "level", "subject"}),
           {"id": "id", "problem": "problem", "reference": "solution", "answer": "answer",
            "source": "source", "meta.level": "level", "meta.subject": "subject"},
           convert=_convert_math),
    Preset("math", frozenset({"problem", "solution", "level", "type"}),
           {"id": "id", "problem": "problem", "reference": "solution",
            "meta.level": "level", "meta.subject": "type"},
           default_source="hendrycks_math", convert=_convert_math),
    Preset("gsm8k", frozenset({"question", "answer"}), {"id": "id", "problem": "question", "reference": "answer"},
           default_source="gsm8k", convert=_convert_gsm8k, excludes=frozenset({"solution", "reference"})),
)


def detect_preset(columns: Iterable[str]) -> Preset | None:
    """The first preset whose identifying columns are all present."""
    columns = set(columns)
    return next((p for p in PRESETS if p.matches(columns)), None)


def closest_preset(columns: Iterable[str]) -> Preset | None:
    """The preset sharing most columns with an unrecognised source (None when none is shared)."""
    columns = set(columns)
    overlap = [(len(p.signature & columns), -i) for i, p in enumerate(PRESETS)]
    best, position = max(overlap)
    return PRESETS[-position] if best else None


def parse_field_mapping(items: Iterable[str]) -> dict[str, str]:
    """`["problem=question", "meta.level=difficulty"]` -> {"problem": "question", ...}."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, column = item.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise DataError(f"field mapping '{item}' must look like FIELD=COLUMN, e.g. problem=question")
        _check_target(target, item)
        mapping[target] = column
    return mapping


def _check_target(target: str, item: str) -> None:
    if target in PROBLEM_FIELDS or (target.startswith("meta.") and len(target) > 5):
        return
    raise DataError(f"field mapping '{item}': '{target}' is not a Problem field; "
                    f"use one of {', '.join(PROBLEM_FIELDS)} or meta.KEY")


class _RowMapper:
    """Turns raw rows of one source into Problems with one resolved mapping."""

    def __init__(self, path: str, columns: set[str], mapping: dict[str, str] | None, *,
                 require_reference: bool = True):
        self.path = path
        self.stem = _source_stem(path)
        self.require_reference = require_reference
        user = dict(mapping or {})
        for target in user:
            _check_target(target, f"{target}={user[target]}")
        self.preset = detect_preset(columns)
        partial = False
        needed = set(REQUIRED_TEXT_FIELDS) if require_reference else {"problem"}
        if self.preset is None and not needed <= set(user):
            # Rows missing a required column (in every row read) still get an error naming the
            # row and the field, rather than a vague one about the layout.
            self.preset, partial = closest_preset(columns), True
        if self.preset is None and not needed <= set(user):
            raise DataError(
                f"columns {sorted(columns)} match no known layout (exprl, shared, MATH, GSM8K); map them with "
                + " ".join(f"--field {name}=COLUMN" for name in REQUIRED_TEXT_FIELDS if name in needed),
                path=path)
        # Preset columns are optional (a missing `answer` is extracted); columns the user names are not, and
        # go only where the user says (an answer-only benchmark's `answer` is not also GSM8K's solution).
        self.optional = {t: c for t, c in (self.preset.fields if self.preset else {}).items()
                         if t not in user and c not in user.values()}
        if "domain" in columns and "domain" not in user:
            self.optional.setdefault("domain", "domain")  # a domain column means the same in every layout
        self.required = user
        self.columns = {**self.optional, **self.required}
        # GSM8K's conversion reads the raw `####` solution: it no longer applies once the user remaps it.
        self.convert = (self.preset.convert if self.preset and not partial
                        and not {"reference", "answer"} & set(user) else None)
        self.default_source = self.preset.default_source if self.preset and not partial else ""

    def __call__(self, raw: Any, line: int, index: int) -> Problem:
        if not isinstance(raw, dict):
            raise DataError(f"a row must be a JSON object, got {type(raw).__name__}", path=self.path, line=line)
        values: dict[str, Any] = {"meta": {}}
        for target, column in self.optional.items():
            if column in raw:
                self._put(values, target, raw[column])
        for target, column in self.required.items():
            if column not in raw:
                raise DataError(f"column '{column}' named in the field mapping ({target}={column}) is not in "
                                f"this row; its columns are: {', '.join(sorted(map(str, raw)))}",
                                path=self.path, line=line, field=column)
            self._put(values, target, raw[column])
        if self.convert:
            values = self.convert(values)
        return self._problem(values, line, index)

    def _put(self, values: dict[str, Any], target: str, value: Any) -> None:
        if target == "meta":
            if isinstance(value, str) and value.strip():
                try:
                    value = json.loads(value)  # our own Parquet stores meta as JSON text
                except json.JSONDecodeError:
                    value = {"meta": value}
            if isinstance(value, dict):
                values["meta"].update(value)
        elif target.startswith("meta."):
            values["meta"][target[5:]] = value
        else:
            values[target] = value

    def _problem(self, values: dict[str, Any], line: int, index: int) -> Problem:
        text = {}
        for name in REQUIRED_TEXT_FIELDS:
            value = values.get(name)
            if name == "reference" and not self.require_reference and (value is None or value == ""):
                text[name] = ""
                continue
            text[name] = _required_text(value, name, self.columns.get(name, name), self.path, line)
        answer = values.get("answer")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            answer = str(answer)
        if answer is not None and not isinstance(answer, str):
            raise DataError(f"must be text, got {type(answer).__name__}", path=self.path, line=line, field="answer")
        if not (answer or "").strip():
            answer = extract_answer(text["reference"])
        if not (answer or "").strip():
            raise DataError("empty, and the reference states no final answer (no \\boxed{...} and no '#### N')"
                            if text["reference"] else "empty, and there is no reference to read it from",
                            path=self.path, line=line, field="answer")
        row_id = values.get("id")
        row_id = str(row_id).strip() if row_id is not None and not isinstance(row_id, bool) else ""
        return Problem(id=row_id or f"{self.stem}/{index}", problem=text["problem"], reference=text["reference"],
                       answer=answer.strip(), domain=_optional_text(values.get("domain")) or "math",
                       source=_optional_text(values.get("source")) or
                       self.default_source or self.stem,
                       # Presets map optional columns (GSM8K has no level): absent is not a value.
                       meta={k: v for k, v in values["meta"].items() if v is not None})


def _required_text(value: Any, name: str, column: str, path: str, line: int) -> str:
    if value is None:
        where = f" (read from column '{column}')" if column != name else ""
        raise DataError(f"missing{where}", path=path, line=line, field=name)
    if not isinstance(value, str):
        raise DataError(f"must be text, got {type(value).__name__}", path=path, line=line, field=name)
    if not value.strip():
        raise DataError("empty", path=path, line=line, field=name)
    return value


def _optional_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _source_stem(path: str) -> str:
    name = Path(path.rstrip("/")).name
    for suffix in (*JSONL_SUFFIXES, *PARQUET_SUFFIXES, *DATASETS_FILE_BUILDERS):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------- readers: (1-based line, raw row)

RowError = tuple[int, DataError, Any]


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"), (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
         (b"\xff\xfe", "UTF-16 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)"))
_SNIFF_BYTES = 8192


def check_text_file(path: Path, head: bytes) -> None:
    """A DataError naming the file, the byte offset and what was expected when `head` (the file's
    first bytes) shows a UTF-16/32 byte-order mark or binary content instead of UTF-8 text."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise DataError(f"byte offset 0: a {name} byte-order mark; exprl reads JSON Lines as UTF-8 "
                            f"(convert it, e.g. iconv -f {name.split()[0]} -t UTF-8)", path=str(path))
    nul = head.find(b"\x00")
    if nul >= 0:
        pairs = head[: len(head) - len(head) % 2]
        if pairs and (pairs[1::2].count(0) > 0.9 * len(pairs) // 2 or pairs[0::2].count(0) > 0.9 * len(pairs) // 2):
            what = "UTF-16 text without a byte-order mark"
        else:
            what = "binary data"
        raise DataError(f"byte offset {nul}: a NUL byte; this looks like {what}, not UTF-8 JSON Lines",
                        path=str(path))


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any] | RowError]:
    with open(path, "rb") as handle:
        check_text_file(path, handle.read(_SNIFF_BYTES))
        handle.seek(0)
        offset = 0
        first = True
        for line_no, raw_bytes in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw_bytes)
            if line_no == 1 and raw_bytes.startswith(b"\xef\xbb\xbf"):
                raw_bytes = raw_bytes[3:]  # a UTF-8 byte-order mark, as some editors write
                start += 3
            if not raw_bytes.strip():
                continue
            opens_array = first and raw_bytes.lstrip().startswith(b"[")
            first = False
            try:
                text = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, _utf8_error(path, line_no, start, raw_bytes, exc), raw_bytes.decode("utf-8", "replace")
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                hint = ("; the file starts like a JSON array: exprl reads JSON Lines, one object a line "
                        "(convert it with jq -c '.[]')" if opens_array else "")
                yield line_no, DataError(f"malformed JSON: {exc.msg} at column {exc.colno}{hint}",
                                         path=str(path), line=line_no), text.rstrip("\n")
                continue
            if opens_array and isinstance(row, list):
                yield line_no, DataError("a JSON array, not a JSON object: exprl reads JSON Lines, one object a "
                                         "line (convert it with jq -c '.[]')", path=str(path), line=line_no), row
                continue
            yield line_no, row


def read_jsonl(path: str | os.PathLike, rejects: list[Rejection] | None = None) -> Iterator[tuple[int, Any]]:
    """(1-based line, value) for every non-blank line of a UTF-8 JSON Lines file; the first
    unreadable line (bad bytes, bad JSON) is a DataError naming the file, line and byte offset, or,
    given a `rejects` list, is added to it and skipped. A file that is not UTF-8 text at all is an
    error either way."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", path=str(path))
    for item in _read_jsonl(path):
        if len(item) == 3:
            if rejects is None:
                raise item[1]
            rejects.append(Rejection.from_error(item[1], item[2]))
            continue
        yield item  # type: ignore[misc]


def _utf8_error(path: Path, line_no: int, line_offset: int, raw_bytes: bytes, exc: UnicodeDecodeError) -> DataError:
    """Names the field holding the bad byte when the rest of the line is still valid JSON."""
    bad = raw_bytes[exc.start:exc.end].hex()
    field_name = None
    try:
        row = json.loads(raw_bytes.decode("utf-8", "replace"))
        if isinstance(row, dict):
            field_name = next((k for k, v in row.items() if "\ufffd" in json.dumps(v, ensure_ascii=False)), None)
    except json.JSONDecodeError:
        pass
    return DataError(f"not valid UTF-8: byte 0x{bad} at byte offset {line_offset + exc.start} of the file "
                     f"(column {exc.start + 1} of the line); exprl reads UTF-8",
                     path=str(path), line=line_no, field=field_name)


def _read_parquet(path: Path) -> tuple[list[str], Iterator[tuple[int, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(f"cannot read Parquet: {exc}", path=str(path)) from exc
    return table.column_names, ((i, row) for i, row in enumerate(table.to_pylist(), start=1))


def _read_hf(source: str, split: str | None,
             config: str | None = None) -> tuple[list[str], Iterator[tuple[int, Any]]]:
    import datasets

    path = Path(source)
    try:
        if path.is_dir() and any((path / name).is_file() for name in _DATASETS_FOLDER_MARKERS):
            loaded = datasets.load_from_disk(str(path))
        elif path.is_dir():
            loaded = datasets.load_dataset(str(path))
        elif path.is_file():
            loaded = datasets.load_dataset(DATASETS_FILE_BUILDERS[path.suffix], data_files=str(path),
                                           **({"delimiter": "\t"} if path.suffix == ".tsv" else {}))
        else:
            loaded = datasets.load_dataset(source, config)
    except DataError:
        raise
    except Exception as exc:  # the hub client, fsspec and builders raise unrelated types
        where = "Hugging Face dataset" if not path.exists() else "dataset"
        hint = " (no network access or not in the local cache?)" if not path.exists() else ""
        raise DataError(f"cannot load {where} '{source}'{hint}: {type(exc).__name__}: {exc}",
                        path=source) from exc
    if isinstance(loaded, datasets.DatasetDict):
        chosen = split or ("train" if "train" in loaded else (next(iter(loaded)) if len(loaded) == 1 else None))
        if chosen not in loaded:
            raise DataError(f"split '{chosen}' not found; available splits: {', '.join(loaded)}"
                            if chosen else f"has several splits ({', '.join(loaded)}); choose one with split=",
                            path=source)
        loaded = loaded[chosen]
    return list(loaded.column_names), ((i, row) for i, row in enumerate(loaded, start=1))


def _rows(source: str, split: str | None,
          config: str | None = None) -> tuple[list[str] | None, Iterator[tuple[int, Any] | RowError]]:
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in JSONL_SUFFIXES:
        return None, _read_jsonl(path)
    if path.is_file() and suffix in PARQUET_SUFFIXES:
        return _read_parquet(path)
    if path.is_dir() or (path.is_file() and suffix in DATASETS_FILE_BUILDERS):
        return _read_hf(source, split)
    if path.exists():
        raise DataError(f"unsupported file type '{suffix}'; use .jsonl, .parquet, a datasets file "
                        f"({', '.join(DATASETS_FILE_BUILDERS)}) or a datasets folder", path=source)
    if suffix in (*JSONL_SUFFIXES, *PARQUET_SUFFIXES, *DATASETS_FILE_BUILDERS) or not _HUB_ID.match(source):
        raise DataError("file not found", path=source)
    return _read_hf(source, split, config)


def load_problems(source: str | os.PathLike, *, mapping: dict[str, str] | None = None, split: str | None = None,
                  skip_invalid: bool = False, rejects: list[Rejection] | None = None,
                  require_reference: bool = True, config: str | None = None,
                  allow_empty: bool = False) -> list[Problem]:
    """Every row of `source` as a Problem, in source order.

    `source`: a .jsonl/.parquet file, a datasets data file (.csv, .json, .arrow), a `save_to_disk`
    folder, a folder of JSONL/Parquet files (each read with its own layout, in name order; a folder
    `exprl data prepare` wrote gives its `train` split, one `exprl data filter` wrote its `kept` problems, or `split`), another folder of data files, a
    Hugging Face hub id (`config`: its subset), or a catalog dataset by name (`exprl.data.catalog`: a
    local copy in $EXPRL_DATA_DIR, else the hub). `mapping`: Problem field (or `meta.KEY`) -> source
    column, on top of the detected preset. `split`: for sources with several splits.
    With `skip_invalid`, bad rows go to `rejects` (which the caller must then pass) instead of raising.
    `require_reference=False` is for answer-only benchmarks (AIME ships id, problem, answer): a
    missing or empty reference becomes "" instead of an error, and the answer is then required.
    A source that yields no usable row is a DataError saying why, unless `allow_empty`.
    """
    if skip_invalid and rejects is None:
        raise ValueError("skip_invalid=True needs a `rejects` list to record the rows it skips")
    source = os.fspath(source)
    if not Path(source).exists():
        check_source_name(source)
        entry = find_entry(source)
        if entry is not None:
            if mapping or split:
                raise DataError(f"'{source}' is a catalog dataset with its own split and layout; drop "
                                f"{' and '.join(n for n, v in (('split', split), ('fields', mapping)) if v)}",
                                path=source)
            return load_named(entry, skip_invalid=skip_invalid, rejects=rejects, require_reference=require_reference)
    options = dict(mapping=mapping, skip_invalid=skip_invalid, rejects=rejects, require_reference=require_reference)
    files = _folder_files(Path(source), split)
    if files is not None:
        problems = [p for file in files for p in load_problems(file, allow_empty=True, **options)]
        if not problems and not allow_empty:
            raise DataError(f"no usable rows in its data files ({', '.join(f.name for f in files)})", path=source)
        return problems
    if Path(source).is_file():
        check_complete(Path(source).parent)  # a file of a prepared or filtered folder: only when it is whole
    columns, rows = _rows(source, split, config)
    objects = True
    if columns is None:  # JSONL has no schema: the keys of its first rows choose the layout
        rows = list(rows)
        columns = set()
        sample = [item[1] for item in rows[:LAYOUT_SAMPLE_ROWS] if len(item) == 2 and isinstance(item[1], dict)]
        for row in sample:
            columns.update(row)
        objects = bool(sample)
    # Rows none of which is an object have no layout to detect: each row's own error says what it is.
    mapper = _RowMapper(source, set(columns), mapping, require_reference=require_reference) if objects else None
    problems: list[Problem] = []
    seen = refused = 0
    for index, item in enumerate(rows):
        line, raw = item[0], item[-1]
        seen += 1
        try:
            if len(item) == 3:
                raise item[1]
            if mapper is None:
                raise DataError(f"a row must be a JSON object, got {_kind(raw)}", path=source, line=line)
            problems.append(mapper(raw, line, index))
        except DataError as error:
            if not skip_invalid:
                raise
            refused += 1
            rejects.append(Rejection.from_error(error, raw))  # type: ignore[union-attr]
    if not problems and not allow_empty:
        raise DataError(empty_reason(source, seen, refused), path=source)
    return problems


def check_source_name(source: str | os.PathLike) -> None:
    """A DataError for a source that is no file, no catalog dataset and no hub id but is spelt near a
    catalog dataset's name (`gsm8k-tran`): without it, the name would be tried on the hub and fail
    there with a network error that says nothing of the typo. Reads nothing."""
    import difflib

    from exprl.data.catalog import CATALOG

    text = os.fspath(source)
    if not text or "/" in text or Path(text).exists() or find_entry(text) is not None:
        return
    names = [entry.name for entry in CATALOG]
    near = difflib.get_close_matches(text, names, n=3, cutoff=0.75)
    if near:
        raise DataError(f"no such file, and no catalog dataset of that name; did you mean "
                        f"{' or '.join(near)}? (`exprl data list` shows them all)", path=text)


# -- datasets by name (exprl.data.catalog) ------------------------------------------------------
def load_named(entry: CatalogEntry, *, skip_invalid: bool = False, rejects: list | None = None,
               require_reference: bool = True) -> list[Problem]:
    """The entry's problems from the local copy, else from the hub (one-line error when neither)."""
    location = locate(entry)
    if location.kind == "local":
        return load_problems(location.where, skip_invalid=skip_invalid, rejects=rejects,
                             require_reference=require_reference)
    try:
        return from_hub(entry, skip_invalid=skip_invalid, rejects=rejects, require_reference=require_reference)
    except DataError as exc:
        if exc.path != entry.hub_id or exc.line is not None:  # a bad row: the hub answered
            raise
        reason = str(exc.__cause__ or exc).strip().splitlines()
        raise DataError(f"dataset '{entry.name}': no local copy ({location.note}) and {entry.hub_label} could not "
                        f"be loaded from the Hugging Face hub ({reason[0] if reason else 'no reason given'}); put "
                        f"{entry.local_file}" + (f" ({entry.local_format})" if entry.local_format else "")
                        + f" in a folder and name it with {DATA_DIR_ENV}=DIR or --data-dir DIR"
                        ) from None


def from_hub(entry: CatalogEntry, source: str | None = None, **load_options) -> list[Problem]:
    """The entry's problems from the hub rows (`source`: a file or folder holding those rows, in the hub's
    columns, instead of the hub), read with the entry's layout, ids and exclusion."""
    if source is not None or not entry.configs:
        problems = load_problems(source or entry.hub_id, config=entry.config, split=entry.split, mapping=entry.fields,
                                 **load_options)
    else:
        problems = [p for config in entry.configs for p in load_problems(
            entry.hub_id, config=config, split=entry.split, mapping=entry.fields, **load_options)]
    problems = hub_ids(entry, problems)
    if entry.exclude:
        excluded = find_entry(entry.exclude)
        problems = without(problems, load_named(excluded, require_reference=False))
    return problems


def _kind(value: Any) -> str:
    return {list: "a JSON array", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def empty_reason(source: str, rows: int, rejected: int) -> str:
    """Why a source gave no usable row, in words (for the error that says so)."""
    path = Path(source)
    if rows == 0 and path.is_file() and path.stat().st_size == 0:
        return "empty file (0 bytes): no rows to read"
    if rows == 0 and path.is_file() and path.suffix.lower() in JSONL_SUFFIXES:
        return "only blank lines: no rows to read"
    if rows == 0:
        return "no rows to read"
    return f"0 usable rows: all {rows} rows were rejected"


PROBLEM_FOLDERS = {"data prepare": "train", "data filter": "kept"}
"""Folders exprl writes problems into (by the command its manifest names) -> the file a folder is read
as when no split is named: `train` of a prepared folder, `kept` of a filtered one (exprl.eval.filter)."""


def _folder_files(path: Path, split: str | None) -> list[Path] | None:
    """The JSONL/Parquet files a folder is read as, or None when `datasets` reads it (a
    save_to_disk folder, or one without such files)."""
    if not path.is_dir() or any((path / name).is_file() for name in _DATASETS_FOLDER_MARKERS):
        return None
    manifest = check_complete(path)
    if manifest is not None and manifest.get("command") in PROBLEM_FOLDERS:
        chosen = path / f"{split or PROBLEM_FOLDERS[manifest['command']]}.jsonl"
        if not chosen.is_file():
            raise DataError(f"a prepared folder without a {chosen.name} (splits: "
                            f"{', '.join(sorted(p.stem for p in path.glob('*.jsonl')))})", path=str(path))
        return [chosen]
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and p.suffix.lower() in (*JSONL_SUFFIXES, *PARQUET_SUFFIXES))
    if not files:
        return None
    if split is not None:
        named = [p for p in files if _source_stem(p.name) == split]
        if named:
            files = named
    ignored = sorted(p.name for p in path.iterdir() if p.is_file() and p not in files)
    logger.info("%s: reading %s%s", path, ", ".join(p.name for p in files),
                f" (not problem files: {', '.join(ignored)})" if ignored else "")
    return files


def write_problems(path: str | os.PathLike, problems: Iterable[Problem]) -> Path:
    """Problems as JSONL (one `Problem.to_dict()` a line), written atomically: the one writer."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for problem in problems:
            handle.write(json.dumps(problem.to_dict(), ensure_ascii=False) + "\n")
    return path


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Plain dict rows as JSONL, atomically (removed/rejected rows, which are not Problems)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path


def write_problems_parquet(path: str | os.PathLike, problems: Iterable[Problem]) -> Path:
    """Problems as Parquet. `meta` is stored as JSON text: sources disagree on its keys and types,
    and a Parquet column needs one schema. `load_problems` decodes it again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{**p.to_dict(), "meta": json.dumps(p.meta, ensure_ascii=False, sort_keys=True)} for p in problems]
    schema = pa.schema([(name, pa.string()) for name in (*PROBLEM_FIELDS, "meta")])
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return path
