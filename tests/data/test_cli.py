"""`exprl data prepare | stats | synth` through the real CLI entry point."""
from __future__ import annotations

import json
import subprocess
import sys

from exprl.cli import main
from exprl.data.loaders import load_problems, write_problems
from exprl.data.problem import Problem


def problems(n: int) -> list[Problem]:
    return [Problem(id=f"c{i}", problem=f"Compute {i} plus {i * 7 + 3} and report the sum {i}.",
                    reference=f"The sum is \\boxed{{{8 * i + 3}}}.", answer=str(8 * i + 3)) for i in range(n)]


def test_prepare_writes_outputs_and_prints_stats(tmp_path, capsys):
    corpus = write_problems(tmp_path / "corpus.jsonl", problems(40))
    evals = write_problems(tmp_path / "eval.jsonl", problems(40)[:3])
    out = tmp_path / "prepared"
    code = main(["data", "prepare", str(corpus), "--decontaminate", str(evals), "--out", str(out),
                 "--set", "test_fraction=0.25", "--set", "seed=1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "rows: loaded 40, rejected 0, removed 3, kept 37" in printed
    assert "contaminated_exact 3" in printed
    assert "answer kinds: integer 37" in printed
    train, test = load_problems(out / "train.jsonl"), load_problems(out / "test.jsonl")
    assert len(train) + len(test) == 37 and test
    assert json.loads((out / "stats.json").read_text())["config"]["seed"] == 1


def test_prepare_with_field_mapping_and_config_file(tmp_path, capsys):
    corpus = tmp_path / "qa.jsonl"
    corpus.write_text("".join(json.dumps({"q": f"What is {i} squared?", "sol": f"It is \\boxed{{{i * i}}}"}) + "\n"
                              for i in range(5)), encoding="utf-8")
    recipe = tmp_path / "prep.yaml"
    recipe.write_text("near_dedupe: false\nfields: [problem=q]\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["data", "prepare", str(corpus), "--out", str(out), "--config", str(recipe),
                 "--field", "reference=sol"]) == 0
    loaded = load_problems(out / "train.parquet")
    assert [(p.id, p.answer) for p in loaded] == [(f"qa/{i}", str(i * i)) for i in range(5)]
    assert json.loads((out / "stats.json").read_text())["config"]["fields"] == ["problem=q", "reference=sol"]


def test_bad_input_exits_non_zero_naming_file_line_and_field(tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(json.dumps({"id": "a", "problem": "1+1?", "reference": "\\boxed{2}"}) + "\n"
                      + json.dumps({"id": "b", "problem": "", "reference": "\\boxed{2}"}) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "exprl.cli", "data", "prepare", str(corpus),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"exprl data prepare: error: {corpus}:2, field 'problem': empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_skip_invalid_writes_rejects_with_reasons(tmp_path, capsys):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(json.dumps({"id": "a", "problem": "1+1?", "reference": "\\boxed{2}"}) + "\n{oops\n",
                      encoding="utf-8")
    out = tmp_path / "out"
    assert main(["data", "prepare", str(corpus), "--out", str(out), "--skip-invalid"]) == 0
    assert "rejected: (whole row) 1" in capsys.readouterr().out
    [reject] = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert (reject["path"], reject["line"], reject["raw"]) == (str(corpus), 2, "{oops")
    assert reject["reason"].startswith("malformed JSON")


def test_unknown_config_key_is_an_error(tmp_path, capsys):
    corpus = write_problems(tmp_path / "c.jsonl", problems(2))
    assert main(["data", "prepare", str(corpus), "--out", str(tmp_path / "o"), "--set", "threshold=0.5"]) == 2
    assert "unknown key 'threshold'" in capsys.readouterr().err


def test_stats_of_a_file_and_of_a_stats_json(tmp_path, capsys):
    corpus = write_problems(tmp_path / "c.jsonl", problems(6))
    assert main(["data", "stats", str(corpus)]) == 0
    assert "problems: 6" in capsys.readouterr().out
    main(["data", "prepare", str(corpus), "--out", str(tmp_path / "o")])
    capsys.readouterr()
    assert main(["data", "stats", str(tmp_path / "o" / "stats.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["kept"] == 6


def test_synth_output_goes_through_prepare(tmp_path, capsys):
    synthetic = tmp_path / "synth.jsonl"
    assert main(["data", "synth", "--out", str(synthetic), "--seed", "3", "--set", "num_problems=60"]) == 0
    generated = load_problems(synthetic)
    assert len(generated) == 60
    again = tmp_path / "again.jsonl"
    main(["data", "synth", "--out", str(again), "--seed", "3", "--set", "num_problems=60"])
    assert again.read_bytes() == synthetic.read_bytes()
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(synthetic), "--out", str(out), "--set", "test_fraction=0.2"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["counts"]["loaded"] == 60 == stats["counts"]["kept"] + stats["counts"]["removed"]
    kept = load_problems(out / "train.jsonl") + load_problems(out / "test.jsonl")
    assert len(kept) == stats["counts"]["kept"] > 0
    by_id = {p.id: p for p in generated}
    assert all(by_id[p.id].answer == p.answer and by_id[p.id].reference == p.reference for p in kept)
    assert stats["kept"]["per_source"] == {generated[0].source: len(kept)}
