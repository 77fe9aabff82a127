"""The reference judge: a deterministic, LLM-free checkpoint matcher that rewards work.

It grades a trace by which of the reference's stated results the trace itself *establishes*. It
is the judge of the synthetic coverage task (whose terse references state every intermediate
value) and of the tests, and it gives the calibration protocol a baseline whose error rates can
be computed by hand. A policy optimises what its judge scores, so the rules below are written
against the cheap ways of scoring without solving (`exprl.judge.hacking` generates them;
docs/architecture.md, "Attack families", lists each with its defence).

Rules (the `name` carries a version; change it whenever a rule below changes, because the judge
name is part of every cache key):

* **Checkpoints.** `extract_checkpoints` reads the results the reference states, in order: the
  right-hand side of every `=` (the last link of a chain `a = b = c`), what follows `\\Rightarrow`
  / `\\implies` / `=>`, "is 5"-style statements, and boxed values. Values without a digit or a
  LaTeX command ("= the total") are not results. Duplicates (by equivalence) are dropped, and so
  are values the problem statement itself already states, because restating them is no progress.
  At most `max_checkpoints - 1` intermediate results are kept, spread evenly over the solution,
  and the final answer always comes last. A checkpoint's *prerequisites* are the earlier
  checkpoints among the operands of the reference's computation of it (`9 * 2 = 18` after
  `16 - 3 - 4 = 9`: 18 needs 9).
* **What a trace establishes** (`read_statements`). Only values the trace writes as results are
  compared, never every number in the text: every link after an `=`, arrows, "is 7"-style
  statements (a value followed by `=` or an operator is an operand there, not a result), and
  declared answers (boxes, GSM8K's `#### N`, "the answer is N", "Answer: N"). A `$` right before
  a number is a currency sign. Where a chain's computation is plain arithmetic that can be
  evaluated exactly (numbers, + - * / ^, parentheses, `\\frac`, `\\cdot`, `\\times`, `x`
  between numbers, `%`), every later link must agree with it, else that link and the rest of
  the chain establish nothing: `9 * 2 = $25` establishes neither 25 nor 18, and the left-hand
  side of an `=` is never a result. Agreement is exact, within one unit of a decimal result's
  last digit (`10 / 3 = 3.33`, rounded or cut), or within 1 when an integer results from a
  fraction (whole boxes); modulo m when the problem says "modulo m" (the synthetic task); and
  not checked on a line that works modulo something else. A left-hand side that is only part of
  a larger expression (`x - 3 + 5`, `f(3)`, `half of 10 + 4`) is not checked. Outside `segment`
  views, the operands of a computation the text gets right count as stated (`84 / 12 = 7` uses
  the 12 eggs of a dozen, and `11/18 * 162` the fraction 11/18); a wrong computation lends its
  operands nothing. A name assigned more than two different values (`x = 1, x = 2, x = 3, ...`)
  lists candidates, and none of its values counts. "Score = 5" and "the grade is 5" (a bare value for a score, grade, rating
  or reward, without a computation) are addressed to a judge and are not results. `[asy]`
  drawing code states nothing.
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
* **Matching** (`JudgeConfig.reference_matching`). `any`: a checkpoint is reached where the trace
  establishes an equivalent value after the first statement of each of its prerequisites that the
  trace states at all (a prerequisite it never states does not block: another route may skip it).
  `chain`: checkpoints are reached in order from the first (`chain_reached`), for references whose
  every result builds on the ones before, where a value stated out of turn is a coincidence rather
  than progress. A declared answer can reach only the final-answer checkpoint.
* **The final answer.** A text that declares an answer is judged by its last declaration: when
  that differs from the reference's final answer, the final checkpoint is missing whatever else
  the text states, and the score is capped at 3 (`WRONG_FINAL_CAP`). A text that declares more
  distinct answers than the reference does (candidates in several boxes, counted over the
  context too in the step view) is hedging: it is treated as a wrong final answer. In outcome
  mode a text that declares nothing is judged by the last value it states, because a complete
  solution ends with its result: a last value the reference never states, or one its own
  computation contradicts, is a wrong final answer; one on the reference's path is unfinished
  work, scored by its progress.
* **Budget.** A solution needs about as many results as the reference states. A text may state
  `value_budget(n) = max(2n, n + 4)` distinct values, n being the number the reference states;
  numbers the problem gives and unevaluated arithmetic are not counted. Each value beyond the
  budget cancels one reached checkpoint, intermediate ones first from the last, the final answer
  last and only when no declared answer reached it; so number lists, enumerated ranges and lists
  of candidate values earn nothing through their length, while a committed right answer still
  counts.
* **Bare answers.** In outcome mode and the prefix view, a text with no `=` and fewer than
  `BARE_ANSWER_WORDS` (10) words outside its boxes is a bare answer (`exprl.rewards.monitors.shows_no_work`:
  the training monitors count bare answers by the same rule), capped at 4 (`BARE_ANSWER_CAP`).
  The cap matters where the reference states no intermediate result; otherwise a bare answer
  scores lower anyway, through the checkpoints it misses.
* **Score.** With n checkpoints and r reached: r = 0 -> 1, r = n -> 5, otherwise 2, 3 or 4 as r/n
  falls in (0, 1/3], (1/3, 2/3] or (2/3, 1); then the caps above.
* **Process views.** `prefix`: the text judged is `context + step` (the work so far), so the score is
  the progress made up to and including the step and s_t - s_{t-1} is what the step added.
  `segment`: only what the step itself establishes counts. `step`: the checkpoints reached after
  the step beyond those its earlier steps had reached, out of those still missing: 5 when it
  reaches all of them, 1 when it adds none (a step after a finished solution adds nothing, and a
  step whose values push the work over budget adds nothing); its own wrong or hedged answer caps
  it at 3.
* **No reference.** With `reference=None` the only checkpoint is `request.answer` when it is known;
  without either the result is UNPARSEABLE with error "no reference" (never a made-up score).
* **Cached rubric.** `request.rubric`, when given, replaces extraction; its last item is the final
  answer (the order `extract_checkpoints` and `exprl rubrics build` produce). Prerequisites are
  then unknown, and the budget counts the rubric's items (or the reference's results, if larger).
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from typing import Sequence, get_args

from exprl.data.answers import extract_answer, last_boxed
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus, ReferenceMatching
from exprl.rewards.monitors import shows_no_work

REFERENCE_JUDGE_VERSION = "ref-v3"
DEFAULT_MAX_CHECKPOINTS = 6
WRONG_FINAL_CAP = 3
BARE_ANSWER_CAP = 4
MAX_VALUES_PER_NAME = 2  # x = 2 or x = 3 are two roots; a third value for x is a list of candidates
_MAX_VALUE_CHARS = 80
_SYMBOLIC_MAX_CHARS = 60  # bounds math-verify's work, since its own timeout is off in threads

# `=` as an assertion: not part of <=, >=, !=, ==, => .
_EQUALS = re.compile(r"(?<![<>!=])=(?![=>])")
_ARROW = re.compile(r"\\(?:Rightarrow|Longrightarrow|implies|therefore)\b|=>|⇒|∴")
_VERB = re.compile(r"\b(?:is|are|was|were|equals|gives|yields|becomes|makes|get|gets|got|obtain|obtains)\s+"
                   r"(?:equal\s+to\s+|exactly\s+|just\s+|then\s+|now\s+)?")
_COMPARATIVE = re.compile(r"\s*(?:times|more|less|fewer|as|of|per|percent)\b", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"\b(?:final\s+)?answer\s*:\s*", re.IGNORECASE)
_GSM8K_ANSWER = re.compile(r"####[ \t]*")
_ANSWER_SUBJECT = re.compile(r"\banswer\W{0,3}$", re.IGNORECASE)
# A bare value for one of these is a claim addressed to a judge, not a result of the solution.
_SCORE_SUBJECT_WORD = re.compile(r"score|grade|rating|reward", re.IGNORECASE)
_SCORE_SUBJECT = re.compile(r"\b(?:score|grade|rating|reward)s?\b[^\n.;]{0,12}$", re.IGNORECASE)
# A line that computes modulo something: its `=` are congruences, not equalities.
_MODULAR_LINE = re.compile(r"\\pmod|\\bmod|\\mod\b|\bmod\b|\\equiv|≡|\bmodulo\b")
# A variable that is the whole left-hand side: after a word, a delimiter or the start, not an operator.
_ASSIGNED_NAME = re.compile(r"(?:^|[^\w\\+\-*/^=<>\s]\s*|[A-Za-z]{2,}\s+)([A-Za-z](?:_\{?\w+\}?)?)\s*$")
_PROBLEM_MODULUS = re.compile(r"\b(?:modulo|mod)\s+(\d+)\b")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PROBLEM_NUMBER = re.compile(r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)

logger = logging.getLogger(__name__)


def value_budget(reference_results: int) -> int:
    """How many distinct values a text may state before each further one cancels a checkpoint."""
    return max(2 * reference_results, reference_results + 4)


# ---------------------------------------------------------------------------------------------
# Reading what a text states


@dataclass(frozen=True)
class Statement:
    """One value a text states as a result: where, what (normalised), and how."""

    position: int
    value: str
    answer: bool = False       # a declared final answer: a box, `#### N`, "the answer is N"
    established: bool = True   # False when the text's own computation contradicts it
    operands: tuple[str, ...] = ()  # the numbers of the computation it is the result of ("12", "11/18")
    chain_end: bool = True     # False for the middle links of `a = b = c`: the computation, not its result
    name: str | None = None    # the variable it is assigned to (`x = 5`), if any


def stated_results(text: str, *, chain_ends_only: bool = False) -> list[str]:
    """The values `text` establishes, normalised, in the order they appear (repeats kept).

    `chain_ends_only` keeps only the last link of `a = b = c` (c): the links in between are the
    computation, not its result. Checkpoints are read this way; traces get the generous reading.
    """
    return [s.value for s in read_statements(text, chain_ends_only=chain_ends_only) if s.established]


def read_statements(text: str, *, chain_ends_only: bool = False, modulus: int | None = None) -> list[Statement]:
    """Every value `text` states as a result, in order of position (see the module docstring).

    `modulus`: the problem's, when it says "modulo m"; computations are then checked modulo m.
    """
    statements = _read_statements(text, modulus)
    return [s for s in statements if s.chain_end] if chain_ends_only else list(statements)


@lru_cache(maxsize=8192)  # the step view reads each prefix twice: as one step's text, as the next one's context
def _read_statements(text: str, modulus: int | None) -> tuple[Statement, ...]:
    # Drawing code is not mathematics: `for(i=1;i<=6;++i)` states nothing. Blank it, keeping offsets.
    if "[asy]" in text:
        text = _ASY.sub(lambda m: " " * len(m.group(0)), text)
    found = _equation_statements(text, modulus)
    for match in _ARROW.finditer(text):
        found.append(Statement(match.start(), normalize(_take_expression(text, match.end()))))
    found += _verbal_statements(text)
    found += _declared_answers(text)
    found = [s for s in found if (s.answer and s.value) or _is_result(s.value)]
    # One name given many values (`x = 1, x = 2, ..., x = 120`) lists candidates: none is a result.
    values_by_name: dict[str, list[str]] = {}
    for statement in found:
        if statement.name and statement.chain_end:
            values_by_name.setdefault(statement.name, []).append(statement.value)
    candidates = {name for name, values in values_by_name.items()
                  if len(values) > MAX_VALUES_PER_NAME and len(_distinct(values)) > MAX_VALUES_PER_NAME}
    if candidates:
        found = [replace(s, established=False) if s.name in candidates else s for s in found]
    return tuple(sorted(found, key=lambda s: s.position))


def _equation_statements(text: str, modulus: int | None) -> list[Statement]:
    statements: list[Statement] = []
    matches = list(_EQUALS.finditer(text))
    # One scan of the whole text each, instead of one per chain, for what most texts lack.
    modular_text = modulus is None and _MODULAR_LINE.search(text) is not None
    score_words = _SCORE_SUBJECT_WORD.search(text) is not None
    k = 0
    while k < len(matches):
        first_equals = matches[k].start()
        lhs = _take_lhs(text, first_equals)
        links, starts = [lhs], [matches[k].start() - len(lhs)]
        position = matches[k].end()
        while True:  # a chain a = b = c continues while the next `=` follows a link directly
            start, expression = _take_rhs(text, position)
            links.append(expression)
            starts.append(start)
            if k + 1 < len(matches) and matches[k + 1].start() == start + len(expression):
                k += 1
                position = matches[k].end()
                continue
            break
        k += 1
        if score_words and _SCORE_SUBJECT.search(text, max(0, starts[0] - 40), first_equals) and \
                not any(is_computation(link) for link in links):
            continue
        before = text[max(0, first_equals - 3):first_equals].rstrip()
        assigned = _ASSIGNED_NAME.search(text, max(0, first_equals - 24), first_equals) \
            if not lhs and (before[-1:].isalnum() or before[-1:] == "}") else None
        checked = True
        if modular_text:
            line_start = text.rfind("\n", 0, starts[0]) + 1
            line_end = text.find("\n", starts[-1])
            checked = not _MODULAR_LINE.search(text, line_start, line_end if line_end >= 0 else len(text))
        statements += _chain(links, starts, modulus if checked else None, checked,
                             assigned.group(1) if assigned else None)
    return statements


def _chain(links: list[str], starts: list[int], modulus: int | None, checked: bool,
           name: str | None) -> list[Statement]:
    """The statements of one chain `links[0] = links[1] = ...`: every link after the first."""
    statements = []
    expected: Fraction | None = None
    operands: tuple[str, ...] = ()
    established = True
    if not _MAYBE_COMPUTATION.search(" ".join(links)):  # nothing to check: most chains, cheaply
        checked = False
    for i, link in enumerate(links):
        value = evaluate(link) if checked else None
        if i > 0 and established and expected is not None and value is not None:
            established = _agrees(expected, value, link, modulus)
        if expected is None and value is not None and is_computation(link):
            expected, operands = value, _operands(link)
        if i > 0:
            statements.append(Statement(starts[i], normalize(link), established=established, operands=operands,
                                        chain_end=i == len(links) - 1, name=name))
    return statements


@dataclass(frozen=True)
class Computation:
    """`expression = result` where the expression is plain arithmetic and the result a number."""

    start: int         # offset of the expression
    result_start: int  # offset of the result
    end: int           # offset just after the result
    expression: str
    result: str        # as written (currency sign and units left out)
    value: Fraction    # the expression's exact value


def stated_computations(text: str) -> list[Computation]:
    """The computations `text` writes out (the first link of each chain), right or wrong, in order."""
    computations = []
    for match in _EQUALS.finditer(text):
        expression = _take_lhs(text, match.start())
        value = evaluate(expression) if is_computation(expression) else None
        if value is None:
            continue
        start, result = _take_rhs(text, match.end())
        written = result.strip()
        if evaluate(written) is None or is_computation(written):
            continue
        computations.append(Computation(start=match.start() - len(expression),
                                        result_start=start + len(result) - len(result.lstrip()),
                                        end=start + len(result.rstrip()),
                                        expression=expression.strip(), result=written, value=value))
    return computations


_MAYBE_COMPUTATION = re.compile(r"[+*/^×·÷−]|[\d)]\s*-|\\(?:cdot|times|div|d?frac)|\d\s*[xX]\s*[\d($]")
_DECIMALS = re.compile(r"\d\.(\d+)\s*%?\s*$")


def _agrees(expected: Fraction, stated: Fraction, text: str, modulus: int | None) -> bool:
    if expected == stated:
        return True
    if modulus is not None and expected.denominator == 1 and stated.denominator == 1:
        return (expected - stated) % modulus == 0
    decimals = _DECIMALS.search(text.strip().rstrip("$").strip())
    if decimals:  # 10 / 3 = 3.33: the rounding (or truncation) the result shows
        return abs(expected - stated) < Fraction(1, 10 ** len(decimals.group(1)))
    if stated.denominator == 1 and expected.denominator != 1:
        return abs(expected - stated) < 1  # 25 / 4 = 6 whole boxes
    return False


def _verbal_statements(text: str) -> list[Statement]:
    statements = []
    for match in _VERB.finditer(text):
        before = text[max(0, match.start() - 40):match.start()]
        if _SCORE_SUBJECT.search(before):
            continue
        rest = text[match.end():match.end() + 120]
        inline = re.match(r"\$([^$\n]{1,80})\$|\\\((.{1,80}?)\\\)", rest)
        content = inline.group(inline.lastindex) if inline else ""
        # `$204 + $160` is money, not math: digits and operators alone, not a lone number. Math
        # has no plain words outside \text{}: `$20.00, there's a $` spans two amounts of money.
        money = bool(re.match(r"\s*-?\d", content)) and not re.search(r"[\\A-Za-z]", content) and \
            not re.fullmatch(r"\s*-?[\d.,]+\s*", content)
        words = re.search(r"(?<![\\A-Za-z])[A-Za-z]{2,}", re.sub(r"\\(?:text|mathrm|mbox)\{[^{}]*\}", "", content))
        if inline and not money and not words:
            if "=" in content:
                continue  # "is $9 \cdot 2 = 18$": the `=` reading takes it
            value, start = normalize(content), match.end() + inline.start(inline.lastindex)
        else:
            start, expression = _take_rhs(text, match.end())
            after = text[start + len(expression):start + len(expression) + 12]
            value = normalize(expression)
            if after.startswith("=") or as_number(value) is None and not value.startswith("\\boxed"):
                continue  # "makes 9 * 2 = ...": an operand of a computation, not its result
            if _COMPARATIVE.match(after):
                continue  # "is 4 times faster": a factor, not a result
        answer = bool(_ANSWER_SUBJECT.search(before))
        if value:
            statements.append(Statement(start, value, answer=answer))
    return statements


def _declared_answers(text: str) -> list[Statement]:
    statements = []
    for match in re.finditer(r"\\(?:boxed|fbox)", text):
        boxed = _box_at(text, match.start())
        if boxed is not None and normalize(boxed):
            statements.append(Statement(match.start(), normalize(boxed), answer=True))
    for match in _GSM8K_ANSWER.finditer(text):  # `#### A`: the rest of the line
        line_end = text.find("\n", match.end())
        value = normalize(text[match.end():line_end if line_end >= 0 else len(text)])
        if value and not value.startswith("\\boxed"):  # a labelled box is read as a box
            statements.append(Statement(match.end(), value, answer=True))
    for match in _ANSWER_LABEL.finditer(text):
        start, expression = _take_rhs(text, match.end())
        value = normalize(expression)
        if value and not value.startswith("\\boxed"):
            statements.append(Statement(start, value, answer=True))
    return statements


def _box_at(text: str, start: int) -> str | None:
    """The content of the box that starts at `start` (not of a later one)."""
    boxed = last_boxed(text[start:])
    later = re.search(r"\\(?:boxed|fbox)", text[start + 1:])
    if later is None:
        return boxed
    return last_boxed(text[start:start + 1 + later.start()])


def _take_rhs(text: str, start: int) -> tuple[int, str]:
    """(where it starts, the expression) after an `=` or a verb; `$` before a number is currency."""
    currency = _CURRENCY.match(text, start)
    if currency and not _MATH_NUMBER.match(text, start):  # `$5$` is math
        start = currency.end()
    return start, _take_expression(text, start)


_CURRENCY = re.compile(r"[ \t]*\$(?=[ \t]*-?\d)")
_MATH_NUMBER = re.compile(r"[ \t]*\$[ \t]*-?[\d.,]+\$")
_COMMAND = re.compile(r"\\[A-Za-z]+|\\.")
_BEGIN = re.compile(r"\\begin\{(\w+\*?)\}")
_THOUSANDS_GROUP = re.compile(r",\d{3}(?!\d)")
_FOLLOWING_WORD = re.compile(r"\s+(?:[A-Za-z]{2,}|[A-Za-z]\s+[A-Za-z]{2,})")
_RATE_UNIT = re.compile(r"/[A-Za-z]{3,}")


def _take_expression(text: str, start: int) -> str:
    """The expression starting at `start`, up to the first delimiter outside brackets.

    Delimiters: , ; : ? = & $ newline, a sentence-ending period, LaTeX line breaks and math
    closers, GSM8K's `<<`/`>>`, an unmatched closing bracket, a following word ("= 12 apples" ->
    "12", but `3 x 4` is a product) and a rate's unit ("1000/month"). A comma inside a thousands
    group ("1,000") is not a delimiter.
    """
    depth: list[str] = []
    i, end = start, min(len(text), start + 200)
    while i < end:
        ch = text[i]
        rest = text[i:i + 2]
        if ch == "\\":
            if rest in ("\\\\", "\\]", "\\)") and not depth:
                break
            command = _COMMAND.match(text, i)
            name = command.group(0) if command else ch
            if name in ("\\quad", "\\qquad") and not depth and i > start:
                break  # spacing before prose: `= 5 \quad \text{so ...}`
            environment = _BEGIN.match(text, i) if name == "\\begin" else None
            if environment:  # a matrix or a case split is one value
                close = text.find(f"\\end{{{environment.group(1)}}}", i)
                if close < 0:
                    break
                i = close + len(environment.group(1)) + 6
                continue
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
            if ch == "," and not _THOUSANDS_GROUP.match(text, i):
                break
            if ch == "." and not (i + 1 < len(text) and text[i + 1].isdigit()):
                break
            if ch.isspace() and _FOLLOWING_WORD.match(text, i):
                break  # a following word ("12 apples", "$10,000 a year"), but not `3 a` or `3 x 4`
            if ch == "/" and _RATE_UNIT.match(text, i):
                break  # a rate's unit: "$1000/month"
        i += 1
    return text[start:i]


_OPERATOR_WORD = re.compile(r"\b(?:of|times|by|plus|minus|over|than)\s*$", re.IGNORECASE)
_ENDS_WITH_OPERAND = re.compile(r"[\d)]\s*$")
_STARTS_WITH_OPERAND = re.compile(r"\s*[\d($]")
_ENDS_WITH_TERM = re.compile(r"[\w)\]}]\s*$")
_LHS_COMMANDS = frozenset({"cdot", "times", "div", "frac", "dfrac", "tfrac", "left", "right"})


def _take_lhs(text: str, end: int) -> str:
    """The plain-arithmetic expression that ends at `end` (just before an `=`), or "".

    Read backwards over numbers, operators, brackets and the LaTeX arithmetic commands, up to a
    word or any other character. "" where that would cut a larger expression: one that starts
    with a binary operator (`x - 3 + 5`: not `-3 + 5`) or touches a word or symbol (`f(3)`, `a_1 + 2`).
    """
    i, floor = end, max(0, end - 200)
    while i > floor:
        ch = text[i - 1]
        if ch.isdigit() or ch in " \t+-*/^()[]{}%$×·÷−∙":
            i -= 1
            continue
        if (ch == "." and i < len(text) and text[i].isdigit()) or \
                (ch == "," and i >= 2 and text[i - 2].isdigit() and _THOUSANDS_GROUP.match(text, i - 1)):
            i -= 1
            continue
        if ch.isalpha():
            word_start = i - 1
            while word_start > floor and text[word_start - 1].isalpha():
                word_start -= 1
            word = text[word_start:i]
            if word_start > 0 and text[word_start - 1] == "\\" and word in _LHS_COMMANDS:
                i = word_start - 1
                continue
            if word in ("x", "X") and _ENDS_WITH_OPERAND.search(text, floor, word_start) and \
                    _STARTS_WITH_OPERAND.match(text, i):
                i = word_start
                continue
        break
    expression = text[i:end]
    stripped = expression.lstrip()
    if i > 0 and stripped == expression and (text[i - 1].isalnum() or text[i - 1] in "_\\'|!"):
        return ""  # glued to a word or symbol: part of a larger expression
    openers = sum(stripped.count(c) for c in "([{") - sum(stripped.count(c) for c in ")]}")
    while openers > 0 and stripped[:1] in ("(", "[", "{"):
        stripped = stripped[1:].lstrip()
        openers -= 1
    if openers != 0 or not stripped or stripped[0] in "+*/^)]}":
        return ""
    if stripped[0] in "-−" and _ENDS_WITH_TERM.search(text, floor, i):
        return ""  # a binary minus: `x - 3 + 5 = 7`
    if _OPERATOR_WORD.search(text, max(floor, i - 12), i):
        return ""  # `half of 10 + 4 = 9`: the words take part in the computation
    return stripped


_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SPACING = re.compile(r"\\(?:left|right|displaystyle|!|,|;|:| )")
_FRAC_VARIANT = re.compile(r"\\[dt]frac")
_DEGREES_PERCENT_DOLLAR = re.compile(r"\^\{\\circ\}|\^\\circ|\\%|%|\\\$")
_TRAILING_TEXT = re.compile(r"(?<=\S)\s*\\(?:text|mbox|textbf|mathrm)\{[^{}]*\}\s*$")
_WHITESPACE = re.compile(r"\s+")
_WHOLE_BOX = re.compile(r"\\(?:boxed|fbox)\{(.*)\}")


@lru_cache(maxsize=65536)
def normalize(value: str) -> str:
    """A canonical spelling of a value, so that cheap string equality catches most matches."""
    value = value.strip().strip("$").strip()
    if _PLAIN_NUMBER.fullmatch(value):
        return value  # most values: nothing to rewrite
    value = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), value)
    value = _SPACING.sub("", value)
    value = _FRAC_VARIANT.sub(r"\\frac", value)
    value = _DEGREES_PERCENT_DOLLAR.sub("", value)
    # Units and words in \text{...} after a value: "12 \text{ cm}" -> "12".
    value = _TRAILING_TEXT.sub("", value)
    value = _WHITESPACE.sub("", value)
    value = value.rstrip(".,;")
    boxed = _WHOLE_BOX.fullmatch(value)
    if boxed and _balanced(boxed.group(1)):
        value = boxed.group(1)
    elif "\\boxed{" in value or "\\fbox{" in value:
        inner = last_boxed(value)  # `b\in\boxed{(-4,4)}`: the box marks the value
        value = inner if inner else value
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
# Exact arithmetic of simple stated computations


class _NotArithmetic(ValueError):
    pass


_MAX_DIGITS = 300      # an exact value beyond this many digits is not checked
_MAX_EXPONENT = 64
_LATEX_ARITHMETIC = {"cdot": "*", "times": "*", "div": "/", "left": "", "right": "", "!": "", ",": "",
                     ";": "", " ": "", "%": "%", "$": ""}
_ARITHMETIC_FORM = re.compile(r"[0-9.+\-*/^()% ]*")
_NOT_ARITHMETIC = re.compile(r"(?<![\\A-Za-z])(?![xX](?![A-Za-z]))[A-Za-z]|=")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+|.)")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")
_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=65536)
def _arithmetic_form(expression: str) -> str | None:
    """`expression` in the plain form `evaluate` parses, or None when it is not plain arithmetic."""
    if _PLAIN_NUMBER.fullmatch(expression):
        return expression
    if _NOT_ARITHMETIC.search(expression):
        return None  # a letter that is neither a LaTeX command nor `x` between numbers, or `=`
    text = expression.replace("−", "-").replace("×", "*").replace("·", "*").replace("∙", "*")
    text = text.replace("÷", "/")
    if "\\" in text:
        for _ in range(8):  # \frac{a}{b} -> ((a)/(b)), innermost first
            replaced = _LATEX_FRACTION.sub(r"((\1)/(\2))", text)
            if replaced == text:
                break
            text = replaced
        text = _LATEX_COMMAND.sub(lambda m: _LATEX_ARITHMETIC.get(m.group(1), "\\"), text)
        if "\\" in text:
            return None
    text = text.replace("$", "")
    text = text.replace("{", "(").replace("}", ")").replace("[", "(").replace("]", ")")
    text = _THOUSANDS_COMMA.sub("", text)
    text = _TIMES_X.sub("*", text)
    if not _ARITHMETIC_FORM.fullmatch(text) or not _DIGIT.search(text):
        return None
    return text


@lru_cache(maxsize=65536)
def is_computation(expression: str) -> bool:
    """Whether `expression` is plain arithmetic with at least one operation (`9 * 2`, not `18`)."""
    form = _arithmetic_form(expression)
    return form is not None and bool(re.search(r"[+*/^]|(?<=[\d)%])\s*-", form))


@lru_cache(maxsize=65536)
def evaluate(expression: str) -> Fraction | None:
    """The exact value of plain arithmetic: numbers (thousands separators, decimals, `%`), + - * /,
    integer powers, parentheses, and the LaTeX `\\frac`, `\\cdot`, `\\times`, `\\div`; `x` between
    numbers is a product. None for anything else (symbols, functions, division by zero)."""
    form = _arithmetic_form(expression)
    if form is None:
        return None
    tokens = re.findall(r"\d*\.?\d+%?|[-+*/^()]", form)
    if "".join(tokens) != form.replace(" ", ""):
        return None
    try:
        value, end = _sum(tokens, 0)
    except (_NotArithmetic, ZeroDivisionError, IndexError):
        return None
    return value if end == len(tokens) else None


@lru_cache(maxsize=65536)
def _operands(expression: str) -> tuple[str, ...]:
    """The numbers a computation uses, and the fractions it writes as `a/b` (`11/18*162`), distinct,
    spelled as `_format_number` does."""
    form = _arithmetic_form(expression) or ""
    numbers = [_number(token) for token in re.findall(r"\d*\.?\d+%?", form)]
    fractions = [Fraction(a) / Fraction(b) for a, b in re.findall(r"(?<![\d.)])(\d+)\s*/\s*(\d+)(?![\d.(])", form)
                 if Fraction(b)]
    return tuple(dict.fromkeys(_format_number(value) for value in numbers + fractions))


def _number(token: str) -> Fraction:
    if token.endswith("%"):
        return _number(token[:-1]) / 100
    return Fraction(int(token)) if token.isdigit() else Fraction(token)  # int() is 10x faster to parse


def _sum(tokens: list[str], i: int) -> tuple[Fraction, int]:
    value, i = _product(tokens, i)
    while i < len(tokens) and tokens[i] in ("+", "-"):
        operator = tokens[i]
        right, i = _product(tokens, i + 1)
        value = value + right if operator == "+" else value - right
    return value, i


def _product(tokens: list[str], i: int) -> tuple[Fraction, int]:
    value, i = _signed(tokens, i)
    while i < len(tokens) and tokens[i] in ("*", "/", "("):
        if tokens[i] == "(":  # 2(3 + 4)
            right, i = _signed(tokens, i)
            value *= right
        else:
            operator = tokens[i]
            right, i = _signed(tokens, i + 1)
            value = value * right if operator == "*" else value / right
        _check_size(value)
    return value, i


def _signed(tokens: list[str], i: int) -> tuple[Fraction, int]:
    if tokens[i] in ("+", "-"):
        value, after = _signed(tokens, i + 1)
        return (-value if tokens[i] == "-" else value), after
    return _power(tokens, i)


def _power(tokens: list[str], i: int) -> tuple[Fraction, int]:
    base, i = _atom(tokens, i)
    if i < len(tokens) and tokens[i] == "^":
        exponent, i = _signed(tokens, i + 1)  # right-associative: 2^3^2 = 2^9
        if exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT or (base == 0 and exponent < 0):
            raise _NotArithmetic("exponent")
        base = base ** int(exponent)
        _check_size(base)
    return base, i


def _atom(tokens: list[str], i: int) -> tuple[Fraction, int]:
    token = tokens[i]
    if token == "(":
        value, i = _sum(tokens, i + 1)
        if i >= len(tokens) or tokens[i] != ")":
            raise _NotArithmetic("unbalanced")
        return value, i + 1
    if token in ("+", "-", "*", "/", "^", ")"):
        raise _NotArithmetic(token)
    return _number(token), i + 1


def _check_size(value: Fraction) -> None:
    if len(str(value.numerator)) + len(str(value.denominator)) > _MAX_DIGITS:
        raise _NotArithmetic("too large")


# ---------------------------------------------------------------------------------------------
# Equivalence


@lru_cache(maxsize=65536)
def as_number(value: str) -> Fraction | None:
    """A normalised value as an exact rational, when it is a plain number, a/b or \\frac{a}{b}."""
    if value.isdigit():
        return Fraction(int(value))
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
    if expr.has(sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit):
        # evalf of an unevaluated sum with a symbolic bound (MATH's \sum_{k=0}^n k/\binom{n}{k}) runs
        # Euler-Maclaurin for minutes; such a value has no fingerprint and matches only as written.
        raise TypeError("an unevaluated sum, product, integral or limit")
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
# Checkpoints and what else the reference tells the judge


@dataclass(frozen=True)
class AnswerKey:
    """What a trace is graded against, read once per (reference, answer, problem)."""

    checkpoints: tuple[str, ...]                     # intermediate results, then the final answer
    prerequisites: tuple[frozenset[int], ...] = ()   # per checkpoint: indices of earlier ones it needs
    budget: int = 5                                  # distinct values a text may state (`value_budget`)
    answers_allowed: int = 1                         # distinct answers the reference itself declares
    modulus: int | None = None                       # the problem's "modulo m"
    given: frozenset[Fraction] = frozenset()         # numbers the problem states
    path: tuple[str, ...] = ()                       # every value the reference states, final included

    @property
    def final(self) -> str:
        return self.checkpoints[-1]


def extract_checkpoints(reference: str, answer: str | None, *, problem: str | None = None,
                        max_checkpoints: int = DEFAULT_MAX_CHECKPOINTS) -> list[str]:
    """The reference's intermediate results then its final answer (always last), deduplicated.

    `answer` is the known final answer; without it the reference's own (`#### N` or last box) is
    used. Values the `problem` already states are left out. Returns [] when the reference states
    nothing checkable and no answer is known.
    """
    return list(_checkpoint_statements(reference, answer, problem, max_checkpoints)[0])


def _checkpoint_statements(reference: str, answer: str | None, problem: str | None,
                           max_checkpoints: int) -> tuple[list[str], list[Statement | None]]:
    """The checkpoints and, for each, the reference statement that first states it (None: none does)."""
    if max_checkpoints < 1:
        raise ValueError("max_checkpoints must be at least 1")
    final = normalize(answer) if answer else None
    if not final:
        stated = extract_answer(reference)
        final = normalize(stated) if stated else None
    given = stated_results(problem) if problem else []
    statements = read_statements(reference, chain_ends_only=True)
    intermediates: list[Statement] = []
    for statement in statements:
        value = statement.value
        if final is not None and equivalent(value, final):
            continue
        if any(equivalent(value, seen.value) for seen in intermediates):
            continue
        if any(equivalent(value, known) for known in given):
            continue
        intermediates.append(statement)
    slots = max_checkpoints - (1 if final else 0)
    kept = spread_evenly(intermediates, slots)
    if not final:
        return [s.value for s in kept], list(kept)
    final_statement = next((s for s in statements if equivalent(s.value, final)), None)
    return [s.value for s in kept] + [final], [*kept, final_statement]


def answer_key(request: JudgeRequest, max_checkpoints: int = DEFAULT_MAX_CHECKPOINTS) -> AnswerKey | None:
    """The request's AnswerKey, or None when nothing is checkable (see the module docstring)."""
    return _cached_key(request.reference, request.answer, request.problem, request.rubric, max_checkpoints)


@lru_cache(maxsize=4096)
def _cached_key(reference: str | None, answer: str | None, problem: str, rubric: tuple[str, ...] | None,
                max_checkpoints: int) -> AnswerKey | None:
    given = _problem_numbers(problem)
    modulus_match = _PROBLEM_MODULUS.search(problem)
    modulus = int(modulus_match.group(1)) if modulus_match and int(modulus_match.group(1)) >= 2 else None
    reference_results, answers_allowed, path = 0, 1, ()
    if reference is not None:
        statements = read_statements(reference)  # memoised: the checkpoints read the same statements
        reference_results = len(_counted_values(statements, given))
        answers_allowed = max(1, len(_distinct([s.value for s in statements if s.answer])))
        path = tuple(_distinct([s.value for s in statements]))
    if rubric:
        checkpoints = tuple(normalize(item) for item in rubric)
        prerequisites = tuple(frozenset() for _ in checkpoints)
    elif reference is None:
        if not answer:
            return None
        checkpoints, prerequisites = (normalize(answer),), (frozenset(),)
    else:
        values, sources = _checkpoint_statements(reference, answer, problem, max_checkpoints)
        if not values:
            return None
        checkpoints = tuple(values)
        prerequisites = tuple(_prerequisites(j, checkpoints, source) for j, source in enumerate(sources))
    return AnswerKey(checkpoints=checkpoints, prerequisites=prerequisites,
                     budget=value_budget(max(reference_results, len(checkpoints))),
                     answers_allowed=answers_allowed, modulus=modulus, given=given,
                     path=path + checkpoints)


def _prerequisites(index: int, checkpoints: tuple[str, ...], source: Statement | None) -> frozenset[int]:
    if source is None or not source.operands:
        return frozenset()
    operands = {as_number(operand) for operand in source.operands}
    return frozenset(i for i in range(index) if as_number(checkpoints[i]) in operands)


def _problem_numbers(problem: str) -> frozenset[Fraction]:
    return frozenset(_number(token.replace(",", "")) for token in _PROBLEM_NUMBER.findall(problem))


def _counted_values(statements: Sequence[Statement], given: frozenset[Fraction]) -> list[str]:
    """The distinct values a text states that count against a budget: not a number the problem
    gives, not unevaluated arithmetic ("3+4")."""
    return _distinct([s.value for s in statements if s.established and _counts_against_budget(s.value, given)])


@lru_cache(maxsize=65536)
def _counts_against_budget(value: str, given: frozenset[Fraction]) -> bool:
    return not is_computation(value) and as_number(value) not in given


def _format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _distinct(values: Sequence[str]) -> list[str]:
    numbers: set[Fraction] = set()
    others: list[str] = []
    out = []
    for value in values:
        number = as_number(value)
        if number is not None:
            if number not in numbers:
                numbers.add(number)
                out.append(value)
        elif not any(equivalent(value, other) for other in others):
            others.append(value)
            out.append(value)
    return out


def spread_evenly(items: list, slots: int) -> list:
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
    return min(score, WRONG_FINAL_CAP) if wrong_final else score


def chain_reached(stated: Sequence[str], checkpoints: Sequence[str]) -> list[bool]:
    """Checkpoints reached in order from the first: the k-th counts only when stated after the (k-1)-th."""
    count = 0
    for value in stated:
        if count < len(checkpoints) and equivalent(value, checkpoints[count]):
            count += 1
    return [i < count for i in range(len(checkpoints))]


# ---------------------------------------------------------------------------------------------
# Grading a text against an answer key


@dataclass
class Assessment:
    """How a text fares against an AnswerKey: per checkpoint a status, and the caps that apply."""

    status: list[str]                 # reached | missing | out of order | over budget
    declared: str | None = None       # the final answer the text commits to, if any
    wrong_final: bool = False
    hedged: bool = False              # more distinct declared answers than the reference has
    bare: bool = False
    values: int = 0                   # distinct values counted against the budget
    notes: list[str] = field(default_factory=list)

    @property
    def reached(self) -> int:
        return self.status.count("reached")


def assess(text: str, key: AnswerKey, *, matching: str = "any", final_from_last: bool = False,
           answers_from: int = 0, operands: bool = True) -> Assessment:
    """Grade `text` against `key` (the rules of the module docstring).

    `final_from_last`: a text that declares no answer is judged by the last value it states (a
    whole trace). `answers_from`: only answers declared at or after this offset decide the final
    answer (the step view: a step is judged by its own answer, not by its context's). `operands`:
    credit the operands of the text's correct computations (not for a step seen alone, whose
    operands are mostly what earlier steps established).
    """
    statements = read_statements(text, modulus=key.modulus)
    established = [s for s in statements if s.established]
    # The operands of a computation the text gets right are values it uses knowingly (`84 / 12 = 7`
    # uses 12 eggs a dozen); a wrong computation (`9 * 2 = 25`) lends its operands nothing.
    # Under `chain` matching, where every checkpoint is a result, an operand would only add coincidences.
    if operands and matching != "chain":
        used = [Statement(s.position - 1, operand) for s in established if not s.answer for operand in s.operands]
        established = sorted(established + used, key=lambda s: s.position)
    # Every answer the text declares counts towards hedging (a step that boxes a new candidate after
    # its context boxed another hedges too); the text's own final answer is its last declaration.
    distinct = _distinct([s.value for s in statements if s.answer])
    hedged = len(distinct) > key.answers_allowed
    declarations = [s for s in statements if s.answer and s.position >= answers_from]
    declared = declarations[-1].value if declarations else None
    if declared is None and final_from_last and statements:
        last_stated = statements[-1]
        # A whole trace ends with its result. One that stops on a value of the reference's path is
        # unfinished (its progress is scored); one that stops on a value off it, or on a
        # computation that contradicts itself, has reached a different result.
        if not last_stated.established or not any(equivalent(last_stated.value, value) for value in key.path):
            declared = last_stated.value
    wrong_final = hedged or (declared is not None and not equivalent(declared, key.final))
    last = len(key.checkpoints) - 1

    # Per statement, the checkpoints it may reach: a declared answer is a claim about the final
    # result only, and the committed answer alone decides the final checkpoint.
    hits: list[tuple[int, frozenset[int]]] = []
    for statement in established:
        matched = _matching_checkpoints(statement.value, key.checkpoints)
        if statement.answer:
            matched = matched & {last}
        if wrong_final:
            matched = matched - {last}
        if matched:
            hits.append((statement.position, matched))

    status = ["missing"] * len(key.checkpoints)
    if matching == "chain":
        count = 0
        for _, matched in hits:
            if count < len(key.checkpoints) and count in matched:
                count += 1
        status[:count] = ["reached"] * count
    else:
        first: list[int | None] = []
        for index in range(len(key.checkpoints)):
            positions = [position for position, matched in hits if index in matched]
            first.append(positions[0] if positions else None)
            needs = key.prerequisites[index] if index < len(key.prerequisites) else frozenset()
            floor = max((first[i] for i in needs if first[i] is not None), default=-1)
            if any(p > floor for p in positions):
                status[index] = "reached"
            elif positions:
                status[index] = "out of order"
    values = len(_counted_values(established, key.given))
    excess = max(0, values - key.budget)
    notes = []
    if excess:
        # Intermediates first, from the last; the final answer only when no declaration reached it.
        declared_final = bool(declarations) and not wrong_final
        order = [*reversed(range(last))] + ([] if declared_final else [last])
        for index in [i for i in order if status[i] == "reached"][:excess]:
            status[index] = "over budget"
        notes.append(f"states {values} distinct values, {excess} over the budget of {key.budget}")
    bare = shows_no_work(text)
    if hedged:
        notes.append(f"declares {len(distinct)} different final answers ({', '.join(distinct[:4])}"
                     f"{', ...' if len(distinct) > 4 else ''}): capped at {WRONG_FINAL_CAP}")
    elif wrong_final:
        notes.append(f"final answer {declared} differs from the reference's: capped at {WRONG_FINAL_CAP}")
    return Assessment(status=status, declared=declared, wrong_final=wrong_final, hedged=hedged, bare=bare,
                      values=values, notes=notes)


@lru_cache(maxsize=65536)
def _matching_checkpoints(value: str, checkpoints: tuple[str, ...]) -> frozenset[int]:
    return frozenset(i for i, checkpoint in enumerate(checkpoints) if equivalent(value, checkpoint))


class ReferenceBackend:
    """A `Backend` that needs no model: see the module docstring for the rules."""

    def __init__(self, config: JudgeConfig | None = None,
                 max_checkpoints: int = DEFAULT_MAX_CHECKPOINTS):
        self.config = config or JudgeConfig(backend="reference")
        self.max_checkpoints = max_checkpoints
        self.matching = self.config.reference_matching
        if self.matching not in get_args(ReferenceMatching):
            raise ValueError(f"reference_matching must be any or chain, got {self.matching!r}")
        self.name = f"reference:{REFERENCE_JUDGE_VERSION}:k{max_checkpoints}" + \
            (":chain" if self.matching == "chain" else "")

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        # Symbolic comparisons can take milliseconds each (a long prefix, much more); keep them off the
        # event loop. A thread cannot be cancelled: when the caller is (Ctrl-C), the worker stops at
        # the next request instead of finishing the batch, which the process would wait for on exit.
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._judge_until, list(requests), stop)
        except asyncio.CancelledError:
            stop.set()
            raise

    def _judge_until(self, requests: Sequence[JudgeRequest], stop: threading.Event) -> list[JudgeResult]:
        results = []
        for request in requests:
            if stop.is_set():
                break
            results.append(self.judge_one(request))
        return results

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
        """Which checkpoints a sequence of stated values matches under this judge's matching rule
        (value matching only: the judge's score also applies order, budget and answer rules)."""
        if self.matching == "chain":
            return chain_reached(stated, checkpoints)
        return [any(equivalent(value, checkpoint) for value in stated) for checkpoint in checkpoints]

    def checkpoints_for(self, request: JudgeRequest) -> tuple[str, ...]:
        key = answer_key(request, self.max_checkpoints)
        return key.checkpoints if key else ()

    def _judge(self, request: JudgeRequest) -> JudgeResult:
        key = answer_key(request, self.max_checkpoints)
        if key is None:
            reason = "no reference" if request.reference is None and not request.rubric else \
                "the reference states no checkable result"
            return JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw=f"Unscorable: {reason}",
                               error=reason)
        total = len(key.checkpoints)
        if request.mode == "step":
            before = assess(request.context, key, matching=self.matching) if request.context else None
            after = assess(request.context + request.trace, key, matching=self.matching,
                           answers_from=len(request.context))
            had = before.reached if before else 0
            gained = max(0, after.reached - had)
            score = progress_score(gained, max(total - had, 1), wrong_final=after.wrong_final)
            assessment = after
            status = [("reached before" if before and before.status[i] == "reached" else s)
                      for i, s in enumerate(after.status)]
        else:
            text = request.context + request.trace if request.mode == "prefix" else request.trace
            assessment = assess(text, key, matching=self.matching, final_from_last=request.mode == "outcome",
                                operands=request.mode != "segment")
            status = assessment.status
            score = progress_score(assessment.reached, total, wrong_final=assessment.wrong_final)
            if assessment.bare and request.mode in ("outcome", "prefix") and score > BARE_ANSWER_CAP:
                score = BARE_ANSWER_CAP
                assessment.notes.append(f"a bare answer without work: capped at {BARE_ANSWER_CAP}")
        lines = [f"{state}: {value}{' (final answer)' if i == total - 1 else ''}"
                 for i, (value, state) in enumerate(zip(key.checkpoints, status))]
        raw = "Reasoning: " + "; ".join(lines + assessment.notes) + f"\nScore: {score}"
        return JudgeResult(score=score, status=JudgeStatus.OK, raw=raw)
