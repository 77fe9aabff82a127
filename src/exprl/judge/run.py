"""`exprl judge run`'s rows and run: reading and checking the input traces, a row's judge requests,
its output row, and the resumable run over a file (journal, progress, summary).

`judge_file` is the command's whole run behind its flags; `judge.cli` parses the command line and
calls it. The row readers are shared with `exprl judge calibrate` (`calibrate.read_labelled_traces`).
Heavy dependencies (the service and its backends, tqdm) are imported inside the functions.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, get_args

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


def judge_file(config, input_path: str | Path, out: str | Path, *, mode: str = "outcome",
               delimiter: str = DEFAULT_DELIMITER, max_steps: int = DEFAULT_MAX_STEPS, allow_empty: bool = False,
               skip_invalid: bool = False, overwrite: bool = False, progress: bool = True) -> int:
    """`exprl judge run`: judge every trace of `input_path` with `config` into `out`, one output row per
    input row, in input order. Finished rows are journalled in OUT.partial as they arrive, so the same
    call after Ctrl-C or a kill resumes; a summary goes to stderr. Returns the exit code: 1 while any
    row could not reach the judge (`RETRIED_STATUSES`; the next call retries them), else 0."""
    from exprl.config import to_dict
    from exprl.data.loaders import empty_reason, write_jsonl
    from exprl.errors import ConfigError, DataError
    from exprl.judge.cache import FETCH_ONLY_KEYS
    from exprl.judge.service import build_judge
    from exprl.progress import Progress
    from exprl.runs import RowJournal, check_output_file

    if not delimiter:
        raise ConfigError(f"--delimiter must not be empty: it is the text that opens each step "
                          f"(default {DEFAULT_DELIMITER!r})")
    if max_steps < 1:
        raise ConfigError(f"--max-steps must be at least 1, got {max_steps}")
    cache_file = config.cache_path if config.cache_path else None
    inputs = [input_path, *filter(None, [cache_file, config.rubric_path])]
    out_path = check_output_file(out, inputs=inputs, overwrite=overwrite, ours=is_judge_output)
    rejected_path = out_path.with_name(out_path.stem + ".rejected.jsonl")
    if skip_invalid:
        check_output_file(rejected_path, inputs=inputs, overwrite=True, flag="rejected rows")
    rejects: list | None = [] if skip_invalid else None
    # Every row validated before any judge time is spent.
    rows = [row for _, row in read_trace_rows(input_path, rejects)]
    if not rows and not allow_empty:
        why = empty_reason(input_path, len(rejects or ()), len(rejects or ()))
        if rejects:
            why += f" (the first: line {rejects[0].line}, {rejects[0].reason})"
        raise DataError(f"{why}; pass --allow-empty to accept an input without traces", path=str(input_path))
    max_steps = max_steps if mode == "process" else None  # only process mode has steps
    settings = {"mode": mode, "delimiter": delimiter if mode == "process" else None,
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
    judgments = {k: len(requests_for_row(row, mode, config.process_view, delimiter, max_steps)[0])
                 for k, row in zip(keys, rows)}
    with build_judge(config) as judge:
        finished = journal.open(overwrite=overwrite, keep=lambda row: row.get("status") not in RETRIED_STATUSES)
        if journal.dropped:
            print(f"exprl judge run: --overwrite: starting over; the {journal.dropped} rows the interrupted run "
                  f"kept in {journal.path} are dropped (judgments in the cache are still reused)", file=sys.stderr)
        if overwrite and out_path.is_file() and out_path.stat().st_size:
            print(f"exprl judge run: --overwrite: {out_path} will be replaced", file=sys.stderr)
        try:
            records: dict[str, dict[str, Any]] = {k: finished[k] for k in rows_per_key if k in finished}
            resumed = sum(rows_per_key[k] for k in records)
            todo = list({k: row for k, row in zip(keys, rows) if k not in records}.items())
            process = mode == "process"
            total = sum(judgments[k] for k in keys) if process else len(rows)
            done_already = sum(judgments[k] for k in keys if k in records) if process else resumed
            with Progress(total, "judge run", "judgment" if process else "trace", initial=done_already,
                          disable=not progress) as bar:
                def done(key: str, record: dict[str, Any]) -> None:
                    records[key] = record
                    journal.add(key, record)
                    if not process:
                        bar.update(rows_per_key[key])

                def judged(key: str) -> None:
                    if process:
                        bar.update(rows_per_key[key])

                judge.run_sync(lambda: _judge_rows(judge, todo, mode, config.process_view, delimiter,
                                                   done, max_steps=max_steps, judged=judged))
            output = [records[k] for k in keys]
            journal.finish(output)
        finally:
            journal.close()
        stats = judge.stats
    statuses.update(record["status"] for record in output)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(statuses.items())) or "no traces"
    print(f"judged {len(rows)} traces ({mode}, {judge.name}): {summary}; "
          f"{stats.backend_calls} judge calls, {stats.hits} cache hits"
          + (f", {resumed} rows kept from the interrupted run" if resumed else "")
          + f", mean latency {stats.mean_latency_s:.3f} s -> {out_path}", file=sys.stderr)
    if mode == "process" and config.process_view != "prefix":
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


