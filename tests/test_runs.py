"""Run directories on synthetic folders: whole files or none, the same-config check, run.json stages."""
from __future__ import annotations

import json

import pytest
import yaml

from exprl.errors import OutputError, RunStateError
from exprl.runs import (
    MANIFEST_FILE,
    RUN_FORMAT,
    RowJournal,
    atomic_path,
    check_not_inputs,
    check_output_file,
    check_same_config,
    claim_output_dir,
    config_changes,
    inspect_output_dir,
    open_run,
    read_manifest,
    read_run,
    stage,
    stage_done,
    write_json_atomic,
)


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out" / "result.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text('{"v": 2, "half', encoding="utf-8")
            raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json"]


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text("{}")
            raise KeyboardInterrupt
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
    assert (target / "config.json").is_file()


def test_two_writers_of_one_path_at_once_both_finish_whole(tmp_path):
    """Every rank of a distributed run writes the same manifest; each rename is of a whole file."""
    path = tmp_path / "manifest.json"
    with atomic_path(path) as first, atomic_path(path) as second:
        assert first != second
        first.write_text("one")
        second.write_text("two")
    assert path.read_text() == "one" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    folder = tmp_path / "model"
    with atomic_path(folder) as first, atomic_path(folder) as second:
        for tmp, text in ((first, "one"), (second, "two")):
            tmp.mkdir()
            (tmp / "config.json").write_text(text)
    # the folder renamed first stands whole; the later one cannot replace a full folder and is dropped
    assert (folder / "config.json").read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json", "model"]


def test_config_changes_name_every_changed_key_as_a_dotted_path():
    before = {"method": "grpo", "trl": {"max_steps": 4, "beta": 0.0}, "data": {"train_files": ["a"]}}
    now = {"method": "grpo", "trl": {"max_steps": 5, "epsilon": 0.2}, "data": {"train_files": ["a", "b"]}}
    assert config_changes(before, now) == [
        'data.train_files: ["a"] -> ["a", "b"]',
        "trl.beta: 0.0 -> (absent)",
        "trl.epsilon: (absent) -> 0.2",
        "trl.max_steps: 4 -> 5",
    ]
    assert config_changes(before, json.loads(json.dumps(before))) == []


def test_check_same_config_reads_yaml_or_json_and_ignores_the_keys_it_is_told(tmp_path):
    config = {"seeds": 1, "output_dir": "runs/a", "eval": {"n": 16}}
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "resolved.json").write_text(json.dumps(config))
    for stored in ("demo.yaml", "resolved.json"):
        check_same_config(tmp_path / stored, config)
        check_same_config(tmp_path / stored, {**config, "seeds": 3}, ignore=("seeds", "output_dir"))
        with pytest.raises(RunStateError, match=r"the recipe changed .*\(eval\.n: 16 -> 4\)"):
            check_same_config(tmp_path / stored, {**config, "eval": {"n": 4}}, what="recipe")
    with pytest.raises(RunStateError, match="no missing.yaml"):
        check_same_config(tmp_path / "missing.yaml", config)


def test_open_run_creates_then_reopens_and_refuses_a_changed_config(tmp_path):
    run_dir = tmp_path / "run"
    config = {"pipeline": {"eval": {"n": 2}}, "stage1": {"method": "sft"}}
    state = open_run(run_dir, config, name="label", method="sft", skipped=["filter", "stage2", "stage2_eval"])
    assert state["format"] == RUN_FORMAT and state["name"] == "label" and not state["finished"]
    assert {s: r["state"] for s, r in state["stages"].items()} == {
        "base_eval": "pending", "filter": "skipped", "stage1": "pending", "stage1_eval": "pending",
        "stage2": "skipped", "stage2_eval": "skipped"}
    assert read_run(run_dir) == state
    assert open_run(run_dir, config, name="label", method="sft") == state
    with pytest.raises(RunStateError, match=r"stage1\.method: \"sft\" -> \"grpo\""):
        open_run(run_dir, {**config, "stage1": {"method": "grpo"}}, name="label", method="grpo")


def test_open_run_refuses_a_foreign_folder_and_read_run_another_format(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty and exprl did not write it"):
        open_run(foreign, {}, name="x", method="sft")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"format": 0, "exprl_version": "0.0.1"}))
    with pytest.raises(RunStateError, match="written by exprl 0.0.1"):
        read_run(old)
    with pytest.raises(RunStateError, match="no run.json"):
        read_run(tmp_path / "nothing")


def test_a_stage_records_done_failed_interrupted_or_what_it_set(tmp_path):
    state = open_run(tmp_path, {}, name="x", method="sft")
    with stage(tmp_path, state, "base_eval") as record:
        assert read_run(tmp_path)["stages"]["base_eval"]["state"] == "running"
        record["pass_at_1"] = {"bench": 0.5}
    with pytest.raises(ValueError):
        with stage(tmp_path, state, "stage1"):
            raise ValueError("bad data")
    with pytest.raises(KeyboardInterrupt):
        with stage(tmp_path, state, "stage1_eval"):
            raise KeyboardInterrupt
    with stage(tmp_path, state, "stage2") as record:
        record["state"] = "interrupted"  # stopped early on purpose: resumable, not done
    stored = read_run(tmp_path)["stages"]
    assert stored["base_eval"]["state"] == "done" and stored["base_eval"]["pass_at_1"] == {"bench": 0.5}
    assert stored["stage1"]["state"] == "failed" and stored["stage1"]["error"] == "ValueError: bad data"
    assert stored["stage1_eval"]["state"] == "interrupted"
    assert stored["stage2"]["state"] == "interrupted"
    assert all("ended" in stored[s] for s in ("base_eval", "stage1", "stage1_eval", "stage2"))
    assert stage_done(state, "base_eval") and not stage_done(state, "stage1")
    with stage(tmp_path, state, "stage1"):
        pass  # a rerun clears the old error
    assert "error" not in read_run(tmp_path)["stages"]["stage1"] and stage_done(state, "stage1")


# -- outputs that never destroy what exprl did not write ------------------------------------------
def test_a_claimed_folder_records_what_it_writes_and_removes_only_that(tmp_path):
    out = tmp_path / "out"
    first = claim_output_dir(out, "data prepare", ["train.jsonl", "test.jsonl"])
    assert first.earlier == ()
    for name in ("train.jsonl", "test.jsonl"):
        (out / name).write_text("exprl's\n")
    (out / "mine.txt").write_text("the user's\n")  # added later by hand: never exprl's to remove
    manifest = read_manifest(out)
    assert manifest["command"] == "data prepare" and manifest["writes"] == ["test.jsonl", "train.jsonl"]

    again = claim_output_dir(out, "data prepare", ["train.jsonl", "test.jsonl"])
    assert again.earlier == ("test.jsonl", "train.jsonl")
    assert [p.name for p in again.remove_stale(["train.jsonl"])] == ["test.jsonl"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "mine.txt", "train.jsonl"]
    with pytest.raises(OutputError, match="holds the output of `exprl data prepare`"):
        claim_output_dir(out, "eval", ["eval.json"])


def test_a_folder_exprl_did_not_write_is_refused_unless_overwrite(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "train.jsonl").write_text("the user's\n")
    with pytest.raises(OutputError, match="not empty and exprl did not write it.*--overwrite"):
        inspect_output_dir(theirs, "data prepare")
    with pytest.raises(OutputError, match=r"not empty and exprl did not write it \(no exprl-manifest.json\); choose a new or empty folder$"):
        inspect_output_dir(theirs, "train")  # a run folder has no --overwrite
    assert not (theirs / MANIFEST_FILE).exists()
    claimed = claim_output_dir(theirs, "data prepare", ["train.jsonl", "stats.json"], overwrite=True)
    assert claimed.earlier == ()  # nothing of the user's is ever removed, even with --overwrite
    assert claimed.remove_stale([]) == [] and (theirs / "train.jsonl").read_text() == "the user's\n"


@pytest.mark.parametrize("out, inputs, message", [
    ("data", ["data/test.jsonl"], "contains the input"),
    ("data/test.jsonl", ["data/test.jsonl"], "is the input"),
    ("data/sub", ["data"], "inside the input folder"),
])
def test_no_output_equals_or_contains_an_input(tmp_path, monkeypatch, out, inputs, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.jsonl").write_text("{}\n")
    with pytest.raises(OutputError, match=message):
        check_not_inputs(out, inputs)


def test_a_single_output_file_is_replaced_only_when_empty_ours_or_told(tmp_path):
    path = tmp_path / "out.jsonl"
    check_output_file(path)  # absent
    path.write_text("")
    check_output_file(path)  # empty: nothing to lose
    path.write_text("the user's\n")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_file(path, ours=lambda p: False)
    check_output_file(path, ours=lambda p: True)
    check_output_file(path, overwrite=True)
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path)


def test_a_journal_keeps_finished_rows_across_a_kill_and_refuses_other_settings(tmp_path):
    out = tmp_path / "out.jsonl"
    journal = RowJournal(out, {"mode": "outcome"}, command="judge run")
    assert journal.open() == {}
    journal.add("a", {"id": "a", "status": "ok"})
    journal.add("b", {"id": "b", "status": "error"})
    journal.close()
    with journal.path.open("a") as handle:
        handle.write('{"key": "c", "row": {"id": "c", "sta')  # the line a kill cut off
    again = RowJournal(out, {"mode": "outcome"}, command="judge run")
    assert again.open(keep=lambda row: row["status"] == "ok") == {"a": {"id": "a", "status": "ok"}}
    again.add("b", {"id": "b", "status": "ok"})
    assert again.finish([{"id": "a"}, {"id": "b"}]) == out
    assert out.read_text().splitlines() == ['{"id": "a"}', '{"id": "b"}'] and not again.path.exists()

    other = RowJournal(out, {"mode": "process"}, command="judge run")
    other.open()
    other.close()
    changed = RowJournal(out, {"mode": "outcome"}, command="judge run")
    with pytest.raises(RunStateError, match=r'mode: "process" -> "outcome".*--overwrite'):
        changed.open()
    assert changed.open(overwrite=True) == {}
    changed.close()


def test_check_same_config_ignores_dotted_keys_that_may_change(tmp_path):
    stored = tmp_path / "recipe.yaml"
    stored.write_text(yaml.safe_dump({"judge": {"base_urls": ["http://a"], "model": "m"}, "seed": 0}))
    check_same_config(stored, {"judge": {"base_urls": ["http://b"], "model": "m"}, "seed": 0},
                      ignore=["judge.base_urls"])
    with pytest.raises(RunStateError, match='judge.model: "m" -> "n"'):
        check_same_config(stored, {"judge": {"base_urls": ["http://b"], "model": "n"}, "seed": 0},
                          ignore=["judge.base_urls"])
