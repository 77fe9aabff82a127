"""`exprl judge run | serve | calibrate` and `exprl rubrics build | show`: every argument parser and
handler of the judge layer.

The modules they drive (`run`, `service`, `server`, `calibrate`, `rubrics`) are plain functions and
classes that know nothing of argparse; this module reads the command line, calls them, and prints.
`judge run`'s rows, resume and summary are `judge/run.py`'s; its handler here only reads the flags.
The judge-config flags every judging command shares (`add_judge_config_arguments`,
`judge_config_from_args`) are declared here once. Heavy dependencies (tqdm, openai, torch) are
imported inside the handlers, so registering the commands keeps `exprl --help` light.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence, get_args

from exprl.config import add_override_argument
from exprl.judge.run import DEFAULT_MAX_STEPS, OVER_STEP_CAP, STEP_NOT_JUDGED
from exprl.judge.types import BACKENDS, PROCESS_VIEWS
from exprl.rewards.record import JudgedSignal
from exprl.rewards.steps import DEFAULT_DELIMITER



def register(commands) -> None:
    _register_judge(commands)
    _register_rubrics(commands)


# -- argument parsing ----------------------------------------------------------------------------
def _register_judge(commands) -> None:
    commands.group(
        "judge", help="score traces against references, serve a judge model, calibrate a judge",
        description="The ExpRL judge: an LLM that grades a policy trace (or one step of it) against "
                    "a reference solution on a 1-5 scale.")
    commands.action("judge", "run", add_run_arguments, _run,
                    help="judge every trace of a JSONL file and write one result row per trace",
                    description="Input rows: id, problem, reference, trace (optional: answer, domain, "
                                "problem_id when several traces share a problem; the id names the problem "
                                "otherwise, e.g. for rubric=cached). Output rows: id, score, reward, status, "
                                "cached, latency_s, truncated; in process mode also 'steps', one entry per "
                                "step with its character span. Unscorable judgments have score and reward "
                                "null and say why in status and error. Finished rows are kept in OUT.partial as "
                                "they arrive; after Ctrl-C or a kill, the same command resumes. Exits 1 while "
                                "any row could not reach the judge (rerun to retry them).")
    commands.action("judge", "serve", add_serve_arguments, _serve,
                    help="start an OpenAI-compatible judge server (llama.cpp on CPU, vLLM on GPU)",
                    description="Starts the judge model behind an OpenAI-compatible endpoint and prints its "
                                "base URL.")
    commands.action("judge", "calibrate", add_calibrate_arguments, _calibrate,
                    help="measure how well a judge separates correct from incorrect traces",
                    description="Scores labelled traces with the correct, a wrong, and no reference, and "
                                "reports how often the judge ranks them right.")


def _register_rubrics(commands) -> None:
    commands.group(
        "rubrics", help="build and inspect per-problem checkpoint rubrics (optional, rubric=cached)",
        description="Checkpoints extracted once per problem from its reference, stored and reused by "
                    "the process judge instead of extracting them inside every call.")
    commands.action("rubrics", "build", add_rubrics_build_arguments, _rubrics_build,
                    help="extract checkpoints for every problem of a file")
    commands.action("rubrics", "show", add_rubrics_show_arguments, _rubrics_show,
                    help="print the stored checkpoints of some problems")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `exprl judge run`."""
    parser.add_argument("--input", required=True, metavar="JSONL", help="traces to judge")
    parser.add_argument("--out", required=True, metavar="JSONL", help="where to write the results")
    parser.add_argument("--mode", choices=get_args(JudgedSignal), default="outcome",
                        help="outcome: one judgment per trace; process: one per '###' step")
    parser.add_argument("--view", choices=PROCESS_VIEWS, default=None, dest="process_view",
                        help="process mode: what a step's score measures: the work so far as a whole "
                             "(prefix, the paper's equation), the step alone (segment, the official code), "
                             "or the step after its earlier steps (step); default: the config's")
    parser.add_argument("--json-mode", action="store_true", default=None,
                        help="ask for schema-constrained JSON {\"score\": N} (llama.cpp, vLLM)")
    parser.add_argument("--concurrency", type=int, default=None, help="judgments the backend works on at once (judge.concurrency)")
    parser.add_argument("--delimiter", default=DEFAULT_DELIMITER, help="process mode: the step delimiter")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, metavar="N",
                        help=f"process mode: judge at most N steps of a trace (default {DEFAULT_MAX_STEPS}); a trace "
                             f"with more has its first N judged, the rest status '{STEP_NOT_JUDGED}', and the row "
                             f"status '{OVER_STEP_CAP}' with score null (a trace with thousands of '###' would "
                             f"otherwise hold the judge for minutes)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--allow-empty", action="store_true", help="accept an input without traces")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="write bad rows (malformed JSON, a missing or mistyped field) to OUT's .rejected.jsonl "
                             "with their line and reason, and judge the rest, instead of stopping at the first")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out that is not an earlier judge run's output, and start over "
                             "instead of resuming an interrupted run (says what it drops)")
    add_judge_config_arguments(parser)


def add_judge_config_arguments(parser: argparse.ArgumentParser, *, backends: Sequence[str] = BACKENDS,
                               cache: bool = True) -> None:
    """The flags naming the judge (--backend, --base-url, --model, --cache) and --config/--set;
    `judge_config_from_args` reads them back into a JudgeConfig."""
    parser.add_argument("--backend", choices=list(backends), default=None,
                        help="judge backend (default: the config's, else reference)")
    parser.add_argument("--base-url", action="append", default=None, dest="base_urls", metavar="URL",
                        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (repeat for replicas)")
    parser.add_argument("--model", default=None, help="model name sent to the endpoint, or model path")
    if cache:
        parser.add_argument("--cache", default=None, metavar="PATH",
                            help="SQLite judgment cache (default: the user's cache dir; '' disables it)")
    parser.add_argument("--config", metavar="YAML", default=None,
                        help="judge config file (its 'judge:' section when it has one)")
    add_override_argument(parser, "judge config", "timeout_s=30")


def judge_config_from_args(args: argparse.Namespace):
    """JudgeConfig from --config/--set, then the explicit flags (flags win), every value in its range."""
    from exprl.config import check_values, load_config
    from exprl.recipes import read_yaml
    from exprl.judge.types import JudgeConfig

    section = None
    if args.config and "judge" in read_yaml(args.config):
        section = "judge"
    config = load_config(JudgeConfig, args.config, args.overrides, section=section)
    # Each command declares only the flags it needs; an undeclared one leaves the config's value.
    flags = {"backend": "backend", "base_urls": "base_urls", "model": "model", "process_view": "process_view",
             "cache_path": "cache", "json_mode": "json_mode", "concurrency": "concurrency"}
    for field_name, flag in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            setattr(config, field_name, value)
    return check_values(config, "judge config")


def _run(args: argparse.Namespace) -> int:
    from exprl.judge.run import judge_file

    return judge_file(judge_config_from_args(args), args.input, args.out, mode=args.mode, delimiter=args.delimiter,
                      max_steps=args.max_steps, allow_empty=args.allow_empty, skip_invalid=args.skip_invalid,
                      overwrite=args.overwrite, progress=not args.no_progress)


# -- exprl judge serve --------------------------------------------------------------------------
def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `exprl judge serve`."""
    parser.add_argument("--model", required=True, help="GGUF file (llama.cpp) or model path / hub id (vLLM); "
                                                       "'smollm2' = the bundled SmolLM2-135M GGUF")
    parser.add_argument("--engine", choices=["llama.cpp", "vllm"], default=None,
                        help="server to start (default: llama.cpp for .gguf, vLLM otherwise)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=None, help="port of the first replica (default: a free one)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="server processes, on consecutive ports; llama.cpp serves one request at a time, "
                             "so on CPU replicas are the parallelism (list every printed URL in judge.base_urls)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per llama.cpp server (default 1; docs/scaling.md)")
    parser.add_argument("--extra", action="append", default=[], metavar="ARG",
                        help="extra argument passed to the server, after exprl's own (repeatable; "
                             "--extra=--n_ctx --extra=16384)")


def _serve(args: argparse.Namespace) -> int:
    """Start the server(s), print the base URL(s), block until Ctrl-C or SIGTERM, then stop them."""
    import signal
    import threading

    from exprl.errors import ServerError
    from exprl.judge.server import JudgeServer
    from exprl.weights import resolve_judge_model

    model = resolve_judge_model(args.model)
    replicas = max(1, args.replicas or 1)
    servers = [JudgeServer(model, engine=args.engine, host=args.host,
                           port=(args.port + i) if args.port else None,
                           threads=args.threads, extra_args=args.extra or [])
               for i in range(replicas)]
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for server in servers:
            server.start()
            print(server.base_url, flush=True)
        print(f"serving {model} ({servers[0].engine}); Ctrl-C stops", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            dead = [s for s in servers if not s.running]
            if dead:
                raise ServerError(f"the server at {dead[0].base_url} exited; its stderr ends with:\n"
                                  f"{dead[0].stderr_tail()}")
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


# -- exprl judge calibrate ----------------------------------------------------------------------
def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `exprl judge calibrate`."""
    parser.add_argument("--input", required=True, metavar="JSONL",
                        help="rows: id, problem, reference, trace, and correct (or answer to label them)")
    parser.add_argument("--out", default=None, metavar="FILE", help="where to write the report (JSON)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing wrong references")
    parser.add_argument("--threshold", type=int, default=3, help="positive = score > threshold")
    add_judge_config_arguments(parser)


def _calibrate(args: argparse.Namespace) -> int:
    from exprl.errors import ConfigError, DataError
    from exprl.judge.calibrate import CalibrationConfig, calibrate, read_labelled_traces
    from exprl.judge.service import build_judge
    from exprl.rewards.verifier import is_correct
    from exprl.runs import check_output_file, write_json_atomic

    config = judge_config_from_args(args)
    if config.rubric == "cached":
        # A wrong-reference request would need the other problem's rubric; calibration measures
        # the judge as the paper runs it, extracting checkpoints itself.
        raise ConfigError("exprl judge calibrate judges with rubric=implicit; drop rubric=cached")
    if args.out:
        check_output_file(args.out, inputs=[args.input], ours=_is_calibration_report)
    traces = read_labelled_traces(args.input, label_fn=is_correct, limit=args.limit)
    if not traces:
        raise DataError("no traces to calibrate on", path=str(args.input))
    with build_judge(config) as judge:
        report = calibrate(traces, judge, CalibrationConfig(threshold=args.threshold, seed=args.seed))
    print(report.table())
    if args.out:
        write_json_atomic(args.out, report.to_dict())
        print(f"report -> {args.out}", file=sys.stderr)
    return 0


def _is_calibration_report(path: Path) -> bool:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(report, dict) and "conditions" in report


# -- exprl rubrics build | show -----------------------------------------------------------------
def add_rubrics_build_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `exprl rubrics build`."""
    from exprl.judge.rubrics import RUBRIC_BACKENDS

    parser.add_argument("--input", required=True, metavar="FILE", help="prepared problems (JSONL/Parquet)")
    parser.add_argument("--out", default=None, metavar="PATH", help="rubric store (default: rubric_path)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--allow-empty", action="store_true", help="accept an input without problems")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing store, or a file that is not one, instead of appending")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_judge_config_arguments(parser, backends=RUBRIC_BACKENDS, cache=False)


def add_rubrics_show_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `exprl rubrics show`."""
    parser.add_argument("store", metavar="PATH", help="rubric store written by `exprl rubrics build`")
    parser.add_argument("--id", action="append", default=[], dest="ids", metavar="ID",
                        help="problem id to show (repeatable; default: the first few)")
    parser.add_argument("--limit", type=int, default=5, help="how many to show without --id")


def is_rubric_store(path: Path) -> bool:
    """Whether `path` reads as a store `exprl rubrics build` wrote (which it appends to)."""
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return False
    complete, tail = lines[:-1], lines[-1]
    for line in complete:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return False
        if not (isinstance(record, dict) and isinstance(record.get("id"), str)
                and isinstance(record.get("checkpoints"), list)):
            return False
    # A line cut off by a kill is the start of a record; text that is not is someone else's.
    return not tail.strip() or tail.startswith(b'{"id": ')


def _rubrics_build(args: argparse.Namespace) -> int:
    from exprl.progress import Progress

    from exprl.data.loaders import load_problems
    from exprl.errors import JudgeError
    from exprl.judge.rubrics import build_rubrics, builder_for
    from exprl.runs import check_output_file

    config = judge_config_from_args(args)
    out = args.out or config.rubric_path
    if not out:
        raise JudgeError("say where to store the rubrics: --out PATH (or rubric_path= in the judge config)")
    out_path = check_output_file(out, inputs=[args.input], overwrite=args.overwrite, ours=is_rubric_store,
                                 flag="--out" if args.out else "rubric_path")
    problems = load_problems(args.input, allow_empty=args.allow_empty)
    builder = builder_for(config)
    if args.overwrite and out_path.is_file():
        held = sum(1 for line in out_path.read_bytes().split(b"\n") if line.strip())
        print(f"exprl rubrics build: --overwrite: {out_path} ({held} lines) is replaced by a new store", file=sys.stderr)
        out_path.unlink()  # --overwrite: a new store, not an append to whatever the file held
    chosen = problems[:args.limit] if args.limit is not None else problems
    with Progress(len(chosen), "rubrics build", "problem", disable=args.no_progress) as bar:
        summary = build_rubrics(chosen, out_path, builder, progress=lambda *_: bar.update())
    print(f"rubrics: {summary.built} built, {summary.skipped} already stored, {summary.failed} failed -> {out}")
    if summary.failed:
        print(f"exprl rubrics build: {summary.failed} of {len(chosen)} problems got no checkpoints (not stored); "
              f"run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def _rubrics_show(args: argparse.Namespace) -> int:
    from exprl.errors import DataError
    from exprl.judge.rubrics import load_rubrics

    rubrics = load_rubrics(args.store)
    if args.ids:
        missing = [i for i in args.ids if i not in rubrics]
        if missing:
            raise DataError(f"no rubric for id {', '.join(map(repr, missing))} ({len(rubrics)} stored)",
                            path=str(args.store))
        chosen = args.ids
    else:
        chosen = list(rubrics)[:args.limit]
    for problem_id in chosen:
        checkpoints = rubrics[problem_id]
        print(problem_id)
        for number, checkpoint in enumerate(checkpoints, 1):
            tag = "  (final answer)" if number == len(checkpoints) else ""
            print(f"  {number}. {checkpoint}{tag}")
    print(f"{len(rubrics)} rubrics in {args.store}", file=sys.stderr)
    return 0
