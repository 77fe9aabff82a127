"""The domains a problem can belong to, and the names each is known by.

A problem's `domain` chooses the judge's prompt (exprl.judge.prompts has one per domain) and whether
a final-answer verifier can grade it (exprl.rewards.verifier.VERIFIED_DOMAINS). The paper's mixed
Stage-I run has math, science and code (docs/method.md §5.3).
"""
from __future__ import annotations

from exprl.errors import DataError

DOMAINS: tuple[str, ...] = ("math", "science", "code")

DOMAIN_ALIASES: dict[str, str] = {
    "math": "math", "mathematics": "math",
    "science": "science", "physics": "science", "chemistry": "science", "biology": "science",
    "code": "code", "coding": "code", "programming": "code",
}
"""Every name a `domain` column may hold -> the domain it means."""


def canonical_domain(name: str, *, where: str | None = None) -> str:
    """`physics` -> `science`; a name no domain has is a DataError listing the known ones."""
    try:
        return DOMAIN_ALIASES[name.strip().lower()]
    except (KeyError, AttributeError):
        raise DataError(f"unknown domain {name!r}; known domains: {', '.join(DOMAINS)} (also accepted: "
                        f"{', '.join(sorted(set(DOMAIN_ALIASES) - set(DOMAINS)))})", path=where) from None
