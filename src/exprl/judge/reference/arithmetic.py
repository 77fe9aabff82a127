"""Values: their normal form, exact arithmetic of plain computations, and equivalence.

The rules are the "Equivalence" section of `exprl.judge.reference` (and, for what counts as plain
arithmetic, its "What a trace establishes"); the patterns are declared in `patterns`.
"""
from __future__ import annotations

import logging
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

from exprl.data.answers import last_boxed
from exprl.judge.reference.patterns import (ARITHMETIC_FORM, ARITHMETIC_NUMBER, COMMAND_NAME, DIGIT, FRAC_VARIANT,
                                            GROUPED_NUMBER, LATEX_COMMAND, LATEX_FRACTION, LATEX_NUMBER_FRACTION,
                                            LETTER, NOT_ARITHMETIC, OPERATION, PLAIN_NUMBER, SLASH_FRACTION,
                                            SPACING, THOUSANDS_SEPARATOR, TIMES_X, TOKEN, TRAILING_TEXT, UNIT_MARK,
                                            WHITESPACE, WHOLE_BOX, WRITTEN_FRACTION)

SYMBOLIC_MAX_CHARS = 60  # bounds math-verify's work, since its own timeout is off in threads

# ---------------------------------------------------------------------------------------------
# The normal form of a value


@lru_cache(maxsize=65536)
def normalize(value: str) -> str:
    """A canonical spelling of a value, so that cheap string equality catches most matches."""
    value = value.strip().strip("$").strip()
    if PLAIN_NUMBER.fullmatch(value):
        return value  # most values: nothing to rewrite
    value = GROUPED_NUMBER.sub(lambda m: m.group(1).replace(",", ""), value)
    value = SPACING.sub("", value)
    value = FRAC_VARIANT.sub(r"\\frac", value)
    value = UNIT_MARK.sub("", value)
    # Units and words in \text{...} after a value: "12 \text{ cm}" -> "12".
    value = TRAILING_TEXT.sub("", value)
    value = WHITESPACE.sub("", value)
    value = value.rstrip(".,;")
    boxed = WHOLE_BOX.fullmatch(value)
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


# ---------------------------------------------------------------------------------------------
# Exact arithmetic of simple stated computations


class _NotArithmetic(ValueError):
    pass


_MAX_DIGITS = 300      # an exact value beyond this many digits is not checked
_MAX_EXPONENT = 64
_LATEX_ARITHMETIC = {"cdot": "*", "times": "*", "div": "/", "left": "", "right": "", "!": "", ",": "",
                     ";": "", " ": "", "%": "%", "$": ""}


@lru_cache(maxsize=65536)
def _arithmetic_form(expression: str) -> str | None:
    """`expression` in the plain form `evaluate` parses, or None when it is not plain arithmetic."""
    if PLAIN_NUMBER.fullmatch(expression):
        return expression
    if NOT_ARITHMETIC.search(expression):
        return None  # a letter that is neither a LaTeX command nor `x` between numbers, or `=`
    text = expression.replace("−", "-").replace("×", "*").replace("·", "*").replace("∙", "*")
    text = text.replace("÷", "/")
    if "\\" in text:
        for _ in range(8):  # \frac{a}{b} -> ((a)/(b)), innermost first
            replaced = LATEX_FRACTION.sub(r"((\1)/(\2))", text)
            if replaced == text:
                break
            text = replaced
        text = LATEX_COMMAND.sub(lambda m: _LATEX_ARITHMETIC.get(m.group(1), "\\"), text)
        if "\\" in text:
            return None
    text = text.replace("$", "")
    text = text.replace("{", "(").replace("}", ")").replace("[", "(").replace("]", ")")
    text = THOUSANDS_SEPARATOR.sub("", text)
    text = TIMES_X.sub("*", text)
    if not ARITHMETIC_FORM.fullmatch(text) or not DIGIT.search(text):
        return None
    return text


@lru_cache(maxsize=65536)
def is_computation(expression: str) -> bool:
    """Whether `expression` is plain arithmetic with at least one operation (`9 * 2`, not `18`)."""
    form = _arithmetic_form(expression)
    return form is not None and bool(OPERATION.search(form))


@lru_cache(maxsize=65536)
def evaluate(expression: str) -> Fraction | None:
    """The exact value of plain arithmetic: numbers (thousands separators, decimals, `%`), + - * /,
    integer powers, parentheses, and the LaTeX `\\frac`, `\\cdot`, `\\times`, `\\div`; `x` between
    numbers is a product. None for anything else (symbols, functions, division by zero)."""
    form = _arithmetic_form(expression)
    if form is None:
        return None
    tokens = TOKEN.findall(form)
    if "".join(tokens) != form.replace(" ", ""):
        return None
    try:
        value, end = _sum(tokens, 0)
    except (_NotArithmetic, ZeroDivisionError, IndexError):
        return None
    return value if end == len(tokens) else None


@lru_cache(maxsize=65536)
def operands_of(expression: str) -> tuple[str, ...]:
    """The numbers a computation uses, and the fractions it writes as `a/b` (`11/18*162`), distinct,
    spelled as `format_number` does."""
    form = _arithmetic_form(expression) or ""
    numbers = [token_value(token) for token in ARITHMETIC_NUMBER.findall(form)]
    fractions = [Fraction(a) / Fraction(b) for a, b in WRITTEN_FRACTION.findall(form)
                 if Fraction(b)]
    return tuple(dict.fromkeys(format_number(value) for value in numbers + fractions))


def token_value(token: str) -> Fraction:
    if token.endswith("%"):
        return token_value(token[:-1]) / 100
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
    return token_value(token), i + 1


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
    frac = LATEX_NUMBER_FRACTION.fullmatch(value) or SLASH_FRACTION.fullmatch(value)
    try:
        if frac:
            denominator = Fraction(frac.group(2))
            return None if denominator == 0 else sign * Fraction(frac.group(1)) / denominator
        if PLAIN_NUMBER.fullmatch(value):
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
    commands = {name for name in COMMAND_NAME.findall(value) if name not in _LAYOUT_COMMANDS}
    letters = set(LETTER.findall(COMMAND_NAME.sub("", value)))
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
    (see the module docstring), and `SYMBOLIC_MAX_CHARS` bounds its work.
    """
    if len(value) > SYMBOLIC_MAX_CHARS:
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


def format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def distinct_values(values: Sequence[str]) -> list[str]:
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

