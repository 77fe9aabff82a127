"""The evaluation section of a pipeline's plan (exprl.eval.plan): benchmarks, samples and generated tokens,
counted from local files when they are at hand, else from the catalog's published sizes; nothing loads."""
from __future__ import annotations

import json

from exprl.cli import main
from exprl.data.catalog import BENCHMARKS, DATA_DIR_ENV
from exprl.eval.config import EvalConfig
from exprl.eval.plan import plan_evaluation


def test_the_papers_benchmarks_are_counted_from_local_files_else_their_published_size(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    aime25 = next(e for e in BENCHMARKS if e.name == "aime25")
    (tmp_path / aime25.local_file).write_text("".join(
        json.dumps({"id": f"a/{i}", "problem": f"p{i}", "answer": "1"}) + "\n" for i in range(7)))
    config = EvalConfig(benches=[e.name for e in BENCHMARKS], n=128, max_tokens=16384)
    section = plan_evaluation(config, ["base", "stage1", "stage2"])
    by_name = {b["name"]: b for b in section["benchmarks"]}
    assert by_name["aime25"]["problems"] == 7 and by_name["aime25"]["source"] == str(tmp_path / "aime25.jsonl")
    assert by_name["imo-answerbench"]["problems"] == 400 and by_name["imo-answerbench"]["source"].startswith("the hub")
    assert by_name["aime25"]["samples"] == 7 * 128
    assert by_name["aime25"]["max_generated_tokens"] == 7 * 128 * 16384
    per_point = (7 + 30 + 30 + 400) * 128
    assert (section["samples_per_evaluation"], section["samples_in_all"]) == (per_point, 3 * per_point)
    assert section["max_generated_tokens_in_all"] == 3 * per_point * 16384
    limited = plan_evaluation(EvalConfig(benches=["imo-answerbench"], n=4, limit=10), ["stage1"])
    assert limited["benchmarks"][0]["samples"] == 40


def test_the_paper_pipeline_plans_its_evaluation(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert main(["pipeline", "--config", "pipeline-paper-qwen3-4b", "--dry-run", "--json"]) == 0
    section = json.loads(capsys.readouterr().out)["evaluation"]
    assert [b["name"] for b in section["benchmarks"]] == ["aime25", "aime26", "hmmt-nov25", "imo-answerbench"]
    assert (section["n"], section["temperature"], section["top_p"], section["max_tokens"]) == (128, 0.8, 1.0, 16384)
    assert section["evaluations"] == ["base", "stage1", "stage2"]
    assert main(["pipeline", "--config", "pipeline-paper-qwen3-4b", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "evaluation: base, stage1, stage2; n = 128" in text and "imo-answerbench  400 problems -> 51,200 samples" in text
