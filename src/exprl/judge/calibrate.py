"""Judge calibration, the paper's Table 5 protocol.

Every labelled trace (correct / incorrect final answer) is judged three times: with its own
reference, with no reference, and with another problem's reference (a deterministic derangement
of the problems, so no problem keeps its own). A judgment is *positive* when score > threshold
(3 by default, as in the paper). Per condition:

    FPR = positives among incorrect traces / scorable incorrect traces
    FNR = negatives among correct traces / scorable correct traces
    misplacement = (FPR + FNR) / 2        (0.5 = chance, for a judge that ignores the trace)

Unscorable judgments (any status but OK) are counted apart and are in neither rate: a judge that
fails is not a judge that says "no". A rate with no scorable trace behind it is None, not 0.

`exprl judge calibrate` (`exprl.judge.cli`) reads the labelled traces (`read_labelled_traces`); when the input has no
`correct` column it labels them with the sparse verifier (`exprl.rewards.verifier.is_correct`).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from exprl.errors import DataError
from exprl.judge.run import read_trace_rows
from exprl.judge.types import JudgeRequest, JudgeResult

CONDITIONS = ("correct_reference", "no_reference", "wrong_reference")


@dataclass
class CalibrationConfig:
    """How traces are labelled positive and how wrong references are chosen."""

    threshold: int = field(default=3, metadata={
        "range": "[1, 4]", "help": "A judgment is positive when score > threshold "
                                                        "(paper: 3)."})
    seed: int = field(default=0, metadata={
        "range": "[0, 4294967295]", "help": "Seed of the derangement choosing wrong references."})


@dataclass(frozen=True)
class LabelledTrace:
    id: str
    problem: str
    reference: str
    trace: str
    correct: bool
    answer: str | None = None
    domain: str = "math"


@dataclass
class ConditionStats:
    judged: int = 0
    unscorable: int = 0
    true_positive: int = 0
    false_positive: int = 0
    true_negative: int = 0
    false_negative: int = 0
    fpr: float | None = None
    fnr: float | None = None
    misplacement: float | None = None
    mean_score_correct: float | None = None
    mean_score_incorrect: float | None = None

    @classmethod
    def from_results(cls, labels: Sequence[bool], results: Sequence[JudgeResult], threshold: int) -> "ConditionStats":
        stats = cls(judged=len(results))
        scores: dict[bool, list[int]] = {True: [], False: []}
        for correct, result in zip(labels, results):
            if not result.ok:
                stats.unscorable += 1
                continue
            assert result.score is not None
            scores[correct].append(result.score)
            positive = result.score > threshold
            if correct:
                stats.true_positive += positive
                stats.false_negative += not positive
            else:
                stats.false_positive += positive
                stats.true_negative += not positive
        incorrect = stats.false_positive + stats.true_negative
        correct = stats.true_positive + stats.false_negative
        stats.fpr = stats.false_positive / incorrect if incorrect else None
        stats.fnr = stats.false_negative / correct if correct else None
        if stats.fpr is not None and stats.fnr is not None:
            stats.misplacement = (stats.fpr + stats.fnr) / 2
        stats.mean_score_correct = _mean(scores[True])
        stats.mean_score_incorrect = _mean(scores[False])
        return stats


def _mean(values: list[int]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class CalibrationReport:
    judge: str
    threshold: int
    traces: int
    correct: int
    incorrect: int
    conditions: dict[str, ConditionStats]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        header = f"{'condition':<18} {'FPR':>6} {'FNR':>6} {'misplace':>8} {'scored':>7} {'unscorable':>10}"
        lines = [f"judge {self.judge}: {self.traces} traces ({self.correct} correct, {self.incorrect} incorrect), "
                 f"positive = score > {self.threshold}", header, "-" * len(header)]
        for name, stats in self.conditions.items():
            lines.append(f"{name:<18} {_rate(stats.fpr):>6} {_rate(stats.fnr):>6} {_rate(stats.misplacement):>8} "
                         f"{stats.judged - stats.unscorable:>7} {stats.unscorable:>10}")
        return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def derangement(count: int, seed: int) -> list[int]:
    """A permutation with no fixed point (Sattolo's algorithm: a single random cycle)."""
    if count < 2:
        raise DataError(f"calibration needs traces of at least 2 different problems to swap references; got {count}")
    order = list(range(count))
    rng = random.Random(seed)
    for i in range(count - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return order


def calibration_requests(traces: Sequence[LabelledTrace], seed: int = 0) -> dict[str, list[JudgeRequest]]:
    """The three conditions' requests, each in the order of `traces`.

    Wrong references are deranged over distinct problems (by problem and reference text), so that
    several traces of one problem all get the same other problem's reference and answer.
    """
    problems: dict[tuple[str, str], int] = {}
    for trace in traces:
        problems.setdefault((trace.problem, trace.reference), len(problems))
    keys = list(problems)
    answers: dict[tuple[str, str], str | None] = {}
    for trace in traces:
        answers.setdefault((trace.problem, trace.reference), trace.answer)
    swap = derangement(len(keys), seed)

    def request(trace: LabelledTrace, reference: str | None, answer: str | None) -> JudgeRequest:
        return JudgeRequest(problem=trace.problem, reference=reference, trace=trace.trace, answer=answer,
                            domain=trace.domain)

    out: dict[str, list[JudgeRequest]] = {name: [] for name in CONDITIONS}
    for trace in traces:
        other = keys[swap[problems[(trace.problem, trace.reference)]]]
        out["correct_reference"].append(request(trace, trace.reference, trace.answer))
        # No reference means no answer either: the answer is reference information.
        out["no_reference"].append(request(trace, None, None))
        out["wrong_reference"].append(request(trace, other[1], answers[other]))
    return out


def calibrate(traces: Sequence[LabelledTrace], judge, config: CalibrationConfig | None = None) -> CalibrationReport:
    """Judge every trace under the three conditions with `judge` (a `JudgeService`) and score it."""
    config = config or CalibrationConfig()
    requests = calibration_requests(traces, config.seed)
    flat = [r for name in CONDITIONS for r in requests[name]]
    results = judge.judge_sync(flat)
    labels = [t.correct for t in traces]
    conditions = {name: ConditionStats.from_results(labels, results[i * len(traces):(i + 1) * len(traces)],
                                                    config.threshold)
                  for i, name in enumerate(CONDITIONS)}
    return CalibrationReport(judge=getattr(judge, "name", "?"), threshold=config.threshold, traces=len(traces),
                             correct=sum(labels), incorrect=len(labels) - sum(labels), conditions=conditions)


def read_labelled_traces(path: str | Path, label_fn: Callable[[str, str], bool] | None = None,
                         limit: int | None = None):
    """LabelledTrace rows of a JSONL file: id, problem, reference, trace, and `correct` (bool), or
    `answer` for `label_fn(trace, answer)`."""
    traces = []
    for line_no, row in read_trace_rows(path):
        if limit is not None and len(traces) >= limit:
            break
        if row["reference"] is None:
            raise DataError("calibration needs the correct reference", path=str(path), line=line_no,
                            field="reference")
        correct = row.get("correct")
        if correct is None:
            if label_fn is None:
                raise DataError("missing (or give an answer column to label traces with the verifier)",
                                path=str(path), line=line_no, field="correct")
            if not row.get("answer"):
                raise DataError("missing: a row without 'correct' needs 'answer' to be labelled",
                                path=str(path), line=line_no, field="answer")
            correct = bool(label_fn(row["trace"], row["answer"]))
        elif not isinstance(correct, bool):
            raise DataError(f"must be true or false, got {correct!r}", path=str(path), line=line_no,
                            field="correct")
        traces.append(LabelledTrace(id=str(row["id"]), problem=row["problem"], reference=row["reference"],
                                    trace=row["trace"], correct=correct, answer=row.get("answer"),
                                    domain=row.get("domain") or "math"))
    return traces


