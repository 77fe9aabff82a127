"""The one record every layer passes around: a problem with its hidden reference solution."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A mid-training example.

    `reference` is shown only to the judge (and to the self-distillation teacher); the policy sees
    `problem` alone. `answer` is the final answer used by the sparse verifier and for evaluation.
    """

    id: str
    problem: str
    reference: str
    answer: str
    domain: str = "math"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Problem":
        return cls(id=str(row["id"]), problem=row["problem"], reference=row["reference"],
                   answer=row["answer"], domain=row.get("domain") or "math",
                   source=row.get("source") or "", meta=dict(row.get("meta") or {}))
