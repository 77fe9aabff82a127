"""Judge backends: each turns `JudgeRequest`s into `JudgeResult`s through the one protocol
`exprl.judge.types.Backend` (`name`, `requests_per_call`, `async judge_batch`).

    openai_backend.OpenAIBackend             async by nature (HTTP): implements the protocol itself
    reference.ReferenceBackend               blocking (CPU arithmetic) \\ both `ThreadedBackend`s: the
    transformers_backend.TransformersBackend blocking (generation)     / one sync -> async adapter

The backend modules are imported lazily by `exprl.judge.service.build_backend`, so that choosing one
backend never imports another's dependencies (openai, torch); this package module imports neither.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from exprl.judge.types import JudgeRequest, JudgeResult

_EXECUTOR_LOCK = threading.Lock()


class ThreadedBackend:
    """The one adapter from blocking judging to the async `Backend` protocol.

    A subclass sets `name` and `requests_per_call` and implements the synchronous `judge_all`;
    `judge_batch` runs it in the backend's own worker thread, one call at a time, so the caller's
    event loop stays free and two calls never compete for the same CPU or model. A call still
    waiting for the worker when its caller is cancelled (Ctrl-C) never starts; the one running
    finishes, which is why a backend whose requests can each take seconds keeps `requests_per_call`
    at 1. Synchronous code may call `judge_all` directly.
    """

    name: str
    requests_per_call: int = 1
    _executor: ThreadPoolExecutor | None = None

    def judge_all(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        raise NotImplementedError

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return await asyncio.get_running_loop().run_in_executor(self._worker(), self.judge_all, list(requests))

    def _worker(self) -> ThreadPoolExecutor:
        with _EXECUTOR_LOCK:  # a service's private loop and a trainer's loop may both be first
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"exprl-judge-{self.name}")
            return self._executor

    def close(self) -> None:
        """Drop the calls still waiting for the worker; the one running finishes on its own."""
        with _EXECUTOR_LOCK:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
