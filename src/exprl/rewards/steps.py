"""Splitting a policy trace into steps, and mapping the policy's tokens onto those steps.

Rules (ExpRL-Process, paper A.1.1 and the official code):

* A delimiter (default ``###``) CLOSES the step it ends: the marker is the last thing in that step and
  the heading text after it starts the next step. Text after the last delimiter is the final step; a
  trace with no delimiter is one step (T = 1).
* Overlapping or touching occurrences count as one marker ending at its last character, so a
  markdown ``####`` heading or ``######`` is one boundary, not two.
* A step with nothing but whitespace besides its delimiter (a trace that *opens* with ``###``, two
  markers in a row, trailing whitespace after the last marker) is not a step of its own: a judge
  cannot score an empty step. It is merged into the following step, or into the previous one when it
  is the last. Steps therefore always tile the whole text: ``steps[0].start == 0``,
  ``steps[-1].end == len(text)``, and each step starts where the previous one ends. An empty or
  whitespace-only trace is a single step.
* Tokens are assigned by the character their span ENDS on (`token_step_ids`). A token whose span
  crosses a boundary (a BPE merge like ``"###\\n"`` or ``".\\n###"``) goes to the step holding its
  last character. Zero-width tokens (special tokens such as EOS) inherit the step of the token before
  them, so the EOS of a trace counts toward its final step.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Sequence

DEFAULT_DELIMITER = "###"


@dataclass(frozen=True)
class Step:
    """One step of a trace: `text == trace[start:end]` (character offsets)."""

    text: str
    start: int
    end: int


def _boundaries(text: str, delimiter: str) -> list[int]:
    """Character offsets just after each (merged) delimiter occurrence."""
    spans: list[list[int]] = []
    position = text.find(delimiter)
    while position != -1:
        end = position + len(delimiter)
        if spans and position <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([position, end])
        position = text.find(delimiter, position + 1)
    return [end for _, end in spans]


def split_steps(text: str, delimiter: str = DEFAULT_DELIMITER) -> list[Step]:
    """Split `text` into steps closed by `delimiter` (see the module docstring for the exact rules)."""
    if not delimiter:
        raise ValueError("the step delimiter must be a non-empty string")
    cuts = [0] + [b for b in _boundaries(text, delimiter) if 0 < b < len(text)] + [len(text)]
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a] or [(0, len(text))]

    def is_empty(span: tuple[int, int]) -> bool:
        return not text[span[0]:span[1]].replace(delimiter, "").strip()

    merged: list[tuple[int, int]] = []
    pending_start: int | None = None  # start of empty steps waiting to join the next real one
    for start, end in spans:
        if is_empty((start, end)):
            if pending_start is None:
                pending_start = start
            continue
        merged.append((pending_start if pending_start is not None else start, end))
        pending_start = None
    if pending_start is not None:
        if merged:
            merged[-1] = (merged[-1][0], len(text))
        else:
            merged.append((0, len(text)))
    return [Step(text[a:b], a, b) for a, b in merged]


def token_step_ids(steps: Sequence[Step], offsets: Sequence[tuple[int, int]]) -> list[int]:
    """The step index of every token, from the tokens' character spans in the trace.

    A token belongs to the step containing its last character (``end - 1``); a zero-width token
    belongs to the step of the token before it (step 0 if it comes first). Works for any tokenizer,
    including ones whose tokens split or swallow the delimiter.
    """
    if not steps:
        raise ValueError("token_step_ids needs at least one step")
    step_ends = [step.end for step in steps]
    ids: list[int] = []
    previous = 0
    for start, end in offsets:
        if end <= start:
            ids.append(previous)
            continue
        index = min(bisect.bisect_right(step_ends, end - 1), len(steps) - 1)
        ids.append(index)
        previous = index
    return ids


def decoded_offsets(token_ids: Sequence[int], decode: Callable[[list[int]], str],
                    window: int = 6) -> tuple[str, list[tuple[int, int]]]:
    """Decode generated tokens incrementally: the text and each token's character span in it.

    Re-tokenising a completion can produce different tokens than the ones sampled, so spans are
    taken from the sampled ids themselves. Each token's text is the difference between decoding a
    short window ending with it and the same window without it; a window keeps tokenizers that
    rewrite leading spaces (SentencePiece) right, and a token that ends inside a multi-byte
    character (decoded as U+FFFD) gets no text of its own: the characters land on the token that
    completes them. `decode` must skip special tokens if the caller's text does.
    """
    text_parts: list[str] = []
    offsets: list[tuple[int, int]] = []
    length = 0
    pending_from = 0  # first token whose text has not been emitted yet
    for i in range(len(token_ids)):
        lo = max(0, pending_from - window)
        before = decode(list(token_ids[lo:pending_from]))
        after = decode(list(token_ids[lo:i + 1]))
        if after.endswith("\ufffd") or not after.startswith(before):
            offsets.append((length, length))
            continue
        piece = after[len(before):]
        text_parts.append(piece)
        offsets.append((length, length + len(piece)))
        length += len(piece)
        pending_from = i + 1
    if pending_from < len(token_ids):  # the trace was cut inside a multi-byte character
        lo = max(0, pending_from - window)
        before = decode(list(token_ids[lo:pending_from]))
        piece = decode(list(token_ids[lo:]))[len(before):]
        text_parts.append(piece)
        offsets[-1] = (length, length + len(piece))
    return "".join(text_parts), offsets
