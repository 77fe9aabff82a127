"""A real OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on request.

Used by the judge fault tests and by the benchmarks (judge throughput, trainer step overhead). A
real LLM server cannot be made to return a 503 twice and then succeed, cut a body short, or hang
past a timeout on demand; this one can, while still speaking real HTTP/1.1 over a real socket so
the client stack under test (the backend on aiohttp) is exercised end to end.

It is a plain asyncio server on its own thread and event loop, fast enough for hundreds of
concurrent keep-alive connections (the benchmark needs 64 requests in flight at 200 ms each).

    with LoopbackJudgeServer(latency_s=0.2) as server:
        JudgeConfig(backend="openai", base_urls=[server.base_url], model="loopback")
        ...
        server.request_count
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from typing import Any, Callable

BEHAVIOURS = ("ok", "status", "malformed", "truncated", "drop", "wrong_shape", "unparseable", "hang")
_SCORE_HINT = re.compile(r"SCORE_HINT=([0-9])")


def default_scorer(body: dict[str, Any]) -> int:
    """The score a well-behaved fake judge gives: the last `SCORE_HINT=N` in the prompt, else a hash.

    The hint lets a test choose the score through the trace it sends; the hash keeps scores varied
    and deterministic when no hint is given.
    """
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict))
    hints = _SCORE_HINT.findall(text)
    if hints:
        return int(hints[-1])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % 5 + 1


class LoopbackJudgeServer:
    """OpenAI-compatible `POST /v1/chat/completions` with a selectable behaviour.

    behaviour:
      ok           answer "Reasoning: ...\\nScore: N" (or {"reasoning", "score"} JSON when the request
                   has a response_format), N from `scorer(request_body)`, after `latency_s`.
      status       answer HTTP `status` (e.g. 429, 500, 503, 400) with an OpenAI-style error body.
      malformed    200 with a body that is not JSON.
      truncated    200 whose Content-Length promises more bytes than are sent, then close.
      drop         close the connection without answering.
      wrong_shape  200 with JSON that is not a chat completion.
      unparseable  a normal completion whose text has no score.
      hang         never answer (until the client gives up); for timeouts.
    `reply`: the whole answer text of a well-behaved request, from its body, for callers that are not
    judges (the LLM behaviour annotator); default: the judgment above.
    `faults`: only the first `faults` chat requests misbehave, the rest are answered normally
    (None: all misbehave). `latency_s` delays every answer, good or bad.
    """

    def __init__(self, behaviour: str = "ok", *, latency_s: float = 0.0, faults: int | None = None,
                 status: int = 503, scorer: Callable[[dict[str, Any]], int] = default_scorer,
                 retry_after: float | None = None, model: str = "loopback",
                 reply: Callable[[dict[str, Any]], str] | None = None):
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}, got '{behaviour}'")
        self.behaviour, self.latency_s, self.faults, self.status = behaviour, latency_s, faults, status
        self.scorer, self.retry_after, self.model, self.reply = scorer, retry_after, model, reply
        self.request_count = 0          # chat completion requests received
        self.requests: list[dict[str, Any]] = []  # their JSON bodies, in arrival order
        self.in_flight = 0
        self.max_in_flight = 0          # the most requests the server held at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "LoopbackJudgeServer":
        self._thread = threading.Thread(target=self._run, name="loopback-judge", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "LoopbackJudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            # A large backlog: 64+ clients connect at the same instant in the benchmark.
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported to start(), which re-raises in the caller's thread
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    # -- HTTP ------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_going = await self._respond(method, path, body, writer)
                if not keep_going:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return  # a client that went away, or the server stopping: nothing left to answer
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path.endswith("/models"):
            self._send(writer, 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]})
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            self._send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError:
            self._send(writer, 400, {"error": {"message": "request body is not JSON"}})
            return True
        self.request_count += 1
        self.requests.append(payload)
        misbehave = self.behaviour != "ok" and (self.faults is None or self.request_count <= self.faults)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if not misbehave:
                self._send(writer, 200, self._completion(payload, self._good_text(payload)))
                return True
            return await self._misbehave(payload, writer)
        finally:
            self.in_flight -= 1

    async def _misbehave(self, payload: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        kind = self.behaviour
        if kind == "status":
            headers = {"retry-after": str(self.retry_after)} if self.retry_after is not None else {}
            self._send(writer, self.status, {"error": {"message": f"loopback fault {self.status}",
                                                       "type": "server_error"}}, headers)
            return True
        if kind == "malformed":
            self._send_raw(writer, 200, b"<html>Bad Gateway</html> this is not JSON", "text/plain")
            return True
        if kind == "truncated":
            full = json.dumps(self._completion(payload, self._good_text(payload))).encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(full)}\r\n\r\n").encode()
            writer.write(head + full[: len(full) // 2])
            await writer.drain()
            return False
        if kind == "drop":
            return False
        if kind == "wrong_shape":
            self._send(writer, 200, {"result": "fine", "score": 5})
            return True
        if kind == "unparseable":
            self._send(writer, 200, self._completion(payload, "Reasoning: it is hard to say."))
            return True
        if kind == "hang":
            await asyncio.sleep(3600)
        return False

    def _good_text(self, payload: dict[str, Any]) -> str:
        if self.reply is not None:
            return self.reply(payload)
        score = self.scorer(payload)
        if payload.get("response_format"):
            return json.dumps({"reasoning": "loopback judgment", "score": score})
        return f"Reasoning: loopback judgment.\nScore: {score}"

    def _completion(self, payload: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-loopback-{self.request_count}", "object": "chat.completion",
            "created": int(time.time()), "model": payload.get("model", self.model),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    def _send(self, writer: asyncio.StreamWriter, status: int, obj: Any,
              headers: dict[str, str] | None = None) -> None:
        self._send_raw(writer, status, json.dumps(obj).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(writer: asyncio.StreamWriter, status: int, data: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
                f"Connection: keep-alive\r\n{extra}\r\n").encode()
        writer.write(head + data)


def main(argv: list[str] | None = None) -> int:
    """`python testing/loopback.py --latency 0.2` (or `-m testing.loopback` from the repository root):
    serve in this process until killed.

    Prints the base URL as its first line. Benchmarks run the server in its own process so that
    it does not share the client's interpreter lock and the figures are the client's alone.
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--behaviour", choices=BEHAVIOURS, default="ok")
    args = parser.parse_args(argv)
    server = LoopbackJudgeServer(args.behaviour, latency_s=args.latency).start()
    print(server.base_url, flush=True)
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
