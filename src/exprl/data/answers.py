"""Final-answer extraction from solution text: the last `\\boxed{...}` and GSM8K's `#### N`."""
from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_GSM8K_ANSWER = re.compile(r"####\s*([^\n]+?)\s*$", re.MULTILINE)


def last_boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}` (or `\\fbox{...}`, or brace-less `\\boxed 5`).

    Braces are matched with nesting; escaped `\\{` and `\\}` do not count. Returns None when
    there is no complete box.
    """
    starts = [m.start() for cmd in _BOX_COMMANDS for m in re.finditer(re.escape(cmd), text)]
    for start in sorted(starts, reverse=True):
        content = _box_content(text, start)
        if content is not None:
            return content
    return None


def _box_content(text: str, start: int) -> str | None:
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    if i < len(text) and text[i] == " ":  # `\boxed 5`: the argument is the next token
        match = re.match(r"\s*([^\s$]+)", text[i:])
        return match.group(1) if match else None
    if i >= len(text) or text[i] != "{":
        return None
    depth, j = 0, i
    while j < len(text):
        ch = text[j]
        if ch == "\\" and j + 1 < len(text) and text[j + 1] in "{}":
            j += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
        j += 1
    return None


def gsm8k_answer(text: str) -> str | None:
    """The number after GSM8K's final `#### `, with thousands separators removed."""
    matches = _GSM8K_ANSWER.findall(text)
    if not matches:
        return None
    return matches[-1].replace(",", "").strip()


def extract_answer(solution: str) -> str | None:
    """The final answer a reference solution states: GSM8K's `#### N`, else the last box."""
    return gsm8k_answer(solution) or last_boxed(solution)
