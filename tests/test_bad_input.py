"""Every command under bad input, as a user meets it: the real CLI (`exprl.cli.main`, in process) on
files written for each case.

Each case asserts the exit code, that the one-line message names the file (and the line or key
where there is one), that no traceback is printed, and that nothing that existed before changed:
every file under the working folder is hashed before and after, and no file appears that the case
does not expect. No case loads a model or trains: validation comes first, which is the point, and
each case checks that torch was not imported on its account.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from exprl.cli import main
from exprl.data.loaders import write_problems
from exprl.data.problem import Problem

PROBLEMS = [Problem(id=f"p{i}", problem=f"Start at {i}. Add {i + 2}. What is the result?",
                    reference=f"{i} + {i + 2} = {2 * i + 2}, so \\boxed{{{2 * i + 2}}}", answer=str(2 * i + 2))
            for i in range(4)]
TRACES = [{"id": p.id, "problem": p.problem, "reference": p.reference, "answer": p.answer,
           "trace": f"### {p.problem.split('.')[0]}\n### so \\boxed{{{p.answer}}}"} for p in PROBLEMS[:3]]
RECIPE = """method: sft
model: tiny
data:
  train_files: [problems.jsonl]
trl:
  max_steps: 1
  per_device_train_batch_size: 2
  max_length: 64
  use_cpu: true
  bf16: false
"""
PIPELINE = """stage1:
  recipe: recipe.yaml
stage2:
  enabled: false
eval:
  benches: [problems.jsonl]
  n: 1
  max_tokens: 4
"""


def workspace(root: Path) -> None:
    """The good files every case starts from (each case then adds or spoils some)."""
    write_problems(root / "problems.jsonl", PROBLEMS)
    (root / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRACES), encoding="utf-8")
    (root / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    (root / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}", encoding="utf-8")  # a checkpoint folder's shape, never loaded


def write(name: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return setup


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for one in setups:
            one(root)
    return setup


PROBLEM_LINE = json.dumps(PROBLEMS[0].to_dict())
UTF16 = (PROBLEM_LINE + "\n").encode("utf-16")
BINARY = bytes(range(256)) * 8
LATIN1 = PROBLEM_LINE.replace("Start", "D\u00e9part").encode("latin-1") + b"\n"
JSON_ARRAY = json.dumps([p.to_dict() for p in PROBLEMS]) + "\n"
PRETTY_ARRAY = json.dumps([p.to_dict() for p in PROBLEMS], indent=2) + "\n"
NO_REFERENCE = "".join(json.dumps({"id": f"x{i}", "problem": "Q?"}) + "\n" for i in range(3))
BAD_LINE_3 = "".join(json.dumps(p.to_dict()) + "\n" for p in PROBLEMS[:2]) + "{oops\n"
TRACE_NO_TRACE = json.dumps(TRACES[0]) + "\n" + json.dumps({k: v for k, v in TRACES[1].items() if k != "trace"}) + "\n"
TRACE_BAD_TYPE = json.dumps({**TRACES[0], "problem": 7}) + "\n"
RUN_JSON_OLD = json.dumps({"format": 0, "exprl_version": "0.0.1", "stages": {}})
SAMPLE_RUN = write("runs/a/run.json", RUN_JSON_OLD)
RUBRIC_LINE = json.dumps({"id": "p0", "checkpoints": ["2"], "builder": "reference:k6"}) + "\n"


@dataclass
class Case:
    id: str
    argv: list[str]
    names: list[str]                        # what the message must name: the file, then line / key
    setup: Callable[[Path], None] | None = None
    code: int = 2
    creates: set[str] = field(default_factory=set)  # files a case may write (the exit-1 judge run)


CASES = [
    # -- exprl data prepare ------------------------------------------------------------------------
    Case("prepare-decontaminate-set-inside-out",
         ["data", "prepare", "problems.jsonl", "--decontaminate", "data/test.jsonl", "--out", "data/"],
         ["--out data", "data/test.jsonl"], write("data/test.jsonl", PROBLEM_LINE + "\n")),
    Case("prepare-out-is-the-input-folder", ["data", "prepare", "data/train.jsonl", "--out", "data"],
         ["--out data", "data/train.jsonl"], write("data/train.jsonl", PROBLEM_LINE + "\n")),
    Case("prepare-out-is-the-input-file", ["data", "prepare", "problems.jsonl", "--out", "problems.jsonl"],
         ["--out problems.jsonl", "is the input"]),
    Case("prepare-out-inside-an-input-folder", ["data", "prepare", "corpus", "--out", "corpus/prepared"],
         ["corpus/prepared", "inside the input folder"], write("corpus/a.jsonl", PROBLEM_LINE + "\n")),
    Case("prepare-out-not-written-by-exprl", ["data", "prepare", "problems.jsonl", "--out", "mine"],
         ["--out mine", "exprl did not write it", "--overwrite"], write("mine/train.jsonl", "my own file\n")),
    Case("prepare-out-overwrite-still-never-takes-an-input",
         ["data", "prepare", "problems.jsonl", "--decontaminate", "mine/test.jsonl", "--out", "mine", "--overwrite"],
         ["--out mine", "mine/test.jsonl"], write("mine/test.jsonl", PROBLEM_LINE + "\n")),
    Case("prepare-out-is-a-file", ["data", "prepare", "problems.jsonl", "--out", "notes.txt"],
         ["notes.txt", "is a file"], write("notes.txt", "hello\n")),
    Case("prepare-empty-file", ["data", "prepare", "empty.jsonl", "--out", "o"],
         ["empty.jsonl", "empty file (0 bytes)", "--allow-empty"], write("empty.jsonl", b"")),
    Case("prepare-blank-lines-only", ["data", "prepare", "blank.jsonl", "--out", "o"],
         ["blank.jsonl", "only blank lines"], write("blank.jsonl", "\n   \n\n")),
    Case("prepare-utf16", ["data", "prepare", "u16.jsonl", "--out", "o"],
         ["u16.jsonl", "byte offset 0", "UTF-16", "UTF-8"], write("u16.jsonl", UTF16)),
    Case("prepare-utf16-with-skip-invalid",
         ["data", "prepare", "u16.jsonl", "--out", "o", "--skip-invalid", "--field", "problem=problem"],
         ["u16.jsonl", "byte offset 0", "UTF-16"], write("u16.jsonl", UTF16)),
    Case("prepare-binary", ["data", "prepare", "blob.jsonl", "--out", "o"],
         ["blob.jsonl", "byte offset 0", "binary", "UTF-8"], write("blob.jsonl", BINARY)),
    Case("prepare-latin1-bytes", ["data", "prepare", "latin.jsonl", "--out", "o"],
         ["latin.jsonl:1", "field 'problem'", "byte offset", "UTF-8"], write("latin.jsonl", LATIN1)),
    Case("prepare-json-array-on-one-line", ["data", "prepare", "array.jsonl", "--out", "o"],
         ["array.jsonl:1", "JSON array"], write("array.jsonl", JSON_ARRAY)),
    Case("prepare-json-array-pretty-printed", ["data", "prepare", "array.jsonl", "--out", "o"],
         ["array.jsonl:1", "JSON array"], write("array.jsonl", PRETTY_ARRAY)),
    Case("prepare-every-row-rejected", ["data", "prepare", "noref.jsonl", "--out", "o", "--skip-invalid"],
         ["noref.jsonl", "0 usable rows", "line 1", "reference"], write("noref.jsonl", NO_REFERENCE)),
    Case("prepare-malformed-line", ["data", "prepare", "bad.jsonl", "--out", "o"],
         ["bad.jsonl:3", "malformed JSON"], write("bad.jsonl", BAD_LINE_3)),
    Case("prepare-missing-field", ["data", "prepare", "noref.jsonl", "--out", "o"],
         ["noref.jsonl:1", "field 'reference'"], write("noref.jsonl", NO_REFERENCE)),
    Case("prepare-bad-field-mapping", ["data", "prepare", "problems.jsonl", "--out", "o", "--field", "question"],
         ["'question'", "FIELD=COLUMN"]),
    Case("prepare-unknown-setting", ["data", "prepare", "problems.jsonl", "--out", "o", "--set", "near_dup=0.5"],
         ["'near_dup'"]),
    Case("prepare-nothing-left", ["data", "prepare", "problems.jsonl", "--out", "o", "--set", "domains=[code]"],
         ["problems.jsonl", "no problem is left", "filter_domain 4"]),
    Case("prepare-empty-eval-set", ["data", "prepare", "problems.jsonl", "--decontaminate", "empty.jsonl",
                                    "--out", "o"], ["empty.jsonl", "empty file"], write("empty.jsonl", b"")),
    Case("prepare-missing-input", ["data", "prepare", "nowhere.jsonl", "--out", "o"],
         ["nowhere.jsonl", "file not found"]),

    # -- exprl judge run ---------------------------------------------------------------------------
    Case("judge-out-is-the-input", ["judge", "run", "--input", "traces.jsonl", "--out", "traces.jsonl",
                                    "--cache", ""], ["--out traces.jsonl", "is the input"]),
    Case("judge-out-is-the-cache", ["judge", "run", "--input", "traces.jsonl", "--out", "judge.sqlite",
                                    "--cache", "judge.sqlite"], ["--out judge.sqlite", "is the input"],
         write("judge.sqlite", b"SQLite format 3\x00")),
    Case("judge-out-is-a-folder", ["judge", "run", "--input", "traces.jsonl", "--out", "model", "--cache", ""],
         ["--out model", "is a folder"]),
    Case("judge-out-is-someone-elses-file", ["judge", "run", "--input", "traces.jsonl", "--out", "problems.jsonl",
                                             "--cache", ""], ["--out problems.jsonl", "--overwrite"]),
    Case("judge-empty-delimiter", ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl",
                                   "--mode", "process", "--delimiter", "", "--cache", ""], ["--delimiter"]),
    Case("judge-non-utf8-input", ["judge", "run", "--input", "latin.jsonl", "--out", "judged.jsonl", "--cache", ""],
         ["latin.jsonl:1", "byte offset", "UTF-8"], write("latin.jsonl", LATIN1)),
    Case("judge-utf16-input", ["judge", "run", "--input", "u16.jsonl", "--out", "judged.jsonl", "--cache", ""],
         ["u16.jsonl", "byte offset 0", "UTF-16"], write("u16.jsonl", UTF16)),
    Case("judge-missing-field", ["judge", "run", "--input", "t.jsonl", "--out", "judged.jsonl", "--cache", ""],
         ["t.jsonl:2", "field 'trace'", "missing"], write("t.jsonl", TRACE_NO_TRACE)),
    Case("judge-field-of-wrong-type", ["judge", "run", "--input", "t.jsonl", "--out", "judged.jsonl", "--cache", ""],
         ["t.jsonl:1", "field 'problem'", "must be a string"], write("t.jsonl", TRACE_BAD_TYPE)),
    Case("judge-empty-input", ["judge", "run", "--input", "empty.jsonl", "--out", "judged.jsonl", "--cache", ""],
         ["empty.jsonl", "empty file", "--allow-empty"], write("empty.jsonl", b"")),
    Case("judge-missing-input", ["judge", "run", "--input", "nowhere.jsonl", "--out", "judged.jsonl", "--cache", ""],
         ["nowhere.jsonl", "file not found"]),
    Case("judge-unknown-setting", ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl",
                                   "--cache", "", "--set", "timeout=3"], ["'timeout'"]),
    Case("judge-cached-rubric-without-store", ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl",
                                               "--cache", "", "--set", "rubric=cached"], ["rubric_path"]),
    Case("judge-openai-without-url", ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl",
                                      "--cache", "", "--backend", "openai", "--model", "m"], ["base_urls"]),
    Case("judge-every-row-failed", ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl", "--cache", "",
                                    "--no-progress", "--backend", "openai", "--model", "m",
                                    "--base-url", "http://127.0.0.1:9/v1", "--set", "max_retries=0"],
         ["3 of 3 traces could not be judged", "error 3"], code=1, creates={"judged.jsonl"}),

    # -- exprl train -------------------------------------------------------------------------------
    Case("train-trl-field-of-wrong-type", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                           "--set", "trl.max_steps=abc"], ["recipe.yaml", "trl.max_steps", "'abc'"]),
    Case("train-trl-float-field-not-a-number", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                                "--set", "trl.learning_rate=fast"], ["trl.learning_rate", "'fast'"]),
    Case("train-trl-bool-field", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                  "--set", "trl.bf16=maybe"], ["trl.bf16", "'maybe'"]),
    Case("train-unknown-trl-key", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                   "--set", "trl.max_stepz=3"], ["recipe.yaml", "trl.max_stepz"]),
    Case("train-unknown-recipe-key", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                      "--set", "methd=grpo"], ["recipe.yaml", "'methd'"]),
    Case("train-bad-method", ["train", "--config", "recipe.yaml", "--output-dir", "run", "--set", "method=ppo"],
         ["recipe.yaml", "'method'", "'ppo'"]),
    Case("train-recipe-missing", ["train", "--config", "nowhere.yaml", "--output-dir", "run"],
         ["nowhere.yaml", "no such file"]),
    Case("train-recipe-not-yaml", ["train", "--config", "broken.yaml", "--output-dir", "run"],
         ["broken.yaml", "not valid YAML"], write("broken.yaml", "method: [sft\n")),
    Case("train-recipe-not-a-mapping", ["train", "--config", "list.yaml", "--output-dir", "run"],
         ["list.yaml", "mapping"], write("list.yaml", "- sft\n- tiny\n")),
    Case("train-empty-training-file", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                       "--set", "data.train_files=[empty.jsonl]"], ["empty.jsonl", "empty file"],
         write("empty.jsonl", b"")),
    Case("train-output-dir-not-written-by-exprl", ["train", "--config", "recipe.yaml", "--output-dir", "mine"],
         ["mine", "exprl did not write it"], write("mine/notes.txt", "mine\n")),
    Case("train-output-dir-is-a-file", ["train", "--config", "recipe.yaml", "--output-dir", "notes.txt"],
         ["notes.txt", "is a file"], write("notes.txt", "mine\n")),
    Case("train-judge-without-an-endpoint", ["train", "--config", "outcome.yaml", "--output-dir", "run"],
         ["judge.base_urls"],
         write("outcome.yaml", "method: exprl-outcome\nmodel: tiny\ndata: {train_files: [problems.jsonl]}\n"
                               "judge: {backend: openai, model: m}\nrollout_batches: 1\n"
                               "trl: {per_device_train_batch_size: 4, num_generations: 4}\n")),
    Case("train-group-does-not-divide", ["train", "--config", "grpo.yaml", "--output-dir", "run"],
         ["grpo.yaml", "trl.num_generations = 3"],
         write("grpo.yaml", "method: grpo\nmodel: tiny\ndata: {train_files: [problems.jsonl]}\nrollout_batches: 1\n"
                            "trl: {per_device_train_batch_size: 4, num_generations: 3}\n")),

    # -- exprl eval --------------------------------------------------------------------------------
    Case("eval-missing-checkpoint", ["eval", "--model", "no/such/ckpt", "--bench", "problems.jsonl", "--out", "e"],
         ["no/such/ckpt", "checkpoint not found"]),
    Case("eval-missing-benchmark", ["eval", "--model", "model", "--bench", "nowhere.jsonl", "--out", "e"],
         ["nowhere.jsonl", "file not found"]),
    Case("eval-empty-benchmark", ["eval", "--model", "model", "--bench", "empty.jsonl", "--out", "e"],
         ["empty.jsonl", "empty file"], write("empty.jsonl", b"")),
    Case("eval-utf16-benchmark", ["eval", "--model", "model", "--bench", "u16.jsonl", "--out", "e"],
         ["u16.jsonl", "byte offset 0", "UTF-16"], write("u16.jsonl", UTF16)),
    Case("eval-benchmark-row-without-answer", ["eval", "--model", "model", "--bench", "b.jsonl", "--out", "e"],
         ["b.jsonl:2", "field 'answer'"],
         write("b.jsonl", json.dumps({"id": "a", "problem": "1+1?", "answer": "2"}) + "\n"
               + json.dumps({"id": "b", "problem": "2+2?", "answer": ""}) + "\n")),
    Case("eval-out-not-written-by-exprl", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "mine"],
         ["--out mine", "exprl did not write it"], write("mine/notes.txt", "mine\n")),
    Case("eval-out-inside-the-model", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "model/eval"],
         ["model/eval", "inside the input folder"]),
    Case("eval-bad-setting", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "e", "--n", "0"],
         ["n must be at least 1"]),
    Case("eval-unknown-setting", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "e",
                                  "--set", "samples=3"], ["'samples'"]),

    # -- exprl pipeline ----------------------------------------------------------------------------
    Case("pipeline-config-missing", ["pipeline", "--config", "nowhere.yaml"], ["nowhere.yaml", "no such file"]),
    Case("pipeline-stage-recipe-wrong-type", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "run",
                                              "--set", "stage1.trl.max_steps=abc"], ["stage1", "trl.max_steps"]),
    Case("pipeline-no-benchmarks", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "run",
                                    "--set", "eval.benches=[]"], ["eval.benches"]),
    Case("pipeline-benchmark-missing", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "run",
                                        "--set", "eval.benches=[nowhere.jsonl]"], ["nowhere.jsonl", "file not found"]),
    Case("pipeline-training-data-empty", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "run",
                                          "--set", "stage1.data.train_files=[empty.jsonl]"],
         ["empty.jsonl", "empty file"], write("empty.jsonl", b"")),
    Case("pipeline-run-dir-not-written-by-exprl", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "mine"],
         ["mine", "exprl did not write it"], write("mine/notes.txt", "mine\n")),
    Case("pipeline-run-dir-holds-its-data", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "."],
         ["problems.jsonl"]),

    # -- exprl report ------------------------------------------------------------------------------
    Case("report-missing-run", ["report", "runs/none", "--out", "rep"], ["runs/none", "no run.json"]),
    Case("report-corrupt-run-json", ["report", "runs/a", "--out", "rep"], ["runs/a/run.json", "corrupt"],
         write("runs/a/run.json", "{not json")),
    Case("report-run-of-another-format", ["report", "runs/a", "--out", "rep"],
         ["runs/a/run.json", "written by exprl 0.0.1"], SAMPLE_RUN),
    Case("report-out-contains-the-run", ["report", "runs/a", "--out", "runs"], ["--out runs", "runs/a"], SAMPLE_RUN),
    Case("report-out-not-written-by-exprl", ["report", "runs/a", "--out", "mine"],
         ["--out mine", "exprl did not write it", "--overwrite"], both(SAMPLE_RUN, write("mine/notes.txt", "x\n"))),

    # -- exprl rubrics -----------------------------------------------------------------------------
    Case("rubrics-out-is-the-input", ["rubrics", "build", "--input", "problems.jsonl", "--out", "problems.jsonl"],
         ["--out problems.jsonl", "is the input"]),
    Case("rubrics-out-is-someone-elses-file", ["rubrics", "build", "--input", "problems.jsonl", "--out", "notes.txt"],
         ["--out notes.txt", "--overwrite"], write("notes.txt", "my notes, no final newline")),
    Case("rubrics-empty-input", ["rubrics", "build", "--input", "empty.jsonl", "--out", "rubrics.jsonl"],
         ["empty.jsonl", "empty file"], write("empty.jsonl", b"")),
    Case("rubrics-no-store-named", ["rubrics", "build", "--input", "problems.jsonl"], ["--out", "rubric_path"]),
    Case("rubrics-show-missing-store", ["rubrics", "show", "nowhere.jsonl"], ["nowhere.jsonl", "not found"]),
    Case("rubrics-show-corrupt-line", ["rubrics", "show", "store.jsonl"], ["store.jsonl:2", "field 'checkpoints'"],
         write("store.jsonl", RUBRIC_LINE + json.dumps({"id": "p1", "checkpoints": []}) + "\n" + RUBRIC_LINE)),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_the_suite_covers_every_command():
    commands = {" ".join(c.argv[:2]) if c.argv[0] in ("data", "judge", "rubrics") else c.argv[0] for c in CASES}
    assert {"data prepare", "judge run", "train", "eval", "pipeline", "report", "rubrics build",
            "rubrics show"} <= commands
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    workspace(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    torch_was_loaded = "torch" in sys.modules

    code = main(case.argv)

    out, err = capsys.readouterr()
    assert code == case.code, err
    assert "Traceback" not in out + err and "Exception ignored" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if case.code == 2:
        assert lines and lines[-1].startswith(f"exprl {case.argv[0]}") and ": error: " in lines[-1], err
        assert sum(": error: " in line for line in lines) == 1, err
        message = lines[-1]
    else:
        message = err
    for name in case.names:
        assert name in message, f"{name!r} not in {message!r}"
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k not in case.creates} == before, "a file changed or appeared"
    assert torch_was_loaded or "torch" not in sys.modules, "validation loaded torch (a model would come next)"
