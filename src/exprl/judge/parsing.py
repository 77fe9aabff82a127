"""Reading the judge's score out of its answer: exprl's strict rule, or the official code's.

`last-line` (exprl, `JudgeConfig.score_parsing`): only the judge's own closing statement counts:
the last non-empty line `Score: N` (markdown bold and brackets tolerated) or a JSON object
`{"score": N, ...}`. A number anywhere else (a score the judge quotes while reasoning, or one the
candidate planted in its trace) is ignored, and anything ambiguous or out of range is None, which
the caller records as UNPARSEABLE rather than a zero.

`first-score` (the official code, `compute_genrm_score`; docs/method.md §2.3): the first `Score:` of the
answer (failing that, the first `Score`) and the first character after it, `*` skipped; a digit is
the score. A judge that quotes "Score: 3" while reasoning is read as 3; one that writes
`Score: [4]`, as the official process prompt's format line shows it, is unreadable. A digit outside
1-5 is unreadable here too: the official outcome path stops the run on it (an assertion that rewards
lie in [0, 1]) and the process path trains on (d - 1) / 4 outside [0, 1].
"""
from __future__ import annotations

import json
import re
from typing import get_args

from exprl.judge.types import ScoreParsing

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


SCORE_PARSING: tuple[str, ...] = get_args(ScoreParsing)


def parse_score(text: str, *, json_mode: bool = False, rule: str = "last-line") -> int | None:
    """The judge's score 1..5, or None when `rule` finds none in its answer.

    last-line: None unless the answer ends in one unambiguous score; json_mode only decides which
    form is tried first; either form is accepted, because a schema-constrained server always returns
    JSON and a free-text judge occasionally does. first-score: `first_score` (no JSON form).
    """
    if rule == "first-score":
        return first_score(text) if isinstance(text, str) else None
    if rule != "last-line":
        raise ValueError(f"score parsing must be one of {', '.join(SCORE_PARSING)}, got {rule!r}")
    if not isinstance(text, str) or not text.strip():
        return None
    readers = (_score_from_json, _score_from_line) if json_mode else (_score_from_line, _score_from_json)
    for read in readers:
        score = read(text)
        if score is not None:
            return score
    return None


def unreadable(rule: str) -> str:
    """The error an UNPARSEABLE result carries under `rule`."""
    return ("no score from 1 to 5 after the judge's first 'Score:'" if rule == "first-score"
            else "the judge's answer does not end with a score from 1 to 5")


def first_score(text: str) -> int | None:
    """The official reading: after the first `Score:` (else the first `Score`; case matters), up to
    that marker's next occurrence, the first line once leading whitespace (line breaks included) is
    skipped; with every `*` removed and leading whitespace skipped again, its first character. A
    decimal digit there is the score when it is 1-5; anything else (no marker, nothing after it, a
    bracket, a word) is None."""
    marker = "Score:" if "Score:" in text else "Score" if "Score" in text else None
    if marker is None:
        return None
    after = text.split(marker, 2)[1]
    line = after.lstrip().split("\n", 1)[0]
    rest = line.replace("*", "").lstrip()
    if not rest or not rest[0].isdecimal():
        return None
    digit = int(rest[0])
    return digit if 1 <= digit <= 5 else None


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
