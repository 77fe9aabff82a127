"""Rubric store: build from problems, resume after a crash, load, show, LLM list parsing."""
from __future__ import annotations

import json

import pytest

from exprl.cli import main as cli_main
from exprl.data.loaders import write_problems
from exprl.data.synthetic import SyntheticTaskConfig, generate
from exprl.errors import DataError
from testing.loopback import LoopbackJudgeServer
from exprl.judge.reference.checkpoints import extract_checkpoints
from exprl.judge.rubrics import (
    OpenAIRubricBuilder, ReferenceRubricBuilder, build_rubrics, finish_checkpoints, load_rubrics,
    parse_checkpoint_list)
from exprl.judge.types import JudgeConfig


@pytest.fixture()
def problems():
    return generate(SyntheticTaskConfig(num_problems=6, min_steps=2, max_steps=4, seed=5))


def test_build_stores_the_reference_checkpoints_with_the_final_answer_last(problems, tmp_path):
    store = tmp_path / "rubrics.jsonl"
    summary = build_rubrics(problems, store, ReferenceRubricBuilder())
    assert (summary.built, summary.skipped, summary.failed) == (6, 0, 0)
    rubrics = load_rubrics(store)
    assert list(rubrics) == [p.id for p in problems]
    for problem in problems:
        assert rubrics[problem.id] == tuple(extract_checkpoints(problem.reference, problem.answer,
                                                                problem=problem.problem))
        assert rubrics[problem.id][-1] == problem.answer


def test_an_interrupted_build_resumes_and_ignores_the_cut_off_line(problems, tmp_path):
    store = tmp_path / "rubrics.jsonl"
    build_rubrics(problems, store, ReferenceRubricBuilder(), limit=3)
    with store.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "%s", "checkpoi' % problems[3].id)  # the crash, mid-line
    assert len(load_rubrics(store)) == 3
    summary = build_rubrics(problems, store, ReferenceRubricBuilder())
    assert (summary.built, summary.skipped) == (3, 3)
    lines = store.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and all(json.loads(line)["checkpoints"] for line in lines)
    assert len(load_rubrics(store)) == 6


def test_a_corrupt_line_inside_the_store_is_an_error_naming_line_and_field(tmp_path):
    store = tmp_path / "rubrics.jsonl"
    store.write_text('{"id": "a", "checkpoints": ["1"]}\n{"id": "b", "checkpoints": []}\n'
                     '{"id": "c", "checkpoints": ["2"]}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_rubrics(store)
    assert info.value.line == 2 and info.value.field == "checkpoints" and str(store) in str(info.value)


@pytest.mark.parametrize("text, expected", [
    ('{"checkpoints": ["x = 2", "y = 5", "7"]}', ["x = 2", "y = 5", "7"]),
    ('Sure!\n```json\n["a = 1", 3]\n```', ["a = 1", "3"]),
    ('Here: ["12", "36"] done', ["12", "36"]),
    ("no list at all", None),
    ('{"checkpoints": []}', None),
])
def test_parse_checkpoint_list(text, expected):
    assert parse_checkpoint_list(text) == expected


def test_finish_checkpoints_dedupes_caps_and_puts_the_known_answer_last():
    items = ["a = 1", "a=1", "32", "b = 2", "c = 3", "d = 4", "e = 5", "f = 6"]
    finished = finish_checkpoints(items, "32")
    assert finished[-1] == "32" and len(finished) == 6 and finished.count("32") == 1
    assert finished[0] == "a = 1" and "a=1" not in finished
    assert finish_checkpoints(["1", "2"], None) == ("1", "2")


def test_an_endpoint_that_answers_without_a_list_fails_the_problem_without_storing_it(problems, tmp_path):
    store = tmp_path / "rubrics.jsonl"
    with LoopbackJudgeServer("unparseable") as server:
        builder = OpenAIRubricBuilder(JudgeConfig(backend="openai", base_urls=[server.base_url],
                                                  model="loopback", max_retries=0, timeout_s=10))
        summary = build_rubrics(problems[:2], store, builder)
    assert (summary.built, summary.failed) == (0, 2)
    assert load_rubrics(store) == {}


def test_cli_build_then_show(problems, tmp_path, capsys):
    source = write_problems(tmp_path / "problems.jsonl", problems)
    store = tmp_path / "rubrics.jsonl"
    assert cli_main(["rubrics", "build", "--input", str(source), "--out", str(store)]) == 0
    assert "6 built" in capsys.readouterr().out
    assert cli_main(["rubrics", "build", "--input", str(source), "--out", str(store)]) == 0
    assert "0 built, 6 already stored" in capsys.readouterr().out
    assert cli_main(["rubrics", "show", str(store), "--id", problems[1].id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(problems[1].id) and f"{problems[1].answer}  (final answer)" in out
    assert cli_main(["rubrics", "show", str(store), "--id", "nope"]) == 2
    assert "no rubric for id 'nope'" in capsys.readouterr().err


def test_cached_rubrics_reach_requests_and_change_the_reference_judgment(problems, tmp_path):
    from exprl.errors import ConfigError
    from exprl.judge.backends.reference import ReferenceBackend
    from exprl.judge.rubrics import rubrics_for, with_rubric
    from exprl.judge.types import JudgeRequest

    store = tmp_path / "rubrics.jsonl"
    problem = problems[0]
    store.write_text(json.dumps({"id": problem.id, "checkpoints": ["999", problem.answer]}) + "\n",
                     encoding="utf-8")
    assert rubrics_for(JudgeConfig(rubric="implicit", rubric_path=str(store))) is None
    with pytest.raises(ConfigError, match="rubric_path"):
        rubrics_for(JudgeConfig(rubric="cached"))
    rubrics = rubrics_for(JudgeConfig(rubric="cached", rubric_path=str(store)))
    request = JudgeRequest(problem=problem.problem, reference=problem.reference,
                           trace=f"x = {problem.answer}")
    cached = with_rubric(request, rubrics, problem.id)
    assert cached.rubric == ("999", problem.answer) and with_rubric(request, None, problem.id) is request
    backend = ReferenceBackend()
    assert backend.judge_one(cached).score == 3  # 1 of the 2 stored checkpoints
    with pytest.raises(DataError, match="no rubric stored for problem 'other'"):
        with_rubric(request, rubrics, "other")


def _store(tmp_path, rubrics: dict[str, list[str]]):
    store = tmp_path / "rubrics.jsonl"
    store.write_text("".join(json.dumps({"id": i, "checkpoints": c}) + "\n" for i, c in rubrics.items()),
                     encoding="utf-8")
    return store


def test_the_service_attaches_the_stored_rubric_by_problem_id(problems, tmp_path):
    from exprl.judge.service import build_judge
    from exprl.judge.types import JudgeRequest, JudgeStatus

    problem = problems[0]
    store = _store(tmp_path, {problem.id: ["999", problem.answer]})
    config = JudgeConfig(rubric="cached", rubric_path=str(store), cache_path="")

    def request(**kw):
        return JudgeRequest(problem=problem.problem, reference=problem.reference,
                            trace=problem.reference, **kw)  # states every checkpoint of its own reference

    with build_judge(config) as judge:
        stored, unknown, no_id, own = judge.judge_sync([
            request(problem_id=problem.id), request(problem_id="p-missing"), request(),
            request(problem_id="p-missing", rubric=(problem.answer,))])
        assert judge.stats.requests == 4 and judge.stats.backend_calls == 2
        assert judge.stats.statuses["error"] == 2
    assert stored.status is JudgeStatus.OK and stored.score == 3  # "999" is not reached: the store is used
    assert unknown.status is JudgeStatus.ERROR and "no rubric stored for problem 'p-missing'" in unknown.error
    assert no_id.status is JudgeStatus.ERROR and "no problem_id" in no_id.error
    assert own.status is JudgeStatus.OK and own.score == 5  # a rubric the caller gave wins
    with build_judge(JudgeConfig(cache_path="")) as implicit:
        [plain] = implicit.judge_sync([request(problem_id=problem.id)])
    assert plain.score == 5  # implicit extraction reaches every checkpoint of the reference


def test_a_cached_rubric_without_a_store_fails_when_the_judge_is_built(tmp_path):
    from exprl.errors import ConfigError
    from exprl.judge.service import build_judge

    with pytest.raises(ConfigError, match="rubric_path"):
        build_judge(JudgeConfig(rubric="cached", cache_path=""))
    with pytest.raises(DataError, match="rubric store not found"):
        build_judge(JudgeConfig(rubric="cached", rubric_path=str(tmp_path / "absent.jsonl"), cache_path=""))


def test_cli_rubrics_build_then_judge_run_with_cached_rubrics(problems, tmp_path):
    source = write_problems(tmp_path / "problems.jsonl", problems)
    store = tmp_path / "rubrics.jsonl"
    assert cli_main(["rubrics", "build", "--input", str(source), "--out", str(store), "--limit", "2"]) == 0
    rubrics = load_rubrics(store)
    traces = tmp_path / "traces.jsonl"
    rows = [{"id": p.id, "problem": p.problem, "reference": p.reference, "answer": p.answer,
             "trace": f"### So \\boxed{{{p.answer}}}"} for p in problems[:3]]
    traces.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "judged.jsonl"
    with LoopbackJudgeServer() as server:
        code = cli_main(["judge", "run", "--input", str(traces), "--out", str(out), "--backend", "openai",
                         "--base-url", server.base_url, "--model", "loopback", "--cache", "",
                         "--no-progress", "--set", "rubric=cached", "--set", f"rubric_path={store}"])
        prompts = [request["messages"][1]["content"] for request in server.requests]
    assert code == 1  # the third problem has no stored rubric: an ERROR row, so the run reports a failure
    # Only the two problems with a stored rubric reach the judge, each with its own checkpoints.
    assert len(prompts) == 2
    for problem, prompt in zip(problems[:2], prompts):
        assert problem.problem in prompt and "Checkpoints of the reference solution" in prompt
        checklist = prompt.split("Checkpoints of the reference solution", 1)[1]
        assert rubrics[problem.id] and all(f"{n}. {c}" in checklist for n, c in enumerate(rubrics[problem.id], 1))
    judged = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in judged] == ["ok", "ok", "error"]
    assert f"no rubric stored for problem '{problems[2].id}'" in judged[2]["error"]
