"""Judging through any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp server, hosted APIs).

One aiohttp session per base URL (several URLs = replicas, used round-robin), a semaphore bounding
the calls in flight, a hard per-call timeout, and our own bounded retries with jittered
exponential back-off on what is worth retrying (429, 5xx, connection failures, timeouts). Every
failure becomes a `JudgeResult` status; nothing is raised for a single judgment.

The chat-completions call is one JSON POST, made with aiohttp directly rather than through the
OpenAI SDK: the SDK's request and response models cost about 1 ms of CPU per call on the trainer's
process (0.3 ms this way), and ExpRL-Process makes hundreds of calls per training step, each one
on the trainer's critical path.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from exprl.errors import JudgeError
from exprl.judge.parsing import parse_score, unreadable
from exprl.judge.prompts import SCORE_JSON_SCHEMA, PromptStyle, build_prompt, trace_char_budget
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

_MAX_BACKOFF_S = 8.0


@dataclass
class _Attempt:
    """What one HTTP call produced: a result, or a failure and whether to try again."""

    status: JudgeStatus
    text: str = ""
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


class _Replica:
    """One base URL and its HTTP session (aiohttp: bound to the event loop it was made on)."""

    def __init__(self, base_url: str, api_key: str, connections: int):
        import aiohttp

        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        # No aiohttp timeout: `_call` bounds each whole call itself.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                             timeout=aiohttp.ClientTimeout(total=None),
                                             headers={"Authorization": f"Bearer {api_key}"})

    def is_closed(self) -> bool:
        return self.session.closed

    async def close(self) -> None:
        await self.session.close()


class _LoopState:
    """Sessions and limiter bound to one event loop (HTTP pools and asyncio primitives are per loop)."""

    def __init__(self, config: JudgeConfig):
        self.clients = [_Replica(url, config.api_key or "EMPTY", config.concurrency) for url in config.base_urls]
        self.next_client = itertools.cycle(self.clients)
        self.limiter = asyncio.Semaphore(max(1, config.concurrency))

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


class OpenAIBackend:
    """`Backend` over OpenAI-compatible endpoints. `name` is "openai:<model>" (part of cache keys).

    One request a call, so each judgment is cached the moment it arrives; the calls the service
    makes at once wait on this backend's semaphore of `judge.concurrency` requests in flight.
    """

    requests_per_call = 1

    def __init__(self, config: JudgeConfig):
        if not config.base_urls:
            raise JudgeError("the openai judge backend needs at least one base URL "
                             "(judge.base_urls, or --base-url on the command line)")
        for index, url in enumerate(config.base_urls):
            check_base_url(url, f"judge.base_urls[{index}]")
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
        return list(await asyncio.gather(*(self._judge_request(r) for r in requests)))

    async def _judge_request(self, request: JudgeRequest) -> JudgeResult:
        try:
            prompt = build_prompt(request, self.style,
                                  max_trace_chars=trace_char_budget(self.config.max_trace_tokens))
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
        score = parse_score(outcome.text, json_mode=self.json_mode, rule=self.config.score_parsing)
        if score is None:
            return JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw=outcome.text,
                               latency_s=latency, truncated=prompt.truncated,
                               error=unreadable(self.config.score_parsing))
        return JudgeResult(score=score, status=JudgeStatus.OK, raw=outcome.text, latency_s=latency,
                           truncated=prompt.truncated)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _MAX_BACKOFF_S)
        # Full jitter: replicas hit by the same burst do not all come back at the same instant.
        return random.uniform(0, min(self.config.retry_backoff_s * 2 ** attempt, _MAX_BACKOFF_S))

    async def _call(self, replica: _Replica, messages: list[dict[str, str]]) -> _Attempt:
        import aiohttp

        body: dict[str, Any] = {"model": self.config.model, "messages": messages,
                                "temperature": self.config.temperature,
                                "max_tokens": self.config.max_new_tokens}
        if self.json_mode:
            # `json_object` with a schema: what llama.cpp and vLLM constrain on; the OpenAI
            # `json_schema` type makes llama.cpp answer HTTP 500 (docs/facts.md).
            body["response_format"] = {"type": "json_object", "schema": SCORE_JSON_SCHEMA}
        try:
            # One bound on the whole call: a server that trickles bytes must not hold a slot forever.
            async with asyncio.timeout(self.config.timeout_s):
                async with replica.session.post(replica.url, json=body) as response:
                    status, data = response.status, await response.read()
                    retry_after = response.headers.get("retry-after")
        except TimeoutError:
            return _Attempt(JudgeStatus.TIMEOUT, error=f"no answer within {self.config.timeout_s:g} s",
                            retryable=True)
        except aiohttp.ClientError as exc:  # refused, dropped, or an answer cut short
            return _Attempt(JudgeStatus.ERROR, retryable=True,
                            error=f"connection to {replica.base_url} failed: {type(exc).__name__}: {exc}")
        text = data.decode("utf-8", errors="replace")
        if status >= 400:
            retryable = status == 429 or status >= 500
            return _Attempt(JudgeStatus.ERROR, text=text[:2000], retryable=retryable,
                            error=f"HTTP {status} from {replica.base_url}: {_error_message(text)}",
                            retry_after=_seconds(retry_after) if status == 429 else None)
        try:
            answer = json.loads(data)
        except ValueError:
            # A 200 whose body is not JSON (a proxy's HTML page, say) is no judgment.
            return _Attempt(JudgeStatus.ERROR, text=text[:2000],
                            error="the server answered 200 with a body that is not JSON")
        return _read_completion(answer)

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


def check_base_url(url: Any, key: str = "judge.base_urls") -> str:
    """`url` when it is an http(s) URL with a host (and a valid port); a JudgeError naming `key`
    otherwise. Without a scheme every call would fail, each one an unscorable judgment."""
    from urllib.parse import urlsplit

    example = "e.g. http://127.0.0.1:8000/v1"
    if not isinstance(url, str) or not url.strip():
        raise JudgeError(f"{key} is empty; give the judge server's base URL, {example}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise JudgeError(f"{key} = {url!r} is not a URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https"):
        what = "has no scheme" if not parts.scheme or "://" not in url else f"has scheme '{parts.scheme}'"
        raise JudgeError(f"{key} = {url!r} {what}; a judge endpoint is an http:// or https:// URL, {example}")
    if not parts.hostname:
        raise JudgeError(f"{key} = {url!r} has no host; {example}")
    if port == 0:
        raise JudgeError(f"{key} = {url!r} has port 0; {example}")
    return url


def _read_completion(response: Any) -> _Attempt:
    # JSON of another shape has no usable choices: not a judgment.
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


def _error_message(text: str) -> str:
    """The message of an OpenAI-style error body ({"error": {"message": ...}}), else the body's start."""
    try:
        error = json.loads(text).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message
    except (ValueError, AttributeError):
        pass
    return text[:200]


def _seconds(header: str | None) -> float | None:
    try:
        return max(0.0, float(header)) if header is not None else None
    except ValueError:
        return None
