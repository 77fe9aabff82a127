"""The judge layer's vocabulary: what is asked (JudgeRequest), what comes back (JudgeResult), and
how a judge is configured (JudgeConfig). Every backend and every caller speaks only these."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence


class JudgeStatus(str, enum.Enum):
    """Why a judgment has or has no score. Anything but OK is *unscorable*, never a zero."""

    OK = "ok"
    UNPARSEABLE = "unparseable"  # the judge answered, but not with a score we can trust
    TIMEOUT = "timeout"          # no answer within the per-call timeout (after retries)
    ERROR = "error"              # transport or server failure (after retries), or a bad response


@dataclass(frozen=True)
class JudgeRequest:
    """One judgment to make.

    Outcome mode: `trace` is the whole policy response. Process mode: `trace` is the step being
    judged and `context` the steps before it (empty when judging the isolated segment, as the
    official code does). `reference` None means judging without a reference (calibration only).
    `problem_id` names the problem whose stored rubric the service attaches under
    `judge.rubric = cached`; it is not part of the cache key (the rubric text it selects is).
    """

    problem: str
    reference: str | None
    trace: str
    mode: Literal["outcome", "process"] = "outcome"
    context: str = ""
    rubric: tuple[str, ...] | None = None  # cached checkpoints; None = extracted inside the call
    answer: str | None = None              # the known final answer, when there is one
    domain: str = "math"
    problem_id: str | None = None


@dataclass
class JudgeResult:
    score: int | None
    status: JudgeStatus
    raw: str = ""
    latency_s: float = 0.0
    cached: bool = False
    truncated: bool = False  # the trace was cut to the judge's token budget
    error: str | None = None

    @property
    def reward(self) -> float | None:
        """s = (score - 1) / 4 in [0, 1]; None when unscorable."""
        if self.status is not JudgeStatus.OK or self.score is None:
            return None
        return (self.score - 1) / 4

    @property
    def ok(self) -> bool:
        return self.status is JudgeStatus.OK and self.score is not None


@dataclass
class JudgeConfig:
    backend: Literal["reference", "openai", "transformers"] = field(
        default="reference", metadata={"help": "reference: deterministic checkpoint matcher (no LLM); "
                                               "openai: any OpenAI-compatible endpoint; "
                                               "transformers: a frozen in-process model."})
    model: str = field(default="", metadata={"help": "Model name sent to the endpoint, or the model path "
                                                     "for the transformers backend."})
    base_urls: list[str] = field(default_factory=list, metadata={
        "help": "OpenAI-compatible base URLs (several = replicas, used round-robin)."})
    api_key: str = field(default="EMPTY", metadata={"help": "API key sent to the endpoint."})
    context: Literal["prefix", "segment"] = field(default="prefix", metadata={
        "help": "Process judging: the judge sees the steps before the judged one (prefix, the paper's "
                "equation) or the step alone (segment, the official code)."})
    rubric: Literal["implicit", "cached"] = field(default="implicit", metadata={
        "help": "implicit: the judge extracts checkpoints inside each call (the paper); cached: "
                "checkpoints built once per problem by `exprl rubrics build`."})
    rubric_path: str | None = field(default=None, metadata={
        "help": "Rubric store for rubric=cached. A request whose problem_id has no stored rubric is an "
                "ERROR result naming the id, never judged with a different rubric than its siblings."})
    reference_matching: Literal["any", "chain"] = field(default="any", metadata={
        "help": "How the reference backend counts checkpoints. any: a checkpoint stated anywhere in the "
                "trace is reached. chain: only the checkpoints stated in order from the first count (the "
                "k-th after the (k-1)-th), for references whose results each build on all before them, "
                "such as the synthetic task's chains, where a value stated out of turn is a coincidence "
                "(on its small numbers, 84% of the checkpoints `any` credited a demo base were; docs/architecture.md)."})
    concurrency: int = field(default=16, metadata={"help": "Judge calls in flight at once."})
    timeout_s: float = field(default=120.0, metadata={"help": "Per-call timeout in seconds."})
    max_retries: int = field(default=3, metadata={"help": "Retries on 429, 5xx and connection errors."})
    max_new_tokens: int = field(default=2048, metadata={"help": "Judge output cap (paper code: 2048)."})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy, as in the paper's code."})
    json_mode: bool = field(default=False, metadata={
        "help": "Ask for {\"score\": N} as schema-constrained JSON (llama.cpp, vLLM) instead of a "
                "'Score: N' line."})
    max_trace_tokens: int = field(default=8192, metadata={
        "help": "Traces longer than this are cut before judging; the cut is recorded."})
    cache_path: str | None = field(default=None, metadata={
        "help": "SQLite cache file; None = one file in the user's cache directory; '' disables it."})
    retry_backoff_s: float = field(default=0.5, metadata={
        "help": "First back-off before a retry (openai backend); doubles each retry, with jitter."})


class Judge(Protocol):
    """What every caller (trainer, eval, CLI) uses. Never raises for a single failed judgment."""

    name: str  # backend and model; part of every cache key

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]: ...


class Backend(Protocol):
    """One way of producing judgments (an endpoint, an in-process model, the reference matcher).

    The judge service (`exprl.judge.service`) puts the cache, in-flight de-duplication and
    bookkeeping in front of it; a backend only judges what it is given, and reports every failure
    as a `JudgeResult` status instead of raising.
    """

    name: str  # backend and model, e.g. "openai:SmolLM2-135M-Instruct"; part of every cache key

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]: ...
