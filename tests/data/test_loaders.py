"""Loaders: every supported source, the layout presets, field mappings and every kind of bad row."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from exprl.data.loaders import (Rejection, detect_preset, gsm8k_reference, load_problems, parse_field_mapping,
                                write_problems, write_problems_parquet)
from exprl.data.problem import Problem
from exprl.errors import DataError


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


PROBLEMS = [
    Problem(id="p1", problem="What is $1+1$?", reference="$1+1=\\boxed{2}$", answer="2", source="toy",
            meta={"level": 1, "tags": ["easy"]}),
    Problem(id="p2", problem="Solve $x^2=4$ for $x>0$.", reference="So $x=\\boxed{2}$.", answer="2",
            domain="algebra", source="toy"),
]


def test_jsonl_round_trip_through_the_one_writer(tmp_path):
    path = write_problems(tmp_path / "out" / "problems.jsonl", PROBLEMS)
    assert load_problems(path) == PROBLEMS
    assert not list(path.parent.glob("*.tmp"))


def test_parquet_round_trip_keeps_meta(tmp_path):
    path = write_problems_parquet(tmp_path / "problems.parquet", PROBLEMS)
    assert load_problems(path) == PROBLEMS


def test_datasets_save_to_disk_folder_and_split_choice(tmp_path):
    import datasets

    rows = [p.to_dict() for p in PROBLEMS]
    for row in rows:
        row["meta"] = json.dumps(row["meta"])
    single = tmp_path / "single"
    datasets.Dataset.from_list(rows).save_to_disk(str(single))
    assert load_problems(single) == PROBLEMS

    both = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:1]),
                          "test": datasets.Dataset.from_list(rows[1:])}).save_to_disk(str(both))
    assert load_problems(both) == PROBLEMS[:1]
    assert load_problems(both, split="test") == PROBLEMS[1:]
    with pytest.raises(DataError, match="split 'validation' not found; available splits: train, test"):
        load_problems(both, split="validation")


def test_datasets_data_file_csv_with_user_mapping(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,worked\n\"What is 2*3?\",\"2*3 = \\boxed{6}\"\n", encoding="utf-8")
    [problem] = load_problems(path, mapping=parse_field_mapping(["problem=question", "reference=worked"]))
    assert (problem.id, problem.problem, problem.answer, problem.source) == ("qa/0", "What is 2*3?", "6", "qa")


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="cannot load Hugging Face dataset 'nobody-here/no-such-set'"):
        load_problems("nobody-here/no-such-set")


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="missing.jsonl: file not found"):
        load_problems(tmp_path / "missing.jsonl")
    (tmp_path / "x.docx").write_text("hi")
    with pytest.raises(DataError, match="unsupported file type '.docx'"):
        load_problems(tmp_path / "x.docx")


def test_gsm8k_raw_layout(tmp_path):
    raw = {"question": "Tom has 1,000 apples and buys 80 more. How many?",
           "answer": "He has 1000+80=<<1000+80=1080>>1080 apples.\n#### 1,080"}
    [problem] = load_problems(write_lines(tmp_path / "gsm_raw.jsonl", [raw]))
    assert problem.answer == "1080"
    assert problem.reference == "He has 1000+80=1080 apples."
    assert (problem.id, problem.source, problem.meta) == ("gsm_raw/0", "gsm8k", {})
    assert gsm8k_reference("a <<1+1=2>>2\n#### 2") == "a 2"


def test_math_raw_layout_takes_the_last_box_and_reads_levels(tmp_path):
    rows = [{"problem": "Compute $2+3$.", "solution": "First \\boxed{4}? No: $2+3=\\boxed{5}$.",
             "level": "Level 3", "type": "Prealgebra"},
            {"problem": "Odd one.", "solution": "It is \\boxed{\\frac{1}{2}}.", "level": "Level ?", "type": "Algebra"}]
    first, second = load_problems(write_lines(tmp_path / "math_raw.jsonl", rows))
    assert (first.answer, first.meta, first.source) == ("5", {"level": 3, "subject": "Prealgebra"}, "hendrycks_math")
    assert (second.answer, second.meta) == ("\\frac{1}{2}", {"subject": "Algebra"})
    assert detect_preset({"problem", "solution", "level", "type"}).name == "math"


def test_answer_is_extracted_when_the_field_is_absent(tmp_path):
    rows = [{"id": "a", "problem": "2+2?", "reference": "2+2=\\boxed{4}"},
            {"id": "b", "problem": "3+3?", "reference": "3+3=6\n#### 6", "answer": ""}]
    assert [p.answer for p in load_problems(write_lines(tmp_path / "x.jsonl", rows))] == ["4", "6"]


def test_user_mapping_overrides_a_preset_field(tmp_path):
    rows = [{"id": "r1", "problem": "P?", "reference": "long \\boxed{1}", "short_answer": "one"}]
    [problem] = load_problems(write_lines(tmp_path / "x.jsonl", rows), mapping={"answer": "short_answer"})
    assert problem.answer == "one"


def test_parse_field_mapping_rejects_bad_items():
    assert parse_field_mapping(["problem=question", "meta.level=difficulty"]) == {
        "problem": "question", "meta.level": "difficulty"}
    with pytest.raises(DataError, match="must look like FIELD=COLUMN"):
        parse_field_mapping(["problem"])
    with pytest.raises(DataError, match="'prompt' is not a Problem field"):
        parse_field_mapping(["prompt=question"])


def test_unknown_layout_asks_for_a_mapping(tmp_path):
    path = write_lines(tmp_path / "odd.jsonl", [{"q": "x", "a": "y"}])
    with pytest.raises(DataError, match=r"odd.jsonl: columns \['a', 'q'\] match no known layout.*--field"):
        load_problems(path)


# ------------------------------------------------------------------ bad input: file, line and field

def good(i: int) -> dict:
    return {"id": f"g{i}", "problem": f"What is {i}+1?", "reference": f"It is \\boxed{{{i + 1}}}."}


def bad_file(tmp_path: Path) -> Path:
    """One good row, then one of each kind of bad row, each on a known line."""
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(good(1)).encode(),                                               # 1 ok
             b'{"id": "m", "problem": "unterminated',                                  # 2 malformed JSON
             json.dumps({"id": "r", "problem": "Q?"}).encode(),                        # 3 missing reference
             json.dumps({"id": "e", "problem": "   ", "reference": "\\boxed{1}"}).encode(),  # 4 empty problem
             b'{"id": "u", "problem": "caf\xe9?", "reference": "\\\\boxed{1}"}',        # 5 not UTF-8
             json.dumps({"id": "n", "problem": "Q?", "reference": "no final answer here"}).encode(),  # 6
             json.dumps(["not", "an", "object"]).encode(),                             # 7 not an object
             json.dumps({"id": "t", "problem": 7, "reference": "\\boxed{1}"}).encode(),  # 8 wrong type
             json.dumps(good(9)).encode()]                                               # 9 ok
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("line, field, message", [
    (2, None, "malformed JSON"),
    (3, "reference", "missing"),
    (4, "problem", "empty"),
    (5, "problem", "not valid UTF-8: byte 0xe9"),
    (6, "answer", "reference states no final answer"),
    (7, None, "must be a JSON object"),
    (8, "problem", "must be text, got int"),
])
def test_each_bad_row_names_file_line_and_field(tmp_path, line, field, message):
    path = bad_file(tmp_path)
    text = path.read_bytes().split(b"\n")
    # Keep only the good first row and the bad row under test, at its original line number.
    kept = [text[0]] + [b""] * (line - 2) + [text[line - 1]]
    path.write_bytes(b"\n".join(kept) + b"\n")
    with pytest.raises(DataError) as info:
        load_problems(path)
    error = info.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    assert message in str(error)
    assert str(error).startswith(f"{path}:{line}")
    if field:
        assert f"field '{field}'" in str(error)


def test_unknown_column_in_mapping_names_file_line_and_column(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [good(1)])
    with pytest.raises(DataError) as info:
        load_problems(path, mapping={"problem": "question"})
    assert (info.value.line, info.value.field) == (1, "question")
    assert "column 'question' named in the field mapping (problem=question) is not in this row" in str(info.value)


def test_unknown_column_in_parquet_mapping(tmp_path):
    path = write_problems_parquet(tmp_path / "p.parquet", PROBLEMS)
    with pytest.raises(DataError, match=r"p.parquet:1, field 'solution'"):
        load_problems(path, mapping={"reference": "solution"})


def test_skip_invalid_records_every_rejected_row(tmp_path):
    path = bad_file(tmp_path)
    rejects: list[Rejection] = []
    problems = load_problems(path, skip_invalid=True, rejects=rejects)
    assert [p.id for p in problems] == ["g1", "g9"]
    assert [(r.line, r.field) for r in rejects] == [
        (2, None), (3, "reference"), (4, "problem"), (5, "problem"), (6, "answer"), (7, None), (8, "problem")]
    assert all(r.path == str(path) and r.reason for r in rejects)
    assert rejects[0].raw.startswith('{"id": "m"')
    assert rejects[1].raw == {"id": "r", "problem": "Q?"}
    assert "\ufffd" in rejects[3].raw  # the undecodable row is kept, with the bad byte visible
    with pytest.raises(ValueError, match="needs a `rejects` list"):
        load_problems(path, skip_invalid=True)


def test_answer_only_benchmark_loads_without_a_reference_when_asked(tmp_path):
    rows = [{"id": "aime/1", "problem": "Compute 2+2.", "answer": 4},
            {"id": "aime/2", "problem": "Compute 3+3.", "answer": "6", "reference": ""},
            {"id": "aime/3", "problem": "Compute 1+1.", "reference": "So \\boxed{2}."}]
    path = write_lines(tmp_path / "aime.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_problems(path)  # a training file must carry references
    assert (info.value.line, info.value.field) == (1, "reference")
    problems = load_problems(path, require_reference=False)
    assert [(p.id, p.reference, p.answer) for p in problems] == [
        ("aime/1", "", "4"), ("aime/2", "", "6"), ("aime/3", "So \\boxed{2}.", "2")]
    # Without a reference the answer has nowhere else to come from, and a reference of the
    # wrong type is still an error.
    write_lines(path, [{"id": "a", "problem": "Q?"}, {"id": "b", "problem": "Q?", "answer": "1", "reference": 3}])
    with pytest.raises(DataError) as info:
        load_problems(path, require_reference=False)
    assert (info.value.line, info.value.field) == (1, "answer") and "no reference to read it from" in str(info.value)
    write_lines(path, [{"id": "b", "problem": "Q?", "answer": "1", "reference": 3}])
    with pytest.raises(DataError, match="must be text, got int") as info:
        load_problems(path, require_reference=False)
    assert info.value.field == "reference"


def test_answer_only_layout_with_other_column_names_asks_only_for_the_problem(tmp_path):
    path = write_lines(tmp_path / "odd.jsonl", [{"q": "Compute 2+2.", "a": "4"}])
    with pytest.raises(DataError, match=r"--field problem=COLUMN$"):
        load_problems(path, require_reference=False)
    [problem] = load_problems(path, require_reference=False, mapping={"problem": "q", "answer": "a"})
    assert (problem.problem, problem.reference, problem.answer) == ("Compute 2+2.", "", "4")


def test_a_folder_of_jsonl_files_loads_each_with_its_own_layout(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_problems(folder / "a.jsonl", PROBLEMS)
    write_lines(folder / "b.jsonl", [{"question": "2+2?", "answer": "2+2=4\n#### 4"}])
    (folder / "README.md").write_text("not problems")
    problems = load_problems(folder)
    assert [p.id for p in problems] == ["p1", "p2", "b/0"] and problems[2].answer == "4"


def test_the_data_folder_loads_as_it_is(catalog_data):
    files = sorted(catalog_data.glob("*.jsonl"))
    problems = load_problems(catalog_data)
    assert len(problems) == sum(sum(1 for line in f.open() if line.strip()) for f in files)
    assert len({p.id for p in problems}) == len(problems)


def test_a_prepared_folder_gives_its_train_split_or_the_one_asked(tmp_path):
    from exprl.data.prepare import PrepareConfig, prepare

    source = write_problems(tmp_path / "in.jsonl", [
        Problem(id=f"q{i}", problem=f"Compute {i} times {i + 3} and add {i}.", reference=f"\\boxed{{{i * (i + 4)}}}",
                answer=str(i * (i + 4))) for i in range(30)])
    report = prepare([source], tmp_path / "prepared", PrepareConfig(test_fraction=0.3))
    assert load_problems(tmp_path / "prepared") == report.train
    assert load_problems(tmp_path / "prepared", split="test") == report.test


def test_a_utf8_byte_order_mark_is_read_and_other_encodings_are_named(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(PROBLEMS[0].to_dict()).encode() + b"\n")
    assert load_problems(path) == PROBLEMS[:1]
    path.write_bytes(json.dumps(PROBLEMS[0].to_dict()).encode("utf-16-le"))
    with pytest.raises(DataError, match="byte offset 1: a NUL byte; this looks like UTF-16 text without a byte-order"):
        load_problems(path)


def test_an_input_without_usable_rows_is_refused_unless_allowed(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        load_problems(empty)
    assert load_problems(empty, allow_empty=True) == []
