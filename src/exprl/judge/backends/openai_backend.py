"""Judging through any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp server, hosted APIs).

`openai.AsyncOpenAI` clients per base URL (several URLs = replicas, used round-robin), a
semaphore bounding the calls in flight, a hard per-call timeout, and our own bounded retries with
jittered exponential back-off on what is worth retrying (429, 5xx, connection failures, timeouts).
The client's built-in retries are off so that ours are the only ones and request counts are exact.
Every failure becomes a `JudgeResult` status; nothing is raised for a single judgment.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from exprl.errors import JudgeError
from exprl.judge.parsing import parse_score
from exprl.judge.prompts import CHARS_PER_TOKEN, SCORE_JSON_SCHEMA, PromptStyle, build_prompt
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

_MAX_BACKOFF_S = 8.0
CONNECTIONS_PER_CLIENT = 8


@dataclass
class _Attempt:
    """What one HTTP call produced: a result, or a failure and whether to try again."""

    status: JudgeStatus
    text: str = ""
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class _LoopState:
    """Clients and limiter bound to one event loop (HTTP pools and asyncio primitives are per loop).

    The clients use the SDK's aiohttp transport (`openai[aiohttp]`): the same client API with
    about half the CPU per call of the default httpx transport (0.67 vs 1.18 ms measured against a
    loopback server), which is what a trainer's process pays for every judgment.

    Each base URL gets ceil(concurrency / CONNECTIONS_PER_CLIENT) clients, so no single pool's
    bookkeeping grows with the concurrency. Clients are interleaved across URLs, so round-robin
    alternates replicas and a retry lands on the next replica.
    """

    def __init__(self, config: JudgeConfig):
        import openai

        shards = max(1, math.ceil(config.concurrency / CONNECTIONS_PER_CLIENT))
        self.clients = [openai.AsyncOpenAI(base_url=url, api_key=config.api_key or "EMPTY",
                                           max_retries=0, timeout=config.timeout_s,
                                           http_client=openai.DefaultAioHttpClient())
                        for _ in range(shards) for url in config.base_urls]
        self.next_client = itertools.cycle(self.clients)
        self.limiter = asyncio.Semaphore(max(1, config.concurrency))

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class OpenAIBackend:
    """`Backend` over OpenAI-compatible endpoints. `name` is "openai:<model>" (part of cache keys)."""

    def __init__(self, config: JudgeConfig):
        if not config.base_urls:
            raise JudgeError("the openai judge backend needs at least one base URL "
                             "(judge.base_urls, or --base-url on the command line)")
        if not config.model:
            raise JudgeError("the openai judge backend needs a model name (judge.model / --model); "
                             "it is sent to the server and is part of every cache key")
        if config.concurrency < 1 or config.timeout_s <= 0 or config.max_retries < 0:
            raise JudgeError("judge.concurrency must be >= 1, judge.timeout_s > 0 and judge.max_retries >= 0")
        self.config = config
        self.name = f"openai:{config.model}"
        self.json_mode = config.json_mode
        self.style = PromptStyle.of(config)
        self._states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = (
            weakref.WeakKeyDictionary())

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState(self.config)
        return state

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return list(await asyncio.gather(*(self.judge_one(r) for r in requests)))

    async def judge_one(self, request: JudgeRequest) -> JudgeResult:
        try:
            prompt = build_prompt(request, self.style,
                                  max_trace_chars=self.config.max_trace_tokens * CHARS_PER_TOKEN)
        except ValueError as exc:
            return JudgeResult(score=None, status=JudgeStatus.ERROR, error=str(exc))
        state = self._state()
        async with state.limiter:
            started = time.perf_counter()
            for attempt in range(self.config.max_retries + 1):
                outcome = await self._call(next(state.next_client), prompt.messages)
                if not outcome.retryable or attempt == self.config.max_retries:
                    break
                await asyncio.sleep(self._backoff(attempt, outcome.retry_after))
            latency = time.perf_counter() - started
        if outcome.status is not JudgeStatus.OK:
            return JudgeResult(score=None, status=outcome.status, raw=outcome.text, latency_s=latency,
                               truncated=prompt.truncated, error=outcome.error)
        score = parse_score(outcome.text, json_mode=self.json_mode)
        if score is None:
            return JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw=outcome.text,
                               latency_s=latency, truncated=prompt.truncated,
                               error="the judge's answer does not end with a score from 1 to 5")
        return JudgeResult(score=score, status=JudgeStatus.OK, raw=outcome.text, latency_s=latency,
                           truncated=prompt.truncated)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _MAX_BACKOFF_S)
        # Full jitter: replicas hit by the same burst do not all come back at the same instant.
        return random.uniform(0, min(self.config.retry_backoff_s * 2 ** attempt, _MAX_BACKOFF_S))

    async def _call(self, client: Any, messages: list[dict[str, str]]) -> _Attempt:
        import openai

        body: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                "temperature": self.config.temperature,
                                "max_tokens": self.config.max_new_tokens}
        if self.json_mode:
            # `json_object` with a schema: what llama.cpp and vLLM constrain on; the OpenAI
            # `json_schema` type makes llama.cpp answer HTTP 500 (docs/facts.md).
            body["response_format"] = {"type": "json_object", "schema": SCORE_JSON_SCHEMA}
        try:
            # The client's generic `post` rather than `chat.completions.create`: same transport,
            # errors and timeouts, without re-validating our own request against the typed params
            # and building pydantic models of the answer, which cost ~2 ms of CPU per call; that
            # is most of the client's cost on a trainer's CPU. cast_to=object returns the JSON.
            # wait_for bounds the whole call; httpx's own timeout is per read and a server that
            # trickles bytes would otherwise hold a slot forever.
            response = await asyncio.wait_for(
                client.post("/chat/completions", body=body, cast_to=object,
                            options={"timeout": self.config.timeout_s}),
                timeout=self.config.timeout_s)
        except (asyncio.TimeoutError, openai.APITimeoutError) as exc:
            dropped = _dropped_connection(exc)
            if dropped is not None:
                return _Attempt(JudgeStatus.ERROR, retryable=True,
                                error=f"connection to {client.base_url} failed: {dropped}")
            return _Attempt(JudgeStatus.TIMEOUT, error=f"no answer within {self.config.timeout_s:g} s",
                            retryable=True)
        except openai.APIStatusError as exc:
            code = exc.status_code
            retryable = code == 429 or code >= 500
            return _Attempt(JudgeStatus.ERROR, text=_body_text(exc), retryable=retryable,
                            error=f"HTTP {code} from {client.base_url}: {exc.message}",
                            retry_after=_retry_after(exc) if code == 429 else None)
        except openai.APIConnectionError as exc:
            return _Attempt(JudgeStatus.ERROR, retryable=True,
                            error=f"connection to {client.base_url} failed: {exc.__cause__ or exc}")
        except Exception as exc:  # e.g. a body labelled JSON that is not: one bad answer, not a crash
            return _Attempt(JudgeStatus.ERROR, error=f"unreadable answer from {client.base_url}: "
                                                     f"{type(exc).__name__}: {exc}")
        return _read_completion(response)

    async def aclose(self) -> None:
        """Close the clients bound to the running loop."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.close()

    def close(self) -> None:
        """Close the clients of every loop this backend was used on, from synchronous code.

        A trainer awaits the judge on its own long-lived loop in another thread (TRL's reward
        loop); the connections made there are closed on that loop, while it still runs.
        """
        for loop, state in list(self._states.items()):
            self._states.pop(loop, None)
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(state.close(), loop).result(timeout=10)
            else:
                loop.run_until_complete(state.close())


def _read_completion(response: Any) -> _Attempt:
    # A 200 whose body is not JSON arrives as a str; JSON of another shape has no usable
    # choices (docs/facts.md). Neither is a judgment.
    if isinstance(response, str):
        return _Attempt(JudgeStatus.ERROR, text=response[:2000],
                        error="the server answered 200 with a body that is not JSON")
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return _Attempt(JudgeStatus.ERROR, text=str(response)[:2000],
                        error="the server's JSON is not a chat completion (no choices)")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        return _Attempt(JudgeStatus.ERROR, text=str(response)[:2000],
                        error="the chat completion has no text content")
    return _Attempt(JudgeStatus.OK, text=content)


def _dropped_connection(exc: BaseException) -> BaseException | None:
    """The connection failure behind a reported timeout, if that is what it really was.

    The SDK's aiohttp transport maps every aiohttp connection error, a server closing the
    socket mid-answer included, to a connect *timeout*; a dropped connection is an error,
    not a slow judge, and is reported as one.
    """
    import aiohttp

    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
                cause, (aiohttp.ServerTimeoutError, aiohttp.SocketTimeoutError)):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _body_text(exc: Any) -> str:
    try:
        return exc.response.text[:2000]
    except Exception:  # a streamed or already-closed body has no text to keep
        return ""


def _retry_after(exc: Any) -> float | None:
    try:
        return max(0.0, float(exc.response.headers.get("retry-after")))
    except (TypeError, ValueError, AttributeError):
        return None
