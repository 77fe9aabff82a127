"""Start a judge model behind an OpenAI-compatible endpoint: llama.cpp for GGUF files, vLLM otherwise.

`JudgeServer` is a context manager around the server process: it picks a free port when none is
given, waits until `GET /v1/models` answers, reports the server's own stderr when it dies on the
way up, and stops it (SIGTERM, then SIGKILL) on exit. `exprl judge serve` starts one per replica.

What llama-cpp-python 0.3.36's server (`llama_cpp/server/settings.py`, `app.py`) offers a judge,
and what it does not: one `Llama` context per model and a lock around it, so requests are
served one at a time: no parallel slots, no continuous batching (llama.cpp's own C++
`llama-server` has both; this package does not ship it). Each request reuses the KV cache of the
longest common prefix with the previous request's tokens, which the judge prompts' shared-first
layout turns into a cache of a problem's shared part. `--cache true` adds a RAM cache of whole
states, saved after every completion and searched by longest prefix: it helps only when
requests of different problems interleave on one server, and copying a state per request cost
about 14% more CPU per judgment in our measurement, so it stays off. Parallelism on a CPU comes
from replicas: several single-thread servers behind the judge's round-robin `base_urls`.
"""
from __future__ import annotations

import collections
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from exprl.errors import ServerError

_STDERR_LINES = 40
# llama.cpp's worker threads spin at barriers: on a shared 2-core machine (load ~10) one server with
# 2 threads gave 0.018 judgments/s and one with 1 thread 0.14 (docs/scaling.md). One thread per
# replica, prompt and generation alike, unless told otherwise.
LLAMA_CPP_THREADS = 1
# Room for a judge prompt at the default judge.max_trace_tokens (8192) is the model's own limit for
# SmolLM2; the server's default of 2048 refused longer prompts. A larger model takes --extra --n_ctx.
LLAMA_CPP_CONTEXT = 8192


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def engine_for(model: str) -> str:
    """llama.cpp for a .gguf file, vLLM for anything else."""
    return "llama.cpp" if model.lower().endswith(".gguf") else "vllm"


class JudgeServer:
    """One OpenAI-compatible server process serving `model`.

    `engine` defaults to llama.cpp for a `.gguf` file and vLLM otherwise; `threads` is llama.cpp's
    `--n_threads` and `--n_threads_batch` (default `LLAMA_CPP_THREADS`); `extra_args` go to the
    server's command line last, so they override exprl's choices (`--n_ctx`, `--logits_all`, ...).
    """

    def __init__(self, model: str | os.PathLike, *, engine: str | None = None, host: str = "127.0.0.1",
                 port: int | None = None, threads: int | None = None, extra_args: Sequence[str] = (),
                 startup_timeout_s: float | None = None, served_model_name: str | None = None):
        self.model = str(model)
        self.engine = engine or engine_for(self.model)
        if self.engine not in ("llama.cpp", "vllm"):
            raise ServerError(f"unknown server engine '{self.engine}'; choose llama.cpp or vllm")
        self.host = host
        self.port = port or free_port(host)
        self.threads = threads
        self.extra_args = list(extra_args)
        # llama.cpp maps a GGUF in about a second; vLLM loads weights and captures CUDA graphs.
        self.startup_timeout_s = startup_timeout_s or (120.0 if self.engine == "llama.cpp" else 900.0)
        self.served_model_name = served_model_name
        self.process: subprocess.Popen | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._stderr_reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        if self.engine == "llama.cpp":
            if not Path(self.model).is_file():
                raise ServerError(f"GGUF model file not found: {self.model}")
            if importlib.util.find_spec("llama_cpp") is None:
                raise ServerError("llama.cpp's server is not installed: pip install "
                                  "'llama-cpp-python[server]==0.3.36' (or `pip install exprl[judge-server]`)")
            threads = str(self.threads or LLAMA_CPP_THREADS)
            # logits_all false: the server's default keeps every prompt token's logits (a judge needs
            # none), which cost 12% more CPU per prefilled token and n_ctx x vocab floats of memory.
            cmd = [sys.executable, "-m", "llama_cpp.server", "--model", self.model,
                   "--host", self.host, "--port", str(self.port), "--n_threads", threads,
                   "--n_threads_batch", threads, "--n_ctx", str(LLAMA_CPP_CONTEXT), "--logits_all", "false"]
            if self.served_model_name:
                cmd += ["--model_alias", self.served_model_name]
        else:
            if importlib.util.find_spec("vllm") is None:
                raise ServerError(f"serving '{self.model}' needs vLLM (a GPU machine: pip install "
                                  "exprl[gpu]); on CPU, serve a .gguf file with llama.cpp")
            # The `vllm` console script of this interpreter's environment, not whatever is on PATH.
            script = Path(sys.executable).parent / "vllm"
            launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "vllm.entrypoints.cli.main"]
            cmd = launcher + ["serve", self.model, "--host", self.host, "--port", str(self.port)]
            if self.served_model_name:
                cmd += ["--served-model-name", self.served_model_name]
        return cmd + self.extra_args

    def start(self) -> "JudgeServer":
        if self.process is not None:
            return self
        cmd = self.command()
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        errors="replace", start_new_session=True)
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _drain_stderr(self) -> None:
        # Kept short and drained continuously: a full pipe would block the server.
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr_tail.append(line.rstrip())

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.host}:{self.port}/v1/models"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                if self._stderr_reader is not None:
                    self._stderr_reader.join(timeout=2)
                raise ServerError(f"the {self.engine} server for {self.model} exited with code {code} "
                                  f"before answering; its stderr ends with:\n{self.stderr_tail()}")
            if self.ready(url):
                return
            time.sleep(0.2)
        raise ServerError(f"the {self.engine} server for {self.model} did not answer {url} within "
                          f"{self.startup_timeout_s:.0f} s; its stderr ends with:\n{self.stderr_tail()}")

    @staticmethod
    def ready(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def model_id(self) -> str:
        """The model name the server expects in requests (its first entry in /v1/models)."""
        import json

        with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as response:
            data = json.load(response)
        try:
            return data["data"][0]["id"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ServerError(f"{self.base_url}/models answered without a model: {data!r}") from exc

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)  # its own session: workers go too
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        if self._stderr_reader is not None:
            self._stderr_reader.join(timeout=2)  # EOF follows the exit; then the pipe can close
        if process.stderr is not None:
            process.stderr.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> "JudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
