"""What a text states as a result: `read_statements` and the readers it is built of.

The rules (which values count, when a computation's own arithmetic contradicts a link, names given
too many values) are the "What a trace establishes" section of `exprl.judge.reference`; the
patterns are declared in `patterns`, the arithmetic and the normal form of values in `arithmetic`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache

from exprl.data.answers import last_boxed
from exprl.judge.reference.arithmetic import (as_number, distinct_values, evaluate, is_computation, normalize,
                                              operands_of)
from exprl.judge.reference.patterns import (ANSWER_LABEL, ANSWER_SUBJECT, ARROW, ASSIGNED_NAME, ASY_DRAWING,
                                            BEGIN_ENVIRONMENT, BOX_COMMAND, COMPARATIVE, CURRENCY, DECIMALS,
                                            ENDS_WITH_OPERAND, ENDS_WITH_TERM, EQUALS, FOLLOWING_WORD,
                                            GSM8K_ANSWER, INLINE_MATH, LATEX_COMMAND, LETTER_OR_COMMAND,
                                            LONE_AMOUNT, MATH_NUMBER, MAYBE_COMPUTATION, MODULAR_LINE,
                                            OPERATOR_WORD, PLAIN_WORD, RATE_UNIT, RESULT_MARK, SCORE_SUBJECT,
                                            SCORE_WORD, STARTS_WITH_NUMBER, STARTS_WITH_OPERAND, TEXT_BLOCK,
                                            THOUSANDS_COMMA, VERB)

MAX_VALUES_PER_NAME = 2  # x = 2 or x = 3 are two roots; a third value for x is a list of candidates
_MAX_VALUE_CHARS = 80
_CLOSERS = {")": "(", "]": "[", "}": "{"}


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
        text = ASY_DRAWING.sub(lambda m: " " * len(m.group(0)), text)
    found = _equation_statements(text, modulus)
    for match in ARROW.finditer(text):
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
                  if len(values) > MAX_VALUES_PER_NAME and len(distinct_values(values)) > MAX_VALUES_PER_NAME}
    if candidates:
        found = [replace(s, established=False) if s.name in candidates else s for s in found]
    return tuple(sorted(found, key=lambda s: s.position))


def _equation_statements(text: str, modulus: int | None) -> list[Statement]:
    statements: list[Statement] = []
    matches = list(EQUALS.finditer(text))
    # One scan of the whole text each, instead of one per chain, for what most texts lack.
    modular_text = modulus is None and MODULAR_LINE.search(text) is not None
    score_words = SCORE_WORD.search(text) is not None
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
        if score_words and SCORE_SUBJECT.search(text, max(0, starts[0] - 40), first_equals) and \
                not any(is_computation(link) for link in links):
            continue
        before = text[max(0, first_equals - 3):first_equals].rstrip()
        assigned = ASSIGNED_NAME.search(text, max(0, first_equals - 24), first_equals) \
            if not lhs and (before[-1:].isalnum() or before[-1:] == "}") else None
        checked = True
        if modular_text:
            line_start = text.rfind("\n", 0, starts[0]) + 1
            line_end = text.find("\n", starts[-1])
            checked = not MODULAR_LINE.search(text, line_start, line_end if line_end >= 0 else len(text))
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
    if not MAYBE_COMPUTATION.search(" ".join(links)):  # nothing to check: most chains, cheaply
        checked = False
    for i, link in enumerate(links):
        value = evaluate(link) if checked else None
        if i > 0 and established and expected is not None and value is not None:
            established = _agrees(expected, value, link, modulus)
        if expected is None and value is not None and is_computation(link):
            expected, operands = value, operands_of(link)
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
    for match in EQUALS.finditer(text):
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


def _agrees(expected: Fraction, stated: Fraction, text: str, modulus: int | None) -> bool:
    if expected == stated:
        return True
    if modulus is not None and expected.denominator == 1 and stated.denominator == 1:
        return (expected - stated) % modulus == 0
    decimals = DECIMALS.search(text.strip().rstrip("$").strip())
    if decimals:  # 10 / 3 = 3.33: the rounding (or truncation) the result shows
        return abs(expected - stated) < Fraction(1, 10 ** len(decimals.group(1)))
    if stated.denominator == 1 and expected.denominator != 1:
        return abs(expected - stated) < 1  # 25 / 4 = 6 whole boxes
    return False


def _verbal_statements(text: str) -> list[Statement]:
    statements = []
    for match in VERB.finditer(text):
        before = text[max(0, match.start() - 40):match.start()]
        if SCORE_SUBJECT.search(before):
            continue
        rest = text[match.end():match.end() + 120]
        inline = INLINE_MATH.match(rest)
        content = inline.group(inline.lastindex) if inline else ""
        # `$204 + $160` is money, not math: digits and operators alone, not a lone number. Math
        # has no plain words outside \text{}: `$20.00, there's a $` spans two amounts of money.
        money = bool(STARTS_WITH_NUMBER.match(content)) and not LETTER_OR_COMMAND.search(content) and \
            not LONE_AMOUNT.fullmatch(content)
        words = PLAIN_WORD.search(TEXT_BLOCK.sub("", content))
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
            if COMPARATIVE.match(after):
                continue  # "is 4 times faster": a factor, not a result
        answer = bool(ANSWER_SUBJECT.search(before))
        if value:
            statements.append(Statement(start, value, answer=answer))
    return statements


def _declared_answers(text: str) -> list[Statement]:
    statements = []
    for match in BOX_COMMAND.finditer(text):
        boxed = _box_at(text, match.start())
        if boxed is not None and normalize(boxed):
            statements.append(Statement(match.start(), normalize(boxed), answer=True))
    for match in GSM8K_ANSWER.finditer(text):  # `#### A`: the rest of the line
        line_end = text.find("\n", match.end())
        value = normalize(text[match.end():line_end if line_end >= 0 else len(text)])
        if value and not value.startswith("\\boxed"):  # a labelled box is read as a box
            statements.append(Statement(match.end(), value, answer=True))
    for match in ANSWER_LABEL.finditer(text):
        start, expression = _take_rhs(text, match.end())
        value = normalize(expression)
        if value and not value.startswith("\\boxed"):
            statements.append(Statement(start, value, answer=True))
    return statements


def _box_at(text: str, start: int) -> str | None:
    """The content of the box that starts at `start` (not of a later one)."""
    boxed = last_boxed(text[start:])
    later = BOX_COMMAND.search(text[start + 1:])
    if later is None:
        return boxed
    return last_boxed(text[start:start + 1 + later.start()])


def _take_rhs(text: str, start: int) -> tuple[int, str]:
    """(where it starts, the expression) after an `=` or a verb; `$` before a number is currency."""
    currency = CURRENCY.match(text, start)
    if currency and not MATH_NUMBER.match(text, start):  # `$5$` is math
        start = currency.end()
    return start, _take_expression(text, start)


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
            command = LATEX_COMMAND.match(text, i)
            name = command.group(0) if command else ch
            if name in ("\\quad", "\\qquad") and not depth and i > start:
                break  # spacing before prose: `= 5 \quad \text{so ...}`
            environment = BEGIN_ENVIRONMENT.match(text, i) if name == "\\begin" else None
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
            if ch == "," and not THOUSANDS_COMMA.match(text, i):
                break
            if ch == "." and not (i + 1 < len(text) and text[i + 1].isdigit()):
                break
            if ch.isspace() and FOLLOWING_WORD.match(text, i):
                break  # a following word ("12 apples", "$10,000 a year"), but not `3 a` or `3 x 4`
            if ch == "/" and RATE_UNIT.match(text, i):
                break  # a rate's unit: "$1000/month"
        i += 1
    return text[start:i]


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
                (ch == "," and i >= 2 and text[i - 2].isdigit() and THOUSANDS_COMMA.match(text, i - 1)):
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
            if word in ("x", "X") and ENDS_WITH_OPERAND.search(text, floor, word_start) and \
                    STARTS_WITH_OPERAND.match(text, i):
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
    if stripped[0] in "-−" and ENDS_WITH_TERM.search(text, floor, i):
        return ""  # a binary minus: `x - 3 + 5 = 7`
    if OPERATOR_WORD.search(text, max(floor, i - 12), i):
        return ""  # `half of 10 + 4 = 9`: the words take part in the computation
    return stripped


def _is_result(value: str) -> bool:
    return 0 < len(value) <= _MAX_VALUE_CHARS and bool(RESULT_MARK.search(value))

