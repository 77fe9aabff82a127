"""Calibration (Table 5 protocol) with the reference judge, on traces whose rates are known by hand."""
from __future__ import annotations

import json

import pytest

from exprl.cli import main as cli_main
from exprl.data.synthetic import SyntheticTaskConfig, generate, policy_trace
from exprl.errors import DataError
from exprl.judge.calibrate import CalibrationConfig, LabelledTrace, calibrate, calibration_requests, derangement
from exprl.judge.calibrate import read_labelled_traces
from exprl.judge.service import build_judge
from exprl.judge.types import JudgeConfig


def distinct_answer_problems(count):
    problems, answers = [], set()
    for problem in generate(SyntheticTaskConfig(num_problems=60, min_steps=3, max_steps=3, seed=11)):
        values = problem.meta["values"]
        if problem.answer not in answers and len(set(values)) == len(values):
            answers.add(problem.answer)
            problems.append(problem)
    return problems[:count]


def labelled(problems):
    """Per problem: its full trace (correct, 5), a trace with every step but a wrong final answer
    (incorrect, capped at 3); and for the first two problems also a bare boxed answer (correct, but
    1 of 3 checkpoints -> 2, a false negative)."""
    traces = []
    for i, p in enumerate(problems):
        full = policy_trace(p)
        wrong = full.replace(f"\\boxed{{{p.answer}}}", f"\\boxed{{{int(p.answer) + 1}}}")
        traces.append(LabelledTrace(f"{p.id}/full", p.problem, p.reference, full, True, p.answer))
        traces.append(LabelledTrace(f"{p.id}/wrong", p.problem, p.reference, wrong, False, p.answer))
        if i < 2:
            traces.append(LabelledTrace(f"{p.id}/bare", p.problem, p.reference, f"\\boxed{{{p.answer}}}",
                                        True, p.answer))
    return traces


@pytest.fixture()
def judge():
    with build_judge(JudgeConfig(backend="reference", cache_path="")) as service:
        yield service


def test_rates_match_the_hand_computed_ones(judge):
    traces = labelled(distinct_answer_problems(5))  # 7 correct (2 bare), 5 incorrect
    report = calibrate(traces, judge)
    correct_ref = report.conditions["correct_reference"]
    assert (correct_ref.fpr, correct_ref.fnr) == (0.0, 2 / 7)
    assert correct_ref.misplacement == pytest.approx(1 / 7)
    assert correct_ref.unscorable == 0 and correct_ref.mean_score_correct == pytest.approx((5 * 5 + 2 * 2) / 7)
    # Without a reference (and so without an answer) the reference judge cannot score anything.
    none = report.conditions["no_reference"]
    assert none.unscorable == 12 and none.fpr is None and none.fnr is None and none.misplacement is None
    # Another problem's reference: every boxed answer differs from it, so nothing exceeds 3.
    wrong = report.conditions["wrong_reference"]
    assert (wrong.fpr, wrong.fnr, wrong.misplacement) == (0.0, 1.0, 0.5)
    assert (report.correct, report.incorrect, report.traces) == (7, 5, 12)


def test_threshold_is_configurable(judge):
    traces = labelled(distinct_answer_problems(3))
    strict = calibrate(traces, judge, CalibrationConfig(threshold=4)).conditions["correct_reference"]
    lax = calibrate(traces, judge, CalibrationConfig(threshold=2)).conditions["correct_reference"]
    assert (strict.fpr, strict.fnr) == (0.0, 2 / 5)
    assert (lax.fpr, lax.fnr) == (1.0, 2 / 5)  # wrong-final traces score 3 > 2; bare ones 2


def test_wrong_references_are_a_deterministic_derangement_over_problems():
    problems = distinct_answer_problems(4)
    traces = labelled(problems)
    first, again = calibration_requests(traces, seed=7), calibration_requests(traces, seed=7)
    assert first == again
    for trace, request in zip(traces, first["wrong_reference"]):
        assert request.reference != trace.reference and request.answer != trace.answer
        assert request.problem == trace.problem and request.trace == trace.trace
    # Traces of one problem share the same wrong reference.
    by_problem = {}
    for trace, request in zip(traces, first["wrong_reference"]):
        by_problem.setdefault(trace.problem, set()).add(request.reference)
    assert len(by_problem) == len(problems) and all(len(refs) == 1 for refs in by_problem.values())
    assert len(first["no_reference"]) == len(traces) > 0
    assert all(r.reference is None and r.answer is None for r in first["no_reference"])
    for n in range(2, 9):
        for seed in range(5):
            order = derangement(n, seed)
            assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))
    with pytest.raises(DataError, match="at least 2 different problems"):
        derangement(1, 0)


def test_labels_from_a_label_fn_and_bad_rows(tmp_path):
    [p, q] = distinct_answer_problems(2)
    path = tmp_path / "traces.jsonl"
    rows = [{"id": "a", "problem": p.problem, "reference": p.reference, "trace": policy_trace(p), "answer": p.answer},
            {"id": "b", "problem": q.problem, "reference": q.reference, "trace": "\\boxed{0}", "answer": q.answer,
             "correct": True}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    traces = read_labelled_traces(path, label_fn=lambda trace, answer: f"\\boxed{{{answer}}}" in trace)
    assert [t.correct for t in traces] == [True, True]  # an explicit label wins over the function
    with pytest.raises(DataError) as info:
        read_labelled_traces(path)
    assert info.value.line == 1 and info.value.field == "correct"
    rows[1]["correct"] = "yes"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_labelled_traces(path, label_fn=lambda trace, answer: True)
    assert info.value.line == 2 and info.value.field == "correct"


def test_cli_prints_the_table_and_writes_the_report(tmp_path, capsys):
    traces = labelled(distinct_answer_problems(3))
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps({"id": t.id, "problem": t.problem, "reference": t.reference,
                                        "trace": t.trace, "answer": t.answer, "correct": t.correct}) + "\n"
                            for t in traces), encoding="utf-8")
    out = tmp_path / "report.json"
    assert cli_main(["judge", "calibrate", "--input", str(path), "--backend", "reference",
                     "--cache", "", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "correct_reference" in printed and "wrong_reference" in printed and "0.200" in printed
    report = json.loads(out.read_text())
    assert report["conditions"]["correct_reference"]["fnr"] == pytest.approx(2 / 5)
    assert report["conditions"]["no_reference"]["unscorable"] == 8
    # --threshold comes from calibrate's own argument declaration: 0 makes every OK judgment positive.
    assert cli_main(["judge", "calibrate", "--input", str(path), "--backend", "reference",
                     "--cache", "", "--out", str(out), "--threshold", "0"]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["conditions"]["correct_reference"]["fnr"] == 0
    assert cli_main(["judge", "calibrate", "--input", str(path), "--cache", "", "--set", "rubric=cached",
                     "--set", f"rubric_path={tmp_path / 'r.jsonl'}"]) == 2
    assert "rubric=implicit" in capsys.readouterr().err
