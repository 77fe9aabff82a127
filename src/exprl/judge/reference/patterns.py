"""Every regular expression of the reference judge, declared once.

Each pattern is declared with `_declare(regex, finds=..., misses=...)`: `finds` are (text, what
`search` finds there) pairs and `misses` texts where `search` finds nothing. They are the
pattern's documentation and its test (tests/judge/test_reference_patterns.py runs them all), so
an example here cannot drift from what the pattern does. A pattern of several alternatives lists
them one a line, each with a comment and an example, in the style of Math-Verify's parser.py.

Patterns the training monitors read the same way (`[asy]` drawings, a thousands comma) are
declared in `exprl.rewards.monitors`, the lower layer, and imported from there.
"""
from __future__ import annotations

import re

from exprl.rewards.monitors import ASY_DRAWING, THOUSANDS_COMMA

EXAMPLES: dict[re.Pattern[str], tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {}
"""pattern -> (finds, misses), for every pattern declared here and the two imported above."""


def _declare(regex: str, *, finds: tuple[tuple[str, str], ...], misses: tuple[str, ...] = (),
             flags: int = 0) -> re.Pattern[str]:
    pattern = re.compile(regex, flags)
    EXAMPLES[pattern] = (finds, misses)
    return pattern


def _one_of(*alternatives: str) -> str:
    return "|".join(alternatives)


EXAMPLES[ASY_DRAWING] = ((("see [asy]draw((0,0)--(1,1));[/asy] here", "[asy]draw((0,0)--(1,1));[/asy]"),),
                         ("[asy] unclosed",))
EXAMPLES[THOUSANDS_COMMA] = ((("1,000", ","),), ("1,00", "1,0000"))

# ---------------------------------------------------------------------------------------------
# What makes a value a result: `=`, arrows, verbs, declared answers

EQUALS = _declare(r"(?<![<>!=])=(?![=>])", finds=(("x = 5", "="),),
                  misses=("x <= 5", "x >= 5", "x != 5", "x == 5", "p => q"))
"""`=` as an assertion: not part of <=, >=, !=, ==, =>."""

ARROW = _declare(_one_of(
    r"\\(?:Rightarrow|Longrightarrow|implies|therefore)\b",  # LaTeX: `\Rightarrow 5`, `\therefore x = 2`
    r"=>",                                                   # ASCII: `x => 5`
    r"⇒",                                                    # Unicode arrow: `x ⇒ 5`
    r"∴",                                                    # Unicode therefore: `∴ 5`
), finds=((r"so \Rightarrow 5", r"\Rightarrow"), ("x => 5", "=>"), ("x ⇒ 5", "⇒"), ("∴ 5", "∴")),
   misses=(r"\Rightarrowtail", "x = 5"))
"""What follows an arrow is a result."""

VERB = _declare(r"\b(?:is|are|was|were|equals|gives|yields|becomes|makes|get|gets|got|obtain|obtains)\s+"
                r"(?:equal\s+to\s+|exactly\s+|just\s+|then\s+|now\s+)?",
                finds=(("the total is 5", "is "), ("x is equal to 5", "is equal to "), ("we get 7", "get ")),
                misses=("this", "island 5"))
"""A verb that states a result ("is 5", "gives exactly 7"), with the filler words it may carry."""

COMPARATIVE = _declare(r"\s*(?:times|more|less|fewer|as|of|per|percent)\b",
                       finds=((" times faster", " times"), (" more than", " more")), misses=(" apples",),
                       flags=re.IGNORECASE)
"""After "is 4": a factor or a comparison ("is 4 times faster"), not a result."""

ANSWER_LABEL = _declare(r"\b(?:final\s+)?answer\s*:\s*", finds=(("Final answer: 5", "Final answer: "),
                                                              ("answer:5", "answer:")),
                        misses=("the answer is 5",), flags=re.IGNORECASE)
"""A labelled answer: what follows is a declared answer."""

GSM8K_ANSWER = _declare(r"####[ \t]*", finds=(("so 72.\n#### 72", "#### "),), misses=("### Step 1",))
"""GSM8K's answer line: the rest of the line is a declared answer."""

ANSWER_SUBJECT = _declare(r"\banswer\W{0,3}$", finds=(("so the answer ", "answer "), ("The Answer: ", "Answer: ")),
                          misses=("the answer to part (a) ",), flags=re.IGNORECASE)
"""The words before a verb name the answer ("the answer is 5"): the verb declares it."""

BOX_COMMAND = _declare(r"\\(?:boxed|fbox)", finds=((r"so \boxed{5}", r"\boxed"), (r"\fbox{5}", r"\fbox")),
                       misses=("boxed 5",))
"""Where a box starts; its content is read with `exprl.data.answers.last_boxed`."""

WHOLE_BOX = _declare(r"\\(?:boxed|fbox)\{(.*)\}", finds=((r"\boxed{\frac{1}{2}}", r"\boxed{\frac{1}{2}}"),),
                     misses=(r"\boxed 5",))
"""A value that is one box (used with fullmatch: its content is the value)."""

SCORE_WORDS = ("score", "grade", "rating", "reward")
"""A bare value for one of these is a claim addressed to a judge, not a result of the solution."""

SCORE_WORD = _declare(_one_of(*SCORE_WORDS), finds=(("Score = 5", "Score"),), misses=("the total",),
                      flags=re.IGNORECASE)
"""Any score word in a text: one scan decides whether `SCORE_SUBJECT` needs looking for at all."""

SCORE_SUBJECT = _declare(rf"\b(?:{_one_of(*SCORE_WORDS)})s?\b[^\n.;]{{0,12}}$",
                         finds=(("Score ", "Score "), ("so the grade ", "grade "), ("my ratings here ", "ratings here ")),
                         misses=("scored ", "the score of the first part of it "), flags=re.IGNORECASE)
"""The words before an `=` or a verb name a score ("Score = 5", "the grade is 5")."""

MODULAR_LINE = _declare(_one_of(
    r"\\pmod",    # `7 \equiv 1 \pmod 3`
    r"\\bmod",    # `7 \bmod 3 = 1`
    r"\\mod\b",   # `7 \mod 3`
    r"\bmod\b",   # `7 mod 3 = 1`
    r"\\equiv",   # `a \equiv b`
    r"≡",         # `a ≡ b`
    r"\bmodulo\b",  # `7 modulo 3`
), finds=((r"7 \pmod 3", r"\pmod"), (r"7 \bmod 3", r"\bmod"), (r"7 \mod 3", r"\mod"), ("7 mod 3", "mod"),
          (r"a \equiv b", r"\equiv"), ("a ≡ b", "≡"), ("7 modulo 3", "modulo")),
   misses=("model = 3", r"\modulus"))
"""A line that computes modulo something: its `=` are congruences, not equalities."""

PROBLEM_MODULUS = _declare(r"\b(?:modulo|mod)\s+(\d+)\b", finds=(("Give the result modulo 97.", "modulo 97"),),
                           misses=("modulo n",))
"""The problem's "modulo m" (group 1: m): computations are then checked modulo m."""

ASSIGNED_NAME = _declare(_one_of(
    r"(?:^",                    # the start of the text: `x = 5`
    r"[^\w\\+\-*/^=<>\s]\s*",   # a delimiter: `, x = 5`, `(x = 5`
    r"[A-Za-z]{2,}\s+)"         # a word: `so x = 5`, `Let a_1 = 2`
    r"([A-Za-z](?:_\{?\w+\}?)?)\s*$",  # then the name, right before the `=`: `x`, `a_1`, `a_{12}`
), finds=(("x ", "x "), ("so x ", "so x "), ("Let a_{12} ", "Let a_{12} "), (", y", ", y")),
   misses=("3 + x ", "2x ", r"\pi "))
"""A variable that is the whole left-hand side of an `=` (group 1), not the last term of an expression."""

# ---------------------------------------------------------------------------------------------
# Numbers as texts write them

PLAIN_NUMBER = _declare(r"-?\d+(?:\.\d+)?", finds=(("x = -12.5 cm", "-12.5"), ("7", "7")), misses=("x",))
"""A number: an optional minus, digits, optional decimals (fullmatch: the whole value is one)."""

PROBLEM_NUMBER = _declare(r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?",
                          finds=(("costs 1,200.50 dollars", "1,200.50"), ("12 eggs", "12")), misses=("x",))
"""A number a problem states, thousands separators included."""

GROUPED_NUMBER = _declare(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])",
                          finds=(("1,000,000 people", "1,000,000"),), misses=("1,2,3", "3.1,000"))
"""A number written with thousands separators (group 1), to be written without them."""

THOUSANDS_SEPARATOR = _declare(r"(?<=\d),(?=\d{3}(?!\d))", finds=(("1,000", ","),), misses=("a,000", "1,00"))
"""A comma between a digit and a group of exactly three (`THOUSANDS_COMMA` with its digit checked)."""

CURRENCY = _declare(r"[ \t]*\$(?=[ \t]*-?\d)", finds=((" $25", " $"), ("$ -3", "$")), misses=(" $x$",))
"""A `$` before a number: a currency sign, unless `MATH_NUMBER` finds it opens math."""

MATH_NUMBER = _declare(r"[ \t]*\$[ \t]*-?[\d.,]+\$", finds=((" $5$", " $5$"),), misses=(" $5 and", "$5"))
"""A number in inline math: `$5$` is math, not five dollars."""

DECIMALS = _declare(r"\d\.(\d+)\s*%?\s*$", finds=(("3.33", "3.33"), ("12.5 %", "2.5 %")), misses=("3", "3.3x"))
"""The decimals a result shows (group 1), to check it to that many places (`10 / 3 = 3.33`)."""

RATE_UNIT = _declare(r"/[A-Za-z]{3,}", finds=(("1000/month", "/month"),), misses=("10/2", "a/b"))
"""A rate's unit: "$1000/month" ends at the `/`."""

FOLLOWING_WORD = _declare(_one_of(
    r"\s+(?:[A-Za-z]{2,}",       # a word: `12 apples`
    r"[A-Za-z]\s+[A-Za-z]{2,})",  # a one-letter word, then a word: `10,000 a year`
), finds=((" apples", " apples"), (" a year", " a year")), misses=(" x 4", " 3"))
"""A word after a value ends the value ("= 12 apples" -> "12"); `3 x 4` is a product."""

# ---------------------------------------------------------------------------------------------
# LaTeX

LATEX_COMMAND = _declare(_one_of(
    r"\\([A-Za-z]+",  # a named command (group 1: its name): `\frac`, `\cdot`
    r".)",            # a one-character command: `\,`, `\%`, `\\`
), finds=((r"2 \cdot 3", r"\cdot"), (r"5\%", r"\%")), misses=("2 * 3",))
"""One LaTeX command, read as a unit."""

COMMAND_NAME = _declare(r"\\([A-Za-z]+)", finds=((r"\sqrt{2}", r"\sqrt"),), misses=(r"\,",))
"""A named command (group 1: its name), for the symbols and functions a value uses."""

BEGIN_ENVIRONMENT = _declare(r"\\begin\{(\w+\*?)\}", finds=((r"\begin{pmatrix} 1 \end{pmatrix}", r"\begin{pmatrix}"),
                                                            (r"\begin{align*}", r"\begin{align*}")),
                             misses=(r"\begin",))
"""An environment (group 1: its name): a matrix or a case split is one value."""

SPACING = _declare(_one_of(
    r"\\(?:left",      # `\left(`
    r"right",          # `\right)`
    r"displaystyle",   # `\displaystyle\frac{1}{2}`
    r"!",              # negative thin space `\!`
    r",",              # thin space `\,`
    r";",              # medium space `\;`
    r":",              # medium space `\:`
    r" )",             # a backslash-space `\ `
), finds=((r"\left(1\right)", r"\left"), (r"1\,000", r"\,"), (r"a\ b", "\\ ")), misses=(r"\frac",))
"""Layout commands that do not change a value."""

FRAC_VARIANT = _declare(r"\\[dt]frac", finds=((r"\dfrac{1}{2}", r"\dfrac"), (r"\tfrac12", r"\tfrac")),
                        misses=(r"\frac{1}{2}",))
"""`\\dfrac` and `\\tfrac`: `\\frac` in another size."""

UNIT_MARK = _declare(_one_of(
    r"\^\{\\circ\}",  # degrees: `90^{\circ}`
    r"\^\\circ",      # degrees: `90^\circ`
    r"\\%",           # percent: `50\%`
    r"%",             # percent: `50%`
    r"\\\$",          # dollar: `\$5`
), finds=((r"90^{\circ}", r"^{\circ}"), (r"90^\circ", r"^\circ"), (r"50\%", r"\%"), ("50%", "%"), (r"\$5", r"\$")),
   misses=("90",))
"""Degrees, percent and dollar signs: a value is the same without them."""

TRAILING_TEXT = _declare(r"(?<=\S)\s*\\(?:text|mbox|textbf|mathrm)\{[^{}]*\}\s*$",
                         finds=((r"12 \text{ cm}", r" \text{ cm}"),), misses=(r"\text{cm} 12",))
"""Units and words in `\\text{...}` after a value: "12 \\text{ cm}" is 12."""

TEXT_BLOCK = _declare(r"\\(?:text|mathrm|mbox)\{[^{}]*\}", finds=((r"5 \text{apples}", r"\text{apples}"),),
                      misses=(r"\textbf{5}",))
"""Words inside math (`\\text{...}`): allowed in math, unlike plain words."""

WHITESPACE = _declare(r"\s+", finds=(("a \t b", " \t "),), misses=("ab",))
"""Spaces, which no value depends on."""

# ---------------------------------------------------------------------------------------------
# Reading a value after a verb: inline math or money

INLINE_MATH = _declare(_one_of(
    r"\$([^$\n]{1,80})\$",  # dollar math (group 1): `$9 \cdot 2$`
    r"\\\((.{1,80}?)\\\)",   # parenthesis math (group 2): `\(9 \cdot 2\)`
), finds=((r"$9 \cdot 2$ so", r"$9 \cdot 2$"), (r"\(18\) so", r"\(18\)")), misses=("$5 and", "18"))
"""A value written as inline math, right after a verb."""

STARTS_WITH_NUMBER = _declare(r"\s*-?\d", finds=((" -5", " -5"),), misses=("x + y",))
"""Content that opens with a number (used with match)."""

LETTER_OR_COMMAND = _declare(r"[\\A-Za-z]", finds=(("5x", "x"), (r"5\cdot", "\\")), misses=("5 + 3",))
"""Content that holds a letter or a LaTeX command: math, not only numbers and operators."""

LONE_AMOUNT = _declare(r"\s*-?[\d.,]+\s*", finds=((" 1,200.50 ", " 1,200.50 "),), misses=("x",))
"""Content that is one number alone (used with fullmatch): `$20$` is math, not money."""

PLAIN_WORD = _declare(r"(?<![\\A-Za-z])[A-Za-z]{2,}", finds=(("5 apples", "apples"),), misses=(r"\cdot 5", "x + y"))
"""A word of two letters or more that is not a LaTeX command's name: prose, not math."""

RESULT_MARK = _declare(r"\d|\\[A-Za-z]", finds=(("the 5", "5"), (r"\pi", r"\p")), misses=("the total",))
"""What a result holds: a digit or a LaTeX command ("= the total" is not a result)."""

# ---------------------------------------------------------------------------------------------
# The left-hand side of an `=`

OPERATOR_WORD = _declare(r"\b(?:of|times|by|plus|minus|over|than)\s*$",
                         finds=(("half of ", "of "), ("5 times", "times")), misses=("of 5",), flags=re.IGNORECASE)
"""Words that take part in a computation, right before it: `half of 10 + 4 = 9` is not `10 + 4`."""

ENDS_WITH_OPERAND = _declare(r"[\d)]\s*$", finds=(("3 ", "3 "), ("(1+2)", ")")), misses=("3 +",))
"""A text that ends with an operand: an `x` after it may be a product sign."""

STARTS_WITH_OPERAND = _declare(r"\s*[\d($]", finds=((" 4", " 4"), ("(2", "(")), misses=("y",))
"""A text that opens with an operand (used with match): an `x` before it may be a product sign."""

ENDS_WITH_TERM = _declare(r"[\w)\]}]\s*$", finds=(("x ", "x "), ("f(2)", ")")), misses=("x +",))
"""A text that ends with a term: a minus after it is binary (`x - 3 + 5 = 7`)."""

# ---------------------------------------------------------------------------------------------
# Plain arithmetic

MAYBE_COMPUTATION = _declare(_one_of(
    r"[+*/^×·÷−]",                     # an operator: `9 * 2`, `3 × 4`
    r"[\d)]\s*-",                      # a minus after an operand: `16 - 3`
    r"\\(?:cdot|times|div|d?frac)",    # a LaTeX operator: `9 \cdot 2`, `\frac{1}{2}`
    r"\d\s*[xX]\s*[\d($]",             # `x` between numbers: `3 x 4`
), finds=(("9 * 2", "*"), ("16 - 3", "6 -"), (r"9 \cdot 2", r"\cdot"), ("3 x 4", "3 x 4")),
   misses=("18", "-5", "x - 3"))
"""Anything that might be a computation: a cheap test before evaluating a chain."""

NOT_ARITHMETIC = _declare(_one_of(
    r"(?<![\\A-Za-z])(?![xX](?![A-Za-z]))[A-Za-z]",  # a letter that starts no command and is no lone `x`: `2y`
    r"=",                                             # an equation: `2 = 2`
), finds=(("2y + 1", "y"), ("2 = 2", "=")), misses=(r"3 \cdot 4", "3 x 4"))
"""What plain arithmetic never holds (a LaTeX command and `x` between numbers are checked later)."""

LATEX_FRACTION = _declare(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}",
                          finds=((r"\frac{3}{4} + 1", r"\frac{3}{4}"), (r"\dfrac {1} {2}", r"\dfrac {1} {2}")),
                          misses=(r"\frac12",))
"""`\\frac{a}{b}` with plain a and b (groups 1, 2), rewritten innermost first."""

TIMES_X = _declare(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])", finds=(("3 x 4", " x "), ("(2)X(3)", "X")), misses=("3x + 4", "x 4"))
"""`x` between numbers: a product sign."""

ARITHMETIC_FORM = _declare(r"[0-9.+\-*/^()% ]*", finds=(("(1 + 2) * 3%", "(1 + 2) * 3%"),), misses=())
"""The characters the evaluator reads (used with fullmatch)."""

DIGIT = _declare(r"\d", finds=(("x1", "1"),), misses=("x",))
"""A digit: arithmetic needs at least one."""

OPERATION = _declare(_one_of(
    r"[+*/^]",               # `9 * 2`
    r"(?<=[\d)%])\s*-",      # a binary minus: `16 - 3`, `(4) - 1`
), finds=(("9*2", "*"), ("16 - 3", " -")), misses=("-5", "18"))
"""An operation in arithmetic form: `9 * 2` is a computation, `18` and `-5` are not."""

NUMBER_TOKEN = r"\d*\.?\d+%?"
TOKEN = _declare(_one_of(
    NUMBER_TOKEN,   # a number: `12`, `.5`, `2.5`, `50%`
    r"[-+*/^()]",   # an operator or a bracket
), finds=(("12.5% of", "12.5%"), (" (", "(")), misses=("x",))
"""One token of arithmetic form, for the evaluator."""

ARITHMETIC_NUMBER = _declare(NUMBER_TOKEN, finds=(("a 50%", "50%"), ("2.5", "2.5")), misses=("x",))
"""A number of arithmetic form: a computation's operands."""

WRITTEN_FRACTION = _declare(r"(?<![\d.)])(\d+)\s*/\s*(\d+)(?![\d.(])", finds=(("11/18*162", "11/18"),),
                            misses=("1.5/2", "(1)/2", "3/4(2)"))
"""A fraction written `a/b` (groups 1, 2): `11/18 * 162` uses the fraction 11/18."""

LATEX_NUMBER_FRACTION = _declare(rf"\\frac\{{?({PLAIN_NUMBER.pattern})\}}?\{{?({PLAIN_NUMBER.pattern})\}}?",
                                 finds=((r"\frac{3}{4}", r"\frac{3}{4}"), (r"\frac34", r"\frac34")),
                                 misses=(r"\frac{x}{2}",))
"""A normalised `\\frac` of two numbers (groups 1, 2; used with fullmatch)."""

SLASH_FRACTION = _declare(rf"({PLAIN_NUMBER.pattern})/({PLAIN_NUMBER.pattern})", finds=(("3/4", "3/4"),),
                          misses=("x/2",))
"""A normalised `a/b` of two numbers (groups 1, 2; used with fullmatch)."""

LETTER = _declare(r"[A-Za-z]", finds=(("2x", "x"),), misses=("2",))
"""A letter: a symbol, once LaTeX commands are taken out."""
