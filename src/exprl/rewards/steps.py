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

That is `segmentation: merged`, exprl's rule. `segmentation: token-end` is the official code's
(`_find_step_spans`, docs/method.md §2.6), read over the sampled tokens (`token_end_steps`): a step closes
after every token at which the decoded text so far ends with the delimiter, so a leading, repeated or
trailing marker closes a step of its own (empty or all but empty), a marker inside a token that goes
on past it (``"###\\n"`` as one token) closes nothing, and the tokens after the last closing one
(an EOS alone included, which decodes to nothing) are the final step.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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


def token_end_steps(text: str, offsets: Sequence[tuple[int, int]],
                    delimiter: str = DEFAULT_DELIMITER) -> tuple[list[Step], list[int]]:
    """The official segmentation over the sampled tokens: (steps, each token's step index).

    `offsets` are the tokens' spans on `text` (`decoded_offsets`, which tile the text in order). A
    step closes after token i when its span is not empty, `text[:end_i]` ends with `delimiter`, and
    no zero-width token sits inside those delimiter characters.

    The official code decodes a window of the last 10 tokens at each token, special tokens written
    out, and tests its end. That window ends as the whole prefix does once it holds the marker's
    characters (10 tokens always do for `###`), except where a token that decodes to nothing here
    sits among them: a special token skipped here is text there (`##<unk>#` ends no step), and a
    part of a multi-byte character, its other zero-width kind, cannot sit inside an ASCII marker.
    Unlike `split_steps`, a step may be empty: a trace opening with the marker, two markers in a
    row, and an EOS after a final marker (a final step of no text) each make one, and each is judged.
    """
    if not delimiter:
        raise ValueError("the step delimiter must be a non-empty string")
    steps: list[Step] = []
    ids: list[int] = []
    start = 0            # character where the open step starts
    open_tokens = 0      # tokens in the open step
    zero_width_at = -1   # where the latest zero-width token sits
    for token_start, token_end in offsets:
        ids.append(len(steps))
        open_tokens += 1
        if token_end <= token_start:
            zero_width_at = token_start
        elif (text.endswith(delimiter, 0, token_end)
              and not token_end - len(delimiter) < zero_width_at < token_end):
            steps.append(Step(text[start:token_end], start, token_end))
            start, open_tokens = token_end, 0
    if open_tokens or not steps:
        steps.append(Step(text[start:], start, len(text)))
    return steps, ids


def trace_steps(text: str, offsets: Sequence[tuple[int, int]], delimiter: str = DEFAULT_DELIMITER,
                segmentation: str = "merged") -> tuple[list[Step], list[int]]:
    """A decoded trace's steps and each token's step index, under `segmentation` (merged: exprl's
    `split_steps`; token-end: the official code's `token_end_steps`)."""
    if segmentation == "token-end":
        return token_end_steps(text, offsets, delimiter)
    if segmentation != "merged":
        raise ValueError(f"segmentation must be 'merged' or 'token-end', got {segmentation!r}")
    steps = split_steps(text, delimiter)
    return steps, token_step_ids(steps, offsets)


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


def decoded_offsets(token_ids: Sequence[int], tokenizer: Any, *,
                    skip_special_tokens: bool = True) -> tuple[str, list[tuple[int, int]]]:
    """`tokenizer.decode(token_ids)` and each token's character span in it, from the SAMPLED ids.

    Re-tokenising a completion can produce other tokens than the ones sampled, so spans come from
    the ids themselves: a token's span is the text it adds to the decoding of the tokens before it.
    A token that ends inside a multi-byte character gets an empty span and the character lands on
    the token that completes it; a completion cut inside a character gives its trailing U+FFFD to
    its last token; skipped special tokens are zero-width. The spans always tile the text in order.

    A tokenizer with a Rust backend (`tokenizers`, every "fast" transformers tokenizer) is read
    with its own incremental decoder (`tokenizers.decoders.DecodeStream`: about 1.2 us/token with
    SmolLM2's, against 7.8 us for two Python-level window decodes per token). Its pieces must
    rebuild the full decoding exactly, which catches what the stream does not do (transformers'
    `clean_up_tokenization_spaces`) and decoders that rewrite text already decoded (SentencePiece
    byte fallback turns a whole run of byte tokens into U+FFFDs once the run proves invalid UTF-8).
    Otherwise, and for pure-Python tokenizers, `_window_offsets` places each token on the text.
    """
    ids = [int(i) for i in token_ids]
    text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    backend = _rust_backend(tokenizer)
    if backend is not None:
        pieces = _stream_pieces(ids, backend, skip_special_tokens)
        offsets = _place(pieces, text) if pieces is not None else None
        if offsets is not None:
            return text, offsets
    return text, _window_offsets(ids, lambda window: tokenizer.decode(window, skip_special_tokens=skip_special_tokens),
                                 text)


def _rust_backend(tokenizer: Any) -> Any:
    """The `tokenizers.Tokenizer` behind `tokenizer`, or None for a pure-Python tokenizer."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend if isinstance(backend, Tokenizer) else None


def _stream_pieces(ids: list[int], backend: Any, skip_special_tokens: bool) -> list[str | None] | None:
    """Each token's new text from the backend's own streaming decoder (None: no complete text yet)."""
    from tokenizers.decoders import DecodeStream

    step = DecodeStream(skip_special_tokens=skip_special_tokens).step
    try:
        return [step(backend, i) for i in ids]
    except Exception:  # noqa: BLE001 - the Rust stream raises when a decoding stops extending the previous one; the window path copes
        return None


def _place(pieces: list[str | None], text: str) -> list[tuple[int, int]] | None:
    """Spans of `pieces` laid end to end, if they rebuild `text` (a held-back tail of unfinished
    characters, which the full decoding shows as U+FFFD, goes to the last token)."""
    offsets: list[tuple[int, int]] = []
    length = 0
    for piece in pieces:
        if piece is None:
            offsets.append((length, length))
            continue
        if not text.startswith(piece, length):
            return None
        offsets.append((length, length + len(piece)))
        length += len(piece)
    if length < len(text):
        if not pieces or pieces[-1] is not None or not text.endswith("\ufffd"):
            return None
        offsets[-1] = (length, len(text))
    return offsets


def _window_offsets(ids: list[int], decode: Callable[[list[int]], str], text: str,
                    window: int = 6) -> list[tuple[int, int]]:
    """Spans on `text` from two decodes per token: a short window ending with the token, and the
    same window without the tokens not yet placed. The window keeps tokenizers that rewrite leading
    spaces (SentencePiece's) right. A token waits (empty span) while its window's decoding ends in
    an unfinished character, no longer extends the text already placed, or disagrees with `text`
    where it would go: the tokens after it then re-decode it together, e.g. a byte-fallback run
    once it is closed. What is left when the tokens run out goes to the last one."""
    offsets: list[tuple[int, int]] = []
    position = 0
    pending_from = 0  # first token whose text has not been placed yet
    for i in range(len(ids)):
        lo = max(0, pending_from - window)
        before = decode(ids[lo:pending_from])
        after = decode(ids[lo:i + 1])
        piece = after[len(before):]
        if after.endswith("\ufffd") or not after.startswith(before) or not text.startswith(piece, position):
            offsets.append((position, position))
            continue
        offsets.append((position, position + len(piece)))
        position += len(piece)
        pending_from = i + 1
    if offsets and position < len(text):
        offsets[-1] = (offsets[-1][0], len(text))
    return offsets
