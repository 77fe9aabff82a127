"""The OpenAI backend against a real loopback HTTP server that fails on purpose.

Each fault must end in the right status, be retried only when retrying can help (asserted through
the number of requests the server received), never raise into the caller, and never yield a number.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from exprl.errors import JudgeError
from testing.loopback import LoopbackJudgeServer
from exprl.judge.prompts import FENCE_TAG, SCORE_JSON_SCHEMA
from exprl.judge.service import build_judge
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeStatus


def config(*urls, **kw) -> JudgeConfig:
    base = dict(backend="openai", base_urls=list(urls), model="loopback-judge", cache_path="",
                timeout_s=2.0, max_retries=2, retry_backoff_s=0.01)
    base.update(kw)
    return JudgeConfig(**base)


def request(hint: int = 3, tag: str = "") -> JudgeRequest:
    return JudgeRequest(problem="What is 2+3?", reference="2+3=5. \\boxed{5}",
                        trace=f"It is 5. SCORE_HINT={hint} {tag}")


def judge_one(server, **kw):
    with build_judge(config(server.base_url, **kw)) as judge:
        (result,) = judge.judge_sync([request()])
    return result


def test_good_answers_come_back_in_input_order_with_scores():
    with LoopbackJudgeServer(latency_s=0.01) as server, build_judge(config(server.base_url)) as judge:
        hints = [5, 1, 4, 2, 3, 3]
        results = judge.judge_sync([request(h, tag=str(i)) for i, h in enumerate(hints)])
    assert [r.score for r in results] == hints
    assert all(r.status is JudgeStatus.OK and r.latency_s > 0 and not r.cached for r in results)
    assert results[0].reward == 1.0 and results[1].reward == 0.0
    assert results[0].raw.endswith("Score: 5")
    body = server.requests[0]
    assert body["model"] == "loopback-judge" and body["temperature"] == 0.0 and body["max_tokens"] == 2048
    assert "response_format" not in body
    assert FENCE_TAG in body["messages"][1]["content"]


def test_json_mode_sends_a_schema_and_reads_the_json_score():
    with LoopbackJudgeServer() as server, build_judge(config(server.base_url, json_mode=True)) as judge:
        (result,) = judge.judge_sync([request(4)])
    assert result.status is JudgeStatus.OK and result.score == 4
    assert json.loads(result.raw)["score"] == 4
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_object" and fmt["schema"] == SCORE_JSON_SCHEMA


@pytest.mark.parametrize("status_code", [429, 500, 503])
def test_retryable_status_is_retried_until_success(status_code):
    with LoopbackJudgeServer("status", status=status_code, faults=2, retry_after=0) as server:
        result = judge_one(server)
    assert result.status is JudgeStatus.OK and result.score == 3
    assert server.request_count == 3


def test_retries_are_bounded_and_end_unscorable():
    with LoopbackJudgeServer("status", status=503) as server:
        result = judge_one(server, max_retries=2)
    assert result.status is JudgeStatus.ERROR and result.score is None and result.reward is None
    assert "503" in result.error
    assert server.request_count == 3  # one try + two retries; the client's own retries are off


@pytest.mark.parametrize("status_code", [400, 401, 404, 422])
def test_other_4xx_is_not_retried(status_code):
    with LoopbackJudgeServer("status", status=status_code) as server:
        result = judge_one(server)
    assert result.status is JudgeStatus.ERROR and result.score is None
    assert str(status_code) in result.error
    assert server.request_count == 1


@pytest.mark.parametrize("behaviour,message", [("malformed", "not JSON"), ("wrong_shape", "no choices")])
def test_bad_200_bodies_are_errors_without_retry(behaviour, message):
    with LoopbackJudgeServer(behaviour) as server:
        result = judge_one(server)
    assert result.status is JudgeStatus.ERROR and result.score is None
    assert message in result.error
    assert server.request_count == 1


@pytest.mark.parametrize("behaviour", ["truncated", "drop"])
def test_broken_connections_are_retried_then_error(behaviour):
    with LoopbackJudgeServer(behaviour) as server:
        result = judge_one(server, max_retries=1)
    assert result.status is JudgeStatus.ERROR and result.score is None
    assert "connection" in result.error
    assert server.request_count == 2


def test_broken_connection_then_recovery():
    with LoopbackJudgeServer("drop", faults=1) as server:
        result = judge_one(server)
    assert result.status is JudgeStatus.OK and server.request_count == 2


def test_timeout_is_its_own_status_and_is_retried():
    with LoopbackJudgeServer("hang") as server:
        result = judge_one(server, timeout_s=0.3, max_retries=1)
    assert result.status is JudgeStatus.TIMEOUT and result.score is None
    assert server.request_count == 2


def test_slow_server_past_the_timeout():
    with LoopbackJudgeServer(latency_s=1.0) as server:
        result = judge_one(server, timeout_s=0.2, max_retries=0)
    assert result.status is JudgeStatus.TIMEOUT and server.request_count == 1


def test_answer_without_a_score_is_unparseable_and_keeps_the_text():
    with LoopbackJudgeServer("unparseable") as server:
        result = judge_one(server)
    assert result.status is JudgeStatus.UNPARSEABLE and result.score is None and result.reward is None
    assert result.raw == "Reasoning: it is hard to say."
    assert server.request_count == 1


def test_replicas_are_used_round_robin():
    with LoopbackJudgeServer() as a, LoopbackJudgeServer() as b:
        with build_judge(config(a.base_url, b.base_url, concurrency=1)) as judge:
            results = judge.judge_sync([request(tag=str(i)) for i in range(10)])
    assert [r.ok for r in results] == [True] * 10
    assert a.request_count == 5 and b.request_count == 5


def test_a_retry_moves_to_the_next_replica():
    with LoopbackJudgeServer("status", status=503) as down, LoopbackJudgeServer() as up:
        with build_judge(config(down.base_url, up.base_url, concurrency=1)) as judge:
            (result,) = judge.judge_sync([request()])
    assert result.ok and down.request_count == 1 and up.request_count == 1


def test_concurrency_is_bounded():
    with LoopbackJudgeServer(latency_s=0.1) as server:
        with build_judge(config(server.base_url, concurrency=3)) as judge:
            results = judge.judge_sync([request(tag=str(i)) for i in range(9)])
    assert [r.ok for r in results] == [True] * 9
    assert server.max_in_flight == 3


def test_long_trace_is_cut_and_reported():
    with LoopbackJudgeServer() as server, build_judge(config(server.base_url, max_trace_tokens=50)) as judge:
        long_trace = "start " + "x" * 5000 + " end SCORE_HINT=2"
        (result,) = judge.judge_sync([JudgeRequest(problem="p", reference="r", trace=long_trace)])
    assert result.ok and result.truncated
    sent = server.requests[0]["messages"][1]["content"]
    assert "characters cut" in sent and "x" * 5000 not in sent


def test_unknown_domain_is_an_error_result_not_an_exception():
    with LoopbackJudgeServer() as server, build_judge(config(server.base_url)) as judge:
        bad = JudgeRequest(problem="p", reference="r", trace="t", domain="astrology")
        good, failed = judge.judge_sync([request(), bad])
    assert good.ok and failed.status is JudgeStatus.ERROR and "astrology" in failed.error
    assert server.request_count == 1


def test_judge_many_works_on_the_callers_own_event_loop():
    with LoopbackJudgeServer() as server:
        judge = build_judge(config(server.base_url))

        async def main():
            first = await judge.judge_many([request(2)])
            second = await judge.judge_many([request(5)])
            await judge.backend.aclose()
            return first + second

        results = asyncio.run(main())
        judge.close()
    assert [r.score for r in results] == [2, 5]


def test_misconfiguration_is_a_judge_error():
    with pytest.raises(JudgeError, match="base URL"):
        build_judge(config())
    with pytest.raises(JudgeError, match="model"):
        build_judge(config("http://127.0.0.1:9/v1", model=""))
