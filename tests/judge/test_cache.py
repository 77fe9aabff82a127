"""The SQLite judgment cache: keys, what is stored, concurrent writers, and a writer killed mid-batch."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exprl.errors import JudgeError
from exprl.judge.cache import JudgeCache, cache_key, default_cache_path, open_cache
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

BASE = JudgeRequest(problem="p", reference="r", trace="t", mode="prefix", context="c")

WRITER = textwrap.dedent("""
    import sys
    from exprl.judge.cache import JudgeCache
    from exprl.judge.types import JudgeResult, JudgeStatus
    path, tag, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = JudgeCache(path)
    i = 0
    while batches < 0 or i < batches:
        rows = [(f"{tag}-{i}-{j}", JudgeResult(score=3, status=JudgeStatus.OK, raw="x" * 2000), "b", "v")
                for j in range(50)]
        cache.put_many(rows)
        i += 1
        if i == 1:
            print("first batch committed", flush=True)
""")


def ok(score=4, raw="Score: 4"):
    return JudgeResult(score=score, status=JudgeStatus.OK, raw=raw, latency_s=0.25)


@pytest.mark.parametrize("change", [
    dict(problem="p2"), dict(reference="r2"), dict(reference=None), dict(trace="t2"), dict(context=""),
    dict(mode="outcome"), dict(domain="science"), dict(rubric=("a",)), dict(answer="5")])
def test_every_input_changes_the_key(change):
    other = JudgeRequest(**{**BASE.__dict__, **change})
    assert cache_key("openai:m", "v1", other, 100) != cache_key("openai:m", "v1", BASE, 100)


def test_backend_version_and_budget_change_the_key():
    key = cache_key("openai:m", "v1", BASE, 100)
    assert key == cache_key("openai:m", "v1", BASE, 100)
    assert key != cache_key("openai:other", "v1", BASE, 100)
    assert key != cache_key("openai:m", "v2", BASE, 100)
    assert key != cache_key("openai:m", "v1", BASE, 200)


@pytest.mark.parametrize("change", [dict(prompt_layout="paper"), dict(known_answer=True), dict(json_mode=True),
                                    dict(untrusted_fence=False), dict(score_parsing="first-score")])
def test_every_prompt_setting_changes_the_services_key(change):
    # The service keys with the version of the prompt its backend renders; a setting that changes
    # the rendered prompt must never be answered from entries written under another.
    from exprl.judge.service import build_judge

    with build_judge(JudgeConfig(backend="reference", cache_path="")) as default, \
            build_judge(JudgeConfig(backend="reference", cache_path="", **change)) as changed:
        assert default.key(BASE) != changed.key(BASE)


def test_only_ok_and_unparseable_are_stored(tmp_path):
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        written = cache.put_many([
            ("ok", ok(), "b", "v"),
            ("unp", JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw="hmm"), "b", "v"),
            ("timeout", JudgeResult(score=None, status=JudgeStatus.TIMEOUT), "b", "v"),
            ("error", JudgeResult(score=None, status=JudgeStatus.ERROR, error="503"), "b", "v")])
        assert written == 2
        found = cache.get_many(["ok", "unp", "timeout", "error", "never"])
        assert set(found) == {"ok", "unp"}
        assert found["ok"].score == 4 and found["ok"].cached and found["ok"].raw == "Score: 4"
        assert found["ok"].latency_s == 0.25
        assert found["unp"].status is JudgeStatus.UNPARSEABLE and found["unp"].score is None
        assert (cache.hits, cache.misses) == (2, 3)
    # Persistent across connections; WAL mode on disk.
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        assert len(cache) == 2
    assert sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_path_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "exprl" / "judge.sqlite"
    cache = open_cache(None)
    assert cache.path == default_cache_path() and cache.path.is_file()
    cache.close()
    assert open_cache("") is None
    explicit = open_cache(str(tmp_path / "mine.sqlite"))
    assert explicit.path == tmp_path / "mine.sqlite"
    explicit.close()


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JudgeError, match="bad.sqlite"):
        JudgeCache(bad)


def _writer(path: Path, tag: str, batches: int) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(batches)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_processes_write_concurrently(tmp_path):
    path = tmp_path / "shared.sqlite"
    procs = [_writer(path, tag, 20) for tag in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with JudgeCache(path) as cache:
        assert len(cache) == 2 * 20 * 50
        assert set(cache.get_many(["a-19-49", "b-19-49", "a-0-0"])) == {"a-19-49", "b-19-49", "a-0-0"}


def test_kill_9_mid_write_leaves_a_readable_database(tmp_path):
    path = tmp_path / "killed.sqlite"
    proc = _writer(path, "k", -1)  # writes until killed
    assert proc.stdout.readline().strip() == "first batch committed"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
    db.close()
    assert count >= 50 and count % 50 == 0  # whole batches only: one transaction per batch
    with JudgeCache(path) as cache:
        assert "k-0-0" in cache.get_many(["k-0-0"])
        assert cache.put_many([("after", ok(), "b", "v")]) == 1


def _changed(config: JudgeConfig, name: str, tmp_path: Path) -> JudgeConfig:
    """`config` with the setting `name` set to another valid value."""
    import dataclasses
    import typing

    from exprl.judge.types import JudgeConfig as Config

    value = getattr(config, name)
    if name == "rubric":
        store = tmp_path / "rubrics.jsonl"
        store.write_text('{"id": "p0", "checkpoints": ["the sum", "5"], "builder": "test"}\n', encoding="utf-8")
        return dataclasses.replace(config, rubric="cached", rubric_path=str(store))
    if name == "model":
        return dataclasses.replace(config, model=value + "-other")
    if isinstance(value, bool):
        return dataclasses.replace(config, **{name: not value})
    if isinstance(value, (int, float)):
        return dataclasses.replace(config, **{name: value + 1})
    choices = typing.get_args(typing.get_type_hints(Config)[name])
    return dataclasses.replace(config, **{name: next(c for c in choices if c != value)})


def test_every_judgment_setting_is_in_the_key_each_change_makes_a_new_call(tmp_path):
    """A judgment made under one judge setting is never served to a run under another: for each setting
    that can change a judgment (every JudgeConfig field but the fetch-only ones), the same request
    judged again with that setting changed reaches the judge again; unchanged, it is a cache hit."""
    import dataclasses

    from exprl.judge.cache import FETCH_ONLY_KEYS
    from testing.loopback import LoopbackJudgeServer
    from exprl.judge.service import build_judge

    request = JudgeRequest(problem="What is 2 + 3?", reference="2 + 3 = 5, so \\boxed{5}", trace="2 + 3 = 5. \\boxed{5}",
                           answer="5", problem_id="p0")
    cache = str(tmp_path / "judge.sqlite")
    with LoopbackJudgeServer() as server:
        base = JudgeConfig(backend="openai", base_urls=[server.base_url], model="loopback", cache_path=cache)
        # Each request already carries its process view (its mode) and its rubric (the checkpoints).
        settings = [f.name for f in dataclasses.fields(base)
                    if f.name not in FETCH_ONLY_KEYS and f.name not in ("process_view", "rubric_path")]
        assert {"backend", "model", "temperature", "max_new_tokens", "json_mode", "prompt_layout", "known_answer",
                "rubric", "max_trace_tokens", "reference_matching"} <= set(settings)
        with build_judge(base) as judge:
            first = judge.judge_sync([request])[0]
        assert first.ok and server.request_count == 1
        with build_judge(base) as judge:
            assert judge.judge_sync([request])[0].cached and server.request_count == 1
        for name in sorted(settings):
            if name == "backend":
                config = JudgeConfig(backend="reference", cache_path=cache)
            else:
                config = _changed(base, name, tmp_path)
            with build_judge(config) as judge:
                before = (server.request_count, judge.stats.backend_calls)
                result = judge.judge_sync([request])[0]
                assert not result.cached, f"{name}: a judgment made under another {name} was served from the cache"
                assert judge.stats.backend_calls == before[1] + 1, name
