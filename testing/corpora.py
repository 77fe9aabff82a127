"""A data folder shaped like the catalog's local copies (../shared/data), written by exprl's own generator.

The tests that read the real corpora skip on a user's clone, which has none; the same behaviours are
checked on this folder, which every clone can build. Each of the catalog's five files gets rows in the
one schema of the local copies (id, source, problem, solution, answer, level, subject):

    gsm8k_train.jsonl, gsm8k_test.jsonl      word problems whose solutions are plain arithmetic
                                             lines (`She sells 16 - 3 - 4 = 9 eggs.`), integer answers
    math_train.jsonl, math500.jsonl,         LaTeX problems whose solutions end in `\\boxed{}`; answers
    math_test_excl_math500.jsonl             are integers, fractions, surds and coordinate pairs

Every problem, solution and answer is made here from templates and a seeded random stream: no row
is copied from a dataset. The folder holds the cases the tests need the data to have:
`KNOWN_DUPLICATE` (a MATH test problem whose text is a train problem's) and `NGRAM_OVERLAP` train
problems sharing a run of 13 words with a MATH-500 problem, as the real corpora do.

    write_catalog_files(folder)    the five files, the same for every call (seed 0)
"""
from __future__ import annotations

import json
import random
import re
from fractions import Fraction
from pathlib import Path

ROWS = {"gsm8k_train": 150, "gsm8k_test": 150, "math_train": 150, "math_test_excl_math500": 130, "math500": 130}
# (train id, test id): the same problem text in MATH train and in the rest of MATH test
KNOWN_DUPLICATE = ("math/train/geometry/5", "math/test/geometry/5")
NGRAM_OVERLAP = 3  # MATH train problems that repeat a MATH-500 problem's sentence inside their own

_NAMES = ["Ada", "Bram", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena"]
_THINGS = ["apples", "marbles", "stickers", "pencils", "shells", "cards", "bolts", "buttons"]
_SUBJECTS = ["Algebra", "Counting & Probability", "Geometry", "Number Theory", "Prealgebra", "Precalculus"]


def _gsm8k_row(rng: random.Random) -> tuple[str, str, int]:
    """(problem, solution, answer) of a word problem, one of four shapes."""
    name, things = rng.choice(_NAMES), rng.choice(_THINGS)
    shape = rng.randrange(4)
    if shape == 0:
        a, b, c = rng.randint(12, 90), rng.randint(3, 40), rng.randint(2, 11)
        problem = (f"{name} has {a} {things}. {name} buys {b} more, then gives {c} to a friend. "
                   f"How many {things} does {name} have now?")
        solution = f"After buying, {name} has {a} + {b} = {a + b} {things}.\nAfter giving some away, " \
                   f"{a + b} - {c} = {a + b - c} {things} are left."
        return problem, solution, a + b - c
    if shape == 1:
        a, price, days = rng.randint(3, 30), rng.randint(2, 9), rng.randint(2, 7)
        problem = (f"{name} sells {a} {things} a day at ${price} each. How many dollars does {name} "
                   f"make in {days} days?")
        solution = f"Each day {name} makes {a} * {price} = ${a * price}.\nIn {days} days that is " \
                   f"{a * price} * {days} = ${a * price * days}."
        return problem, solution, a * price * days
    if shape == 2:
        per, boxes = rng.randint(4, 15), rng.randint(3, 25)
        problem = (f"A box holds {per} {things}. {name} packs {per * boxes} {things} into full boxes. "
                   f"How many boxes does {name} fill?")
        solution = f"{name} fills {per * boxes} / {per} = {boxes} boxes."
        return problem, solution, boxes
    weeks, per_week, spent = rng.randint(3, 12), rng.randint(20, 150), rng.randint(10, 60)
    total = weeks * per_week
    problem = (f"{name} saves ${per_week} every week for {weeks} weeks and then spends ${spent} on a gift. "
               f"How many dollars are left?")
    solution = f"{name} saves {per_week} * {weeks} = ${total}.\nAfter the gift, {total} - {spent} = " \
               f"${total - spent} are left."
    return problem, solution, total - spent


def _frac(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _math_row(rng: random.Random) -> tuple[str, str, str, str]:
    """(problem, solution, answer, subject) of a LaTeX problem, one of five shapes."""
    shape = rng.randrange(5)
    if shape == 0:
        a, x, b = rng.randint(2, 9), rng.randint(-12, 15), rng.randint(-20, 30)
        c = a * x + b
        problem = f"If ${a}x + {b} = {c}$, what is the value of $x$?"
        solution = f"Subtracting ${b}$ from both sides gives ${a}x = {c - b}$. Dividing by ${a}$, " \
                   f"$x = \\boxed{{{x}}}$."
        return problem, solution, str(x), "Algebra"
    if shape == 1:
        p, q, r, s = rng.randint(1, 9), rng.randint(2, 9), rng.randint(1, 9), rng.randint(2, 9)
        total = Fraction(p, q) + Fraction(r, s)
        while total.denominator == 1:
            s += 1
            total = Fraction(p, q) + Fraction(r, s)
        problem = f"Compute $\\frac{{{p}}}{{{q}}} + \\frac{{{r}}}{{{s}}}$. Express your answer as a common fraction."
        solution = f"Over the common denominator ${q * s}$ the sum is $\\frac{{{p * s} + {r * q}}}{{{q * s}}} = " \
                   f"\\frac{{{p * s + r * q}}}{{{q * s}}}$, which reduces to $\\boxed{{{_frac(total)}}}$."
        return problem, solution, _frac(total), "Prealgebra"
    if shape == 2:
        n, k = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10, 11])
        problem = f"Simplify $\\sqrt{{{n * n * k}}}$."
        solution = f"Since ${n * n * k} = {n * n} \\cdot {k}$ and ${n * n} = {n}^2$, we have " \
                   f"$\\sqrt{{{n * n * k}}} = {n}\\sqrt{{{k}}}$, so the answer is $\\boxed{{{n}\\sqrt{{{k}}}}}$."
        return problem, solution, f"{n}\\sqrt{{{k}}}", "Algebra"
    if shape == 3:
        x1, y1 = rng.randint(-9, 9), rng.randint(-9, 9)
        x2, y2 = x1 + 2 * rng.randint(-6, 6), y1 + 2 * rng.randint(-6, 6)
        mx, my = (x1 + x2) // 2, (y1 + y2) // 2
        problem = f"Find the midpoint of the segment with endpoints $({x1},{y1})$ and $({x2},{y2})$."
        solution = f"Each coordinate of the midpoint is the average of the endpoints': $x = \\frac{{{x1} + ({x2})}}{{2}} " \
                   f"= {mx}$ and $y = \\frac{{{y1} + ({y2})}}{{2}} = {my}$. The midpoint is " \
                   f"$\\boxed{{\\left( {mx}, {my} \\right)}}$."
        return problem, solution, f"\\left( {mx}, {my} \\right)", "Geometry"
    p, q = rng.choice([(2, 3), (2, 5), (3, 5), (2, 7), (3, 7)])
    a, b = rng.randint(1, 5), rng.randint(1, 4)
    n = p ** a * q ** b
    problem = f"How many positive divisors does ${n}$ have?"
    solution = f"The prime factorization is ${n} = {p}^{a} \\cdot {q}^{b}$. A divisor takes ${p}$ between $0$ and " \
               f"${a}$ times and ${q}$ between $0$ and ${b}$ times, so there are $({a} + 1)({b} + 1) = " \
               f"\\boxed{{{(a + 1) * (b + 1)}}}$ divisors."
    return problem, solution, str((a + 1) * (b + 1)), "Number Theory"


def _gsm8k_rows(split: str, count: int, rng: random.Random, seen: set[str]) -> list[dict]:
    rows = []
    while len(rows) < count:
        problem, solution, answer = _gsm8k_row(rng)
        if problem in seen:
            continue
        seen.add(problem)
        rows.append({"id": f"gsm8k/{split}/{len(rows)}", "source": "gsm8k", "problem": problem, "solution": solution,
                     "answer": str(answer), "level": None, "subject": None})
    return rows


def _math_rows(split: str, source: str, count: int, rng: random.Random, seen: set[str], first: int) -> list[dict]:
    rows = []
    while len(rows) < count:
        problem, solution, answer, subject = _math_row(rng)
        if problem in seen:
            continue
        seen.add(problem)
        number = first + len(rows)
        rows.append({"id": f"math/{split}/{subject.lower().replace(' & ', '_').replace(' ', '_')}/{number}",
                     "source": source, "problem": problem, "solution": solution, "answer": answer,
                     "level": 1 + number % 5, "subject": subject})
    return rows


def catalog_rows(seed: int = 0) -> dict[str, list[dict]]:
    """file stem -> its rows, as write_catalog_files writes them."""
    rng, seen_gsm8k, seen_math = random.Random(seed), set(), set()
    files = {"gsm8k_train": _gsm8k_rows("train", ROWS["gsm8k_train"], rng, seen_gsm8k),
             "gsm8k_test": _gsm8k_rows("test", ROWS["gsm8k_test"], rng, seen_gsm8k),
             "math_train": _math_rows("train", "hendrycks_math", ROWS["math_train"], rng, seen_math, 0),
             "math500": _math_rows("test", "math500", ROWS["math500"], rng, seen_math, 1000),
             "math_test_excl_math500": _math_rows("test", "hendrycks_math", ROWS["math_test_excl_math500"], rng,
                                                  seen_math, 2000)}
    # The known duplicate: a test problem with a train problem's exact text, under its own ids.
    train, rest = files["math_train"], files["math_test_excl_math500"]
    train[5] = {**train[5], "id": KNOWN_DUPLICATE[0], "subject": "Geometry"}
    rest[5] = {**rest[5], "id": KNOWN_DUPLICATE[1], "problem": train[5]["problem"], "subject": "Geometry"}
    # Overlap by a run of words: a train problem that quotes a MATH-500 problem inside a longer story.
    # (a problem of 13 words or more: decontamination matches runs of 13)
    long_enough = [r["problem"] for r in files["math500"] if len(re.findall(r"\w+", r["problem"])) >= 13]
    for i, quoted in enumerate(long_enough[:NGRAM_OVERLAP]):
        story = (f"A puzzle book from a school library, read one winter afternoon, asks the following question "
                 f"word for word: {quoted} The book also asks for the reasoning.")
        train[20 + i] = {**train[20 + i], "problem": story}
    return files


def write_catalog_files(folder: str | Path, seed: int = 0) -> Path:
    """Write the five catalog files into `folder` (made if missing); returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, rows in catalog_rows(seed).items():
        (folder / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder

