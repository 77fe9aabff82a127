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
import os
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


def fifo(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / name)
    return setup


def unix_socket(name: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        import socket

        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(root / name))  # the socket file stays after close, as a crashed server leaves it
        server.close()
    return setup


def link(name: str, target: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        os.symlink(target, root / name)
    return setup


def prepared(folder: str, torn: bool = False, changed: str | None = None, **settings) -> Callable[[Path], None]:
    """A folder `exprl data prepare` wrote (the real command), then left as a killed rerun leaves it
    (`torn`: its manifest still says it is being written) or with one of its files edited (`changed`)."""
    def setup(root: Path) -> None:
        from exprl.data.prepare import PrepareConfig, prepare

        prepare([root / "problems.jsonl"], root / folder, PrepareConfig(**settings))
        manifest_path = root / folder / "exprl-manifest.json"
        if torn:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            manifest.pop("files", None)
            manifest["state"] = "writing"
            manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
        if changed:
            with (root / folder / changed).open("a", encoding="utf-8") as handle:
                handle.write(PROBLEM_LINE.replace('"p0"', '"p9"') + "\n")
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
JUDGED = ("method: exprl-outcome\nmodel: tiny\ndata: {{train_files: [problems.jsonl]}}\n"
          "judge: {{backend: openai, model: m, base_urls: [{url}], max_retries: 0}}\nrollout_batches: 1\n"
          "trl: {{per_device_train_batch_size: 4, num_generations: 4, max_completion_length: 8, use_cpu: true, "
          "bf16: false}}\n")
DOWN = "http://127.0.0.1:9/v1"  # the discard port: nothing listens, the connection is refused at once
PAPER_DRY = ["train", "--config", "paper-exprl-outcome", "--dry-run", "--num-processes", "6", "--set"]
DUPLICATE_KEY = RECIPE.replace("  max_steps: 1\n", "  max_steps: 1\n  learning_rate: 1.0e-6\n  save_steps: 5\n"
                               "  learning_rate: 0.5\n")
PIPELINE_JUDGED = PIPELINE.replace("recipe: recipe.yaml", "recipe: outcome.yaml")
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


# Issue 25: nothing silently wrong. Every case below failed on the main branch it was written against
# (exit 0 having replaced a FIFO or read a torn folder, a traceback, or a value accepted).
CASES_25 = [
    # -- 1. outputs that are not regular files: refused before any work, never replaced ------------
    Case("judge-out-is-a-fifo", ["judge", "run", "--input", "traces.jsonl", "--out", "pipe.jsonl", "--cache", ""],
         ["--out pipe.jsonl", "named pipe (FIFO)", "name a new file"], fifo("pipe.jsonl")),
    Case("judge-out-is-a-link-to-a-character-device",
         ["judge", "run", "--input", "traces.jsonl", "--out", "null.jsonl", "--cache", ""],
         ["--out null.jsonl", "a character device", "/dev/null"], link("null.jsonl", "/dev/null")),
    Case("judge-out-is-a-socket", ["judge", "run", "--input", "traces.jsonl", "--out", "sock.jsonl", "--cache", ""],
         ["--out sock.jsonl", "a socket"], unix_socket("sock.jsonl")),
    Case("judge-out-is-a-link-to-nothing", ["judge", "run", "--input", "traces.jsonl", "--out", "gone.jsonl",
                                            "--cache", ""], ["--out gone.jsonl", "symbolic link", "does not exist"],
         link("gone.jsonl", "nowhere/at/all.jsonl")),
    Case("judge-out-is-a-link-to-a-fifo", ["judge", "run", "--input", "traces.jsonl", "--out", "l.jsonl",
                                           "--cache", ""], ["--out l.jsonl", "named pipe", "through the symbolic link"],
         both(fifo("pipe"), link("l.jsonl", "pipe"))),
    Case("rubrics-out-is-a-fifo", ["rubrics", "build", "--input", "problems.jsonl", "--out", "pipe.jsonl"],
         ["--out pipe.jsonl", "named pipe"], fifo("pipe.jsonl")),
    Case("calibrate-out-is-a-fifo", ["judge", "calibrate", "--input", "traces.jsonl", "--out", "pipe.json"],
         ["--out pipe.json", "named pipe"], fifo("pipe.json")),
    Case("synth-out-is-a-fifo", ["data", "synth", "--out", "pipe.jsonl"], ["--out pipe.jsonl", "named pipe"],
         fifo("pipe.jsonl")),
    Case("prepare-out-is-a-fifo", ["data", "prepare", "problems.jsonl", "--out", "pipe"], ["--out pipe", "named pipe"],
         fifo("pipe")),
    Case("prepare-output-file-is-a-fifo", ["data", "prepare", "problems.jsonl", "--out", "prep"],
         ["prep/train.jsonl", "named pipe"],
         both(prepared("prep"), lambda root: (root / "prep" / "train.jsonl").unlink(), fifo("prep/train.jsonl"))),
    Case("eval-out-is-a-fifo", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "pipe"],
         ["--out pipe", "named pipe"], fifo("pipe")),
    Case("train-output-dir-is-a-socket", ["train", "--config", "recipe.yaml", "--output-dir", "sock"],
         ["sock", "a socket"], unix_socket("sock")),

    # -- 2. a torn multi-file output is refused by every reader, saying how to rebuild it ---------
    Case("train-on-a-torn-prepared-folder", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                             "--set", "data.train_files=[prep]"],
         ["prep", "incomplete", "exprl data prepare", "rebuild"], prepared("prep", torn=True, test_fraction=0.5)),
    Case("train-on-a-file-of-a-torn-folder", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                              "--set", "data.train_files=[prep/train.jsonl]"],
         ["prep", "incomplete"], prepared("prep", torn=True)),
    Case("eval-on-a-torn-prepared-folder", ["eval", "--model", "model", "--bench", "prep", "--out", "e"],
         ["prep", "incomplete", "rebuild"], prepared("prep", torn=True, test_fraction=0.5)),
    Case("stats-of-a-prepared-folder-changed-since", ["data", "stats", "prep"],
         ["prep/train.jsonl", "changed since", "exprl data prepare"], prepared("prep", changed="train.jsonl")),
    Case("pipeline-on-a-prepared-folder-missing-a-file", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "run",
                                                          "--set", "stage1.data.train_files=[prep]"],
         ["prep", "test.jsonl is missing"],
         both(prepared("prep", test_fraction=0.5), lambda root: (root / "prep" / "test.jsonl").unlink())),

    # -- 4. a judge that cannot answer stops the run before anything is written -------------------
    Case("train-judge-url-without-a-scheme", ["train", "--config", "outcome.yaml", "--output-dir", "run"],
         ["judge.base_urls[0]", "127.0.0.1:8000/v1", "no scheme"],
         write("outcome.yaml", JUDGED.format(url="127.0.0.1:8000/v1"))),
    Case("train-judge-url-port-out-of-range", ["train", "--config", "outcome.yaml", "--output-dir", "run"],
         ["judge.base_urls[0]", "not a URL"], write("outcome.yaml", JUDGED.format(url="http://127.0.0.1:99999/v1"))),
    Case("train-judge-down", ["train", "--config", "outcome.yaml", "--output-dir", "run"],
         ["the judge at http://127.0.0.1:9/v1 did not answer", "connection", "run the same command"],
         write("outcome.yaml", JUDGED.format(url=DOWN))),
    Case("pipeline-judge-down", ["pipeline", "--config", "pipeline.yaml", "--run-dir", "run"],
         ["the judge at http://127.0.0.1:9/v1 did not answer"],
         both(write("outcome.yaml", JUDGED.format(url=DOWN)), write("pipeline.yaml", PIPELINE_JUDGED))),
    Case("train-dry-run-judge-without-an-endpoint", [*PAPER_DRY, "judge.base_urls=[]"], ["judge.base_urls"]),

    # -- 5. every value checked where it is declared, before a model loads ------------------------
    # The values of issue 22 item 3, on the paper recipe's dry run.
    Case("paper-loss-type-misspelt", [*PAPER_DRY, "trl.loss_type=dapoo"],
         ["'trl.loss_type' = 'dapoo'", "dr_grpo", "did you mean 'dapo'"]),
    Case("paper-vllm-model-length-below-prompt-plus-completion", [*PAPER_DRY, "trl.vllm_max_model_length=8192"],
         ["'trl.vllm_max_model_length' = 8192", "4096", "16384", "20480"]),
    Case("paper-completion-above-the-model-length", [*PAPER_DRY, "trl.max_completion_length=40000"],
         ["trl.max_completion_length 40000", "trl.vllm_max_model_length"]),
    Case("paper-negative-temperature", [*PAPER_DRY, "trl.temperature=-0.5"],
         ["'trl.temperature' must be greater than 0, got -0.5"]),
    Case("paper-negative-clip-high", [*PAPER_DRY, "trl.epsilon_high=-1"], ["'trl.epsilon_high' must be at least 0"]),
    Case("paper-judge-max-new-tokens-zero", [*PAPER_DRY, "judge.max_new_tokens=0"],
         ["'judge.max_new_tokens' must be at least 1, got 0"]),
    Case("pipeline-dry-run-benchmark-missing", ["pipeline", "--config", "pipeline-paper-qwen3-4b", "--dry-run",
                                                "--set", "eval.benches=[nowhere.jsonl]"],
         ["nowhere.jsonl", "file not found"]),
    Case("paper-learning-rate-nan", [*PAPER_DRY, "trl.learning_rate=nan"], ["'trl.learning_rate' must be a finite"]),
    Case("paper-top-p-above-one", [*PAPER_DRY, "trl.top_p=1.5"], ["'trl.top_p' must be in (0, 1], got 1.5"]),
    Case("paper-vllm-mode-misspelt", [*PAPER_DRY, "trl.vllm_mode=colocated"], ["'trl.vllm_mode'", "'colocate'"]),
    Case("paper-judge-concurrency-zero", [*PAPER_DRY, "judge.concurrency=0"],
         ["'judge.concurrency' must be at least 1"]),
    Case("paper-judge-timeout-infinite", [*PAPER_DRY, "judge.timeout_s=.inf"], ["'judge.timeout_s' must be a finite"]),
    Case("train-completion-above-the-tiny-models-length", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                                           "--set", "trl.max_length=5000"],
         ["'trl.max_length' = 5000", "1024", "max_position_embeddings"]),
    Case("eval-temperature-nan", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "e",
                                  "--temperature", "nan"], ["'temperature' must be a finite number, got nan"]),
    Case("eval-temperature-infinite", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "e",
                                       "--temperature", "inf"], ["'temperature' must be a finite number, got inf"]),
    Case("eval-limit-negative", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "e",
                                 "--limit", "-1"], ["'limit' must be at least 1, got -1"]),
    Case("judge-timeout-nan", ["judge", "run", "--input", "traces.jsonl", "--out", "judged.jsonl", "--cache", "",
                               "--set", "timeout_s=nan"], ["'timeout_s' must be a finite number, got nan"]),
    Case("rubrics-temperature-nan", ["rubrics", "build", "--input", "problems.jsonl", "--out", "rubrics.jsonl",
                                     "--set", "temperature=nan"], ["'temperature' must be a finite number"]),
    Case("train-recipe-key-written-twice", ["train", "--config", "dup.yaml", "--output-dir", "run"],
         ["dup.yaml", "'learning_rate'", "written on line 7 and line 9"], write("dup.yaml", DUPLICATE_KEY)),
    Case("pipeline-key-written-twice", ["pipeline", "--config", "dup.yaml", "--run-dir", "run"],
         ["dup.yaml", "'n'", "line 7 and line 9"],
         write("dup.yaml", PIPELINE + "  n: 2\n")),

    # -- 6. the operating system refusing a path: one line naming it, before any work -------------
    Case("judge-out-below-a-file", ["judge", "run", "--input", "traces.jsonl", "--out", "notes.txt/sub/out.jsonl",
                                    "--cache", ""], ["notes.txt/sub/out.jsonl", "notes.txt is a file, not a folder"],
         write("notes.txt", "mine\n")),
    Case("prepare-out-below-a-file", ["data", "prepare", "problems.jsonl", "--out", "notes.txt/prepared"],
         ["notes.txt/prepared", "is a file, not a folder"], write("notes.txt", "mine\n")),
    Case("judge-out-in-a-read-only-folder", ["judge", "run", "--input", "traces.jsonl", "--out",
                                             "/sys/exprl-test-judged.jsonl", "--cache", ""],
         ["/sys/exprl-test-judged.jsonl", "cannot write in /sys"]),
    Case("eval-out-in-a-read-only-folder", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out",
                                            "/sys/exprl-test-eval"], ["/sys/exprl-test-eval", "cannot write in /sys"]),

    # -- 9. names spelt wrong get the nearest one ---------------------------------------------------
    Case("train-set-key-misspelt", ["train", "--config", "recipe.yaml", "--output-dir", "run", "--set",
                                    "trl.max_stepz=3"], ["did you mean", "'trl.max_steps'"]),
    Case("eval-set-key-misspelt", ["eval", "--model", "model", "--bench", "problems.jsonl", "--out", "e",
                                   "--set", "temperatur=0.5"], ["'temperatur'", "did you mean 'temperature'?"]),
    Case("train-catalog-name-misspelt", ["train", "--config", "recipe.yaml", "--output-dir", "run",
                                         "--set", "data.train_files=[gsm8k-tran]"],
         ["gsm8k-tran", "did you mean gsm8k-train?"]),
    Case("pipeline-dry-run-benchmark-name-misspelt", ["pipeline", "--config", "pipeline-paper-qwen3-4b", "--dry-run",
                                                      "--set", "eval.benches=[math50]"],
         ["math50", "did you mean math500?"]),
    Case("train-recipe-name-misspelt", ["train", "--config", "cpu-tiny-grop"],
         ["cpu-tiny-grop", "did you mean cpu-tiny-grpo"]),
    Case("data-dir-is-a-file", ["data", "list", "--data-dir", "notes.txt"], ["notes.txt", "a file, not a folder"],
         write("notes.txt", "mine\n")),
]
CASES += CASES_25


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_issue_25_cases_cover_every_class_with_several_instances():
    assert len(CASES_25) >= 40 and len({c.id for c in CASES}) == len(CASES)


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
