"""The reference judge: a deterministic, LLM-free checkpoint matcher.

It grades a trace by which of the reference's stated results the trace itself states. It is the
judge of the synthetic coverage task (whose terse references state every intermediate value) and
of the tests, and it gives the calibration protocol a baseline whose error rates can be computed
by hand.

Rules (the `name` carries a version; change it whenever a rule below changes, because the judge
name is part of every cache key):

* **Checkpoints.** `extract_checkpoints` reads the results the reference states, in order: the
  right-hand side of every `=` (each link of a chain `a = b = c`), what follows `\\Rightarrow` /
  `\\implies` / `=>`, "is 5"-style statements, and boxed values. Values without a digit or a LaTeX
  command ("= the total") are not results. Duplicates (by equivalence) are dropped, and so are
  values the problem statement itself already states, because restating them is no progress.
  At most `max_checkpoints - 1` intermediate results are kept, spread evenly over the solution,
  and the final answer always comes last.
* **What a trace states.** Only values the trace writes as results (the same reading as above,
  boxed answer included) are compared, never every number in the text: "3 + 4 = 7" states 7, a
  stray "7" in "7 apples left over" after "there are" does too, but a digit inside a word or an
  unrelated expression does not.
* **Equivalence.** Normalised strings first (spaces, `$`, `\\left`, `\\dfrac`, units in `\\text`,
  thousands separators); then exact rational arithmetic for numbers, fractions and decimals; then,
  only for short symbolic values that use the same symbols and functions, a numeric fingerprint:
  the value parsed once by math-verify into sympy and evaluated (at fixed irrational probe points
  for free symbols). So `\\sqrt{8}` matches `2\\sqrt{2}`, but `\\sqrt{4}` does not match `2` and
  `3+4` does not match `7`: a trace is expected to state its results simplified. That is one parse per
  value instead of one sympy equivalence check per (value, checkpoint) pair, which was far too
  slow on MATH-style solutions. math-verify's own timeout uses `signal.alarm`, which works only in
  the main thread, and the judge runs in a worker thread, so its parser is called with the timeout
  disabled on purpose; the length cap (`_SYMBOLIC_MAX_CHARS`) bounds the work instead. Everything
  is memoised.
* **Matching** (`JudgeConfig.reference_matching`). `any`: a checkpoint is reached when the trace
  states an equivalent value anywhere. `chain`: checkpoints are reached in order from the first
  (`chain_reached`), for references whose every result builds on the ones before, where a value
  stated out of turn is a coincidence rather than progress.
* **Score.** With n checkpoints and r reached: r = 0 -> 1, r = n -> 5, otherwise 2, 3 or 4 as r/n
  falls in (0, 1/3], (1/3, 2/3] or (2/3, 1). A judged text whose last boxed answer differs from the
  reference's final answer is capped at 3: it leads to a different answer, so it cannot "strongly
  support" the reference.
* **Process views.** `prefix`: the text judged is `context + step` (the work so far), so the score is
  the progress made up to and including the step and s_t - s_{t-1} is what the step added.
  `segment`: only what the step itself states counts. `step`: the checkpoints the step reaches that
  its earlier steps had not, out of those still missing: 5 when it reaches all of them, 1 when it
  adds none (a step after a finished solution adds nothing); its own wrong box caps it at 3.
* **No reference.** With `reference=None` the only checkpoint is `request.answer` when it is known;
  without either the result is UNPARSEABLE with error "no reference" (never a made-up score).
* **Cached rubric.** `request.rubric`, when given, replaces extraction; its last item is the final
  answer (the order `extract_checkpoints` and `exprl rubrics build` produce).
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

from exprl.data.answers import extract_answer, last_boxed
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

REFERENCE_JUDGE_VERSION = "ref-v1"
DEFAULT_MAX_CHECKPOINTS = 6
_MAX_VALUE_CHARS = 80
_SYMBOLIC_MAX_CHARS = 60  # bounds math-verify's work, since its own timeout is off in threads

# `=` as an assertion: not part of <=, >=, !=, ==, => .
_EQUALS = re.compile(r"(?<![<>!=])=(?![=>])")
_ARROW = re.compile(r"\\(?:Rightarrow|Longrightarrow|implies|therefore)\b|=>|⇒|∴")
_VERBAL = re.compile(
    r"\b(?:is|are|was|equals|gives|yields|becomes|makes|get|gets|obtain|obtains)\s+"
    r"(?:equal\s+to\s+|exactly\s+|just\s+|then\s+)?"
    r"(\$[^$]{1,80}\$|\\\(.{1,80}?\\\)|-?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?![\w.]*\w))")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_CLOSERS = {")": "(", "]": "[", "}": "{"}

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Reading the results a text states


def stated_results(text: str, *, chain_ends_only: bool = False) -> list[str]:
    """The values `text` states as results, normalised, in the order they appear (repeats kept).

    `chain_ends_only` keeps only the last link of `a = b = c` (c): the links in between are the
    computation, not its result. Checkpoints are read this way; traces get the generous reading.
    """
    found: list[tuple[int, str]] = []
    for match in _EQUALS.finditer(text):
        expression = _take_expression(text, match.end())
        after = match.end() + len(expression)
        if chain_ends_only and after < len(text) and _EQUALS.match(text, after):
            continue
        found.append((match.start(), expression))
    for match in _ARROW.finditer(text):
        found.append((match.start(), _take_expression(text, match.end())))
    for match in _VERBAL.finditer(text):
        found.append((match.start(1), match.group(1)))
    boxes = []
    for match in re.finditer(r"\\(?:boxed|fbox)", text):
        boxed = _box_at(text, match.start())
        if boxed is not None:
            boxes.append((match.start(), boxed))
    values = []
    for _, raw in sorted(found, key=lambda item: item[0]):
        value = normalize(raw)
        if _is_result(value):
            values.append(value)
    # A boxed value is an answer by declaration, so words and bare letters count there ("p-q").
    values.extend(value for value in (normalize(raw) for _, raw in boxes) if value)
    return values


def _box_at(text: str, start: int) -> str | None:
    """The content of the box that starts at `start` (not of a later one)."""
    boxed = last_boxed(text[start:])
    later = re.search(r"\\(?:boxed|fbox)", text[start + 1:])
    if later is None:
        return boxed
    return last_boxed(text[start:start + 1 + later.start()])


def _take_expression(text: str, start: int) -> str:
    """The expression starting at `start`, up to the first delimiter outside brackets.

    Delimiters: , ; : ? = & $ newline, a sentence-ending period, LaTeX line breaks and math
    closers, GSM8K's `<<`/`>>`, an unmatched closing bracket, and a following English word
    ("= 12 apples" -> "12"). A comma inside a thousands group ("1,000") is not a delimiter.
    """
    depth: list[str] = []
    i, end = start, min(len(text), start + 200)
    while i < end:
        ch = text[i]
        rest = text[i:i + 2]
        if ch == "\\":
            if rest in ("\\\\", "\\]", "\\)") and not depth:
                break
            command = re.match(r"\\[A-Za-z]+|\\.", text[i:])
            name = command.group(0) if command else ch
            if name in ("\\quad", "\\qquad") and not depth and i > start:
                break  # spacing before prose: `= 5 \quad \text{so ...}`
            i += len(name)
            continue
        if ch in "([{":
            depth.append(ch)
        elif ch in _CLOSERS:
            if not depth:
                break
            if depth[-1] == _CLOSERS[ch]:
                depth.pop()
        elif not depth:
            if ch in ";:?=&$\n<>":
                break
            if ch == "," and not re.match(r",\d{3}(?!\d)", text[i:]):
                break
            if ch == "." and not (i + 1 < len(text) and text[i + 1].isdigit()):
                break
            if ch.isspace() and re.match(r"\s+[A-Za-z]{2,}", text[i:]):
                break
        i += 1
    return text[start:i]


def normalize(value: str) -> str:
    """A canonical spelling of a value, so that cheap string equality catches most matches."""
    value = value.strip().strip("$").strip()
    value = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), value)
    value = re.sub(r"\\(?:left|right|displaystyle|!|,|;|:| )", "", value)
    value = re.sub(r"\\[dt]frac", r"\\frac", value)
    value = re.sub(r"\^\{?\\circ\}?|\\%|%|\\\$", "", value)
    # Units and words in \text{...} after a value: "12 \text{ cm}" -> "12".
    value = re.sub(r"(?<=\S)\s*\\(?:text|mbox|textbf|mathrm)\{[^{}]*\}\s*$", "", value)
    value = re.sub(r"\s+", "", value)
    value = value.rstrip(".,;")
    boxed = re.fullmatch(r"\\(?:boxed|fbox)\{(.*)\}", value)
    if boxed and _balanced(boxed.group(1)):
        value = boxed.group(1)
    while value.startswith("{") and value.endswith("}") and _balanced(value[1:-1]):
        value = value[1:-1]
    return value


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            return False
    return depth == 0


def _is_result(value: str) -> bool:
    return 0 < len(value) <= _MAX_VALUE_CHARS and bool(re.search(r"\d|\\[A-Za-z]", value))


# ---------------------------------------------------------------------------------------------
# Equivalence


@lru_cache(maxsize=65536)
def as_number(value: str) -> Fraction | None:
    """A normalised value as an exact rational, when it is a plain number, a/b or \\frac{a}{b}."""
    sign = 1
    if value.startswith("-"):
        sign, value = -1, value[1:]
    frac = re.fullmatch(r"\\frac\{?(-?\d+(?:\.\d+)?)\}?\{?(-?\d+(?:\.\d+)?)\}?", value) or \
        re.fullmatch(r"(-?\d+(?:\.\d+)?)/(-?\d+(?:\.\d+)?)", value)
    try:
        if frac:
            denominator = Fraction(frac.group(2))
            return None if denominator == 0 else sign * Fraction(frac.group(1)) / denominator
        if _NUMBER.fullmatch(value):
            return sign * Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None
    return None


@lru_cache(maxsize=65536)
def equivalent(a: str, b: str) -> bool:
    """Whether two normalised values are the same mathematical object."""
    if a == b:
        return True
    num_a, num_b = as_number(a), as_number(b)
    if num_a is not None and num_b is not None:
        return num_a == num_b
    vocabulary = symbol_vocabulary(a)
    if not vocabulary or vocabulary != symbol_vocabulary(b):
        # Unequal symbols or functions cannot be the same value in practice, and a plain
        # arithmetic string ("3+4", "2\\cdot3") is a computation, not a stated result; both
        # checks are cheap and spare a sympy parse (about 0.1 s each) for almost every pair.
        return False
    print_a, print_b = fingerprint(a), fingerprint(b)
    return print_a is not None and print_a == print_b


# LaTeX layout and arithmetic commands: they do not make a value symbolic.
_LAYOUT_COMMANDS = frozenset({"frac", "cdot", "times", "div", "left", "right", "displaystyle", "text",
                              "mathrm", "mbox", "textbf", "pm", "mp"})


@lru_cache(maxsize=65536)
def symbol_vocabulary(value: str) -> frozenset[str]:
    """The symbols and functions a value uses (`x`, `\\sqrt`, `\\pi`): empty for plain arithmetic."""
    commands = {name for name in re.findall(r"\\([A-Za-z]+)", value) if name not in _LAYOUT_COMMANDS}
    letters = set(re.findall(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", value)))
    return frozenset(commands | letters)


# Irrational probe points for free symbols: two different expressions agreeing at all of them by
# chance is practically impossible, and comparing fingerprints is one dict look-up, where a sympy
# equivalence check per (value, checkpoint) pair took tens of milliseconds.
_PROBES = (0.5772156649, 1.4142135623, 2.7182818284, 0.3183098861, 1.6180339887)


@lru_cache(maxsize=65536)
def fingerprint(value: str) -> tuple | None:
    """A value's numeric signature: its numbers (at fixed probe points for any free symbols),
    rounded to 9 significant digits, with the symbol names. None when sympy cannot read it.

    Each value is parsed once (memoised); math-verify's parse runs with its timeout disabled
    (see the module docstring), and `_SYMBOLIC_MAX_CHARS` bounds its work.
    """
    if len(value) > _SYMBOLIC_MAX_CHARS:
        return None
    number = as_number(value)
    if number is not None:
        return ((), _round(complex(float(number))))
    expr = _parse_symbolic(value)
    if expr is None:
        return None
    try:
        return _signature(expr)
    except Exception:  # noqa: BLE001 - sympy raises many kinds of errors on odd input; no match
        return None


def _signature(expr) -> tuple:
    import sympy

    if isinstance(expr, (sympy.Tuple, tuple, list)):
        return ("tuple", tuple(_signature(item) for item in expr))
    if isinstance(expr, sympy.FiniteSet):
        return ("set", tuple(sorted((_signature(item) for item in expr), key=repr)))
    if not isinstance(expr, sympy.Expr):
        raise TypeError(f"not an expression: {type(expr).__name__}")
    symbols = sorted(expr.free_symbols, key=str)
    probes = {symbol: _PROBES[i % len(_PROBES)] for i, symbol in enumerate(symbols)}
    return (tuple(str(symbol) for symbol in symbols), _round(complex(expr.evalf(15, subs=probes))))


def _round(value: complex) -> tuple[float, float]:
    return (float(f"{value.real:.9g}"), float(f"{value.imag:.9g}"))


@lru_cache(maxsize=16384)
def _parse_symbolic(value: str):
    from math_verify import parse
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns once per timeout-less process
    try:
        parsed = parse(f"${value}$", parsing_timeout=None)
    except Exception:  # noqa: BLE001
        return None
    return parsed[0] if parsed else None


# ---------------------------------------------------------------------------------------------
# Checkpoints


def extract_checkpoints(reference: str, answer: str | None, *, problem: str | None = None,
                        max_checkpoints: int = DEFAULT_MAX_CHECKPOINTS) -> list[str]:
    """The reference's intermediate results then its final answer (always last), deduplicated.

    `answer` is the known final answer; without it the reference's own (`#### N` or last box) is
    used. Values the `problem` already states are left out. Returns [] when the reference states
    nothing checkable and no answer is known.
    """
    if max_checkpoints < 1:
        raise ValueError("max_checkpoints must be at least 1")
    final = normalize(answer) if answer else None
    if not final:
        stated = extract_answer(reference)
        final = normalize(stated) if stated else None
    given = stated_results(problem) if problem else []
    intermediates: list[str] = []
    for value in stated_results(reference, chain_ends_only=True):
        if final is not None and equivalent(value, final):
            continue
        if any(equivalent(value, seen) for seen in intermediates):
            continue
        if any(equivalent(value, known) for known in given):
            continue
        intermediates.append(value)
    slots = max_checkpoints - (1 if final else 0)
    intermediates = spread_evenly(intermediates, slots)
    return intermediates + ([final] if final else [])


def spread_evenly(items: list[str], slots: int) -> list[str]:
    """At most `slots` items spaced evenly from first to last, in their original order."""
    if slots <= 0:
        return []
    if len(items) <= slots:
        return items
    if slots == 1:
        return [items[-1]]
    step = (len(items) - 1) / (slots - 1)
    return [items[round(k * step)] for k in range(slots)]


def progress_score(reached: int, total: int, *, wrong_final: bool = False) -> int:
    """The documented 1-5 map from the number of checkpoints reached (see the module docstring)."""
    if total <= 0:
        raise ValueError("there must be at least one checkpoint")
    if reached <= 0:
        score = 1
    elif reached >= total:
        score = 5
    else:
        share = reached / total
        score = 2 if share <= 1 / 3 else 3 if share <= 2 / 3 else 4
    return min(score, 3) if wrong_final else score


def chain_reached(stated: Sequence[str], checkpoints: Sequence[str]) -> list[bool]:
    """Checkpoints reached in order from the first: the k-th counts only when stated after the (k-1)-th."""
    count = 0
    for value in stated:
        if count < len(checkpoints) and equivalent(value, checkpoints[count]):
            count += 1
    return [i < count for i in range(len(checkpoints))]


# ---------------------------------------------------------------------------------------------
# The backend


class ReferenceBackend:
    """A `Backend` that needs no model: see the module docstring for the rules."""

    def __init__(self, config: JudgeConfig | None = None,
                 max_checkpoints: int = DEFAULT_MAX_CHECKPOINTS):
        self.config = config or JudgeConfig(backend="reference")
        self.max_checkpoints = max_checkpoints
        self.matching = self.config.reference_matching
        if self.matching not in ("any", "chain"):
            raise ValueError(f"reference_matching must be any or chain, got {self.matching!r}")
        self.name = f"reference:{REFERENCE_JUDGE_VERSION}:k{max_checkpoints}" + \
            (":chain" if self.matching == "chain" else "")

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        # Symbolic comparisons can take milliseconds each; keep them off the event loop.
        return await asyncio.to_thread(self.judge_all, list(requests))

    def judge_all(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return [self.judge_one(request) for request in requests]

    def judge_one(self, request: JudgeRequest) -> JudgeResult:
        started = time.perf_counter()
        try:
            result = self._judge(request)
        except Exception as exc:  # noqa: BLE001 - one bad request must not sink a batch
            logger.exception("reference judge failed on one request")
            result = JudgeResult(score=None, status=JudgeStatus.ERROR, error=f"{type(exc).__name__}: {exc}")
        result.latency_s = time.perf_counter() - started
        return result

    def reached(self, stated: Sequence[str], checkpoints: Sequence[str]) -> list[bool]:
        """Which checkpoints the stated values reach, under this judge's matching rule."""
        if self.matching == "chain":
            return chain_reached(stated, checkpoints)
        return [any(equivalent(value, checkpoint) for value in stated) for checkpoint in checkpoints]

    def checkpoints_for(self, request: JudgeRequest) -> tuple[str, ...]:
        if request.rubric:
            return tuple(normalize(item) for item in request.rubric)
        if request.reference is None:
            return (normalize(request.answer),) if request.answer else ()
        return _cached_checkpoints(request.reference, request.answer, request.problem, self.max_checkpoints)

    def _judge(self, request: JudgeRequest) -> JudgeResult:
        checkpoints = self.checkpoints_for(request)
        if not checkpoints:
            reason = "no reference" if request.reference is None and not request.rubric else \
                "the reference states no checkable result"
            return JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw=f"Unscorable: {reason}",
                               error=reason)
        judged = request.context + request.trace if request.mode == "prefix" else request.trace
        if request.mode == "step":
            before = self.reached(stated_results(request.context), checkpoints) if request.context else \
                [False] * len(checkpoints)
            after = self.reached(stated_results(request.context + request.trace), checkpoints)
            reached = [now and not earlier for now, earlier in zip(after, before)]
            total = max(len(checkpoints) - sum(before), 1)
        else:
            reached = self.reached(stated_results(judged), checkpoints)
            total = len(checkpoints)
        final = checkpoints[-1]
        boxed = last_boxed(judged)
        wrong_final = boxed is not None and not equivalent(normalize(boxed), final)
        score = progress_score(sum(reached), total, wrong_final=wrong_final)
        lines = [f"{'reached' if ok else 'missing'}: {value}{' (final answer)' if i == len(checkpoints) - 1 else ''}"
                 for i, (value, ok) in enumerate(zip(checkpoints, reached))]
        if wrong_final:
            lines.append(f"boxed answer {normalize(boxed)} differs from the final answer: capped at 3")
        raw = "Reasoning: " + "; ".join(lines) + f"\nScore: {score}"
        return JudgeResult(score=score, status=JudgeStatus.OK, raw=raw)


@lru_cache(maxsize=4096)
def _cached_checkpoints(reference: str, answer: str | None, problem: str,
                        max_checkpoints: int) -> tuple[str, ...]:
    return tuple(extract_checkpoints(reference, answer, problem=problem, max_checkpoints=max_checkpoints))
