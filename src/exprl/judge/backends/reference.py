"""The reference judge as a `Backend`: no model, the deterministic checkpoint matcher of
`exprl.judge.reference` (whose docstring states its rules)."""
from __future__ import annotations

import logging
import time
from typing import Sequence, get_args

from exprl.judge.backends import ThreadedBackend
from exprl.judge.reference import REFERENCE_JUDGE_VERSION
from exprl.judge.reference.arithmetic import equivalent
from exprl.judge.reference.checkpoints import (BARE_ANSWER_CAP, DEFAULT_MAX_CHECKPOINTS, answer_key, assess,
                                               chain_reached, progress_score)
from exprl.judge.types import JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus, ReferenceMatching

logger = logging.getLogger(__name__)


class ReferenceBackend(ThreadedBackend):
    """A `Backend` that needs no model: see `exprl.judge.reference` for the rules.

    One request a call: a long prefix can take seconds to grade, and a call that has started
    cannot be stopped (`ThreadedBackend`), so Ctrl-C waits for one request, not for a batch.
    """

    requests_per_call = 1

    def __init__(self, config: JudgeConfig | None = None,
                 max_checkpoints: int = DEFAULT_MAX_CHECKPOINTS):
        self.config = config or JudgeConfig(backend="reference")
        self.max_checkpoints = max_checkpoints
        self.matching = self.config.reference_matching
        if self.matching not in get_args(ReferenceMatching):
            raise ValueError(f"reference_matching must be any or chain, got {self.matching!r}")
        self.name = f"reference:{REFERENCE_JUDGE_VERSION}:k{max_checkpoints}" + \
            (":chain" if self.matching == "chain" else "")

    def judge_all(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        return [self.judge_one(request) for request in requests]

    def judge_one(self, request: JudgeRequest) -> JudgeResult:
        started = time.perf_counter()
        try:
            result = self._judge(request)
        except Exception as exc:  # noqa: BLE001 - one bad request must not sink a batch
            logger.exception("reference judge failed on one request")
            result = JudgeResult(score=None, status=JudgeStatus.ERROR, error=f"{type(exc).__name__}: {exc}")
        result.latency_s = time.perf_counter() - started
        return result

    def reached(self, stated: Sequence[str], checkpoints: Sequence[str]) -> list[bool]:
        """Which checkpoints a sequence of stated values matches under this judge's matching rule
        (value matching only: the judge's score also applies order, budget and answer rules)."""
        if self.matching == "chain":
            return chain_reached(stated, checkpoints)
        return [any(equivalent(value, checkpoint) for value in stated) for checkpoint in checkpoints]

    def checkpoints_for(self, request: JudgeRequest) -> tuple[str, ...]:
        key = answer_key(request, self.max_checkpoints)
        return key.checkpoints if key else ()

    def _judge(self, request: JudgeRequest) -> JudgeResult:
        key = answer_key(request, self.max_checkpoints)
        if key is None:
            reason = "no reference" if request.reference is None and not request.rubric else \
                "the reference states no checkable result"
            return JudgeResult(score=None, status=JudgeStatus.UNPARSEABLE, raw=f"Unscorable: {reason}",
                               error=reason)
        total = len(key.checkpoints)
        if request.mode == "step":
            before = assess(request.context, key, matching=self.matching) if request.context else None
            after = assess(request.context + request.trace, key, matching=self.matching,
                           answers_from=len(request.context))
            had = before.reached if before else 0
            gained = max(0, after.reached - had)
            score = progress_score(gained, max(total - had, 1), wrong_final=after.wrong_final)
            assessment = after
            status = [("reached before" if before and before.status[i] == "reached" else s)
                      for i, s in enumerate(after.status)]
        else:
            text = request.context + request.trace if request.mode == "prefix" else request.trace
            assessment = assess(text, key, matching=self.matching, final_from_last=request.mode == "outcome",
                                operands=request.mode != "segment")
            status = assessment.status
            score = progress_score(assessment.reached, total, wrong_final=assessment.wrong_final)
            if assessment.bare and request.mode in ("outcome", "prefix") and score > BARE_ANSWER_CAP:
                score = BARE_ANSWER_CAP
                assessment.notes.append(f"a bare answer without work: capped at {BARE_ANSWER_CAP}")
        lines = [f"{state}: {value}{' (final answer)' if i == total - 1 else ''}"
                 for i, (value, state) in enumerate(zip(key.checkpoints, status))]
        raw = "Reasoning: " + "; ".join(lines + assessment.notes) + f"\nScore: {score}"
        return JudgeResult(score=score, status=JudgeStatus.OK, raw=raw)
