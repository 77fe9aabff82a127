"""A rollout's record as verl carries it: one JSON string in the reward manager's
`reward_extra_info`, which verl stores per rollout (numpy arrays of one value per rollout, then
TransferQueue fields) until the trainer mode reads the batch back.

Plain verl-free code: the record is `exprl.rewards.record.Rollout`, whose fields are plain values.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from exprl.rewards.record import Judgment, Rollout, Traits

RECORD_KEY = "exprl_record"
"""The `reward_extra_info` key holding the record."""


def dump_record(rollout: Rollout) -> str:
    return json.dumps(dataclasses.asdict(rollout), separators=(",", ":"))


def load_record(text: str) -> Rollout:
    raw: dict[str, Any] = json.loads(text)
    traits = raw.pop("traits", None)
    judgments = [Judgment(**j) for j in raw.pop("judgments", [])]
    return Rollout(**raw, judgments=judgments, traits=Traits(**traits) if traits is not None else None)
