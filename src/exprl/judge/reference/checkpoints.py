"""Checkpoints: what the reference states (`answer_key`), and how far a text gets towards it (`assess`).

The rules are the "Checkpoints", "Matching", "The final answer", "Budget" and "Score" sections of
`exprl.judge.reference`; `exprl.judge.backends.reference.ReferenceBackend` turns an assessment
into a judgment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Sequence

from exprl.data.answers import extract_answer
from exprl.judge.reference.arithmetic import (as_number, distinct_values, equivalent, is_computation, normalize,
                                              token_value)
from exprl.judge.reference.patterns import PROBLEM_MODULUS, PROBLEM_NUMBER
from exprl.judge.reference.statements import Statement, read_statements, stated_results
from exprl.judge.types import JudgeRequest
from exprl.rewards.monitors import shows_no_work

DEFAULT_MAX_CHECKPOINTS = 6
WRONG_FINAL_CAP = 3
BARE_ANSWER_CAP = 4


def value_budget(reference_results: int) -> int:
    """How many distinct values a text may state before each further one cancels a checkpoint."""
    return max(2 * reference_results, reference_results + 4)


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
    modulus_match = PROBLEM_MODULUS.search(problem)
    modulus = int(modulus_match.group(1)) if modulus_match and int(modulus_match.group(1)) >= 2 else None
    reference_results, answers_allowed, path = 0, 1, ()
    if reference is not None:
        statements = read_statements(reference)  # memoised: the checkpoints read the same statements
        reference_results = len(_counted_values(statements, given))
        answers_allowed = max(1, len(distinct_values([s.value for s in statements if s.answer])))
        path = tuple(distinct_values([s.value for s in statements]))
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
    return frozenset(token_value(token.replace(",", "")) for token in PROBLEM_NUMBER.findall(problem))


def _counted_values(statements: Sequence[Statement], given: frozenset[Fraction]) -> list[str]:
    """The distinct values a text states that count against a budget: not a number the problem
    gives, not unevaluated arithmetic ("3+4")."""
    return distinct_values([s.value for s in statements if s.established and _counts_against_budget(s.value, given)])


@lru_cache(maxsize=65536)
def _counts_against_budget(value: str, given: frozenset[Fraction]) -> bool:
    return not is_computation(value) and as_number(value) not in given


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
    distinct = distinct_values([s.value for s in statements if s.answer])
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

