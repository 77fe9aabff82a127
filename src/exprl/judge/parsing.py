"""Reading the judge's score out of its answer, strictly.

Only the judge's own closing statement counts: the last non-empty line `Score: N` (markdown bold
and brackets tolerated) or a JSON object `{"score": N, ...}`. A number anywhere else (a score the
judge quotes while reasoning, or one the candidate planted in its trace) is ignored, and anything
ambiguous or out of range is None, which the caller records as UNPARSEABLE rather than a zero.
"""
from __future__ import annotations

import json
import re

# `Score: 4`, `**Score:** 4`, `Score: [4]`, `**Score: 4**`, `score = 4.`; decoration around a
# single digit 1-5 and nothing else on the line.
_SCORE_LINE = re.compile(
    r"""^[\s>*_#`]*            # markdown emphasis, heading or quote marks
        score
        [\s*_`]*[:=][\s*_`]*    # the colon, possibly inside or after bold markers
        \[?\s*([1-5])\s*\]?     # the digit, optionally bracketed
        [\s*_`.]*$              # closing emphasis and a full stop at most
    """, re.IGNORECASE | re.VERBOSE)
_JSON_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)


def parse_score(text: str, *, json_mode: bool = False) -> int | None:
    """The judge's score 1..5, or None when its answer does not end in one unambiguous score.

    json_mode only decides which form is tried first; either form is accepted, because a
    schema-constrained server always returns JSON and a free-text judge occasionally does.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    readers = (_score_from_json, _score_from_line) if json_mode else (_score_from_line, _score_from_json)
    for read in readers:
        score = read(text)
        if score is not None:
            return score
    return None


def _score_from_line(text: str) -> int | None:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    match = _SCORE_LINE.match(lines[-1])
    return int(match.group(1)) if match else None


def _score_from_json(text: str) -> int | None:
    body = text.strip()
    fenced = _JSON_FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    if not body.startswith("{"):
        return None
    try:
        # strict=False admits raw newlines inside strings: llama.cpp's schema grammar lets the
        # judge write them into "reasoning", and they cannot make the score ambiguous.
        obj = json.loads(body, strict=False)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    score = obj.get("score")
    # bool is an int subclass and 4.0 is not the integer the schema asks for: both are rejected.
    if type(score) is not int or not 1 <= score <= 5:
        return None
    return score
