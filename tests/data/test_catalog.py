"""Datasets by name (exprl.data.catalog): local copies in the data folder, the hub's layouts, offline errors."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exprl.cli import main
from exprl.data.catalog import BENCHMARKS, CATALOG, DATA_DIR_ENV, find_entry, locate, without
from exprl.data.loaders import PRESETS, detect_preset, from_hub, load_problems
from exprl.errors import DataError
from exprl.recipes import bundled_recipes


def raw_rows(folder: Path, entry) -> list[dict]:
    with open(folder / entry.local_file, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_names_are_unique_and_distinct_from_recipe_names():
    names = [e.name for e in CATALOG]
    assert len(set(names)) == len(names)
    assert not set(names) & set(bundled_recipes())  # `eval --bench NAME` must mean one thing
    excluded = [e.exclude for e in CATALOG if e.exclude]
    assert excluded and all(find_entry(name) for name in excluded)


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.name)
def test_hub_columns_select_the_declared_layout(entry):
    assert entry.layout in {p.name for p in PRESETS}
    assert detect_preset(entry.hub_columns).name == entry.layout
    assert set(entry.fields.values()) <= set(entry.hub_columns)


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.name)
def test_a_name_loads_the_local_copy_in_the_data_folder(entry, catalog_data, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(catalog_data))
    assert locate(entry).where == str(catalog_data / entry.local_file)
    by_name = load_problems(entry.name)
    assert by_name == load_problems(catalog_data / entry.local_file)
    assert [p.id for p in by_name] == [r["id"] for r in raw_rows(catalog_data, entry)]


def _hub_row(entry, row: dict) -> dict:
    """A row of the shared data folder written back in the hub's columns."""
    if entry.layout == "gsm8k":
        return {"question": row["problem"], "answer": f"{row['solution']}\n#### {row['answer']}"}
    if entry.layout == "math":
        return {"problem": row["problem"], "solution": row["solution"], "type": row["subject"],
                "level": f"Level {row['level']}" if row["level"] is not None else "Level ?"}
    return {"problem": row["problem"], "solution": row["solution"], "answer": row["answer"],
            "subject": row["subject"], "level": row["level"],
            "unique_id": row["id"].removeprefix("math/") + ".json"}


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.name)
def test_hub_rows_read_as_the_local_copy(entry, catalog_data, tmp_path, monkeypatch):
    """What the hub serves, read with the entry's layout, gives the local copy's problems (ids aside)."""
    monkeypatch.setenv(DATA_DIR_ENV, str(catalog_data))
    local = raw_rows(catalog_data, entry)
    hub = [_hub_row(entry, r) for r in local]
    if entry.exclude:  # the hub has the whole split; the excluded entry's problems go
        hub += [_hub_row(entry, r) for r in raw_rows(catalog_data, find_entry(entry.exclude))]
    source = write_parquet(tmp_path / f"{entry.name}.parquet", hub)
    problems = from_hub(entry, str(source))
    expected = load_problems(catalog_data / entry.local_file)
    assert [(p.problem, p.reference, p.answer) for p in problems] == \
        [(p.problem, p.reference, p.answer) for p in expected]
    assert [p.meta.get("level") for p in problems] == [p.meta.get("level") for p in expected]
    if "id" in entry.fields:
        assert [p.id for p in problems] == [r["id"].removeprefix("math/") + ".json" for r in local]
    else:  # no ids on the hub: unique across the catalog, unlike <file stem>/<row>
        assert problems[0].id == f"{entry.name}/0" and len({p.id for p in problems}) == len(problems)


def test_math_test_without_math500_is_exactly_the_rest(catalog_data):
    rest = load_problems(catalog_data / "math_test_excl_math500.jsonl")
    math500 = load_problems(catalog_data / "math500.jsonl")
    assert [p.id for p in without(rest + math500, math500)] == [p.id for p in rest]


def test_offline_without_a_local_copy_is_one_line_naming_the_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(DataError) as caught:
        load_problems("gsm8k-test")
    message = str(caught.value)
    assert "'gsm8k-test'" in message and "gsm8k_test.jsonl" in message and DATA_DIR_ENV in message
    assert "--data-dir" in message and "\n" not in message

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert main(["data", "stats", "gsm8k-test"]) == 2
    err = capsys.readouterr().err
    assert f"no gsm8k_test.jsonl in {tmp_path}" in err and "Traceback" not in err and err.count("\n") == 1


def test_data_dir_flag_names_the_folder(catalog_data, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert main(["data", "stats", "math500", "--json", "--data-dir", str(catalog_data)]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == len(load_problems(catalog_data / "math500.jsonl"))
    assert main(["data", "stats", "math500", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_an_explicit_path_wins_over_a_name(catalog_data, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(catalog_data))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "math500").write_text("not a catalog dataset\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_problems("math500")


def test_a_name_takes_no_split_or_fields(catalog_data):
    with pytest.raises(DataError, match="drop split"):
        load_problems("gsm8k-test", split="train")
    with pytest.raises(DataError, match="drop fields"):
        load_problems("gsm8k-test", mapping={"problem": "question"})


def test_data_list_says_where_each_name_loads_from(catalog_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATA_DIR_ENV, str(catalog_data))
    def listed(argv) -> dict[str, str]:
        assert main(argv) == 0
        blocks = capsys.readouterr().out.split("\n\n")
        return {block.split()[0]: block.strip() for block in blocks[1:]}

    blocks = listed(["data", "list"])
    assert set(blocks) == {e.name for e in (*CATALOG, *BENCHMARKS)}
    for entry in CATALOG:
        assert f"hub {entry.hub_label}, local copy {entry.local_file}" in blocks[entry.name]
        assert blocks[entry.name].endswith(f"loads from {catalog_data / entry.local_file}")

    (tmp_path / "math500.jsonl").write_text((catalog_data / "math500.jsonl").read_text())
    blocks = listed(["data", "list", "--data-dir", str(tmp_path)])
    assert blocks["math500"].endswith(f"loads from {tmp_path / 'math500.jsonl'}")
    assert blocks["gsm8k-train"].endswith(f"loads from the hub (no gsm8k_train.jsonl in {tmp_path})")

    monkeypatch.delenv(DATA_DIR_ENV)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"set {DATA_DIR_ENV}=DIR" in out
    assert out.count(f"the hub (no ${DATA_DIR_ENV})") == len(CATALOG) + len(BENCHMARKS)


def test_prepare_takes_names_for_inputs_and_eval_sets(catalog_data, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["data", "prepare", "gsm8k-test", "math500", "--decontaminate", "math500", "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert [i["path"] for i in stats["inputs"]] == ["gsm8k-test", "math500"]
    gsm8k, math500 = (len(load_problems(catalog_data / name)) for name in ("gsm8k_test.jsonl", "math500.jsonl"))
    assert (stats["counts"]["loaded"], stats["counts"]["kept"]) == (gsm8k + math500, gsm8k)


# -- the paper's held-out benchmarks (method.md §5.2) ---------------------------------------------
def test_benchmark_names_are_unique_and_distinct_from_recipe_names():
    names = [e.name for e in (*CATALOG, *BENCHMARKS)]
    assert len(set(names)) == len(names) and not set(names) & set(bundled_recipes())
    assert {e.name for e in BENCHMARKS} == {"aime25", "aime26", "hmmt-nov25", "imo-answerbench"}


def _answer_rows(entry, count: int = 5) -> list[dict]:
    """Rows exprl makes up in the local answer-only format (id, problem, answer): no benchmark text."""
    return [{"id": f"{entry.name}/{i}", "problem": f"Compute {i} + {3 * i} for {entry.name}.", "answer": str(4 * i)}
            for i in range(count)]


@pytest.mark.parametrize("entry", BENCHMARKS, ids=lambda e: e.name)
def test_a_benchmark_loads_its_local_file_from_the_data_folder(entry, tmp_path, monkeypatch):
    from exprl.eval.evaluate import load_benchmark

    rows = _answer_rows(entry)
    (tmp_path / entry.local_file).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert locate(entry).where == str(tmp_path / entry.local_file)
    name, source, problems = load_benchmark(entry.name)
    assert (name, source) == (entry.name, entry.name)
    assert [(p.id, p.problem, p.answer, p.reference) for p in problems] == \
        [(r["id"], r["problem"], r["answer"], "") for r in rows]


def _hub_benchmark_row(entry, i: int) -> dict:
    """A row in the hub's columns (answers as the hub types them: MathArena's AIME answers are integers)."""
    values = {"question": f"Q{i} of {entry.name}", "problem": f"Q{i} of {entry.name}", "answer": 10 + i,
              "problem_idx": i + 1, "Problem ID": f"{entry.name}-{i:03d}", "Problem": f"Q{i} of {entry.name}",
              "Short Answer": f"$x = {i}$", "Category": "Algebra", "Subcategory": "x", "Source": "y"}
    return {column: values[column] for column in entry.hub_columns}


@pytest.mark.parametrize("entry", BENCHMARKS, ids=lambda e: e.name)
def test_a_benchmark_reads_the_hubs_columns(entry, tmp_path):
    hub = [_hub_benchmark_row(entry, i) for i in range(4)]
    problems = from_hub(entry, str(write_parquet(tmp_path / f"{entry.name}.parquet", hub)), require_reference=False)
    assert [p.problem for p in problems] == [f"Q{i} of {entry.name}" for i in range(4)]
    answers = [r[entry.fields["answer"]] for r in hub]
    assert [p.answer for p in problems] == [str(a) for a in answers]
    assert len({p.id for p in problems}) == 4 and all(p.reference == "" for p in problems)
    assert set(entry.fields.values()) <= set(entry.hub_columns)


@pytest.mark.parametrize("entry", BENCHMARKS, ids=lambda e: e.name)
def test_offline_a_benchmark_without_its_file_says_where_to_put_it(entry, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError) as caught:
        load_problems(entry.name, require_reference=False)
    message = str(caught.value)
    assert f"'{entry.name}'" in message and entry.hub_id in message and entry.local_file in message
    assert "id, problem and answer" in message and DATA_DIR_ENV in message and "\n" not in message
