"""The judge every caller uses: a backend behind a cache, in-flight de-duplication and bookkeeping.

`build_judge(config)` picks the backend; the returned `JudgeService` implements the `Judge`
protocol (`name`, `async judge_many`) and adds `judge_sync` for synchronous callers, `stats` and
`close()`. It never raises for a single failed judgment: a failure is a result with a status.

Bounded concurrency is the backend's job (the openai backend's semaphore is shared by every
caller of the same service); the service adds what no backend should repeat:
  * cache lookup before judging and a write-back of OK/UNPARSEABLE results after, one
    transaction per batch;
  * identical requests judged once: within one batch, and across concurrent `judge_many` calls
    (a trainer's reward workers often score the same prefix step twice);
  * results in input order, each its own object;
  * under `judge.rubric = cached`, each request's stored rubric, looked up by its `problem_id`
    (a request that already carries a rubric keeps it; one whose id has no stored rubric, or that
    has no id, is an ERROR result naming the id and never reaches the backend).
"""
from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from exprl.errors import DataError, JudgeError
from exprl.judge.cache import JudgeCache, cache_key, open_cache
from exprl.judge.prompts import PromptStyle, prompt_version
from exprl.judge.rubrics import rubrics_for, with_rubric
from exprl.judge.types import Backend, JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus


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
                 max_trace_tokens: int | None = None, rubrics: dict[str, tuple[str, ...]] | None = None):
        self.backend = backend
        self.rubrics = rubrics
        self.cache = cache
        self.name = backend.name
        self.style = style  # how the backend renders prompts: part of the cache key
        self.max_trace_tokens = max_trace_tokens
        self.stats = JudgeStats()
        self._in_flight: dict[str, asyncio.Future] = {}
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()

    def key(self, request: JudgeRequest) -> str:
        return cache_key(self.name, self._version(request), request, self.max_trace_tokens)

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One result per request, in input order; never raises for a failed judgment."""
        if self.rubrics is None:
            return await self._judge_prepared(requests)
        prepared = [self._with_stored_rubric(r) for r in requests]
        judgeable = [r for r in prepared if isinstance(r, JudgeRequest)]
        judged = iter(await self._judge_prepared(judgeable) if judgeable else [])
        refused = [r for r in prepared if isinstance(r, JudgeResult)]
        self.stats.requests += len(refused)
        self.stats.statuses.update(r.status.value for r in refused)
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

    async def _judge_prepared(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        keys = [self.key(r) for r in requests]
        self.stats.requests += len(requests)
        first_request: dict[str, JudgeRequest] = {}
        for key, request in zip(keys, requests):
            first_request.setdefault(key, request)
        self.stats.deduplicated += len(keys) - len(first_request)

        results: dict[str, JudgeResult] = {}
        waiting: dict[str, asyncio.Future] = {}
        to_judge: list[str] = []
        for key in first_request:
            if self._joinable(key):
                waiting[key] = self._in_flight[key]
                self.stats.deduplicated += 1
        lookup = [k for k in first_request if k not in waiting]
        if self.cache is not None and lookup:
            found = await asyncio.to_thread(self.cache.get_many, lookup)
            self.stats.hits += len(found)
            self.stats.misses += len(lookup) - len(found)
            results.update(found)
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
        try:
            if to_judge:
                judged = await self._judge_with_backend([first_request[k] for k in to_judge])
                self._record(judged)
                for key, result in zip(to_judge, judged):
                    results[key] = result
                    owned[key].set_result(result)
                if self.cache is not None:
                    rows = [(k, results[k], self.name, self._version(first_request[k])) for k in to_judge]
                    await asyncio.to_thread(self.cache.put_many, rows)
            for key, future in waiting.items():
                results[key] = await asyncio.shield(future)
        finally:
            for key, future in owned.items():
                if not future.done():
                    # Our caller was cancelled mid-batch: waiters get an unscorable result, not a hang.
                    future.set_result(JudgeResult(score=None, status=JudgeStatus.ERROR,
                                                  error="the call carrying this judgment was cancelled"))
                if self._in_flight.get(key) is future:
                    del self._in_flight[key]

        out = [dataclasses.replace(results[key]) for key in keys]
        self.stats.statuses.update(r.status.value for r in out)
        return out

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
    def judge_sync(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """`judge_many` from synchronous code, on a private event loop that lives as long as the
        service (so HTTP connections are reused between calls)."""
        loop = self._ensure_sync_loop()
        return asyncio.run_coroutine_threadsafe(self.judge_many(requests), loop).result()

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
        # The backend first, while the private loop still runs: its connections live there.
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
        loop = self._sync_loop
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
               "reference": ("exprl.judge.reference", "ReferenceBackend"),
               "transformers": ("exprl.judge.backends.transformers_backend", "TransformersBackend")}
    if config.backend not in choices:
        raise JudgeError(f"unknown judge backend '{config.backend}'; choose {', '.join(choices)}")
    module_name, class_name = choices[config.backend]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise JudgeError(f"judge backend '{config.backend}' is unavailable: {exc}") from exc
    return getattr(module, class_name)(config)


def build_judge(config: JudgeConfig, *, backend: Backend | None = None) -> JudgeService:
    """A `JudgeService` for `config`: its backend, its cache (config.cache_path) and, under
    `rubric = cached`, the rubric store (config.rubric_path; a missing store is an error now,
    not one failed judgment per request later)."""
    rubrics = rubrics_for(config)
    return JudgeService(backend or build_backend(config), open_cache(config.cache_path),
                        style=PromptStyle.of(config), max_trace_tokens=config.max_trace_tokens,
                        rubrics=rubrics)
