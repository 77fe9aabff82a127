"""Per-problem checkpoint rubrics, built once and reused (`JudgeConfig.rubric = "cached"`).

The paper's judge extracts 2-6 checkpoints from the reference inside every call; a cached rubric
does that once per problem, so every later judgment of the problem sees the same checkpoints and
the reference judge skips its extraction.

Store: a JSONL file, one problem a line, `{"id", "checkpoints", "builder"}`, the final answer
always the last checkpoint. It is appended to and flushed problem by problem, so an interrupted
build resumes where it stopped: ids already stored are skipped, and a last line cut off mid-write
(no newline, or not JSON) is ignored on reading and removed before the next append.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol

from exprl.data.problem import Problem
from exprl.errors import ConfigError, DataError, JudgeError
from exprl.judge.reference.arithmetic import normalize
from exprl.judge.reference.checkpoints import DEFAULT_MAX_CHECKPOINTS, extract_checkpoints, spread_evenly
from exprl.judge.types import JudgeConfig, JudgeRequest

MIN_CHECKPOINTS, MAX_CHECKPOINTS = 2, DEFAULT_MAX_CHECKPOINTS
RUBRIC_BACKENDS = ("reference", "openai")  # the judges `builder_for` can build rubrics with

RUBRIC_SYSTEM_PROMPT = (
    "You turn a worked solution into a short grading checklist. Read the reference solution and "
    "list the intermediate results a correct attempt has to reach on the way, in the order the "
    "solution reaches them: concrete values, equations or facts, each a short claim a grader can "
    "check in someone else's work. Give between {low} and {high} items; the last item is the final "
    "answer. Copy results from the solution; never add steps it does not contain.\n"
    'Answer with JSON only: {{"checkpoints": ["...", "..."]}}'
)
RUBRIC_JSON_SCHEMA: dict = {
    "type": "object",
    "properties": {"checkpoints": {"type": "array", "items": {"type": "string", "maxLength": 200},
                                   "minItems": 1, "maxItems": MAX_CHECKPOINTS}},
    "required": ["checkpoints"],
}


class RubricBuilder(Protocol):
    name: str

    def build(self, problem: Problem) -> tuple[str, ...] | None:
        """The checkpoints of one problem, final answer last; None when they cannot be built."""


class ReferenceRubricBuilder:
    """Checkpoints read from the reference by the reference judge's own extractor."""

    def __init__(self, max_checkpoints: int = MAX_CHECKPOINTS):
        self.max_checkpoints = max_checkpoints
        self.name = f"reference:k{max_checkpoints}"

    def build(self, problem: Problem) -> tuple[str, ...] | None:
        checkpoints = extract_checkpoints(problem.reference, problem.answer or None, problem=problem.problem,
                                          max_checkpoints=self.max_checkpoints)
        return tuple(checkpoints) or None


class OpenAIRubricBuilder:
    """Checkpoints written by an LLM behind an OpenAI-compatible endpoint (one call per problem)."""

    def __init__(self, config: JudgeConfig):
        if not config.base_urls:
            raise JudgeError("the openai rubric builder needs a base URL (--base-url or base_urls=)")
        import openai

        self.config = config
        self.client = openai.OpenAI(base_url=config.base_urls[0], api_key=config.api_key,
                                    timeout=config.timeout_s, max_retries=config.max_retries)
        self.name = f"openai:{config.model}"

    def messages(self, problem: Problem) -> list[dict[str, str]]:
        system = RUBRIC_SYSTEM_PROMPT.format(low=MIN_CHECKPOINTS, high=MAX_CHECKPOINTS)
        user = f"## Problem\n{problem.problem}\n\n## Reference solution\n{problem.reference}\n"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def build(self, problem: Problem) -> tuple[str, ...] | None:
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.config.model, messages=self.messages(problem), temperature=self.config.temperature,
                max_tokens=self.config.max_new_tokens,
                response_format={"type": "json_object", "schema": RUBRIC_JSON_SCHEMA} if self.config.json_mode
                else openai.NOT_GIVEN)
        except openai.OpenAIError as exc:
            print(f"rubrics: {problem.id}: the endpoint failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None
        choices = getattr(response, "choices", None)  # a non-JSON body comes back as a str (facts.md)
        text = choices[0].message.content if choices else None
        items = parse_checkpoint_list(text or "")
        if items is None:
            return None
        return finish_checkpoints(items, problem.answer)


def parse_checkpoint_list(text: str) -> list[str] | None:
    """The checkpoint strings of an LLM's answer: a JSON list, or an object with "checkpoints"."""
    for candidate in _json_candidates(text):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            value = value.get("checkpoints")
        if isinstance(value, list) and value and all(isinstance(item, (str, int, float)) for item in value):
            items = [str(item).strip() for item in value if str(item).strip()]
            if items:
                return items
    return None


def _json_candidates(text: str) -> Iterable[str]:
    text = text.strip()
    yield text
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        yield fenced.group(1)
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            yield text[start:end + 1]


def finish_checkpoints(items: list[str], answer: str | None) -> tuple[str, ...]:
    """Deduplicated items, at most MAX_CHECKPOINTS, with the final answer last: the known answer
    when there is one (replacing the LLM's own copy of it), else the LLM's last item."""
    seen, unique = set(), []
    for item in items:
        key = normalize(item)
        if key and key not in seen:
            seen.add(key)
            unique.append(item)
    if answer:
        unique = [item for item in unique if normalize(item) != normalize(answer)]
        final = answer
    elif unique:
        final = unique.pop()
    else:
        return ()
    return tuple(spread_evenly(unique, MAX_CHECKPOINTS - 1) + [final])


@dataclass
class BuildSummary:
    built: int = 0
    skipped: int = 0   # already in the store
    failed: int = 0    # no usable checkpoints; not stored, so the next run tries again


def load_rubrics(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """id -> checkpoints (final answer last). A cut-off last line is ignored; any other bad line
    is a DataError naming the file, line and field."""
    return {record["id"]: tuple(record["checkpoints"]) for record in _read_records(Path(path))}


def rubrics_for(config: JudgeConfig) -> dict[str, tuple[str, ...]] | None:
    """The stored rubrics when `config.rubric` is "cached", else None (implicit: the judge
    extracts checkpoints itself). Callers put `rubrics[problem_id]` in `JudgeRequest.rubric`."""
    if config.rubric != "cached":
        return None
    if not config.rubric_path:
        raise ConfigError("judge.rubric = cached needs judge.rubric_path (a store from `exprl rubrics build`)")
    return load_rubrics(config.rubric_path)


def with_rubric(request: JudgeRequest, rubrics: dict[str, tuple[str, ...]] | None,
                problem_id: str) -> JudgeRequest:
    """`request` carrying the stored rubric of `problem_id`; unchanged without a store. A problem
    missing from the store is an error: judging it with a different rubric than its siblings
    would silently change the reward's meaning."""
    if rubrics is None:
        return request
    try:
        return dataclasses.replace(request, rubric=rubrics[problem_id])
    except KeyError:
        raise DataError(f"no rubric stored for problem '{problem_id}'; run `exprl rubrics build` "
                        f"on the training problems ({len(rubrics)} stored)", field="id") from None


def _read_records(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError("rubric store not found", path=str(path))
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # without a final newline the last line is unfinished
    records = []
    for line_no, line in enumerate(complete, 1):
        if not line.strip():
            continue
        records.append(_parse_record(line, path, line_no))
    if tail.strip():
        try:
            records.append(_parse_record(tail, path, len(lines)))
        except DataError:
            pass  # written up to a crash: ignored now, cut off before the next append
    return records


def _parse_record(line: bytes, path: Path, line_no: int) -> dict:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", path=str(path), line=line_no) from None
    if not isinstance(record, dict):
        raise DataError("each line must be a JSON object", path=str(path), line=line_no)
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise DataError("missing or not a string", path=str(path), line=line_no, field="id")
    checkpoints = record.get("checkpoints")
    if not isinstance(checkpoints, list) or not checkpoints or not all(isinstance(c, str) for c in checkpoints):
        raise DataError("must be a non-empty list of strings", path=str(path), line=line_no, field="checkpoints")
    return record


def _drop_partial_tail(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def build_rubrics(problems: Iterable[Problem], out_path: str | os.PathLike, builder: RubricBuilder,
                  *, limit: int | None = None, progress=None) -> BuildSummary:
    """Append the rubric of every problem not yet in `out_path`; safe to interrupt and rerun."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = set(load_rubrics(path)) if path.is_file() else set()
    _drop_partial_tail(path)
    summary = BuildSummary()
    with path.open("a", encoding="utf-8") as out:
        for count, problem in enumerate(problems):
            if limit is not None and count >= limit:
                break
            if problem.id in done:
                summary.skipped += 1
                continue
            checkpoints = builder.build(problem)
            if not checkpoints:
                summary.failed += 1
                continue
            record = {"id": problem.id, "checkpoints": list(checkpoints), "builder": builder.name}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            done.add(problem.id)
            summary.built += 1
            if progress is not None:
                progress(problem.id, checkpoints)
    return summary


def builder_for(config: JudgeConfig) -> RubricBuilder:
    if config.backend == "reference":
        return ReferenceRubricBuilder()
    if config.backend == "openai":
        return OpenAIRubricBuilder(config)
    raise JudgeError(f"rubrics cannot be built with the '{config.backend}' backend; "
                     f"use {' or '.join(RUBRIC_BACKENDS)}")
