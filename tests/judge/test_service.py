"""JudgeService: cache in front of the backend, identical requests judged once, failures as statuses."""
from __future__ import annotations

import asyncio

from exprl.judge.backends import ThreadedBackend
from testing.loopback import LoopbackJudgeServer
from exprl.judge.service import JudgeService, build_judge
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus


def config(url, cache_path, **kw) -> JudgeConfig:
    return JudgeConfig(backend="openai", base_urls=[url], model="loopback-judge",
                       cache_path=str(cache_path), timeout_s=2.0, max_retries=1, retry_backoff_s=0.01, **kw)


def req(i: int = 0, hint: int = 4) -> JudgeRequest:
    return JudgeRequest(problem="p", reference="r", trace=f"trace {i} SCORE_HINT={hint}")


def test_second_run_is_served_from_the_cache(tmp_path):
    db = tmp_path / "cache.sqlite"
    with LoopbackJudgeServer() as server:
        with build_judge(config(server.base_url, db)) as judge:
            first = judge.judge_sync([req(i) for i in range(4)])
            assert judge.stats.misses == 4 and judge.stats.hits == 0
        with build_judge(config(server.base_url, db)) as judge:  # a new process would see the same
            second = judge.judge_sync([req(i) for i in range(4)] + [req(9)])
            assert judge.stats.hits == 4 and judge.stats.misses == 1
    assert server.request_count == 5
    assert [r.score for r in second[:4]] == [r.score for r in first]
    assert all(r.cached for r in second[:4]) and not second[4].cached
    assert not any(r.cached for r in first)


def test_failures_are_not_cached_and_are_retried_next_time(tmp_path):
    db = tmp_path / "cache.sqlite"
    with LoopbackJudgeServer("status", status=503) as down:
        with build_judge(config(down.base_url, db)) as judge:
            (failed,) = judge.judge_sync([req()])
    assert failed.status is JudgeStatus.ERROR
    with LoopbackJudgeServer() as up:
        with build_judge(config(up.base_url, db)) as judge:
            (result,) = judge.judge_sync([req()])
            assert judge.stats.hits == 0
    assert result.ok and not result.cached and up.request_count == 1


def test_unparseable_is_cached(tmp_path):
    db = tmp_path / "cache.sqlite"
    with LoopbackJudgeServer("unparseable") as server:
        for _ in range(2):
            with build_judge(config(server.base_url, db)) as judge:
                (result,) = judge.judge_sync([req()])
                assert result.status is JudgeStatus.UNPARSEABLE
    assert server.request_count == 1 and result.cached


def test_identical_requests_in_one_batch_hit_the_server_once(tmp_path):
    with LoopbackJudgeServer(latency_s=0.05) as server:
        with build_judge(config(server.base_url, "")) as judge:
            results = judge.judge_sync([req(1, hint=2)] * 8 + [req(2, hint=5)])
            assert judge.stats.deduplicated == 7
    assert server.request_count == 2
    assert [r.score for r in results] == [2] * 8 + [5]
    assert len({id(r) for r in results}) == 9  # each caller gets its own object


def test_identical_requests_in_flight_from_concurrent_calls_hit_the_server_once(tmp_path):
    with LoopbackJudgeServer(latency_s=0.2) as server:
        judge = build_judge(config(server.base_url, tmp_path / "c.sqlite"))

        async def main():
            calls = [judge.judge_many([req(7, hint=3)]) for _ in range(6)]
            out = await asyncio.gather(*calls)
            await judge.backend.aclose()
            return out

        results = asyncio.run(main())
        judge.close()
    assert server.request_count == 1
    assert [r[0].score for r in results] == [3] * 6


class ExplodingBackend:
    name = "exploding"
    requests_per_call = 1

    async def judge_batch(self, requests):
        raise RuntimeError("boom")


class CountingBackend:
    name = "counting"
    requests_per_call = 2

    def __init__(self):
        self.seen = 0

    async def judge_batch(self, requests):
        self.seen += len(requests)
        return [JudgeResult(score=2, status=JudgeStatus.OK, latency_s=0.5) for _ in requests]


def test_a_backend_that_raises_gives_error_results():
    service = JudgeService(ExplodingBackend())
    results = service.judge_sync([req(1), req(2)])
    service.close()
    assert [r.status for r in results] == [JudgeStatus.ERROR] * 2
    assert all(r.score is None and "boom" in r.error for r in results)
    assert service.stats.statuses["error"] == 2


def test_stats_count_statuses_and_latency(tmp_path):
    backend = CountingBackend()
    service = JudgeService(backend)
    service.judge_sync([req(1), req(2), req(1)])
    assert backend.seen == 2
    stats = service.stats.as_dict()
    assert stats["requests"] == 3 and stats["backend_calls"] == 2 and stats["deduplicated"] == 1
    assert stats["statuses"] == {"ok": 3} and stats["mean_latency_s"] == 0.5
    service.close()


def test_close_closes_connections_made_on_another_threads_loop(tmp_path):
    """A trainer awaits the judge on its own loop in a daemon thread (TRL's reward loop)."""
    import threading

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with LoopbackJudgeServer() as server:
            judge = build_judge(config(server.base_url, ""))
            results = asyncio.run_coroutine_threadsafe(judge.judge_many([req(1), req(2)]), loop).result(10)
            assert [r.ok for r in results] == [True, True]
            clients = [c for state in judge.backend._states.values() for c in state.clients]
            assert clients and not any(c.is_closed() for c in clients)
            judge.close()
            assert all(c.is_closed() for c in clients)
            assert not judge.backend._states
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


class SizedBackend:
    """Records the size of every call; answers after `delay_s`."""

    name = "sized"

    def __init__(self, requests_per_call: int, delay_s: float = 0.0):
        self.requests_per_call, self.delay_s, self.calls = requests_per_call, delay_s, []

    async def judge_batch(self, requests):
        self.calls.append(len(requests))
        await asyncio.sleep(self.delay_s)
        return [JudgeResult(score=3, status=JudgeStatus.OK) for _ in requests]


def test_the_backend_is_called_with_at_most_requests_per_call_all_calls_at_once():
    import time

    backend = SizedBackend(requests_per_call=2, delay_s=0.2)
    service = JudgeService(backend)
    arrived = []
    started = time.monotonic()
    results = service.judge_sync([req(i) for i in range(5)], on_result=lambda i, r: arrived.append(i))
    took = time.monotonic() - started
    service.close()
    assert sorted(backend.calls) == [1, 2, 2] and len(results) == 5 and all(r.ok for r in results)
    assert took < 0.5  # three calls of 0.2 s each, made at once, not one after another
    assert sorted(arrived) == [0, 1, 2, 3, 4]


class SlowSyncBackend(ThreadedBackend):
    name = "slow-sync"

    def __init__(self):
        self.judged, self.threads = [], set()

    def judge_all(self, requests):
        import threading
        import time

        self.threads.add(threading.current_thread().name)
        time.sleep(0.1)
        self.judged += [r.trace for r in requests]
        return [JudgeResult(score=2, status=JudgeStatus.OK) for _ in requests]


def test_a_sync_backend_runs_in_its_own_worker_one_call_at_a_time():
    backend = SlowSyncBackend()

    async def main():
        return await asyncio.gather(backend.judge_batch([req(1)]), backend.judge_batch([req(2)]))

    first, second = asyncio.run(main())
    assert first[0].score == second[0].score == 2
    assert backend.threads == {"exprl-judge-slow-sync_0"}  # not the caller's thread, and one worker
    backend.close()


def test_cancelling_the_caller_drops_the_calls_not_yet_started():
    backend = SlowSyncBackend()
    service = JudgeService(backend)

    async def main():
        task = asyncio.ensure_future(service.judge_many([req(i) for i in range(20)]))
        await asyncio.sleep(0.15)  # the first call or two have run
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    import time

    time.sleep(0.3)  # a call left running would have judged more by now
    assert 1 <= len(backend.judged) <= 3
    service.close()
