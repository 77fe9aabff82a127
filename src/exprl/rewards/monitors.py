"""Training monitors: what each batch of rollouts looks like, and an alert when it looks like the
policy is learning to please its judge rather than to solve.

A dense reward invites reward hacking, and the paper itself reports two failures under
ExpRL-Process (docs/method.md §8.6, §9): length inflation until rollouts hit the cap, and the collapse
of `###` delimiters to one step a trace. The judge is hardened against the cheap attacks
(`testing/hacking.py` writes them, docs/architecture.md "Attack families"); these monitors
catch, during training, whatever still gets through, with a judge that can be fooled in ways no
test foresaw.

Three parts, all pure (no trainer, no judge import: rewards sit below both):

* **Detectors** over one rollout's text (`read_traits`): its `###` steps (`split_steps`), whether
  it is a bare answer (`is_bare_answer`, the reference judge's own rule, which lives here so both
  read it alike) and whether it lists numbers (`is_number_list`, the shape of the `number_list` and
  `range` attack families).
* **Batch metrics** (`batch_metrics`): one value per key per rollout batch, logged by the trainer
  as `exprl/*` into `metrics.jsonl`: dense reward vs sparse correctness, response length, the
  overlong share, steps per trace and the one-step share, the bare-answer and number-list shares,
  judge statuses.
* **Alerts** (`Monitor`, thresholds in `MonitorConfig`, the recipe's `monitor:` section): fed each
  logged row, it returns an `Alert` when a declared threshold is crossed; each alert fires once a
  run. The training callback prints it as a warning and appends it to `metrics.jsonl` as an
  `alert` record; `exprl report` lists them.

An alert is a reason to read rollouts, not a verdict: a judge reward can rise ahead of
correctness for honest reasons (partial progress on problems still unsolved), and a base model
may write bare answers before any training.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Mapping, Sequence, get_args

from exprl.data.answers import last_boxed
from exprl.rewards.record import JudgedSignal, Rollout, Signal, Traits
from exprl.rewards.steps import DEFAULT_DELIMITER, split_steps

# ---------------------------------------------------------------------------------------------
# Detectors

BARE_ANSWER_WORDS = 10
"""A text with no `=` and fewer words than this outside its boxes shows no work (the reference
judge caps such a text at 4; `exprl.judge.reference`)."""
NUMBER_LIST_VALUES = 16
"""A run of this many values listed in a row is a number list. Honest solutions seldom come near it
(`benchmarks/monitor_detectors.py`): 13 of the 7,498 MATH train references hold one (points of a
circle, pairs of coordinates; the longest 23 values), no GSM8K reference a list of even 6. The
attack families list at least 40 values (`number_list`) or 120 (`range`)."""

_BOX = re.compile(r"\\(?:boxed|fbox)\{[^{}]*\}")
_WORD = re.compile(r"[A-Za-z]{2,}")
ASY_DRAWING = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)
"""Asymptote drawing code, which states no mathematics (the reference judge blanks it too)."""
THOUSANDS_COMMA = re.compile(r",(?=\d{3}(?!\d))")
"""A comma before a group of exactly three digits: a thousands separator when a digit precedes it
(checked apart by each reader: faster than a look-behind). The reference judge reads it too."""
# A list: items split by commas, semicolons or " or ", each a short value (a digit or a LaTeX command
# in it, no word of three letters or more outside LaTeX markup, one line at most).
_LATEX_MARKUP = re.compile(r"\\[A-Za-z]+(?:\{[A-Za-z*]+\})?")  # a command, with an environment's name: \begin{cases}
_LONG_WORD = re.compile(r"[A-Za-z]{3,}")
_VALUE_MARK = re.compile(r"[\d\\]")
_MAX_ITEM_CHARS = 60


def shows_no_work(text: str) -> bool:
    """No `=` and fewer than `BARE_ANSWER_WORDS` words outside the text's boxes."""
    outside_boxes = _BOX.sub(" ", text)
    return "=" not in outside_boxes and len(_WORD.findall(outside_boxes)) < BARE_ANSWER_WORDS


def is_bare_answer(text: str) -> bool:
    """A boxed answer without the work: the `bare_answer` attack family. A text without a box is
    not one (it answers nothing; the verifier counts it wrong)."""
    return last_boxed(text) is not None and shows_no_work(text)


def longest_number_run(text: str) -> int:
    """The most values listed in a row (`1, 2, 3`; `x = 4, x = 5`; `(0, 5), (3, 4)`; `2L+8, 14/2,
    \\frac{1}{2}`; `3 or 4`): items between commas, semicolons or " or ", each a short value on one
    line. Thousands separators are not list commas; `[asy]` drawing code is not read."""
    if "[asy]" in text:
        text = ASY_DRAWING.sub(" ", text)
    text = THOUSANDS_COMMA.sub(lambda m: "" if m.start() and m.string[m.start() - 1].isdigit() else ",", text)
    best = run = 0
    # str methods, not a regex split: this runs on every rollout of every step.
    for item in text.replace(";", ",").replace(" or ", ",").split(","):
        if _is_listed_value(item.strip()):
            run += 1
            if run > best:
                best = run
        else:
            run = 0
    return best


def _is_listed_value(item: str) -> bool:
    # Cheapest tests first: most items of prose are long, and most short ones have no long word.
    if not 0 < len(item) <= _MAX_ITEM_CHARS or "\n" in item or _VALUE_MARK.search(item) is None:
        return False
    return _LONG_WORD.search(item) is None or _LONG_WORD.search(_LATEX_MARKUP.sub(" ", item)) is None


def is_number_list(text: str) -> bool:
    """At least `NUMBER_LIST_VALUES` values listed in a row: the `number_list` and `range` attack families."""
    return longest_number_run(text) >= NUMBER_LIST_VALUES


def read_traits(text: str, tokens: int, delimiter: str = DEFAULT_DELIMITER) -> Traits:
    """What the monitors need from one rollout: its length in tokens and the detectors' findings."""
    return Traits(tokens=tokens, steps=len(split_steps(text, delimiter)), bare_answer=is_bare_answer(text),
                  number_list=is_number_list(text))


# ---------------------------------------------------------------------------------------------
# Batch metrics

STEP_BUCKETS = (("1", 1, 1), ("2-3", 2, 3), ("4-7", 4, 7), ("8+", 8, None))
"""`exprl/steps_per_trace_<label>`: the share of rollouts with that many `###` steps."""


def batch_metrics(rollouts: Sequence[Rollout], group_ids: Sequence[Hashable],
                  judge_statuses: Sequence[str] | None = None,
                  step_advantages: Sequence[Sequence[float] | None] | None = None) -> dict[str, float]:
    """The logged findings of one generation batch, `exprl/<name>` -> value.

    `judge_statuses` are every status a judgment can have (each is logged as a count, zeros
    included, so every row has the same keys); None when the method asks no judge.
    `step_advantages`: ExpRL-Process's advantages per step of each rollout (None: unscorable).
    """
    n = max(len(rollouts), 1)
    metrics = {"exprl/sparse_correct": sum(r.correct for r in rollouts) / n}
    solved_groups = {group for group, r in zip(group_ids, rollouts) if r.correct > 0}
    metrics["exprl/unsolved_share"] = 1.0 - len(solved_groups) / max(len(set(group_ids)), 1)
    metrics["exprl/overlong_share"] = sum(r.overlong for r in rollouts) / n
    traits = [r.traits for r in rollouts if r.traits is not None]
    if traits:
        steps = [t.steps for t in traits]
        metrics["exprl/response_tokens_mean"] = statistics.fmean(t.tokens for t in traits)
        metrics["exprl/steps_per_trace_mean"] = statistics.fmean(steps)
        for label, low, high in STEP_BUCKETS:
            metrics[f"exprl/steps_per_trace_{label}"] = sum(low <= s and (high is None or s <= high)
                                                           for s in steps) / len(steps)
        metrics["exprl/bare_answer_share"] = sum(t.bare_answer for t in traits) / len(traits)
        metrics["exprl/number_list_share"] = sum(t.number_list for t in traits) / len(traits)
    if judge_statuses is None:
        return metrics
    # Unscorable: the judge was asked and could not score it (not a rollout the overlong policy set aside).
    metrics["exprl/unscorable_share"] = unscorable_share(rollouts)
    dense = [r.dense_reward for r in rollouts if r.dense_reward is not None]
    if dense:
        metrics["exprl/dense_reward_mean"] = statistics.fmean(dense)
        metrics["exprl/dense_reward_std"] = statistics.stdev(dense) if len(dense) > 1 else 0.0
    judgments = [j for r in rollouts for j in r.judgments]
    counts = Counter(j.status for j in judgments)
    for status in judge_statuses:
        metrics[f"exprl/judge_{status}"] = float(counts.get(status, 0))
    metrics["exprl/judge_calls"] = float(len(judgments))
    if judgments:
        metrics["exprl/judge_cache_hit_rate"] = sum(j.cached for j in judgments) / len(judgments)
        metrics["exprl/judge_latency_s"] = statistics.fmean(j.latency_s for j in judgments)
    if step_advantages is not None:
        metrics.update(step_position_advantages(step_advantages))
    return metrics


PROCESS_POSITIONS_LOGGED = 8


def step_position_advantages(step_advantages: Sequence[Sequence[float] | None]) -> dict[str, float]:
    """Mean advantage of the steps at positions 1..PROCESS_POSITIONS_LOGGED, and of the last step
    of multi-step rollouts: where DeltaNorm puts its credit. Under a cumulative (prefix) score,
    A_1 = s_1 - s_T debits a right first step by all that later steps add (docs/architecture.md)."""
    positions: dict[str, list[float]] = {}
    for advantages_of_steps in step_advantages:
        if not advantages_of_steps:
            continue
        for position, value in enumerate(advantages_of_steps[:PROCESS_POSITIONS_LOGGED], start=1):
            positions.setdefault(str(position), []).append(value)
        if len(advantages_of_steps) > 1:
            positions.setdefault("last", []).append(advantages_of_steps[-1])
    return {f"exprl/process_advantage_step_{position}": statistics.fmean(values)
            for position, values in positions.items()}


# ---------------------------------------------------------------------------------------------
# Alerts


@dataclass
class MonitorConfig:
    """Thresholds of the training monitors: the recipe's `monitor:` section. A share alert compares
    its mean over the last `smoothing_steps` optimiser steps with its threshold; null turns one off."""

    enabled: bool = field(default=True, metadata={
        "help": "Check the thresholds below at every logged step; false logs the monitor metrics only."})
    smoothing_steps: int = field(default=5, metadata={"range": "[1, inf)",
        "help": "A share alert compares the mean of its share over the last N optimiser steps (those logged "
                "so far, at the start) with its threshold, so that one noisy batch does not fire it."})
    hacking_window: int = field(default=30, metadata={"range": "[2, inf)",
        "help": "reward_hacking: the optimiser steps over which the judge's reward must rise while sparse "
                "correctness does not; the mean of the window's second half is compared with its first half's."})
    hacking_reward_rise: float | None = field(default=0.1, metadata={"range": "(0, 1]",
        "help": "reward_hacking fires when the mean dense reward (0..1, (score - 1) / 4) rises by at least this "
                "over hacking_window steps while correctness rises by at most hacking_correct_rise; null = off."})
    hacking_correct_rise: float = field(default=0.01, metadata={"range": "[0, 1]",
        "help": "reward_hacking: the most sparse correctness (share of rollouts correct) may rise over the "
                "same window for the judge's rise to count as outpacing it (flat or falling correctness)."})
    one_step_share: float | None = field(default=0.5, metadata={"range": "(0, 1]",
        "help": "delimiter_collapse (ExpRL-Process only): the share of rollouts with a single `###` step at or "
                "above which process rewards lose their step credit (the paper's base model writes steps in "
                "98% of rollouts); null = off."})
    overlong_share: float | None = field(default=0.25, metadata={"range": "(0, 1]",
        "help": "overlong: the share of rollouts that hit max_completion_length (reward 0 under overlong: zero) "
                "at or above which length inflation is reported; null = off."})
    bare_answer_share: float | None = field(default=0.25, metadata={"range": "(0, 1]",
        "help": "bare_answers (judged methods): the share of rollouts that are a boxed answer without work "
                "at or above which an alert fires; null = off."})
    number_list_share: float | None = field(default=0.1, metadata={"range": "(0, 1]",
        "help": f"number_lists (judged methods): the share of rollouts listing {NUMBER_LIST_VALUES} or more "
                "numbers in a row at or above which an alert fires; null = off."})
    unscorable_share: float | None = field(default=0.1, metadata={"range": "(0, 1]",
        "help": "unscorable (judged methods): the share of rollouts the judge could not score (timeout, error, "
                "unparseable: they leave the loss) at or above which an alert fires; null = off."})
    stop_unscorable_share: float | None = field(default=0.5, metadata={"range": "(0, 1]",
        "help": "Stop the run (exit 1, a checkpoint saved to resume from) when the judge could not score at least "
                "this share of the rollouts it was asked about (not those the overlong policy set aside) in each "
                "of stop_unscorable_batches rollout batches in a row: a judge "
                "that is down or misconfigured leaves no learning signal, and the run would otherwise spend its "
                "whole budget so. Judged methods; null = never stop. Independent of `enabled`."})
    stop_unscorable_batches: int = field(default=3, metadata={"range": "[1, inf)",
        "help": "How many rollout batches in a row must reach stop_unscorable_share before the run stops (one "
                "bad batch, a judge restarting, does not)."})

    def __post_init__(self):
        if self.smoothing_steps < 1:
            raise ValueError(f"monitor.smoothing_steps must be at least 1, got {self.smoothing_steps}")
        if self.hacking_window < 2:
            raise ValueError(f"monitor.hacking_window must be at least 2 steps, got {self.hacking_window}")
        for name in ("one_step_share", "overlong_share", "bare_answer_share", "number_list_share",
                     "unscorable_share"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"monitor.{name} must be a share in (0, 1] or null, got {value}")


def unscorable_share(rollouts: Sequence[Rollout]) -> float:
    """The share of rollouts the judge was asked about and could not score (the overlong policy's set-
    aside rollouts, never asked, are not unscorable)."""
    return sum(bool(r.judgments) and r.dense_reward is None for r in rollouts) / max(len(rollouts), 1)


class JudgeBreaker:
    """Trips when the judge could not score at least `share` of the rollouts it was asked about in each of
    `batches` rollout batches in a row (`MonitorConfig.stop_unscorable_*`): the trainer then saves a checkpoint
    and stops. Fed one rollout batch at a time, on every process alike (the batch is gathered), so
    every process stops at the same step."""

    def __init__(self, config: MonitorConfig):
        self.share, self.batches = config.stop_unscorable_share, config.stop_unscorable_batches
        self.run: list[float] = []  # the shares of the bad batches in a row, latest last

    def observe(self, rollouts: Sequence[Rollout]) -> bool:
        """Whether the run must stop after this rollout batch. The share is of the rollouts the judge was
        asked about: those the overlong policy set aside are not its failures, and counting them would keep
        a judge that is down from tripping the breaker whenever half a batch runs to the length cap."""
        asked = [r for r in rollouts if r.judgments]
        if self.share is None or not asked:
            return False
        share = unscorable_share(asked)
        self.run = self.run + [share] if share >= self.share else []
        return len(self.run) >= self.batches

    def reason(self, statuses: Mapping[str, int], error: str | None) -> str:
        counted = ", ".join(f"{name} {count}" for name, count in sorted(statuses.items()) if name != "ok" and count)
        return (f"the judge could not score {min(self.run):.0%} or more of the rollouts asked in each of the last "
                f"{len(self.run)} rollout batches (monitor.stop_unscorable_share {self.share:g}, "
                f"monitor.stop_unscorable_batches {self.batches})" + (f"; last batch: {counted}" if counted else "")
                + (f"; the last error: {error}" if error else ""))


ALERTS: dict[str, str] = {
    "reward_hacking": "the judge's reward rises while sparse correctness stays flat or falls",
    "delimiter_collapse": "rollouts collapse to one `###` step (ExpRL-Process)",
    "overlong": "rollouts hit the completion-length cap (length inflation)",
    "bare_answers": "rollouts are a boxed answer without work",
    "number_lists": "rollouts list long runs of numbers",
    "unscorable": "the judge cannot score rollouts",
}
"""Every alert a monitor can raise, and what it watches."""

ALERT_RECORD = "alert"


@dataclass(frozen=True)
class Alert:
    step: int
    name: str           # a key of ALERTS
    value: float
    threshold: float
    message: str

    def record(self) -> dict[str, Any]:
        """The alert as a `metrics.jsonl` line (`record: alert` tells it from a metrics row)."""
        return {"record": ALERT_RECORD, "step": self.step, "name": self.name, "value": self.value,
                "threshold": self.threshold, "message": self.message}


@dataclass(frozen=True)
class _ShareCheck:
    name: str
    key: str
    threshold: str      # the MonitorConfig field
    signals: tuple[str, ...]
    what: str           # "of rollouts ..." completing the message


_SHARE_CHECKS = (
    _ShareCheck("delimiter_collapse", "exprl/steps_per_trace_1", "one_step_share", ("process",),
                "of rollouts are a single `###` step: DeltaNorm gives them no step credit (delimiter collapse)"),
    _ShareCheck("overlong", "exprl/overlong_share", "overlong_share", get_args(Signal),
                "of rollouts hit max_completion_length (length inflation: under overlong: zero they earn 0)"),
    _ShareCheck("bare_answers", "exprl/bare_answer_share", "bare_answer_share", get_args(JudgedSignal),
                "of rollouts are a boxed answer without work"),
    _ShareCheck("number_lists", "exprl/number_list_share", "number_list_share", get_args(JudgedSignal),
                f"of rollouts list {NUMBER_LIST_VALUES} or more numbers in a row"),
    _ShareCheck("unscorable", "exprl/unscorable_share", "unscorable_share", get_args(JudgedSignal),
                "of rollouts could not be scored by the judge and left the loss (see the judge statuses)"),
)
DENSE_KEY, SPARSE_KEY = "exprl/dense_reward_mean", "exprl/sparse_correct"
WATCHED_KEYS = (DENSE_KEY, SPARSE_KEY) + tuple(check.key for check in _SHARE_CHECKS)


class Monitor:
    """Watches one training run's logged rows (`observe`) and raises each alert at most once."""

    def __init__(self, config: MonitorConfig, signal: Signal):
        self.config, self.signal = config, signal
        self.history: list[tuple[int, dict[str, float]]] = []
        self.fired: set[str] = set()

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Take up a resumed run: the rows it logged before (metrics and alerts), without alerting."""
        for row in rows:
            if row.get("record") == ALERT_RECORD:
                self.fired.add(str(row.get("name")))
            elif isinstance(row.get("step"), int):
                self._remember(row["step"], row)

    def observe(self, step: int, row: Mapping[str, Any]) -> list[Alert]:
        """The alerts that fire at `step`, given the row logged there (any other keys are ignored)."""
        logged = self._remember(step, row)
        if not logged or not self.config.enabled:
            return []
        alerts = [alert for check in _SHARE_CHECKS if check.key in logged
                  and (alert := self._share_alert(check, step)) is not None]
        hacking = self._hacking_alert(step)
        if hacking is not None:
            alerts.insert(0, hacking)
        self.fired.update(alert.name for alert in alerts)
        return alerts

    def _remember(self, step: int, row: Mapping[str, Any]) -> dict[str, float]:
        """The watched values of `row`, kept in the history ({} when it has none: an eval row, TRL's
        closing summary)."""
        values = {key: float(row[key]) for key in WATCHED_KEYS
                  if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)}
        if values:
            self.history.append((step, values))
        return values

    def _recent(self, key: str, after: float, upto: float) -> list[float]:
        return [values[key] for step, values in self.history if after < step <= upto and key in values]

    def _share_alert(self, check: _ShareCheck, step: int) -> Alert | None:
        threshold = getattr(self.config, check.threshold)
        if threshold is None or self.signal not in check.signals or check.name in self.fired:
            return None
        recent = self._recent(check.key, step - self.config.smoothing_steps, step)
        share = statistics.fmean(recent)
        if share < threshold:
            return None
        span = f"step {step}" if len(recent) == 1 else f"the last {len(recent)} logged steps"
        return Alert(step, check.name, share, threshold,
                     f"{100 * share:.0f}% {check.what} (mean over {span}; threshold {100 * threshold:.0f}%)")

    def _hacking_alert(self, step: int) -> Alert | None:
        rise_needed, window = self.config.hacking_reward_rise, self.config.hacking_window
        if rise_needed is None or self.signal == "sparse" or "reward_hacking" in self.fired:
            return None
        first = min((s for s, values in self.history if DENSE_KEY in values and SPARSE_KEY in values), default=None)
        if first is None or step - first + 1 < window:
            return None
        middle = step - window / 2
        halves = []
        for after, upto in ((step - window, middle), (middle, step)):
            dense, sparse = self._recent(DENSE_KEY, after, upto), self._recent(SPARSE_KEY, after, upto)
            if not dense or not sparse:
                return None
            halves.append((statistics.fmean(dense), statistics.fmean(sparse)))
        (dense_before, sparse_before), (dense_after, sparse_after) = halves
        dense_rise, correct_rise = dense_after - dense_before, sparse_after - sparse_before
        if dense_rise < rise_needed or correct_rise > self.config.hacking_correct_rise:
            return None
        return Alert(step, "reward_hacking", dense_rise, rise_needed,
                     f"the judge's mean reward rose by {dense_rise:.2f} (from {dense_before:.2f} to {dense_after:.2f}) "
                     f"over steps {step - window + 1}-{step} while sparse correctness changed by {correct_rise:+.2f} "
                     f"(from {sparse_before:.2f} to {sparse_after:.2f}): the policy may be learning what the judge "
                     f"rewards rather than how to solve; read its rollouts (threshold: a rise of {rise_needed:.2f} "
                     f"with correctness up by at most {self.config.hacking_correct_rise:.2f})")
