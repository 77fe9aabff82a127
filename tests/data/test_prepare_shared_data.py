"""The data layer on the catalog's corpora: each test runs on the generated folder (testing/corpora.py) and on
the real corpora in ../shared/data where present (see its README for the facts checked here)."""
from __future__ import annotations

import json
import re
import unicodedata

import pytest

from exprl.data.loaders import load_problems
from exprl.data.prepare import PrepareConfig, prepare
from testing.corpora import KNOWN_DUPLICATE

ROWS = {"math_train": 7498, "math_test_excl_math500": 4500, "math500": 500, "gsm8k_train": 7473,
        "gsm8k_test": 1319}


def raw_rows(shared_data, name):
    with open(shared_data / f"{name}.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def expected_overlap(train_rows, eval_rows, n=13):
    """Independent statement of the contamination rule: same text up to case/spacing/Unicode form,
    or one shared run of n alphanumeric words."""
    def clean(text):
        return unicodedata.normalize("NFKC", text).lower()

    def grams(text):
        tokens = re.findall(r"\w+", clean(text))
        return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}

    eval_texts = {" ".join(clean(r["problem"]).split()) for r in eval_rows}
    eval_grams = set().union(*(grams(r["problem"]) for r in eval_rows))
    exact = {r["id"] for r in train_rows if " ".join(clean(r["problem"]).split()) in eval_texts}
    ngram = {r["id"] for r in train_rows if grams(r["problem"]) & eval_grams}
    return exact, ngram


ONLY_DECONTAMINATE = dict(exact_dedupe=False, near_dedupe=False)


def test_catalog_files_load_completely(catalog_data):
    for name in ROWS:
        problems = load_problems(catalog_data / f"{name}.jsonl")
        assert problems and [p.id for p in problems] == [r["id"] for r in raw_rows(catalog_data, name)]
        assert all(p.answer and p.reference and p.problem for p in problems)


def test_shared_files_hold_the_rows_their_readme_counts(shared_data):
    assert {name: len(load_problems(shared_data / f"{name}.jsonl")) for name in ROWS} == ROWS


def test_math_train_against_math500_removes_exactly_the_overlap(catalog_data, tmp_path):
    train, math500 = raw_rows(catalog_data, "math_train"), raw_rows(catalog_data, "math500")
    exact, ngram = expected_overlap(train, math500)
    assert exact == set()  # MATH-500 comes from MATH test: no train problem is verbatim in it
    assert ngram  # but some share a run of words, so the checks below have rows to check
    report = prepare([catalog_data / "math_train.jsonl"], tmp_path / "out",
                     PrepareConfig(decontaminate=[str(catalog_data / "math500.jsonl")], **ONLY_DECONTAMINATE))
    assert {r.problem.id for r in report.removed} == ngram
    assert {r.reason for r in report.removed} == {"contaminated_ngram"}
    assert len(report.train) == len(train) - len(ngram)
    math500_ids = {r["id"] for r in math500}
    assert all(r.detail["eval_id"] in math500_ids for r in report.removed)


def test_math_test_rest_against_math500(catalog_data, tmp_path):
    rest, math500 = raw_rows(catalog_data, "math_test_excl_math500"), raw_rows(catalog_data, "math500")
    assert not {r["id"] for r in rest} & {r["id"] for r in math500}  # the README's split is by id
    exact, ngram = expected_overlap(rest, math500)
    assert exact == set()
    config = PrepareConfig(decontaminate=[str(catalog_data / "math500.jsonl")], decontam_by_id=True,
                           **ONLY_DECONTAMINATE)
    report = prepare([catalog_data / "math_test_excl_math500.jsonl"], tmp_path / "rest", config)
    assert {r.problem.id for r in report.removed} == ngram

    # The full MATH test (the rest plus MATH-500 itself): every MATH-500 problem goes, by id.
    both = prepare([catalog_data / "math_test_excl_math500.jsonl", catalog_data / "math500.jsonl"],
                   tmp_path / "both", config)
    removed = {r.problem.id: r for r in both.removed}
    assert set(removed) == ngram | {r["id"] for r in math500}
    assert all(removed[r["id"]].reason == "contaminated_id" for r in math500)
    assert {p.id for p in both.train} == {r["id"] for r in rest} - ngram


KNOWN_DUPLICATES = {"shared": ("math/train/geometry/6032", "math/test/precalculus/24307"),  # its README names it
                    "generated": KNOWN_DUPLICATE}


def test_known_train_test_duplicate_is_found_by_text(catalog_data, tmp_path, request):
    report = prepare([catalog_data / "math_train.jsonl"], tmp_path / "out",
                     PrepareConfig(decontaminate=[str(catalog_data / "math_test_excl_math500.jsonl")],
                                   decontam_ngram=0, **ONLY_DECONTAMINATE))
    train_id, test_id = KNOWN_DUPLICATES[request.node.callspec.params["catalog_data"]]
    assert [(r.problem.id, r.reason, r.detail["eval_id"]) for r in report.removed] == [
        (train_id, "contaminated_exact", test_id)]


_CALCULATION = re.compile(r"(\d+(?:\.\d+)?\s*[-+*/]\s*\d+(?:\.\d+)?)(\s*=\s*)(\d+(?:\.\d+)?)")


def to_raw_gsm8k(row):
    """The original GSM8K form: calculator annotations before results, `#### N` with thousands commas."""
    annotated = _CALCULATION.sub(lambda m: f"{m.group(1)}{m.group(2)}<<{m.group(1).replace(' ', '')}={m.group(3)}>>"
                                           f"{m.group(3)}", row["solution"])
    return {"question": row["problem"], "answer": f"{annotated}\n#### {int(row['answer']):,}"}


def test_every_gsm8k_row_round_trips_from_the_raw_form(catalog_data, tmp_path):
    rows = raw_rows(catalog_data, "gsm8k_train") + raw_rows(catalog_data, "gsm8k_test")
    raw = [to_raw_gsm8k(r) for r in rows]
    assert sum("<<" in r["answer"] for r in raw) > len(raw) // 2  # the annotations are really exercised
    assert sum("," in r["answer"].rpartition("####")[2] for r in raw) > 0
    path = tmp_path / "gsm8k_raw.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in raw), encoding="utf-8")
    problems = load_problems(path)
    assert len(problems) == len(rows)
    mismatched = [(r["id"], p.answer, p.reference) for r, p in zip(rows, problems)
                  if (p.answer, p.reference, p.problem) != (r["answer"], r["solution"], r["problem"])]
    assert mismatched == []
    assert [p.id for p in problems[:2]] == ["gsm8k_raw/0", "gsm8k_raw/1"]


def test_every_math_row_round_trips_from_the_raw_form(catalog_data, tmp_path):
    rows = [r for name in ("math_train", "math_test_excl_math500", "math500") for r in raw_rows(catalog_data, name)]
    raw = [{"problem": r["problem"], "solution": r["solution"], "type": r["subject"],
            "level": f"Level {r['level'] if r['level'] is not None else '?'}"} for r in rows]
    path = tmp_path / "math_raw.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in raw), encoding="utf-8")
    problems = load_problems(path)
    mismatched = [r["id"] for r, p in zip(rows, problems)
                  if (p.answer, p.meta.get("level"), p.meta["subject"]) != (r["answer"], r["level"], r["subject"])]
    assert mismatched == []
