"""The real llama.cpp judge server: lifecycle, and real SmolLM2 judgments through the openai backend."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from exprl.errors import ServerError
from exprl.judge.server import JudgeServer
from exprl.weights import smollm2_gguf_path
from exprl.judge.service import build_judge
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeStatus

pytestmark = [pytest.mark.llama_server, pytest.mark.slow]

PROBLEM = "Start at 7. Add 5. Multiply by 3. Work modulo 100."
REFERENCE = r"a = 12, b = 36, so \boxed{36}"
# Room for JSON_REASONING_MAX_CHARS of reasoning (about 90 SmolLM2 tokens) plus the score.
JSON_TOKENS = 128


def traces(n: int) -> list[str]:
    return [f"### 7 + 5 = 12\n### 12 * 3 = {36 + i}\n\\boxed{{{36 + i}}}" for i in range(n)]


def config(server: JudgeServer, **kw) -> JudgeConfig:
    fields = dict(backend="openai", base_urls=[server.base_url], model=server.model_id(),
                  cache_path="", max_new_tokens=48, timeout_s=120)
    return JudgeConfig(**{**fields, **kw})


def assert_well_formed(result):
    assert result.status in (JudgeStatus.OK, JudgeStatus.UNPARSEABLE), result.error
    assert result.raw.strip()
    if result.status is JudgeStatus.OK:
        assert result.score in range(1, 6)
    else:
        assert result.score is None and result.reward is None


def test_server_answers_models_and_reports_its_base_url(llama_judge_server):
    assert llama_judge_server.running
    assert llama_judge_server.base_url.startswith("http://127.0.0.1:")
    assert llama_judge_server.base_url.endswith("/v1")
    assert llama_judge_server.model_id()


def test_real_judgments_in_text_mode_are_parsed_or_unparseable(llama_judge_server):
    requests = [JudgeRequest(problem=PROBLEM, reference=REFERENCE, trace=trace) for trace in traces(2)]
    with build_judge(config(llama_judge_server)) as judge:
        results = judge.judge_sync(requests)
    assert len(results) == 2
    for result in results:
        assert_well_formed(result)


def test_json_mode_grades_close_their_object_and_parse(llama_judge_server):
    # The bounded reasoning field forces the object closed within ~90 tokens, so with room for it
    # nearly every grade parses; one UNPARSEABLE in four is tolerated, not a majority.
    requests = [JudgeRequest(problem=PROBLEM, reference=REFERENCE, trace=trace) for trace in traces(4)]
    with build_judge(config(llama_judge_server, json_mode=True, max_new_tokens=JSON_TOKENS)) as judge:
        results = judge.judge_sync(requests)
    for result in results:
        assert_well_formed(result)
        assert result.raw.lstrip().startswith("{"), result.raw
    ok = [r for r in results if r.status is JudgeStatus.OK]
    assert len(ok) >= 3, [r.raw for r in results]
    for result in ok:
        assert json.loads(result.raw, strict=False)["score"] == result.score


def test_eight_concurrent_judgments_all_come_back_with_statuses(llama_judge_server):
    requests = [JudgeRequest(problem=PROBLEM, reference=REFERENCE, trace=trace) for trace in traces(8)]
    with build_judge(config(llama_judge_server, json_mode=True, concurrency=8)) as judge:
        async def two_callers_at_once():
            return await asyncio.gather(judge.judge_many(requests[:4]), judge.judge_many(requests[4:]))
        first, second = asyncio.run(two_callers_at_once())
    results = first + second
    assert len(results) == 8
    for result in results:
        assert_well_formed(result)
    assert judge.stats.backend_calls == 8 and sum(judge.stats.statuses.values()) == 8


def test_a_prompt_past_the_servers_own_default_context_is_judged(llama_judge_server):
    # llama_cpp.server's default n_ctx is 2048 tokens; a judge prompt of a few thousand tokens (a
    # long trace) must be judged, not refused. The same prompt under --n_ctx 2048 (extra arguments
    # come last and win) is the ERROR a too-small context gives.
    long_trace = " ".join(f"### step {i}: 7 + {i} = {7 + i}." for i in range(100))
    request = JudgeRequest(problem=PROBLEM, reference=REFERENCE, trace=long_trace)
    with build_judge(config(llama_judge_server, max_new_tokens=4, max_retries=0)) as judge:
        assert_well_formed(judge.judge_sync([request])[0])
    with JudgeServer(smollm2_gguf_path(), extra_args=["--n_ctx", "2048"]) as small, \
            build_judge(config(small, max_new_tokens=4, max_retries=0)) as judge:
        refused = judge.judge_sync([request])[0]
    assert refused.status is JudgeStatus.ERROR and "HTTP 400" in refused.error, refused


def test_server_stops_cleanly_and_frees_its_port():
    server = JudgeServer(smollm2_gguf_path(), threads=1)
    with server:
        process = server.process
        models = f"http://127.0.0.1:{server.port}/v1/models"
        with urllib.request.urlopen(models, timeout=5) as response:
            assert response.status == 200
    assert process.poll() is not None and not server.running
    assert not JudgeServer.ready(models)


def test_a_server_that_dies_on_start_is_a_clear_error_with_its_stderr(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a gguf file")
    with pytest.raises(ServerError) as info:
        JudgeServer(broken, threads=1, startup_timeout_s=60).start()
    message = str(info.value)
    assert "exited with code" in message and str(broken) in message
    assert "stderr ends with" in message and len(message.split("stderr ends with:\n", 1)[1]) > 0


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ServerError, match="GGUF model file not found"):
        JudgeServer(tmp_path / "absent.gguf").start()


def test_cli_serve_prints_the_base_url_and_stops_on_sigterm():
    import signal
    import subprocess
    import sys

    from exprl.judge.server import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "exprl.cli", "judge", "serve", "--model", "smollm2",
                                "--port", str(port), "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line == f"http://127.0.0.1:{port}/v1", process.stderr.read() if not line else line
        assert JudgeServer.ready(f"{line}/models")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not JudgeServer.ready(f"{line}/models")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
