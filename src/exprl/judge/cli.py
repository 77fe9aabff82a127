"""`exprl judge run | serve | calibrate` and `exprl rubrics build | show`: every argument parser and
handler of the judge layer.

The modules they drive (`service`, `server`, `calibrate`, `rubrics`) are plain functions and
classes that know nothing of argparse; this module reads the command line, calls them, and prints.
The judge-config flags every judging command shares (`add_judge_config_arguments`,
`judge_config_from_args`) are declared here once. Heavy dependencies (tqdm, openai, torch) are
imported inside the handlers, so registering the commands keeps `exprl --help` light.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, get_args

from exprl.config import add_override_argument
from exprl.judge.types import BACKENDS, PROCESS_VIEWS
from exprl.rewards.record import JudgedSignal
from exprl.rewards.steps import DEFAULT_DELIMITER

REQUIRED_FIELDS = ("id", "problem", "reference", "trace")
_CHUNK_ROWS = 64  # rows judged per service call: large enough to keep the judge busy, small enough to stream
_CHUNKS_IN_FLIGHT = 2  # the next chunk starts while the last judgments of one are still out
RETRIED_STATUSES = ("error", "timeout")
"""Rows with these statuses never reached a judgment: a rerun judges them again, and `judge run`
exits 1 while any is left."""
DEFAULT_MAX_STEPS = 256
OVER_STEP_CAP = "over_step_cap"
"""Status of a process-mode row with more steps than --max-steps: its score is null (s_T, the last
step's, was not asked for); its first steps are judged. Not retried: the same trace has as many steps
the next time."""
STEP_NOT_JUDGED = "not_judged"
"""Status of a step past --max-steps: never sent to the judge."""


def register(subparsers) -> None:
    _register_judge(subparsers)
    _register_rubrics(subparsers)


# -- argument parsing ----------------------------------------------------------------------------
def _register_judge(subparsers) -> None:
    actions = _command_group(
        subparsers, "judge", help="score traces against references, serve a judge model, calibrate a judge",
        description="The ExpRL judge: an LLM that grades a policy trace (or one step of it) against "
                    "a reference solution on a 1-5 scale.")
    _add_action(actions, "run", add_run_arguments, _run,
                help="judge every trace of a JSONL file and write one result row per trace",
                description="Input rows: id, problem, reference, trace (optional: answer, domain, "
                            "problem_id when several traces share a problem; the id names the problem "
                            "otherwise, e.g. for rubric=cached). Output rows: id, score, reward, status, "
                            "cached, latency_s, truncated; in process mode also 'steps', one entry per "
                            "step with its character span. Unscorable judgments have score and reward "
                            "null and say why in status and error. Finished rows are kept in OUT.partial as "
                            "they arrive; after Ctrl-C or a kill, the same command resumes. Exits 1 while "
                            "any row could not reach the judge (rerun to retry them).")
    _add_action(actions, "serve", add_serve_arguments, _serve,
                help="start an OpenAI-compatible judge server (llama.cpp on CPU, vLLM on GPU)",
                description="Starts the judge model behind an OpenAI-compatible endpoint and prints its "
                            "base URL.")
    _add_action(actions, "calibrate", add_calibrate_arguments, _calibrate,
                help="measure how well a judge separates correct from incorrect traces",
                description="Scores labelled traces with the correct, a wrong, and no reference, and "
                            "reports how often the judge ranks them right.")


def _register_rubrics(subparsers) -> None:
    actions = _command_group(
        subparsers, "rubrics", help="build and inspect per-problem checkpoint rubrics (optional, rubric=cached)",
        description="Checkpoints extracted once per problem from its reference, stored and reused by "
                    "the process judge instead of extracting them inside every call.")
    _add_action(actions, "build", add_rubrics_build_arguments, _rubrics_build,
                help="extract checkpoints for every problem of a file")
    _add_action(actions, "show", add_rubrics_show_arguments, _rubrics_show,
                help="print the stored checkpoints of some problems")


def _command_group(subparsers, name: str, **parser_kwargs):
    """`exprl NAME ACTION ...`: the group's parser prints its help when no action is given."""
    parser = subparsers.add_parser(name, **parser_kwargs)
    parser.set_defaults(handler=lambda args: _print_help(parser))
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def _add_action(actions, name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                handler: Callable[[argparse.Namespace], int], **parser_kwargs) -> None:
    parser = actions.add_parser(name, **parser_kwargs)
    add_arguments(parser)
    parser.set_defaults(handler=handler)


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
    parser.add_argument("--concurrency", type=int, default=None, help="judge calls in flight at once")
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


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def judge_config_from_args(args: argparse.Namespace):
    """JudgeConfig from --config/--set, then the explicit flags (flags win), every value in its range."""
    from exprl.config import check_values, load_config, read_yaml
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


# -- exprl judge run ----------------------------------------------------------------------------
def read_trace_rows(path: str | Path, rejects: list | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line; a bad row is a DataError naming line and field
    (bad bytes: the byte offset and the encoding expected), or, given a `rejects` list, a
    `loaders.Rejection` added to it while the rest are read."""
    from exprl.data.loaders import Rejection, read_jsonl
    from exprl.errors import DataError

    path = Path(path)
    for line_no, row in read_jsonl(path, rejects):
        try:
            checked = _checked_trace_row(path, line_no, row)
        except DataError as error:
            if rejects is None:
                raise
            rejects.append(Rejection.from_error(error, row))
            continue
        yield line_no, checked


def _checked_trace_row(path: Path, line_no: int, row: Any) -> dict[str, Any]:
    from exprl.errors import DataError

    if not isinstance(row, dict):
        raise DataError("each line must be a JSON object", path=str(path), line=line_no)
    for name in REQUIRED_FIELDS:
        if name not in row:
            raise DataError("missing", path=str(path), line=line_no, field=name)
        value = row[name]
        if name == "reference" and value is None:
            continue  # judging without a reference (calibration)
        if name == "id" and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, str):
            raise DataError(f"must be a string, got {type(value).__name__}", path=str(path),
                            line=line_no, field=name)
        if name == "problem" and not value.strip():
            raise DataError("is empty", path=str(path), line=line_no, field=name)
        # An empty trace is a policy output (it stopped at once): judged, with the lowest score.
    for name in ("answer", "domain", "problem_id"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise DataError(f"must be a string, got {type(row[name]).__name__}", path=str(path),
                            line=line_no, field=name)
    return row


def requests_for_row(row: dict[str, Any], mode: str, view: str, delimiter: str, max_steps: int | None = None):
    """(requests, steps) for one input row: one request in outcome mode, one per step in process (the
    first `max_steps` steps only; `output_row` gives the rest their status)."""
    from exprl.judge.types import JudgeRequest, process_requests

    common = dict(problem=row["problem"], reference=row["reference"], answer=row.get("answer"),
                  domain=row.get("domain") or "math", problem_id=str(row.get("problem_id", row["id"])))
    if mode == "outcome":
        return [JudgeRequest(trace=row["trace"], mode="outcome", **common)], None
    from exprl.rewards.steps import split_steps

    trace = row["trace"]
    steps = split_steps(trace, delimiter=delimiter)
    return process_requests(trace, steps[:max_steps], view, **common), steps


def _result_fields(result) -> dict[str, Any]:
    out = {"score": result.score, "reward": result.reward, "status": result.status.value,
           "cached": result.cached, "latency_s": round(result.latency_s, 4), "truncated": result.truncated}
    if result.error:
        out["error"] = result.error
    return out


def output_row(row: dict[str, Any], results: list, steps) -> dict[str, Any]:
    if steps is None:
        return {"id": row["id"], "mode": "outcome", **_result_fields(results[0])}
    failed = [r for r in results if not r.ok]
    capped = len(steps) > len(results)
    # The row's own score is s_T, the last step's (the whole trace's, under the prefix view; the last
    # step alone, under segment); the row is unscorable when any step is, as one unscorable step drops
    # the whole trajectory in training, and when its last steps were past --max-steps.
    last = results[-1]
    unscored = failed or capped
    out = {
        "id": row["id"], "mode": "process",
        "score": last.score if not unscored else None,
        "reward": last.reward if not unscored else None,
        "status": failed[0].status.value if failed else OVER_STEP_CAP if capped else "ok",
        "cached": all(r.cached for r in results),
        "latency_s": round(sum(r.latency_s for r in results), 4),
        "truncated": any(r.truncated for r in results),
        "steps": [{"index": i, "start": s.start, "end": s.end, "text": s.text, **_result_fields(r)}
                  for i, (s, r) in enumerate(zip(steps, results))],
    }
    if capped:
        out["error"] = (f"{len(steps)} steps, above --max-steps {len(results)}: the first {len(results)} judged, "
                        f"the rest not")
        out["steps"] += [{"index": i, "start": s.start, "end": s.end, "text": s.text, "score": None, "reward": None,
                          "status": STEP_NOT_JUDGED} for i, s in enumerate(steps) if i >= len(results)]
    return out


def row_key(row: dict[str, Any]) -> str:
    """What a finished row is remembered by between runs: its input row's content, so editing other
    rows of the input keeps its result, and identical rows are judged once."""
    import hashlib

    return hashlib.sha256(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:24]


def is_judge_output(path: Path, sample: int = 1000) -> bool:
    """Whether `path` reads as `exprl judge run` output (every row an id, mode and status), which a
    rerun may replace; anything else is the user's."""
    try:
        with path.open(encoding="utf-8") as handle:
            for count, line in enumerate(handle):
                if count >= sample:
                    break
                if not line.strip():
                    continue
                row = json.loads(line)
                if not (isinstance(row, dict) and {"id", "mode", "status"} <= set(row)
                        and row["mode"] in get_args(JudgedSignal)):
                    return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def _run(args: argparse.Namespace) -> int:
    from exprl.config import to_dict
    from exprl.data.loaders import empty_reason, write_jsonl
    from exprl.errors import ConfigError, DataError
    from exprl.judge.cache import FETCH_ONLY_KEYS
    from exprl.judge.service import build_judge
    from exprl.progress import Progress
    from exprl.runs import RowJournal, check_output_file

    config = judge_config_from_args(args)
    if not args.delimiter:
        raise ConfigError(f"--delimiter must not be empty: it is the text that opens each step "
                          f"(default {DEFAULT_DELIMITER!r})")
    if args.max_steps < 1:
        raise ConfigError(f"--max-steps must be at least 1, got {args.max_steps}")
    cache_file = config.cache_path if config.cache_path else None
    inputs = [args.input, *filter(None, [cache_file, config.rubric_path])]
    out_path = check_output_file(args.out, inputs=inputs, overwrite=args.overwrite, ours=is_judge_output)
    rejected_path = out_path.with_name(out_path.stem + ".rejected.jsonl")
    if args.skip_invalid:
        check_output_file(rejected_path, inputs=inputs, overwrite=True, flag="rejected rows")
    rejects: list | None = [] if args.skip_invalid else None
    # Every row validated before any judge time is spent.
    rows = [row for _, row in read_trace_rows(args.input, rejects)]
    if not rows and not args.allow_empty:
        why = empty_reason(args.input, len(rejects or ()), len(rejects or ()))
        if rejects:
            why += f" (the first: line {rejects[0].line}, {rejects[0].reason})"
        raise DataError(f"{why}; pass --allow-empty to accept an input without traces", path=args.input)
    max_steps = args.max_steps if args.mode == "process" else None
    settings = {"mode": args.mode, "delimiter": args.delimiter if args.mode == "process" else None,
                "judge": {k: v for k, v in to_dict(config).items() if k not in FETCH_ONLY_KEYS}}
    if max_steps != DEFAULT_MAX_STEPS and max_steps is not None:
        settings["max_steps"] = max_steps  # absent at the default: journals of earlier versions resume
    journal = RowJournal(out_path, settings, command="judge run")
    keys = [row_key(row) for row in rows]
    rows_per_key = Counter(keys)
    statuses: Counter = Counter()
    if rejects:
        write_jsonl(rejected_path, (r.to_dict() for r in rejects))
        first = rejects[0]
        print(f"exprl judge run: skipped {len(rejects)} invalid rows, written to {rejected_path} (the first: line "
              f"{first.line}{f', field {first.field!r}' if first.field else ''}: {first.reason})", file=sys.stderr)
    # What a trace costs: one judgment in outcome mode, one per judged step in process mode.
    judgments = {k: len(requests_for_row(row, args.mode, config.process_view, args.delimiter, max_steps)[0])
                 for k, row in zip(keys, rows)}
    with build_judge(config) as judge:
        finished = journal.open(overwrite=args.overwrite, keep=lambda row: row.get("status") not in RETRIED_STATUSES)
        if journal.dropped:
            print(f"exprl judge run: --overwrite: starting over; the {journal.dropped} rows the interrupted run "
                  f"kept in {journal.path} are dropped (judgments in the cache are still reused)", file=sys.stderr)
        if args.overwrite and out_path.is_file() and out_path.stat().st_size:
            print(f"exprl judge run: --overwrite: {out_path} will be replaced", file=sys.stderr)
        try:
            records: dict[str, dict[str, Any]] = {k: finished[k] for k in rows_per_key if k in finished}
            resumed = sum(rows_per_key[k] for k in records)
            todo = list({k: row for k, row in zip(keys, rows) if k not in records}.items())
            process = args.mode == "process"
            total = sum(judgments[k] for k in keys) if process else len(rows)
            done_already = sum(judgments[k] for k in keys if k in records) if process else resumed
            with Progress(total, "judge run", "judgment" if process else "trace", initial=done_already,
                          disable=args.no_progress) as bar:
                def done(key: str, record: dict[str, Any]) -> None:
                    records[key] = record
                    journal.add(key, record)
                    if not process:
                        bar.update(rows_per_key[key])

                def judged(key: str) -> None:
                    if process:
                        bar.update(rows_per_key[key])

                judge.run_sync(lambda: _judge_rows(judge, todo, args.mode, config.process_view, args.delimiter,
                                                   done, max_steps=max_steps, judged=judged))
            output = [records[k] for k in keys]
            journal.finish(output)
        finally:
            journal.close()
        stats = judge.stats
    statuses.update(record["status"] for record in output)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(statuses.items())) or "no traces"
    print(f"judged {len(rows)} traces ({args.mode}, {judge.name}): {summary}; "
          f"{stats.backend_calls} judge calls, {stats.hits} cache hits"
          + (f", {resumed} rows kept from the interrupted run" if resumed else "")
          + f", mean latency {stats.mean_latency_s:.3f} s -> {out_path}", file=sys.stderr)
    if args.mode == "process" and config.process_view != "prefix":
        print(f"note: under --view {config.process_view} each step is graded "
              f"{'alone' if config.process_view == 'segment' else 'as the next move after the earlier ones'}, so a "
              f"row's score is its last step's, not the whole trace's (even a correct reference can score 2 when "
              f"its last step only states the answer); --mode outcome or --view prefix grade the whole trace",
              file=sys.stderr)
    if statuses[OVER_STEP_CAP]:
        print(f"exprl judge run: {statuses[OVER_STEP_CAP]} traces have more than --max-steps {max_steps} steps: "
              f"status {OVER_STEP_CAP}, score null (raise --max-steps to judge them whole)", file=sys.stderr)
    failed = sum(statuses[s] for s in RETRIED_STATUSES)
    if failed:
        print(f"exprl judge run: {failed} of {len(rows)} traces could not be judged "
              f"({', '.join(f'{s} {statuses[s]}' for s in RETRIED_STATUSES if statuses[s])}; their score is null); "
              f"run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


async def _judge_rows(judge, todo: list[tuple[str, dict[str, Any]]], mode: str, view: str, delimiter: str,
                      done: Callable[[str, dict[str, Any]], None], *, max_steps: int | None = None,
                      judged: Callable[[str], None] = lambda key: None) -> None:
    """Judge every (key, row), calling `judged(key)` as each judgment arrives and `done(key, output
    row)` as each row's last judgment does."""
    import asyncio

    async def judge_chunk(chunk: list[tuple[str, dict[str, Any]]]) -> None:
        planned = [requests_for_row(row, mode, view, delimiter, max_steps) for _, row in chunk]
        flat, owner, first = [], [], []
        for slot, (requests, _) in enumerate(planned):
            first.append(len(flat))
            flat.extend(requests)
            owner.extend([slot] * len(requests))
        results: list[list] = [[None] * len(requests) for requests, _ in planned]
        missing = [len(requests) for requests, _ in planned]

        def on_result(index: int, result) -> None:
            slot = owner[index]
            results[slot][index - first[slot]] = result
            missing[slot] -= 1
            key, row = chunk[slot]
            judged(key)
            if not missing[slot]:
                done(key, output_row(row, results[slot], planned[slot][1]))

        await judge.judge_many(flat, on_result=on_result)

    in_flight: set = set()
    try:
        for start in range(0, len(todo), _CHUNK_ROWS):
            if len(in_flight) >= _CHUNKS_IN_FLIGHT:
                finished, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                # every finished chunk's exception is read here, so none is reported later as never retrieved
                errors = [error for error in (task.exception() for task in finished) if error is not None]
                if errors:
                    raise errors[0]
            in_flight.add(asyncio.ensure_future(judge_chunk(todo[start:start + _CHUNK_ROWS])))
        if in_flight:
            await asyncio.gather(*in_flight)
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


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


def read_labelled_traces(path: str | Path, label_fn: Callable[[str, str], bool] | None = None,
                         limit: int | None = None):
    """LabelledTrace rows of a JSONL file: id, problem, reference, trace, and `correct` (bool), or
    `answer` for `label_fn(trace, answer)`."""
    from exprl.errors import DataError
    from exprl.judge.calibrate import LabelledTrace

    traces = []
    for line_no, row in read_trace_rows(path):
        if limit is not None and len(traces) >= limit:
            break
        if row["reference"] is None:
            raise DataError("calibration needs the correct reference", path=str(path), line=line_no,
                            field="reference")
        correct = row.get("correct")
        if correct is None:
            if label_fn is None:
                raise DataError("missing (or give an answer column to label traces with the verifier)",
                                path=str(path), line=line_no, field="correct")
            if not row.get("answer"):
                raise DataError("missing: a row without 'correct' needs 'answer' to be labelled",
                                path=str(path), line=line_no, field="answer")
            correct = bool(label_fn(row["trace"], row["answer"]))
        elif not isinstance(correct, bool):
            raise DataError(f"must be true or false, got {correct!r}", path=str(path), line=line_no,
                            field="correct")
        traces.append(LabelledTrace(id=str(row["id"]), problem=row["problem"], reference=row["reference"],
                                    trace=row["trace"], correct=correct, answer=row.get("answer"),
                                    domain=row.get("domain") or "math"))
    return traces


def _calibrate(args: argparse.Namespace) -> int:
    from exprl.errors import ConfigError, DataError
    from exprl.judge.calibrate import CalibrationConfig, calibrate
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
