"""What the policy is shown, and how it samples. The single place a policy prompt is built, for
training and eval alike.

Only the bare problem text enters here: there is deliberately no parameter through which a
reference solution could reach the policy (see tests/test_reference_leak.py).
"""
from __future__ import annotations

POLICY_SYSTEM_PROMPT = "Think the problem through step by step, then give the final answer inside \\boxed{}."
"""The paper's policy prompt (docs/method.md §2.1, from the official code), in our own words: reason step
by step, final answer in \\boxed{}. It asks for no `###`: the paper's models write `###` headings on
their own, and what training does to them (the delimiter collapse of docs/method.md §9) is a result an
instruction would hide. A recipe that wants the markers asks for them in its own system_prompt."""

POLICY_TEMPERATURE = 0.8
"""The sampling temperature of rollouts and evaluation (docs/method.md §3 and §5.2: 0.8, top-p 1.0)."""


def policy_messages(problem_text: str, system_prompt: str | None = POLICY_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Chat messages for the policy: an optional system instruction, then the problem alone."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": problem_text.strip() + "\n"})
    return messages


def policy_prompt_name(system_prompt: str | None) -> str:
    """How plans name a policy system prompt: `paper` (POLICY_SYSTEM_PROMPT), `none` or `custom`."""
    if not system_prompt:
        return "none"
    return "paper" if system_prompt == POLICY_SYSTEM_PROMPT else "custom"
