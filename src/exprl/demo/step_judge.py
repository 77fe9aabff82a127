"""The demo's step judge: one step of a synthetic chain graded alone, against the reference's values.

ExpRL-Process under the official semantics (`process_view: segment`) shows the judge step t alone,
with the steps before it withheld. The reference judge cannot grade that in the demo: its `chain`
matching credits a value only when the chain that leads to it is in the text, and a lone segment
holds no chain (docs/architecture.md, "Conditions first"). This judge reads what a grader holding
the reference knows, and nothing else:

- the reference's chain of values (`a = 85, b = 49, c = 40, so \\boxed{40}`: value t is named by
  the t-th letter) and, from the problem, the start value and the modulus;
- from the step shown, its label, input, operation, operand and result (`### c: 49 - 9 = 40`).

It credits the step when it is step t of the reference's chain: it starts from the reference's
value before step t (the start value for t = 1), ends on the reference's value of step t, and its
own arithmetic holds modulo the problem's modulus. The operation is not compared with the
problem's (the reference does not state operations), so a wrong operation that maps the right input
onto the right result is credited: a coincidence, which `benchmarks/demo_judge_coincidences.py
--step-judge` counts against the oracle (`exprl.data.synthetic.step_right_alone`).

Scores are binary on the Likert scale, so that the reward (score - 1) / 4 is the oracle segment's
0 or 1: 5 = the step is step t of the reference's chain as above; 1 = anything else (a wrong step,
a step labelled past the chain's end, text that is not a step). The `\\boxed{}` that rides in the
last segment is not graded, as in the oracle: an answer is the outcome's business. Only process
requests are graded; an outcome request is an error result, not a zero.
"""
from __future__ import annotations

import re
import string
import time
from typing import Sequence

from exprl.data.synthetic import OPERATIONS, match_step
from exprl.judge.types import JudgeRequest, JudgeResult, JudgeStatus

STEP_JUDGE_VERSION = "step-v1"
RIGHT_SCORE = 5
WRONG_SCORE = 1

_REFERENCE_VALUE = re.compile(r"\b([a-z]) = (-?\d+)\b")
_START = re.compile(r"Start at (-?\d+)\.")
_MODULUS = re.compile(r"Work modulo (\d+)\.")
_FUNCTION_OF_SYMBOL = {symbol: function for _, symbol, function in OPERATIONS.values()}


class StepJudge:
    """One step shown alone, credited when it is the reference's step (module docstring); implements
    `exprl.judge.types.Judge`."""

    name = f"step:synthetic-reference-values:{STEP_JUDGE_VERSION}"

    def judge_one(self, request: JudgeRequest) -> JudgeResult:
        started = time.monotonic()
        if not request.is_process:
            return JudgeResult(score=None, status=JudgeStatus.ERROR,
                               error="the step judge grades one step (a process request), not a whole trace")
        start, modulus = _START.search(request.problem), _MODULUS.search(request.problem)
        values = [int(v) for _, v in _REFERENCE_VALUE.findall(request.reference or "")]
        if start is None or modulus is None or not values:
            return JudgeResult(score=None, status=JudgeStatus.ERROR,
                               error="not a synthetic chain problem with a reference of named values: "
                                     f"{request.problem[:60]!r}")
        right = step_matches(request.trace, int(start.group(1)), values, int(modulus.group(1)))
        return JudgeResult(score=RIGHT_SCORE if right else WRONG_SCORE, status=JudgeStatus.OK,
                           raw=f"step {'right' if right else 'wrong'}", latency_s=time.monotonic() - started)

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return [self.judge_one(request) for request in requests]


def step_matches(text: str, start: int, values: Sequence[int], modulus: int) -> bool:
    """Is the one step `text` holds (`c: 49 - 9 = 40`, with or without its `###`) step t of the chain
    start -> values[0] -> values[1] ..., t being the step its label names (a letter, or a number)?"""
    match = match_step(text)
    if match is None:
        return False
    label, left, symbol, operand, result = match.groups()
    index = _label_index(label)
    if index is None or index > len(values):
        return False
    before = start if index == 1 else values[index - 2]
    left, result = int(left), int(result)
    return (left == before and result == values[index - 1]
            and _FUNCTION_OF_SYMBOL[symbol](left, int(operand)) % modulus == result)


def _label_index(label: str) -> int | None:
    """The step (1-based) a trace label names: `c` -> 3 (the reference's variable names), `3` -> 3."""
    if label.isdigit():
        return int(label) or None
    if len(label) == 1 and label in string.ascii_lowercase:
        return string.ascii_lowercase.index(label) + 1
    return None
