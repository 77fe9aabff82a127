"""`exprl eval` end to end on a tiny model and real GSM8K problems; resume; bad input."""
from __future__ import annotations

import json
import sqlite3

import pytest

from exprl.cli import main
from exprl.errors import ConfigError, DataError, RunStateError
from exprl.eval import evaluate, read_results
from exprl.eval.generate import HFGenerator, SamplingSettings

SETTINGS = dict(n=2, temperature=1.0, max_tokens=6, batch_size=8, limit=20)


@pytest.fixture()
def gsm8k(catalog_data):
    return str(catalog_data / "gsm8k_test.jsonl")


def test_eval_cli_end_to_end_on_20_gsm8k_problems(tiny_model, gsm8k, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(tiny_model), "--bench", gsm8k, "--n", "3", "--max-tokens", "6",
                 "--limit", "20", "--out", str(out), "--temperature", "0.8"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| gsm8k_test | 20 | 3 |" in printed
    result = json.loads((out / "gsm8k_test.json").read_text())
    assert result["num_problems"] == 20 and result["n"] == 3
    assert sorted(result["pass_at_k"]) == ["1", "2", "3"]
    assert [p["id"] for p in result["problems"]] == [f"gsm8k/test/{i}" for i in range(20)]
    assert all(p["n"] == 3 and 0 <= p["c"] <= 3 for p in result["problems"])
    # A random tiny model writes no \boxed{} answer: every sample is graded wrong, not skipped.
    assert result["pass_at_k"]["3"] == 0.0
    assert 0 < result["mean_length"] <= 6
    assert (out / "results.md").read_text().startswith("| benchmark | problems | n | pass@1 | pass@2 | pass@3 |")
    with sqlite3.connect(out / "generations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM generations WHERE correct IS NOT NULL").fetchone() == (60,)
    assert read_results(out)["gsm8k_test"]["pass_at_k"] == result["pass_at_k"]


class CountingGenerator:
    """The real HF generator, counting calls and optionally interrupted like a Ctrl-C."""

    def __init__(self, model, interrupt_after=None):
        self.inner = HFGenerator(str(model), SamplingSettings(temperature=1.0, max_new_tokens=6,
                                                               system_prompt=None), batch_size=8)
        self.calls, self.requests, self.interrupt_after = 0, 0, interrupt_after
        self.prompts: list[str] = []

    def generate(self, conversations, seeds):
        if self.interrupt_after is not None and self.calls >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.requests += len(conversations)
        self.prompts += [m["content"] for c in conversations for m in c]
        return self.inner.generate(conversations, seeds)


def _texts(out):
    with sqlite3.connect(out / "generations.sqlite") as db:
        return dict(((pid, i), t) for pid, i, t in
                    db.execute("SELECT problem_id, sample_index, text FROM generations"))


def test_interrupted_eval_resumes_without_regenerating(tiny_model, gsm8k, tmp_path):
    out = tmp_path / "eval"
    run = dict(out_dir=out, system_prompt=None, **SETTINGS)
    first = CountingGenerator(tiny_model, interrupt_after=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tiny_model, [gsm8k], generator=first, **run)
    assert first.requests == 16
    kept = _texts(out)
    assert len(kept) == 16

    second = CountingGenerator(tiny_model)
    result = evaluate(tiny_model, [gsm8k], generator=second, **run)["gsm8k_test"]
    assert second.requests == 40 - 16 and second.calls == 3
    after = _texts(out)
    assert len(after) == 40 and {k: after[k] for k in kept} == kept
    assert result["num_problems"] == 20

    third = CountingGenerator(tiny_model)
    again = evaluate(tiny_model, [gsm8k], generator=third, **run)["gsm8k_test"]
    assert third.calls == 0 and again["pass_at_k"] == result["pass_at_k"]


def test_changed_sampling_settings_are_refused_and_more_samples_extend(tiny_model, gsm8k, tmp_path):
    out = tmp_path / "eval"
    counter = CountingGenerator(tiny_model)
    evaluate(tiny_model, [gsm8k], generator=counter, out_dir=out, system_prompt=None, **{**SETTINGS, "limit": 4})
    assert counter.requests == 8
    before = (out / "gsm8k_test.json").read_bytes()
    # Samples at another temperature are another evaluation: refused, naming the change, nothing rewritten.
    with pytest.raises(RunStateError, match=r"temperature: 1\.0 -> 0\.5"):
        evaluate(tiny_model, [gsm8k], generator=counter, out_dir=out, system_prompt=None,
                 **{**SETTINGS, "limit": 4, "temperature": 0.5})
    assert counter.requests == 8 and (out / "gsm8k_test.json").read_bytes() == before
    # More samples per problem keep the ones drawn: only the new indices are generated.
    evaluate(tiny_model, [gsm8k], generator=counter, out_dir=out, system_prompt=None,
             **{**SETTINGS, "limit": 4, "n": 3})
    assert counter.requests == 8 + 4


def test_the_reference_never_reaches_the_policy(tiny_model, catalog_data, tmp_path):
    rows = [json.loads(line) for line in (catalog_data / "gsm8k_test.jsonl").read_text().splitlines()[:5]]
    counter = CountingGenerator(tiny_model)
    evaluate(tiny_model, [str(catalog_data / "gsm8k_test.jsonl")], generator=counter, out_dir=tmp_path / "e",
             **{**SETTINGS, "limit": 5})
    joined = "\n".join(counter.prompts)
    assert len(rows) == 5
    for row in rows:
        assert row["problem"].strip() in joined
        assert row["solution"] not in joined
        assert row["solution"].splitlines()[0] not in joined


def test_bench_recipe_and_reference_free_benchmark(tiny_model, tmp_path):
    data = tmp_path / "aime.jsonl"
    data.write_text("\n".join(json.dumps({"id": f"aime/{i}", "problem": f"Compute {i}+{i}.", "answer": str(2 * i)})
                              for i in range(3)) + "\n")
    recipe = tmp_path / "bench-aime-mini.yaml"
    recipe.write_text("name: aime-mini\npath: aime.jsonl\n")
    result = evaluate(tiny_model, [str(recipe)], out_dir=tmp_path / "e", n=2, max_tokens=4, batch_size=6)
    assert list(result) == ["aime-mini"] and result["aime-mini"]["num_problems"] == 3


def test_row_without_answer_is_named(tiny_model, tmp_path):
    data = tmp_path / "bench.jsonl"
    data.write_text(json.dumps({"id": "a", "problem": "1+1?", "answer": "2"}) + "\n"
                    + json.dumps({"id": "b", "problem": "2+2?", "answer": ""}) + "\n")
    with pytest.raises(DataError) as info:
        evaluate(tiny_model, [str(data)], out_dir=tmp_path / "e", n=1, max_tokens=2)
    assert info.value.path == str(data) and info.value.line == 2 and info.value.field == "answer"


def test_missing_checkpoint_is_named(tmp_path, catalog_data):
    missing = tmp_path / "no" / "such-checkpoint"
    with pytest.raises(ConfigError, match="checkpoint not found: .*such-checkpoint"):
        evaluate(missing, [str(catalog_data / "gsm8k_test.jsonl")], out_dir=tmp_path / "e")
    code = main(["eval", "--model", str(missing), "--bench", str(catalog_data / "gsm8k_test.jsonl"),
                 "--out", str(tmp_path / "e")])
    assert code == 2


def test_eval_dir_from_an_incompatible_version_is_refused(tiny_model, catalog_data, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "eval.json").write_text(json.dumps({"exprl_version": "9.0.0", "format": 99}))
    with pytest.raises(RunStateError, match="written by exprl 9.0.0 with eval format 99"):
        evaluate(tiny_model, [str(catalog_data / "gsm8k_test.jsonl")], out_dir=out, limit=1)


def test_bad_settings_are_config_errors(tiny_model, catalog_data, tmp_path):
    with pytest.raises(ConfigError, match="n must be at least 1"):
        evaluate(tiny_model, [str(catalog_data / "gsm8k_test.jsonl")], n=0, out_dir=tmp_path / "e")


def test_a_domain_without_a_verifier_is_left_unscored_and_said_so(tiny_model, tmp_path, caplog):
    rows = [{"id": f"m{i}", "problem": f"Compute {i}+{i}.", "answer": str(2 * i), "domain": "math"} for i in range(2)]
    rows += [{"id": "c0", "problem": "Print the sum of two integers read from stdin.", "answer": "a+b",
              "domain": "code"}]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counter = CountingGenerator(tiny_model)
    result = evaluate(tiny_model, [str(data)], generator=counter, out_dir=tmp_path / "e", n=2, max_tokens=4,
                      system_prompt=None)["mixed"]
    assert counter.requests == 4  # the code problem is not sampled: nothing could grade it
    assert result["num_problems"] == 2 and result["unscored"] == {"code": 1}
    assert "mixed: 1 code problem(s) not scored (no verifier for the domain)" in (tmp_path / "e" / "results.md").read_text()
    assert "no verifier for code" in caplog.text

    code_only = tmp_path / "lcb.jsonl"
    code_only.write_text(json.dumps(rows[-1]) + "\n")
    with pytest.raises(ConfigError, match="every problem is in domain code, which has no verifier"):
        evaluate(tiny_model, [str(code_only)], out_dir=tmp_path / "e2", n=1, max_tokens=2)
    assert not (tmp_path / "e2").exists()


def test_traces_of_an_eval_are_what_judge_run_and_calibrate_read(tiny_model, tmp_path, capsys):
    from exprl.data.loaders import write_problems
    from exprl.data.synthetic import SyntheticTaskConfig, generate

    bench = tmp_path / "chains.jsonl"
    problems = generate(SyntheticTaskConfig(num_problems=5, min_steps=1, max_steps=2, seed=3))
    write_problems(bench, problems)
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_model), "--bench", str(bench), "--n", "2", "--max-tokens", "6",
                 "--out", str(out), "--traces"]) == 0
    rows = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10
    by_id = {p.id: p for p in problems}
    with sqlite3.connect(out / "generations.sqlite") as db:
        stored = {(pid, index): (text, bool(ok)) for pid, index, text, ok in
                  db.execute("SELECT problem_id, sample_index, text, correct FROM generations")}
    for row in rows:
        assert row["reference"] == by_id[row["problem_id"]].reference
        assert (row["trace"], row["correct"]) == stored[(row["problem_id"], row["sample_index"])]
    capsys.readouterr()
    scores = tmp_path / "scores.jsonl"
    assert main(["judge", "run", "--input", str(out / "traces.jsonl"), "--out", str(scores),
                 "--backend", "reference", "--cache", ""]) == 0
    assert len(scores.read_text().splitlines()) == 10
    assert main(["judge", "calibrate", "--input", str(out / "traces.jsonl"), "--backend", "reference",
                 "--cache", ""]) == 0
