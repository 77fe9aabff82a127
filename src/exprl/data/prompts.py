"""What the policy is shown, and how it samples. The single place a policy prompt is built, for
training and eval alike.

Only the bare problem text enters here: there is deliberately no parameter through which a
reference solution could reach the policy (see tests/test_reference_leak.py).
"""
from __future__ import annotations

POLICY_SYSTEM_PROMPT = (
    "Solve the problem. Work step by step, starting each step with '###', "
    "and write the final answer as \\boxed{ANSWER}."
)

POLICY_TEMPERATURE = 0.8
"""The sampling temperature of rollouts and evaluation (method.md §3 and §5.2: 0.8, top-p 1.0)."""


def policy_messages(problem_text: str, system_prompt: str | None = POLICY_SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Chat messages for the policy: an optional system instruction, then the problem alone."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": problem_text.strip() + "\n"})
    return messages


def policy_prompt_name(system_prompt: str | None) -> str:
    """How plans and reports name a policy system prompt: `default`, `none` or `custom`."""
    if system_prompt is None or not system_prompt:
        return "none"
    return "default" if system_prompt == POLICY_SYSTEM_PROMPT else "custom"
