"""Datasets by name: GSM8K, MATH and MATH-500 as users know them, loaded from a local copy or the hub.

A recipe, a benchmark config or a command line names `gsm8k-train` instead of a path that exists on
one machine only. This module says what each name is and where it would load from; every place that
reads problems (`loaders.load_problems`, which loads a name with `loaders.load_named`) resolves a
source in this order:

1. an explicit path: a file or folder of that name exists (a user's own data);
2. a catalog name with a local prepared copy: `<data folder>/<entry.local_file>`, where the data folder
   is `$EXPRL_DATA_DIR` (`--data-dir DIR` sets it for one command);
3. the same name from the Hugging Face hub through `datasets` (cached by `datasets` as usual).

Offline and without a local copy, loading a name is one DataError naming the dataset, the file the
data folder needs, and how to name the folder. The local copies use the schema and file names of a
prepared data folder (id, source, problem, solution, answer, level, subject; the `shared` layout of
`loaders.PRESETS`); hub rows are read with the layout the entry declares.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from exprl.data.problem import Problem
from exprl.errors import ConfigError

DATA_DIR_ENV = "EXPRL_DATA_DIR"


@dataclass(frozen=True)
class CatalogEntry:
    """One named dataset: where the hub keeps it, how its rows read, and its local file name."""

    name: str = field(metadata={"help": "What recipes and commands call it, e.g. gsm8k-train."})
    description: str = field(metadata={"help": "One line for `exprl data list`."})
    hub_id: str = field(metadata={"help": "Hugging Face hub dataset id."})
    config: str | None = field(metadata={"help": "The hub dataset's config (subset) name."})
    split: str = field(metadata={"help": "The hub split the rows come from."})
    hub_columns: tuple[str, ...] = field(metadata={
        "help": "The hub rows' columns; they select the layout preset (loaders.PRESETS) named in `layout`."})
    layout: str = field(metadata={"help": "The loaders preset the hub rows are read with."})
    local_file: str = field(metadata={"help": "File name of the prepared copy inside the data folder."})
    fields: dict[str, str] = field(default_factory=dict, metadata={
        "help": "Problem field -> hub column, on top of the preset (MATH-500 keeps its ids in unique_id)."})
    exclude: str | None = field(default=None, metadata={
        "help": "Another entry whose problems (by problem text) are removed from the hub rows."})
    configs: tuple[str, ...] = field(default=(), metadata={
        "help": "Several hub configs read in turn and concatenated (AIME 2025's I and II), instead of `config`."})
    rows: int | None = field(default=None, metadata={
        "help": "Problems the published split holds: what a plan counts before the data is at hand."})
    local_format: str = field(default="", metadata={
        "help": "What a line of the local file holds, for the offline error (default: the prepared schema)."})

    @property
    def hub_label(self) -> str:
        configs = "+".join(self.configs) if self.configs else self.config
        return f"{self.hub_id} ({', '.join(p for p in (configs, self.split) if p)})"


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("gsm8k-train", "GSM8K train: 7,473 grade-school word problems, integer answers",
                 "openai/gsm8k", "main", "train", ("question", "answer"), "gsm8k", "gsm8k_train.jsonl"),
    CatalogEntry("gsm8k-test", "GSM8K test: 1,319 grade-school word problems, integer answers",
                 "openai/gsm8k", "main", "test", ("question", "answer"), "gsm8k", "gsm8k_test.jsonl"),
    CatalogEntry("math-train", "MATH train (Hendrycks et al.): 7,500 competition problems, LaTeX answers",
                 "DigitalLearningGmbH/MATH-lighteval", "default", "train", ("problem", "level", "solution", "type"),
                 "math", "math_train.jsonl"),
    CatalogEntry("math-test-excl-math500",
                 "MATH test without the MATH-500 problems (4,500); with math-train, the 12k training split",
                 "DigitalLearningGmbH/MATH-lighteval", "default", "test", ("problem", "level", "solution", "type"),
                 "math", "math_test_excl_math500.jsonl", exclude="math500"),
    CatalogEntry("math500", "MATH-500: the PRM800K test split of MATH (500 problems), LaTeX answers",
                 "HuggingFaceH4/MATH-500", "default", "test",
                 ("problem", "solution", "answer", "subject", "level", "unique_id"), "shared", "math500.jsonl",
                 fields={"id": "unique_id"}),
)


# The paper's held-out benchmarks (docs/method.md §5.2): answer-only rows, read through `fields`. Their hub
# ids are the official code's; `rows` is the published size. Locally: one JSON object a line with id,
# problem and answer, named as `local_file` in the data folder.
ANSWER_ONLY = "one JSON object a line with id, problem and answer"
BENCHMARKS: tuple[CatalogEntry, ...] = (
    CatalogEntry("aime25", "AIME 2025 I and II: 30 problems, integer answers (the paper's AIME25)",
                 "opencompass/AIME2025", None, "test", ("question", "answer"), "answer-only", "aime25.jsonl",
                 fields={"problem": "question", "answer": "answer"}, configs=("AIME2025-I", "AIME2025-II"), rows=30,
                 local_format=ANSWER_ONLY),
    CatalogEntry("aime26", "AIME 2026: 30 problems, integer answers (the paper's AIME26)",
                 "MathArena/aime_2026", None, "train", ("problem_idx", "problem", "answer"), "answer-only",
                 "aime26.jsonl", fields={"problem": "problem", "answer": "answer"}, rows=30, local_format=ANSWER_ONLY),
    CatalogEntry("hmmt-nov25", "HMMT November 2025: 30 problems, short answers (the paper's HMMT)",
                 "MathArena/hmmt_nov_2025", None, "train", ("problem_idx", "problem", "answer"), "answer-only",
                 "hmmt_nov25.jsonl", fields={"problem": "problem", "answer": "answer"}, rows=30,
                 local_format=ANSWER_ONLY),
    CatalogEntry("imo-answerbench", "IMO-AnswerBench (Luong et al. 2025): 400 olympiad problems, short answers",
                 "Hwilner/imo-answerbench", None, "train",
                 ("Problem ID", "Problem", "Short Answer", "Category", "Subcategory", "Source"), "answer-only",
                 "imo_answerbench.jsonl", fields={"id": "Problem ID", "problem": "Problem", "answer": "Short Answer"},
                 rows=400, local_format=ANSWER_ONLY),
)


def find_entry(name: str) -> CatalogEntry | None:
    return next((entry for entry in (*CATALOG, *BENCHMARKS) if entry.name == name), None)


def data_dir() -> Path | None:
    """The data folder the user named ($EXPRL_DATA_DIR), or None."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def set_data_dir(folder: str | os.PathLike) -> Path:
    """`--data-dir DIR`: the data folder for this process and the processes it starts."""
    path = Path(folder).expanduser().resolve()
    if path.is_file():
        raise ConfigError(f"--data-dir {folder}: a file, not a folder; name the folder that holds the data files")
    if not path.is_dir():
        raise ConfigError(f"--data-dir {folder}: no such folder")
    os.environ[DATA_DIR_ENV] = str(path)
    return path


def add_data_dir_argument(parser) -> None:
    """`--data-dir DIR`, the per-command spelling of $EXPRL_DATA_DIR (exprl.cli applies it)."""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"folder of prepared dataset copies that catalog names load from "
                             f"(default: ${DATA_DIR_ENV}; see `exprl data list`)")


@dataclass(frozen=True)
class Location:
    """Where a catalog name would load from now."""

    kind: str      # "local" or "hub"
    where: str     # the local file, or the hub id with config and split
    note: str = ""  # why not the local copy


def locate(entry: CatalogEntry) -> Location:
    folder = data_dir()
    if folder is not None and (folder / entry.local_file).is_file():
        return Location("local", str(folder / entry.local_file))
    note = (f"no ${DATA_DIR_ENV}" if folder is None else
            f"${DATA_DIR_ENV}={folder} is a file, not a folder" if folder.is_file() else
            f"${DATA_DIR_ENV}={folder} does not exist" if not folder.is_dir() else
            f"no {entry.local_file} in {folder}")
    return Location("hub", entry.hub_label, note)


def hub_ids(entry: CatalogEntry, problems: list[Problem]) -> list[Problem]:
    """Hub rows without an id column get `<name>/<row>`: unique across the catalog's entries, unlike
    the loaders' `<file stem>/<row>` (both GSM8K splits would be gsm8k/N)."""
    if "id" in entry.fields:
        return problems
    return [replace(p, id=f"{entry.name}/{row}") for row, p in enumerate(problems)]


def without(problems: list[Problem], excluded: list[Problem]) -> list[Problem]:
    """`problems` minus those whose problem text (ends trimmed) is one of `excluded`'s: MATH-500 keeps
    MATH's problem texts unchanged, and the hub's MATH has no ids to match on."""
    texts = {p.problem.strip() for p in excluded}
    return [p for p in problems if p.problem.strip() not in texts]
