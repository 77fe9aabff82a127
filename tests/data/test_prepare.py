"""prepare(): normalisation, filters, decontamination, exact and near dedupe, the split and the outputs."""
from __future__ import annotations

import json
import random

import pytest

from exprl.config import load_config
from exprl.data.loaders import load_problems, write_problems
from exprl.data.prepare import (PrepareConfig, answer_kind, comparison_key, normalize_whitespace, prepare,
                                split_unit)
from exprl.data.problem import Problem
from exprl.errors import ConfigError

VOCAB = ("apple bridge candle dragon engine forest garden harbor island jungle kettle ladder meadow "
         "needle orchard pillow quarry river saddle tunnel valley wagon yarrow zephyr").split()


def generated(n: int, seed: int = 0, words: int = 40, prefix: str = "g") -> list[Problem]:
    """Distinct random-word problems: far apart from each other in shingle space."""
    rng = random.Random(seed)
    return [Problem(id=f"{prefix}{i}", problem=" ".join(rng.choice(VOCAB) for _ in range(words)) + f" {i}?",
                    reference=f"So \\boxed{{{i}}}.", answer=str(i), source=f"src{i % 2}") for i in range(n)]


def no_dedupe(**kwargs) -> PrepareConfig:
    return PrepareConfig(exact_dedupe=False, near_dedupe=False, **kwargs)


def test_exact_duplicates_ignore_case_spacing_and_unicode_form(tmp_path):
    base = generated(5)
    twins = [Problem(id="dup-case", problem=base[1].problem.upper(), reference="r \\boxed{1}", answer="1"),
             Problem(id="dup-space", problem="  " + base[2].problem.replace(" ", " \n\t ") + " ",
                     reference="r \\boxed{2}", answer="2"),
             Problem(id="dup-nfkc", problem=base[3].problem.replace("apple", "\uff41pple"),  # fullwidth a
                     reference="r", answer="3")]
    path = write_problems(tmp_path / "in.jsonl", base + twins)
    report = prepare([path], tmp_path / "out", PrepareConfig(near_dedupe=False))
    assert [p.id for p in report.train] == [p.id for p in base]
    got = {r.problem.id: (r.reason, r.detail) for r in report.removed}
    expected_twin = {"dup-case": "g1", "dup-space": "g2", "dup-nfkc": "g3"}
    assert got == {k: ("duplicate", {"kept_id": v}) for k, v in expected_twin.items()}


def test_near_duplicates_removed_only_above_threshold_and_with_the_same_answer(tmp_path):
    base = generated(30, words=60)
    near = []
    for i, problem in enumerate(base[:10]):
        tokens = problem.problem.split()
        tokens[30] = "CHANGED"  # one word of 61 changed: shingle Jaccard about 0.85
        near.append(Problem(id=f"near{i}", problem=" ".join(tokens), reference="x", answer=problem.answer))
    other_answer = Problem(id="other-answer", problem=near[0].problem, reference="x", answer="999")
    far = Problem(id="far", problem=" ".join(base[11].problem.split()[:20]) + " entirely new words here",
                  reference="x", answer=base[11].answer)
    path = write_problems(tmp_path / "in.jsonl", base + near + [other_answer, far])
    report = prepare([path], tmp_path / "out", PrepareConfig(near_dup_threshold=0.8))
    removed = {r.problem.id: r for r in report.removed}
    assert set(removed) == {f"near{i}" for i in range(10)}
    for i in range(10):
        assert removed[f"near{i}"].reason == "near_duplicate"
        assert removed[f"near{i}"].detail["kept_id"] == f"g{i}"
        assert 0.8 <= removed[f"near{i}"].detail["jaccard"] < 0.9
    assert {"other-answer", "far"} <= {p.id for p in report.train}
    assert report.stats["near_duplicates_kept_for_another_answer"] == 1

    strict = prepare([path], tmp_path / "strict", PrepareConfig(near_dup_threshold=0.95))
    assert not [r for r in strict.removed if r.reason == "near_duplicate"]
    loose = prepare([path], tmp_path / "loose", PrepareConfig(near_dup_threshold=0.8, near_dup_same_answer=False))
    assert "other-answer" in {r.problem.id for r in loose.removed}


def test_split_is_deterministic_seeded_and_stable_under_removals(tmp_path):
    problems = generated(400)
    path = write_problems(tmp_path / "in.jsonl", problems)
    config = no_dedupe(test_fraction=0.25, seed=7)
    first = prepare([path], tmp_path / "a", config)
    again = prepare([path], tmp_path / "b", config)
    assert [p.id for p in first.test] == [p.id for p in again.test]
    assert 60 <= len(first.test) <= 140
    assert len(first.train) + len(first.test) == 400
    other_seed = prepare([path], tmp_path / "c", no_dedupe(test_fraction=0.25, seed=8))
    assert {p.id for p in other_seed.test} != {p.id for p in first.test}
    # A row's side depends on its id alone: dropping other rows moves nobody.
    subset = write_problems(tmp_path / "half.jsonl", problems[::2])
    half = prepare([subset], tmp_path / "d", config)
    assert {p.id for p in half.test} == {p.id for p in first.test} & {p.id for p in problems[::2]}
    assert split_unit("g1", 7) == split_unit("g1", 7) != split_unit("g1", 8)


def test_decontamination_by_exact_text_ngram_and_id(tmp_path):
    train = generated(20, words=30)
    eval_rows = [
        Problem(id="ev-exact", problem=train[0].problem.upper() + "  ", reference="r", answer="0"),
        # 13 consecutive words of train[1] inside otherwise new text:
        Problem(id="ev-13", problem="Quite different start " + " ".join(train[1].problem.split()[5:18])
                + " and a different end", reference="r", answer="1"),
        # only 12: not contamination at n=13
        Problem(id="ev-12", problem="Quite different start " + " ".join(train[2].problem.split()[5:17])
                + " zzz yyy", reference="r", answer="1"),
        Problem(id="g3", problem="an unrelated eval item that shares only an id", reference="r", answer="1"),
    ]
    train_path = write_problems(tmp_path / "train.jsonl", train)
    eval_path = write_problems(tmp_path / "eval.jsonl", eval_rows)
    report = prepare([train_path], tmp_path / "out", no_dedupe(decontaminate=[str(eval_path)]))
    got = {r.problem.id: (r.reason, r.detail["eval_id"], r.detail["eval_set"]) for r in report.removed}
    assert got == {"g0": ("contaminated_exact", "ev-exact", str(eval_path)),
                   "g1": ("contaminated_ngram", "ev-13", str(eval_path))}
    ngram = next(r for r in report.removed if r.problem.id == "g1").detail["ngram"]
    assert len(ngram.split()) == 13 and ngram in comparison_key(train[1].problem)

    by_id = prepare([train_path], tmp_path / "id", no_dedupe(decontaminate=[str(eval_path)], decontam_by_id=True))
    assert {r.problem.id: r.reason for r in by_id.removed}["g3"] == "contaminated_id"
    shorter = prepare([train_path], tmp_path / "n12", no_dedupe(decontaminate=[str(eval_path)], decontam_ngram=12))
    assert {r.problem.id for r in shorter.removed} == {"g0", "g1", "g2"}
    assert report.stats["decontamination"]["removed_by_eval_set"] == {
        str(eval_path): {"contaminated_exact": 1, "contaminated_ngram": 1}}


def test_filters_record_why(tmp_path):
    rows = [Problem(id=f"l{level}", problem=f"Level {level} problem text", reference="r \\boxed{1}", answer="1",
                    meta={"level": level}) for level in range(1, 6)]
    rows += [Problem(id="nolevel", problem="No level here", reference="r", answer="1"),
             Problem(id="long", problem="x" * 500, reference="r", answer="1", meta={"level": 3}),
             Problem(id="longref", problem="short one", reference="y" * 900, answer="1", meta={"level": 3}),
             Problem(id="code", problem="Write a sort", reference="r", answer="1", domain="code")]
    path = write_problems(tmp_path / "in.jsonl", rows)
    config = PrepareConfig(min_level=2, max_level=4, max_problem_chars=100, max_reference_chars=800,
                           domains=["math"])
    report = prepare([path], tmp_path / "out", config)
    assert [p.id for p in report.train] == ["l2", "l3", "l4", "nolevel"]
    assert {r.problem.id: r.reason for r in report.removed} == {
        "l1": "filter_level", "l5": "filter_level", "long": "filter_problem_length",
        "longref": "filter_reference_length", "code": "filter_domain"}
    strict = prepare([path], tmp_path / "strict", PrepareConfig(min_level=2, keep_unleveled=False))
    assert "nolevel" in {r.problem.id for r in strict.removed}


def test_duplicate_ids_with_different_text_are_removed_not_merged(tmp_path):
    a = generated(3, seed=1)
    b = [Problem(id="g0", problem="a different problem under an id already used", reference="r", answer="1")]
    report = prepare([write_problems(tmp_path / "a.jsonl", a), write_problems(tmp_path / "b.jsonl", b)],
                     tmp_path / "out")
    assert [(r.problem.id, r.reason) for r in report.removed] == [("g0", "duplicate_id")]
    assert report.removed[0].problem.problem.startswith("a different")


def test_outputs_and_stats(tmp_path):
    rows = generated(50) + [Problem(id="dup", problem=generated(1)[0].problem, reference="r", answer="0")]
    good_path = write_problems(tmp_path / "in.jsonl", rows)
    bad_path = tmp_path / "bad.jsonl"
    bad_path.write_text('{"id": "x", "problem": "Q"}\nnot json\n', encoding="utf-8")
    out = tmp_path / "out"
    # bad.jsonl has no usable row: accepted only with allow_empty (tests/test_bad_input.py has the refusal).
    report = prepare([good_path, bad_path], out, PrepareConfig(test_fraction=0.2, skip_invalid=True, allow_empty=True))
    names = {p.name for p in out.iterdir()}
    assert names == {"train.jsonl", "train.parquet", "test.jsonl", "test.parquet", "removed.jsonl",
                     "rejected.jsonl", "stats.json", "exprl-manifest.json"}
    assert load_problems(out / "train.parquet") == load_problems(out / "train.jsonl") == report.train
    assert load_problems(out / "test.parquet") == report.test
    removed = [json.loads(line) for line in (out / "removed.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reason"], r["detail"]) for r in removed] == [("dup", "duplicate", {"kept_id": "g0"})]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [(1, "reference"), (2, None)]
    assert all(r["path"] == str(bad_path) and r["reason"] for r in rejected)
    stats = json.loads((out / "stats.json").read_text())
    counts = stats["counts"]
    assert counts["loaded"] == 51 == counts["kept"] + counts["removed"]
    assert counts["kept"] == counts["train"] + counts["test"] == 50
    assert counts["rejected"] == 2
    assert stats["removed_by_reason"] == {"duplicate": 1}
    assert stats["kept"]["per_source"] == {"src0": 25, "src1": 25}
    assert stats["kept"]["answer_kinds"] == {"integer": 50}
    assert stats["inputs"][1] == {"path": str(bad_path), "loaded": 0, "rejected": 2}
    assert "rows: loaded 51, rejected 2, removed 1, kept 50" in report.summary()

    # A rerun without a test split or rejects must not leave the old files behind.
    prepare([good_path], out, PrepareConfig())
    assert not (out / "test.jsonl").exists() and not (out / "rejected.jsonl").exists()


def test_whitespace_normalisation_keeps_line_structure():
    assert normalize_whitespace("  a \t b\r\n\r\n\r\n\nc  \n d ") == "a b\n\nc\nd"


@pytest.mark.parametrize("answer, kind", [
    ("42", "integer"), ("-7", "integer"), ("1,080", "integer"), ("3.5", "decimal"), ("\\frac{1}{2}", "fraction"),
    ("-\\dfrac{3}{4}", "fraction"), ("3/4", "fraction"), ("(1,2)", "tuple"), ("\\left( 3, \\frac{\\pi}{2} \\right)",
                                                                               "tuple"),
    ("[0, 1)", "tuple"), ("\\text{(C)}", "text"), ("Evelyn", "text"), ("2\\sqrt{3}", "expression"),
    ("x^2+1", "expression"), ("1,2", "expression")])
def test_answer_kinds(answer, kind):
    assert answer_kind(answer) == kind


def test_config_validation_and_loading(tmp_path):
    with pytest.raises(ConfigError, match="test_fraction"):
        PrepareConfig(test_fraction=1.0)
    with pytest.raises(ConfigError, match="must divide"):
        PrepareConfig(minhash_permutations=100, minhash_bands=32)
    recipe = tmp_path / "prep.yaml"
    recipe.write_text("test_fraction: 0.1\ndecontaminate: [a.jsonl]\n")
    config = load_config(PrepareConfig, recipe, ["seed=3", "near_dup_threshold=0.85"])
    assert (config.test_fraction, config.decontaminate, config.seed, config.near_dup_threshold) == (
        0.1, ["a.jsonl"], 3, 0.85)
    with pytest.raises(ConfigError, match="unknown key 'dedupe'"):
        load_config(PrepareConfig, None, ["dedupe=false"])


def test_the_domain_column_survives_preparation_in_both_formats(tmp_path):
    domains = ["math", "science", "code", "physics"]
    rows = [Problem(**{**p.to_dict(), "domain": domains[i % 4]}) for i, p in enumerate(generated(12))]
    # A source in another layout (the `shared` one: problem, solution, answer, level, subject) with a domain column.
    shared = tmp_path / "shared.jsonl"
    shared.write_text("".join(json.dumps({"id": f"s{i}", "problem": f"A force of {i} N acts; what else {i}?",
                                          "solution": f"It is \\boxed{{{i}}}.", "answer": str(i), "level": 2,
                                          "subject": "Physics", "domain": "science"}) + "\n" for i in range(3)))
    out = tmp_path / "out"
    prepare([write_problems(tmp_path / "in.jsonl", rows), shared], out, no_dedupe(test_fraction=0.25))
    for split in ("train", "test"):
        loaded = load_problems(out / f"{split}.jsonl") + load_problems(out / f"{split}.parquet")
        expected = {p.id: p.domain for p in rows} | {f"s{i}": "science" for i in range(3)}
        assert loaded and all(p.domain == expected[p.id] for p in loaded)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept"]["per_domain"] == {"science": 6, "math": 3, "code": 3, "physics": 3}
