"""`exprl data prepare`: corpora in, a clean train/test split of Problems out, with every removal recorded.

Stages, in order (each removal is written to `removed.jsonl` with its reason and evidence):
load and validate -> normalise whitespace -> filters (domain, level, length) -> decontaminate
against eval sets (same id, same normalised text, or a shared word n-gram) -> exact duplicates ->
duplicate ids -> near duplicates (MinHash LSH on word shingles, confirmed by exact Jaccard) ->
deterministic split by a seeded hash of the id.

Decontamination runs before deduplication so that every copy of a leaked problem is reported as
contaminated, with the eval item it matched, rather than as a duplicate of another removed row.
"""
from __future__ import annotations

import hashlib
import re
import statistics
import time
import unicodedata
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from exprl.data.loaders import (Rejection, empty_reason, load_problems, parse_field_mapping, write_jsonl,
                                write_problems, write_problems_parquet)
from exprl.data.problem import Problem
from exprl.errors import ConfigError, DataError
from exprl.runs import claim_output_dir, inspect_output_dir, write_json_atomic

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass
class PrepareConfig:
    """How `exprl data prepare` validates, cleans, decontaminates and splits a corpus."""

    fields: list[str] = field(default_factory=list, metadata={
        "help": "Column mapping as FIELD=COLUMN (e.g. problem=question, meta.level=difficulty), applied on "
                "top of the layout detected from the columns."})
    split: str | None = field(default=None, metadata={
        "help": "Split to read from Hugging Face sources with several splits (default: train)."})
    skip_invalid: bool = field(default=False, metadata={
        "help": "Write bad rows to rejected.jsonl with their reason instead of stopping at the first one."})
    allow_empty: bool = field(default=False, metadata={
        "help": "Accept an input or eval set that yields no usable row, and an output with no problem left; "
                "otherwise each is an error saying why."})
    decontaminate: list[str] = field(default_factory=list, metadata={
        "help": "Eval sets (any loadable source) whose problems must not appear in the output."})
    decontam_ngram: int = field(default=13, metadata={"range": "[0, inf)",
        "help": "A training problem sharing one word n-gram of this length with an eval problem is removed "
                "(0 turns the n-gram check off; exact text matches are always removed)."})
    decontam_by_id: bool = field(default=False, metadata={
        "help": "Also remove training rows whose id equals an eval item's id. Only meaningful when both use "
                "one id scheme (as ../shared/data's MATH ids do)."})
    exact_dedupe: bool = field(default=True, metadata={
        "help": "Remove problems whose normalised text (case, spacing, Unicode form) equals an earlier one."})
    near_dedupe: bool = field(default=True, metadata={
        "help": "Remove problems whose word-shingle Jaccard similarity to a kept one reaches near_dup_threshold."})
    near_dup_threshold: float = field(default=0.9, metadata={"range": "(0, 1]",
        "help": "Jaccard similarity of word shingles at or above which a problem is a near duplicate. High by "
                "default: MATH has many templated problems that differ only in a number and are distinct."})
    near_dup_shingle: int = field(default=5, metadata={"range": "[1, inf)",
        "help": "Tokens (words and single symbols) per shingle for near-duplicate detection."})
    near_dup_same_answer: bool = field(default=True, metadata={
        "help": "Count a similar problem as a near duplicate only when its final answer is also the same: in "
                "math, near-identical text with another answer usually asks for another quantity."})
    minhash_permutations: int = field(default=128, metadata={"range": "[1, inf)",
        "help": "MinHash signature length; candidates found by LSH are confirmed with the exact Jaccard."})
    minhash_bands: int = field(default=32, metadata={"range": "[1, inf)",
        "help": "LSH bands (must divide minhash_permutations). More bands find more candidates."})
    domains: list[str] = field(default_factory=list, metadata={
        "help": "Keep only these domains (empty keeps all)."})
    min_level: int | None = field(default=None, metadata={
        "range": "[0, inf)", "help": "Drop problems whose meta.level is below this."})
    max_level: int | None = field(default=None, metadata={
        "range": "[0, inf)", "help": "Drop problems whose meta.level is above this."})
    keep_unleveled: bool = field(default=True, metadata={
        "help": "With a level range, keep problems that have no level (e.g. GSM8K)."})
    max_problem_chars: int | None = field(default=None, metadata={"range": "[0, inf)",
        "help": "Drop problems whose statement is longer than this many characters."})
    max_reference_chars: int | None = field(default=None, metadata={"range": "[0, inf)",
        "help": "Drop problems whose reference solution is longer than this many characters."})
    test_fraction: float = field(default=0.0, metadata={"range": "[0, 1)",
        "help": "Fraction of problems held out as test; chosen by a seeded hash of the id, so it is "
                "stable across runs and across adding or removing other rows."})
    seed: int = field(default=0, metadata={"range": "[0, 4294967295]", "help": "Seed of the train/test split hash."})

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ConfigError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if self.decontam_ngram < 0 or self.near_dup_shingle < 1:
            raise ConfigError("decontam_ngram must be >= 0 and near_dup_shingle >= 1")
        if self.minhash_bands < 1 or self.minhash_permutations % self.minhash_bands:
            raise ConfigError(f"minhash_bands ({self.minhash_bands}) must divide "
                              f"minhash_permutations ({self.minhash_permutations})")
        for name in ("min_level", "max_level", "max_problem_chars", "max_reference_chars"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Removal:
    """A valid problem left out of the output, and why (with the evidence: the kept twin or eval item)."""

    problem: Problem
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.problem.id, "source": self.problem.source, "reason": self.reason,
                "detail": self.detail, "problem": self.problem.to_dict()}


@dataclass
class PrepareReport:
    """What `prepare` produced: the split, every removal and rejection, the stats and the files written."""

    train: list[Problem]
    test: list[Problem]
    removed: list[Removal]
    rejected: list[Rejection]
    stats: dict[str, Any]
    files: dict[str, Path]
    replaced: list[Path] = field(default_factory=list)  # files that existed before and were written over
    deleted: list[Path] = field(default_factory=list)   # an earlier run's files these settings no longer make

    def summary(self) -> str:
        return format_stats(self.stats)


# ------------------------------------------------------------------------------ text normalisation

def normalize_whitespace(text: str) -> str:
    """Stored text: unified newlines, single spaces, at most one blank line, no trailing spaces.

    Line breaks are kept: they carry structure (Asymptote code, cases, lists)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def comparison_key(text: str) -> str:
    """The text two problems must share to be exact duplicates: case, spacing and Unicode form ignored."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def words(text: str) -> list[str]:
    """Normalised words: runs of letters and digits. LaTeX punctuation is dropped so that `$x$,` and
    `$x$ ,` agree; LaTeX command names (frac, sqrt) stay words."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def ngrams(tokens: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


# ------------------------------------------------------------------------------ decontamination

class EvalIndex:
    """Every eval problem's id, normalised text and word n-grams, each mapped back to its eval item."""

    def __init__(self, ngram: int, by_id: bool):
        self.ngram, self.by_id = ngram, by_id
        self.ids: dict[str, tuple[str, str]] = {}
        self.texts: dict[str, tuple[str, str]] = {}
        self.grams: dict[tuple[str, ...], tuple[str, str]] = {}
        self.sizes: dict[str, int] = {}

    def add(self, path: str, problems: Iterable[Problem]) -> None:
        count = 0
        for problem in problems:
            count += 1
            where = (path, problem.id)
            self.ids.setdefault(problem.id, where)
            self.texts.setdefault(comparison_key(problem.problem), where)
            if self.ngram:
                for gram in ngrams(words(problem.problem), self.ngram):
                    self.grams.setdefault(gram, where)
        self.sizes[path] = count

    def match(self, problem: Problem) -> tuple[str, dict[str, Any]] | None:
        """(reason, evidence) for the first way `problem` overlaps an eval item, else None."""
        if self.by_id and problem.id in self.ids:
            path, eval_id = self.ids[problem.id]
            return "contaminated_id", {"eval_set": path, "eval_id": eval_id}
        hit = self.texts.get(comparison_key(problem.problem))
        if hit:
            return "contaminated_exact", {"eval_set": hit[0], "eval_id": hit[1]}
        if self.ngram:
            for gram in ngrams(words(problem.problem), self.ngram):
                hit = self.grams.get(gram)
                if hit:
                    return "contaminated_ngram", {"eval_set": hit[0], "eval_id": hit[1], "ngram": " ".join(gram)}
        return None


# ------------------------------------------------------------------------------ near duplicates

class NearDuplicateIndex:
    """MinHash LSH over token shingles. Symbols are tokens here (unlike the decontamination words):
    `sin(-60)` and `sin(60)` are different problems. LSH only proposes candidates; the decision is the exact
    Jaccard of the shingle sets, so results do not depend on hash luck beyond missed candidates
    (for a pair at Jaccard 0.8 with 32 bands of 4 rows, the miss probability is about 5e-8)."""

    _SEED = 20260  # fixed: the signature must not change between runs

    def __init__(self, threshold: float, shingle: int, permutations: int, bands: int, same_answer: bool = True):
        import numpy as np

        self.np = np
        self.threshold, self.shingle, self.same_answer = threshold, shingle, same_answer
        self.rows_per_band = permutations // bands
        self.bands = bands
        rng = np.random.default_rng(self._SEED)
        # Multiply-shift hashing of 32-bit shingle hashes: one random odd multiplier per permutation.
        self.mult = rng.integers(1, 2**63, size=permutations, dtype=np.uint64) | np.uint64(1)
        self.add = rng.integers(0, 2**63, size=permutations, dtype=np.uint64)
        self.buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        self.shingle_sets: list[frozenset[str]] = []
        self.ids: list[str] = []
        self.answers: list[str] = []
        self.kept_with_other_answer = 0

    def shingles(self, text: str) -> frozenset[str]:
        tokens = _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())
        if len(tokens) <= self.shingle:
            return frozenset([" ".join(tokens)])
        return frozenset(" ".join(gram) for gram in ngrams(tokens, self.shingle))

    def _signature(self, shingles: frozenset[str]):
        np = self.np
        hashes = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in shingles), dtype=np.uint64,
                             count=len(shingles))
        with np.errstate(over="ignore"):  # the wrap-around modulo 2**64 is the point of the hash
            mixed = (self.mult[:, None] * hashes[None, :] + self.add[:, None]) >> np.uint64(32)
        return mixed.min(axis=1)

    def check_and_add(self, problem_id: str, text: str, answer: str = "") -> tuple[str, float] | None:
        """(kept id, Jaccard) of the most similar kept problem at or above the threshold (with the same
        answer when `same_answer`); else keeps this one and returns None."""
        answer_key = "".join(comparison_key(answer).split())
        shingles = self.shingles(text)
        signature = self._signature(shingles).reshape(self.bands, self.rows_per_band)
        keys = [(band, signature[band].tobytes()) for band in range(self.bands)]
        candidates = {i for key in keys for i in self.buckets.get(key, ())}
        best: tuple[str, float] | None = None
        other_answer = False
        for i in sorted(candidates):
            other = self.shingle_sets[i]
            similarity = len(shingles & other) / len(shingles | other)
            if similarity < self.threshold:
                continue
            if self.same_answer and self.answers[i] != answer_key:
                other_answer = True
                continue
            if best is None or similarity > best[1]:
                best = (self.ids[i], similarity)
        if best is not None:
            return best[0], round(best[1], 4)
        self.kept_with_other_answer += other_answer
        index = len(self.ids)
        self.ids.append(problem_id)
        self.answers.append(answer_key)
        self.shingle_sets.append(shingles)
        for key in keys:
            self.buckets[key].append(index)
        return None


# ------------------------------------------------------------------------------ split and stats

def split_unit(problem_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, id): the row's place in the train/test split."""
    digest = hashlib.blake2b(f"{seed}\0{problem_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")
_FRACTION = re.compile(r"^[+-]?(\\[dt]?frac\{[+-]?\d+\}\{\d+\}|\d+/\d+)$")
_TEXT_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{3,}\b")


def answer_kind(answer: str) -> str:
    """integer | decimal | fraction | tuple | text | expression: what a verifier must compare."""
    compact = answer.strip().strip("$").replace("{,}", "").replace("\\!", "").replace(" ", "")
    if _INTEGER.match(compact.replace(",", "")) and not re.search(r"\d,\d{1,2}(,|$)", compact):
        return "integer"
    if _DECIMAL.match(compact):
        return "decimal"
    if _FRACTION.match(compact):
        return "fraction"
    if re.match(r"^(\\left)?[(\[]", compact) and "," in compact:
        return "tuple"
    if "\\text" in compact or "\\mbox" in compact or _TEXT_WORD.search(re.sub(r"\\[A-Za-z]+", " ", answer)):
        return "text"
    return "expression"


def _length_stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "p50": 0, "mean": 0, "p90": 0, "max": 0}
    ordered = sorted(values)
    return {"min": ordered[0], "p50": ordered[len(ordered) // 2], "mean": round(statistics.fmean(ordered), 1),
            "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], "max": ordered[-1]}


def describe_problems(problems: Sequence[Problem]) -> dict[str, Any]:
    """Counts, lengths, answer kinds, sources, domains and levels of a set of problems."""
    levels = Counter(str(p.meta.get("level")) for p in problems if p.meta.get("level") is not None)
    return {
        "count": len(problems),
        "per_source": dict(Counter(p.source for p in problems).most_common()),
        "per_domain": dict(Counter(p.domain for p in problems).most_common()),
        "levels": dict(sorted(levels.items())),
        "answer_kinds": dict(Counter(answer_kind(p.answer) for p in problems).most_common()),
        "lengths": {
            "problem_chars": _length_stats([len(p.problem) for p in problems]),
            "problem_words": _length_stats([len(p.problem.split()) for p in problems]),
            "reference_chars": _length_stats([len(p.reference) for p in problems]),
        },
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A readable summary of `stats.json` (or of `describe_problems` output)."""
    lines = []
    counts = stats.get("counts")
    if counts:
        lines.append("rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if stats.get("removed_by_reason"):
            lines.append("removed: " + ", ".join(f"{k} {v}" for k, v in stats["removed_by_reason"].items()))
        if stats.get("rejected_by_field"):
            lines.append("rejected: " + ", ".join(f"{k} {v}" for k, v in stats["rejected_by_field"].items()))
        for name, per in stats.get("decontamination", {}).get("removed_by_eval_set", {}).items():
            lines.append(f"decontaminated against {name}: {per}")
        stats = stats["kept"]
    lines.append(f"problems: {stats['count']}")
    for key in ("per_source", "per_domain", "levels", "answer_kinds"):
        if stats.get(key):
            lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in stats[key].items()))
    for key, values in stats.get("lengths", {}).items():
        lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the pipeline

def _filter_verdict(problem: Problem, config: PrepareConfig) -> tuple[str, dict[str, Any]] | None:
    if config.domains and problem.domain not in config.domains:
        return "filter_domain", {"domain": problem.domain}
    if config.min_level is not None or config.max_level is not None:
        level = problem.meta.get("level")
        if not isinstance(level, int) or isinstance(level, bool):
            if not config.keep_unleveled:
                return "filter_level", {"level": level}
        elif (config.min_level is not None and level < config.min_level) or \
                (config.max_level is not None and level > config.max_level):
            return "filter_level", {"level": level}
    if config.max_problem_chars is not None and len(problem.problem) > config.max_problem_chars:
        return "filter_problem_length", {"chars": len(problem.problem)}
    if config.max_reference_chars is not None and len(problem.reference) > config.max_reference_chars:
        return "filter_reference_length", {"chars": len(problem.reference)}
    return None


PREPARE_COMMAND = "data prepare"
PREPARE_WRITES = ("train.jsonl", "train.parquet", "test.jsonl", "test.parquet", "removed.jsonl", "rejected.jsonl",
                  "stats.json")
"""Everything `prepare` may write in its output folder; nothing else there is ever touched."""


def prepare(inputs: Sequence[str | Path], out_dir: str | Path, config: PrepareConfig | None = None, *,
            overwrite: bool = False) -> PrepareReport:
    """Validate, clean, decontaminate, dedupe and split `inputs`; write the results to `out_dir`.

    `out_dir` must not be, contain or sit inside an input or eval set; a non-empty folder that an
    earlier `prepare` did not write is refused unless `overwrite` (checked before any work)."""
    config = config or PrepareConfig()
    if not inputs:
        raise ConfigError("prepare needs at least one input")
    sources = [*inputs, *config.decontaminate]
    inspect_output_dir(out_dir, PREPARE_COMMAND, inputs=sources, overwrite=overwrite, writes=PREPARE_WRITES)
    started = time.perf_counter()
    mapping = parse_field_mapping(config.fields)
    rejected: list[Rejection] = []
    loaded: list[Problem] = []
    input_counts = []
    for source in inputs:
        before_rejected = len(rejected)
        rows = load_problems(source, mapping=mapping, split=config.split, skip_invalid=config.skip_invalid,
                             rejects=rejected if config.skip_invalid else None, allow_empty=True)
        refused = len(rejected) - before_rejected
        if not rows and not config.allow_empty:
            why = empty_reason(str(source), refused, refused)
            if refused:
                first = rejected[before_rejected]
                where = ", ".join(f"{k} {v}" for k, v in (("line", first.line), ("field", first.field)) if v)
                why += f" (the first{', ' + where if where else ''}: {first.reason})"
            raise DataError(f"{why}; pass --allow-empty to accept an input without problems", path=str(source))
        loaded.extend(rows)
        input_counts.append({"path": str(source), "loaded": len(rows), "rejected": refused})

    evals = EvalIndex(config.decontam_ngram, config.decontam_by_id)
    for source in config.decontaminate:
        # An eval set's problems are only compared with, so only a missing problem text matters.
        evals.add(str(source), load_problems(source, split=config.split, require_reference=False,
                                             allow_empty=config.allow_empty))

    removed: list[Removal] = []
    seen_text: dict[str, str] = {}
    seen_ids: set[str] = set()
    near = (NearDuplicateIndex(config.near_dup_threshold, config.near_dup_shingle, config.minhash_permutations,
                               config.minhash_bands, config.near_dup_same_answer) if config.near_dedupe else None)
    kept: list[Problem] = []
    for original in loaded:
        problem = replace(original, problem=normalize_whitespace(original.problem),
                          reference=normalize_whitespace(original.reference),
                          answer=normalize_whitespace(original.answer))
        verdict = _filter_verdict(problem, config) or evals.match(problem)
        if verdict is None and config.exact_dedupe:
            twin = seen_text.get(comparison_key(problem.problem))
            if twin is not None:
                verdict = "duplicate", {"kept_id": twin}
        if verdict is None and problem.id in seen_ids:
            verdict = "duplicate_id", {"id": problem.id}
        if verdict is None and near is not None:
            twin_similarity = near.check_and_add(problem.id, problem.problem, problem.answer)
            if twin_similarity is not None:
                verdict = "near_duplicate", {"kept_id": twin_similarity[0], "jaccard": twin_similarity[1]}
        if verdict is not None:
            removed.append(Removal(problem, verdict[0], verdict[1]))
            continue
        seen_text.setdefault(comparison_key(problem.problem), problem.id)
        seen_ids.add(problem.id)
        kept.append(problem)

    train = [p for p in kept if split_unit(p.id, config.seed) >= config.test_fraction]
    test = [p for p in kept if split_unit(p.id, config.seed) < config.test_fraction]

    if not kept and loaded and not config.allow_empty:
        reasons = ", ".join(f"{k} {v}" for k, v in Counter(r.reason for r in removed).most_common())
        raise DataError(f"no problem is left after filtering and deduplication (removed: {reasons}); "
                        f"pass --allow-empty to write empty splits anyway", path=", ".join(map(str, inputs)))

    output = claim_output_dir(out_dir, PREPARE_COMMAND, PREPARE_WRITES, inputs=sources, overwrite=overwrite)
    out = output.path
    replaced = [out / name for name in PREPARE_WRITES if (out / name).is_file()]
    files: dict[str, Path] = {
        "train.jsonl": write_problems(out / "train.jsonl", train),
        "train.parquet": write_problems_parquet(out / "train.parquet", train),
    }
    if config.test_fraction > 0:
        files["test.jsonl"] = write_problems(out / "test.jsonl", test)
        files["test.parquet"] = write_problems_parquet(out / "test.parquet", test)
    files["removed.jsonl"] = write_jsonl(out / "removed.jsonl", (r.to_dict() for r in removed))
    if config.skip_invalid:
        files["rejected.jsonl"] = write_jsonl(out / "rejected.jsonl", (r.to_dict() for r in rejected))

    by_eval: dict[str, dict[str, int]] = defaultdict(Counter)
    for removal in removed:
        if removal.reason.startswith("contaminated"):
            by_eval[removal.detail["eval_set"]][removal.reason] += 1
    stats = {
        "counts": {"loaded": len(loaded), "rejected": len(rejected), "removed": len(removed),
                   "kept": len(kept), "train": len(train), "test": len(test)},
        "inputs": input_counts,
        "removed_by_reason": dict(Counter(r.reason for r in removed).most_common()),
        "near_duplicates_kept_for_another_answer": near.kept_with_other_answer if near else 0,
        "rejected_by_field": dict(Counter(r.field or "(whole row)" for r in rejected).most_common()),
        "decontamination": {"eval_sets": dict(evals.sizes),
                            "removed_by_eval_set": {k: dict(v) for k, v in by_eval.items()}},
        "loaded_per_source": dict(Counter(p.source for p in loaded).most_common()),
        "kept": describe_problems(kept),
        "train": describe_problems(train)["per_source"],
        "test": describe_problems(test)["per_source"],
        "config": asdict(config),
        "seconds": round(time.perf_counter() - started, 2),
    }
    files["stats.json"] = write_json_atomic(out / "stats.json", stats)
    # A rerun with other settings must not leave an old split behind (only files of the manifest go).
    stale = output.remove_stale(files)
    output.commit(files)  # last: until now a reader refuses the folder as incomplete
    return PrepareReport(train=train, test=test, removed=removed, rejected=rejected, stats=stats, files=files,
                         replaced=[p for p in replaced if p.name in files], deleted=stale)
