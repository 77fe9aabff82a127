"""The judge every caller uses: a backend behind a cache, in-flight de-duplication and bookkeeping.

`build_judge(config)` picks the backend; the returned `JudgeService` implements the `Judge`
protocol (`name`, `async judge_many`) and adds `judge_sync` for synchronous callers, `stats` and
`close()`. It never raises for a single failed judgment: a failure is a result with a status.

The service splits what it has to judge into calls of the backend's `requests_per_call`
requests (`exprl.judge.types.Backend`) and makes them all at once; bounded concurrency is the
backend's job (the openai backend's semaphore is shared by every caller of the same service; a
`ThreadedBackend` runs one call at a time). The service adds what no backend should repeat:
  * cache lookup before judging, and each OK/UNPARSEABLE result committed as its call returns (the
    results that arrive while a commit is under way go in the next one), so Ctrl-C or kill -9
    loses only the judgments still in flight: one call's worth each, which is why the openai and
    reference backends take one request a call and the transformers backend one generation batch;
  * `judge_many(..., on_result=f)` calls f(index, result) as each result is known, for callers
    that write or count results as they come (`exprl judge run`);
  * identical requests judged once: within one batch, and across concurrent `judge_many` calls
    (a trainer's reward workers often score the same prefix step twice);
  * results in input order, each its own object;
  * an empty response scored the lowest (`types.EMPTY_TRACE_SCORE`) without a backend call, so
    every backend scores it alike;
  * under `judge.rubric = cached`, each request's stored rubric, looked up by its `problem_id`
    (a request that already carries a rubric keeps it; one whose id has no stored rubric, or that
    has no id, is an ERROR result naming the id and never reaches the backend).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

from exprl.errors import DataError, JudgeError
from exprl.judge.cache import JudgeCache, cache_key, judgment_settings, open_cache
from exprl.judge.prompts import PromptStyle, prompt_version
from exprl.judge.rubrics import rubrics_for, with_rubric
from exprl.judge.types import (EMPTY_TRACE_RAW, EMPTY_TRACE_SCORE, Backend, JudgeConfig, JudgeRequest, JudgeResult,
                               JudgeStatus)

OnResult = Callable[[int, JudgeResult], None]
T = TypeVar("T")


@dataclass
class JudgeStats:
    """Running totals since the service was built."""

    requests: int = 0            # judgments asked for
    hits: int = 0                # answered from the cache
    misses: int = 0              # looked up in the cache and not found
    deduplicated: int = 0        # answered by an identical request already in the batch or in flight
    backend_calls: int = 0       # judgments the backend actually made
    statuses: Counter = field(default_factory=Counter)  # status value -> count, over all requests
    backend_latency_s: float = 0.0

    @property
    def mean_latency_s(self) -> float:
        """Mean latency of the judgments the backend made (cache hits excluded)."""
        return self.backend_latency_s / self.backend_calls if self.backend_calls else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["statuses"] = dict(self.statuses)
        out["mean_latency_s"] = self.mean_latency_s
        return out


class JudgeService:
    """Cache + de-duplication + stats in front of one `Backend`."""

    def __init__(self, backend: Backend, cache: JudgeCache | None = None, *, style: PromptStyle = PromptStyle(),
                 max_trace_tokens: int | None = None, rubrics: dict[str, tuple[str, ...]] | None = None,
                 settings: dict[str, Any] | None = None):
        self.backend = backend
        self.rubrics = rubrics
        self.cache = cache
        self.name = backend.name
        self.style = style  # how the backend renders prompts: part of the cache key
        self.max_trace_tokens = max_trace_tokens
        self.settings = dict(settings or {})  # the judge's settings (cache.judgment_settings): part of every key
        self.stats = JudgeStats()
        self._in_flight: dict[str, asyncio.Future] = {}
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()

    def key(self, request: JudgeRequest) -> str:
        return cache_key(self.name, self._version(request), request, self.max_trace_tokens, self.settings)

    async def judge_many(self, requests: Sequence[JudgeRequest], *,
                         on_result: OnResult | None = None) -> list[JudgeResult]:
        """One result per request, in input order; never raises for a failed judgment.
        `on_result(index, result)` is called as each request's result is known."""
        if self.rubrics is None:
            return await self._judge_prepared(requests, on_result)
        prepared = [self._with_stored_rubric(r) for r in requests]
        positions = [i for i, r in enumerate(prepared) if isinstance(r, JudgeRequest)]
        judgeable = [prepared[i] for i in positions]
        refused = [(i, r) for i, r in enumerate(prepared) if isinstance(r, JudgeResult)]
        self.stats.requests += len(refused)
        self.stats.statuses.update(r.status.value for _, r in refused)
        if on_result is not None:
            for index, result in refused:
                on_result(index, dataclasses.replace(result))
        relay = None if on_result is None else (lambda index, result: on_result(positions[index], result))
        judged = iter(await self._judge_prepared(judgeable, relay) if judgeable else [])
        return [next(judged) if isinstance(r, JudgeRequest) else r for r in prepared]

    def _with_stored_rubric(self, request: JudgeRequest) -> JudgeRequest | JudgeResult:
        if request.rubric is not None:
            return request
        if request.problem_id is None:
            return JudgeResult(score=None, status=JudgeStatus.ERROR,
                               error="judge.rubric = cached, but the request has no problem_id to look "
                                     "its rubric up by")
        try:
            return with_rubric(request, self.rubrics, request.problem_id)
        except DataError as exc:
            return JudgeResult(score=None, status=JudgeStatus.ERROR, error=str(exc))

    async def _judge_prepared(self, requests: Sequence[JudgeRequest],
                              on_result: OnResult | None = None) -> list[JudgeResult]:
        keys = [self.key(r) for r in requests]
        self.stats.requests += len(requests)
        first_request: dict[str, JudgeRequest] = {}
        indices: dict[str, list[int]] = {}
        for index, (key, request) in enumerate(zip(keys, requests)):
            first_request.setdefault(key, request)
            indices.setdefault(key, []).append(index)
        self.stats.deduplicated += len(keys) - len(first_request)

        results: dict[str, JudgeResult] = {}

        def known(key: str, result: JudgeResult) -> None:
            results[key] = result
            if on_result is not None:
                for index in indices[key]:
                    on_result(index, dataclasses.replace(result))

        waiting: dict[str, asyncio.Future] = {}
        to_judge: list[str] = []
        for key, request in first_request.items():
            if request.is_empty:  # an empty response: the lowest score, from no backend (types.EMPTY_TRACE_SCORE)
                known(key, JudgeResult(score=EMPTY_TRACE_SCORE, status=JudgeStatus.OK, raw=EMPTY_TRACE_RAW))
        for key in first_request:
            if key in results:
                continue
            if self._joinable(key):
                waiting[key] = self._in_flight[key]
                self.stats.deduplicated += 1
        lookup = [k for k in first_request if k not in waiting and k not in results]
        if self.cache is not None and lookup:
            found = await asyncio.to_thread(self.cache.get_many, lookup)
            self.stats.hits += len(found)
            self.stats.misses += len(lookup) - len(found)
            for key, result in found.items():
                known(key, result)
        # Re-check after the await: another call may have started judging one of these meanwhile.
        for key in lookup:
            if key in results:
                continue
            if self._joinable(key):
                waiting[key] = self._in_flight[key]
                self.stats.deduplicated += 1
            else:
                to_judge.append(key)

        loop = asyncio.get_running_loop()
        owned = {key: loop.create_future() for key in to_judge}
        self._in_flight.update(owned)
        writer = _CacheWriter(self.cache, self.name) if self.cache is not None else None
        try:
            if to_judge:
                async with contextlib.aclosing(self._judge_as_they_arrive(to_judge, first_request)) as arriving:
                    async for key, result in arriving:
                        self._record([result])
                        owned[key].set_result(result)
                        if writer is not None:
                            writer.add(key, result, self._version(first_request[key]))
                        known(key, result)
            for key, future in waiting.items():
                known(key, await asyncio.shield(future))
        finally:
            for key, future in owned.items():
                if not future.done():
                    # Our caller was cancelled mid-batch: waiters get an unscorable result, not a hang.
                    future.set_result(JudgeResult(score=None, status=JudgeStatus.ERROR,
                                                  error="the call carrying this judgment was cancelled"))
                if self._in_flight.get(key) is future:
                    del self._in_flight[key]
            if writer is not None:
                await writer.drain()

        out = [dataclasses.replace(results[key]) for key in keys]
        self.stats.statuses.update(r.status.value for r in out)
        return out

    async def _judge_as_they_arrive(self, keys: list[str], requests: dict[str, JudgeRequest]
                                    ) -> AsyncIterator[tuple[str, JudgeResult]]:
        """(key, result) for every key, a backend call's results at a time, in the order the calls return."""
        size = max(1, self.backend.requests_per_call)

        async def call(chunk: list[str]) -> list[tuple[str, JudgeResult]]:
            return list(zip(chunk, await self._judge_with_backend([requests[k] for k in chunk])))

        tasks = [asyncio.ensure_future(call(keys[start:start + size])) for start in range(0, len(keys), size)]
        try:
            for next_done in asyncio.as_completed(tasks):
                for arrived in await next_done:
                    yield arrived
        finally:
            # Cancelled (Ctrl-C) or abandoned: stop the calls still in flight and wait for them to
            # unwind, so none is left pending on a loop about to close.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _joinable(self, key: str) -> bool:
        # A future belongs to one event loop; a call on another loop (judge_sync's private one
        # beside a caller's own) judges the request itself rather than wait across loops.
        future = self._in_flight.get(key)
        return future is not None and future.get_loop() is asyncio.get_running_loop()

    async def _judge_with_backend(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        try:
            judged = list(await self.backend.judge_batch(requests))
            if len(judged) != len(requests):
                raise JudgeError(f"backend {self.name} returned {len(judged)} results for "
                                 f"{len(requests)} requests")
        except Exception as exc:  # a backend bug must not take the training step down with it
            return [JudgeResult(score=None, status=JudgeStatus.ERROR,
                                error=f"{type(exc).__name__} in backend {self.name}: {exc}")
                    for _ in requests]
        for result in judged:
            result.cached = False
        return judged

    def _record(self, judged: list[JudgeResult]) -> None:
        self.stats.backend_calls += len(judged)
        self.stats.backend_latency_s += sum(r.latency_s for r in judged)

    def _version(self, request: JudgeRequest) -> str:
        try:
            return prompt_version(request, self.style)
        except ValueError:
            # No prompt for this domain or mode: the backend reports that as an ERROR result;
            # the key still has to be distinct and stable.
            return "no-prompt"

    # -- synchronous use -------------------------------------------------------------------------
    def judge_sync(self, requests: Sequence[JudgeRequest], *, on_result: OnResult | None = None) -> list[JudgeResult]:
        """`judge_many` from synchronous code, on a private event loop that lives as long as the
        service (so HTTP connections are reused between calls). `on_result` runs on that loop's thread."""
        return self.run_sync(lambda: self.judge_many(requests, on_result=on_result))

    def run_sync(self, make_coroutine: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine of this service's calls on its private loop and wait for it. A
        KeyboardInterrupt while waiting cancels the coroutine (the judgments still in flight are
        abandoned; the ones that arrived are committed) and is raised again."""
        loop = self._ensure_sync_loop()

        async def main() -> T:
            return await make_coroutine()

        future = asyncio.run_coroutine_threadsafe(main(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            self._settle(loop)
            raise

    def _settle(self, loop: asyncio.AbstractEventLoop, timeout: float = 10) -> None:
        """Cancel every task still on the private loop and wait until they have unwound."""
        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout)
            except Exception:  # noqa: BLE001 - best effort on the way out; close() still stops the loop
                pass

    def _ensure_sync_loop(self) -> asyncio.AbstractEventLoop:
        with self._sync_lock:
            if self._sync_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="exprl-judge", daemon=True)
                thread.start()
                self._sync_loop, self._sync_thread = loop, thread
            return self._sync_loop

    def close(self) -> None:
        """Close the backend's connections (on every loop that used them), the private loop, the cache."""
        loop = self._sync_loop
        if loop is not None:
            self._settle(loop)
        # The backend first, while the private loop still runs: its connections live there.
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._sync_thread is not None:
                self._sync_thread.join(10)
            loop.close()
            self._sync_loop = self._sync_thread = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> "JudgeService":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_backend(config: JudgeConfig) -> Backend:
    """The backend named by `config.backend`, imported only when chosen."""
    import importlib

    choices = {"openai": ("exprl.judge.backends.openai_backend", "OpenAIBackend"),
               "reference": ("exprl.judge.backends.reference", "ReferenceBackend"),
               "transformers": ("exprl.judge.backends.transformers_backend", "TransformersBackend")}
    if config.backend not in choices:
        raise JudgeError(f"unknown judge backend '{config.backend}'; choose {', '.join(choices)}")
    module_name, class_name = choices[config.backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise JudgeError(f"judge backend '{config.backend}' is unavailable: {exc}") from exc
    return getattr(module, class_name)(config)


def check_judge(config: JudgeConfig) -> None:
    """What `build_judge(config)` would refuse, found without loading a model or opening a
    connection, so a run can stop before it writes anything."""
    rubrics_for(config)
    try:
        PromptStyle.of(config)
    except ValueError as exc:
        raise JudgeError(str(exc)) from None
    if config.backend == "transformers":
        if not config.model:
            raise JudgeError("the transformers judge backend needs a model (judge.model / --model)")
    else:
        build_backend(config)  # the openai and reference backends only read their config when built


def preflight(config: JudgeConfig, request: JudgeRequest, *, log: Callable[[str], None] = print) -> None:
    """Each endpoint of an openai judge asked for one real judgment (`request`, past the cache),
    before a run spends anything on rollouts: one that does not answer (refused, timed out, an HTTP
    error such as an unknown model) is a JudgeError naming its URL. An answer without a score is
    `log`ged, not refused: the endpoint works, and the run's breaker (`monitor.stop_unscorable_*`)
    stops it if most answers are like that. Other backends have no endpoint to ask."""
    if config.backend != "openai":
        return
    for url in config.base_urls:
        one = dataclasses.replace(config, base_urls=[url], cache_path="", max_retries=min(config.max_retries, 1),
                                  timeout_s=min(config.timeout_s, config.preflight_timeout_s))
        with build_judge(one) as judge:
            result = judge.judge_sync([request])[0]
        if result.status in (JudgeStatus.ERROR, JudgeStatus.TIMEOUT):
            raise JudgeError(f"the judge at {url} did not answer a test judgment before training "
                             f"({result.status.value}: {result.error}); start it (e.g. exprl judge serve), or correct judge.base_urls or "
                             f"judge.model, then run the same command")
        if result.status is JudgeStatus.UNPARSEABLE:
            log(f"warning: the judge at {url} answered a test judgment without a score it could read "
                f"({result.raw[:160]!r}); check judge.max_new_tokens and judge.json_mode")


def build_judge(config: JudgeConfig, *, backend: Backend | None = None) -> JudgeService:
    """A `JudgeService` for `config`: its backend, its cache (config.cache_path) and, under
    `rubric = cached`, the rubric store (config.rubric_path; a missing store is an error now,
    not one failed judgment per request later)."""
    rubrics = rubrics_for(config)
    return JudgeService(backend or build_backend(config), open_cache(config.cache_path),
                        style=PromptStyle.of(config), max_trace_tokens=config.max_trace_tokens,
                        rubrics=rubrics, settings=judgment_settings(config))


class _CacheWriter:
    """Commits results to the cache as they arrive, off the event loop. Results that arrive while a
    commit runs wait for the next one (one transaction each), so a fast judge costs few commits and
    a slow one commits every judgment on its own. `drain` writes what is left, even when cancelled."""

    def __init__(self, cache: JudgeCache, backend_name: str):
        self.cache, self.backend_name = cache, backend_name
        self.pending: list[tuple[str, JudgeResult, str, str]] = []
        self.task: asyncio.Task | None = None

    def add(self, key: str, result: JudgeResult, version: str) -> None:
        self.pending.append((key, result, self.backend_name, version))
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        while self.pending:
            rows, self.pending = self.pending, []
            await asyncio.to_thread(self.cache.put_many, rows)

    async def drain(self) -> None:
        try:
            if self.task is not None:
                await asyncio.shield(self.task)
        finally:
            if self.pending:  # cancelled while a commit ran: the rest now, in this thread
                rows, self.pending = self.pending, []
                self.cache.put_many(rows)
