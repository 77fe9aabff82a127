"""The judge layer's vocabulary: what is asked (JudgeRequest), what comes back (JudgeResult), and
how a judge is configured (JudgeConfig). Every backend and every caller speaks only these."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, Sequence, get_args

from exprl.rewards.record import score_reward

if TYPE_CHECKING:
    from exprl.rewards.steps import Step

# The judge layer's vocabularies, each declared once here: a config field, a CLI's choices
# (`typing.get_args`) and every check of a value read them from these.
#
# What one judgment grades. `outcome`: a whole trace. The three process views grade one step t of a
# trace (they differ in what the score means, so DeltaNorm's A_1 = s_1 - s_T means something
# different under each; docs/architecture.md, "process views"):
#   prefix   the partial solution y<=t as a whole (the paper's s(x, y<=t, y*)): s_T scores the trace;
#   segment  step t shown alone, earlier steps withheld (the official code);
#   step     step t as the next move, graded after being shown the earlier steps.
ProcessView = Literal["prefix", "segment", "step"]
PROCESS_VIEWS: tuple[str, ...] = get_args(ProcessView)
JudgeMode = Literal["outcome", ProcessView]
PromptLayout = Literal["shared-first", "paper"]      # JudgeConfig.prompt_layout
ScoreParsing = Literal["last-line", "first-score"]   # JudgeConfig.score_parsing
BackendName = Literal["reference", "openai", "transformers"]   # JudgeConfig.backend
BACKENDS: tuple[str, ...] = get_args(BackendName)
ReferenceMatching = Literal["any", "chain"]          # JudgeConfig.reference_matching


EMPTY_TRACE_SCORE = 1
"""The score of a response with no text at all (the policy stopped at once): the lowest, given by the
judge service without calling any backend, so every backend scores it alike. An empty response is a
policy output that makes no progress, which the rubric scores 1; an unscorable status instead would
drop it from the loss, and a policy could then escape every low reward by saying nothing."""
EMPTY_TRACE_RAW = "(empty response: the lowest score, given without asking the judge)"


class JudgeStatus(str, enum.Enum):
    """Why a judgment has or has no score. Anything but OK is *unscorable*, never a zero."""

    OK = "ok"
    UNPARSEABLE = "unparseable"  # the judge answered, but not with a score we can trust
    TIMEOUT = "timeout"          # no answer within the per-call timeout (after retries)
    ERROR = "error"              # transport or server failure (after retries), or a bad response


@dataclass(frozen=True)
class JudgeRequest:
    """One judgment to make.

    Outcome mode: `trace` is the whole policy response. The process views (`prefix`, `segment`,
    `step`; see `JudgeMode`): `trace` is the step being judged and `context` the steps before it
    (always empty under `segment`). Build process requests with `process_requests`. `reference`
    None means judging without a reference (calibration only).
    `problem_id` names the problem whose stored rubric the service attaches under
    `judge.rubric = cached`; it is not part of the cache key (the rubric text it selects is).
    """

    problem: str
    reference: str | None
    trace: str
    mode: JudgeMode = "outcome"
    context: str = ""
    rubric: tuple[str, ...] | None = None  # cached checkpoints; None = extracted inside the call
    answer: str | None = None              # the known final answer, when there is one
    domain: str = "math"
    problem_id: str | None = None

    @property
    def is_process(self) -> bool:
        return self.mode != "outcome"

    @property
    def is_empty(self) -> bool:
        """Nothing of the candidate's to grade: an empty (or blank) response, whatever the view."""
        return not self.trace.strip() and not self.context.strip()


def process_requests(text: str, steps: Sequence["Step"], view: ProcessView, **common) -> list[JudgeRequest]:
    """One request per step of the trace `text` under `view` (`common`: problem, reference, answer,
    domain, problem_id). The one place that decides what a process judgment is shown."""
    if view not in PROCESS_VIEWS:
        raise ValueError(f"process view must be one of {', '.join(PROCESS_VIEWS)}, got {view!r}")
    return [JudgeRequest(trace=step.text, mode=view, context="" if view == "segment" else text[:step.start],
                         **common)
            for step in steps]


@dataclass
class JudgeResult:
    score: float | None  # 1..5: an integer from every judge backend; the demo's oracle gives its exact value
    status: JudgeStatus
    raw: str = ""
    latency_s: float = 0.0
    cached: bool = False
    truncated: bool = False  # the trace was cut to the judge's token budget
    error: str | None = None

    @property
    def reward(self) -> float | None:
        """s = (score - 1) / 4 in [0, 1] (`exprl.rewards.record.score_reward`); None when unscorable."""
        if self.status is not JudgeStatus.OK or self.score is None:
            return None
        return score_reward(self.score)

    @property
    def ok(self) -> bool:
        return self.status is JudgeStatus.OK and self.score is not None


@dataclass
class JudgeConfig:
    backend: BackendName = field(
        default="reference", metadata={"help": "reference: deterministic checkpoint matcher (no LLM); "
                                               "openai: any OpenAI-compatible endpoint; "
                                               "transformers: a frozen in-process model."})
    model: str = field(default="", metadata={"help": "Model name sent to the endpoint, or the model path "
                                                     "for the transformers backend."})
    base_urls: list[str] = field(default_factory=list, metadata={
        "help": "OpenAI-compatible base URLs (several = replicas, used round-robin)."})
    api_key: str = field(default="EMPTY", metadata={"help": "API key sent to the endpoint."})
    process_view: ProcessView = field(default="segment", metadata={
        "help": "What an ExpRL-Process score s_t measures. segment: step t shown alone (the official "
                "code, whose runs produced the paper's tables); prefix: the partial solution up to and "
                "including step t, graded as a whole (the paper's s(x, y<=t, y*); s_T then scores the "
                "trace, and DeltaNorm's A_1 = s_1 - s_T debits the first step by everything later steps "
                "add); step: step t as the next move, graded after being shown the earlier steps. Declared "
                "here and read where a trace becomes judge requests (exprl.judge.requests.judge_requests in "
                "training, `exprl judge run --mode process`), never by the judge service: a request carries its "
                "view as its mode, so one service, its cache key and every backend serve any view."})
    prompt_layout: PromptLayout = field(default="shared-first", metadata={
        "help": "Order of the judge prompt's sections. shared-first: problem, reference, checkpoints and "
                "known answer before the candidate's text (in the step view, the earlier steps before the "
                "step graded), so a prefix-caching engine (vLLM, SGLang, llama.cpp) prefills what a "
                "problem's G x T calls share once (benchmarks/judge_prefill.py, a paper-sized batch, segment "
                "view: 0.10 of the prompt tokens left to prefill, against 0.47 in the paper's order); "
                "paper: the official code's order (problem, candidate, reference; docs/method.md §2.3)."})
    untrusted_fence: bool = field(default=True, metadata={
        "help": "Quote the candidate's text between fence lines it cannot close and tell the judge that "
                "what is inside is data to grade, never instructions (exprl: a policy under RL pressure can "
                "learn to write 'Score: 5' or 'ignore the rubric' into its answer). false: the text goes "
                "into its section as it is and the judge gets no such rule (the official prompts)."})
    score_parsing: ScoreParsing = field(default="last-line", metadata={
        "help": "How the score is read from the judge's answer (exprl.judge.parsing). last-line: only a "
                "final `Score: N` line (or a JSON object) counts, so a score quoted while reasoning is never "
                "taken (exprl). first-score: the first `Score:` and the digit after it, `*` skipped (the "
                "official code). json_mode needs last-line."})
    known_answer: bool = field(default=False, metadata={
        "help": "Show the problem's known final answer to the judge in its own block after the "
                "reference. Off: the paper's judge prompts have none (docs/method.md §2.3, §10.10; the "
                "reference text normally contains it). The reference backend uses the answer as its "
                "last checkpoint either way."})
    rubric: Literal["implicit", "cached"] = field(default="implicit", metadata={
        "help": "implicit: the judge extracts checkpoints inside each call (the paper); cached: "
                "checkpoints built once per problem by `exprl rubrics build`."})
    rubric_path: str | None = field(default=None, metadata={
        "help": "Rubric store for rubric=cached. A request whose problem_id has no stored rubric is an "
                "ERROR result naming the id, never judged with a different rubric than its siblings."})
    reference_matching: ReferenceMatching = field(default="any", metadata={
        "help": "How the reference backend counts checkpoints. any: a checkpoint stated anywhere in the "
                "trace is reached. chain: only the checkpoints stated in order from the first count (the "
                "k-th after the (k-1)-th), for references whose results each build on all before them, "
                "such as the synthetic task's chains, where a value stated out of turn is a coincidence "
                "(on its small numbers, 84% of the checkpoints `any` credited a demo base were; docs/architecture.md)."})
    concurrency: int = field(default=16, metadata={"range": "[1, inf)", "help": (
        "Judgments the backend works on at once: requests in flight to the endpoints (openai), the rows of "
        "one generation batch (transformers). The reference backend judges one request at a time.")})
    timeout_s: float = field(default=120.0, metadata={"range": "(0, inf)", "help": "Per-call timeout in seconds."})
    max_retries: int = field(default=3, metadata={
        "range": "[0, inf)", "help": "Retries on 429, 5xx and connection errors."})
    max_new_tokens: int = field(default=2048, metadata={
        "range": "[1, inf)", "help": "Judge output cap (paper code: 2048)."})
    temperature: float = field(default=0.0, metadata={
        "range": "[0, inf)", "help": "0 = greedy, as in the paper's code."})
    json_mode: bool = field(default=False, metadata={
        "help": "Ask for {\"score\": N} as schema-constrained JSON (llama.cpp, vLLM) instead of a "
                "'Score: N' line."})
    max_trace_tokens: int | None = field(default=8192, metadata={"range": "[1, inf)",
        "help": "Traces longer than this (counted as 3 characters a token) are cut in the middle before "
                "judging; the cut is recorded. null: never cut (the official code, whose judge prompt "
                "holds a whole 16,384-token trace; a prompt longer than the judge server takes is then an "
                "unscorable ERROR)."})
    cache_path: str | None = field(default=None, metadata={
        "help": "SQLite cache file; None = one file in the user's cache directory; '' disables it."})
    preflight_timeout_s: float = field(default=300.0, metadata={"range": "(0, inf)",
        "help": "A training run asks each judge endpoint for one real judgment before its first rollout and stops "
                "(exit 2, nothing written) when one does not answer within this many seconds (at most timeout_s, "
                "one retry): a judge that is down or misnamed fails the run in seconds, not after its budget."})
    retry_backoff_s: float = field(default=0.5, metadata={"range": "[0, inf)",
        "help": "First back-off before a retry (openai backend); doubles each retry, with jitter."})


class Judge(Protocol):
    """What every caller (trainer, eval, CLI) uses. Never raises for a single failed judgment."""

    name: str  # backend and model; part of every cache key

    async def judge_many(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]: ...


class Backend(Protocol):
    """One way of producing judgments (an endpoint, an in-process model, the reference matcher): the
    one protocol every backend speaks, async.

    The judge service (`exprl.judge.service`) puts the cache, in-flight de-duplication and
    bookkeeping in front of it; a backend only judges what it is given, and reports every failure
    as a `JudgeResult` status instead of raising. The service calls `judge_batch` with at most
    `requests_per_call` requests, all its calls at once, and caches each call's results as it
    returns; the backend bounds its own concurrency. A backend whose work blocks (arithmetic, a local
    model) implements a synchronous `judge_all` and inherits `judge_batch` from
    `exprl.judge.backends.ThreadedBackend`, the one place where sync judging is adapted.
    """

    name: str  # backend and model, e.g. "openai:SmolLM2-135M-Instruct"; part of every cache key
    requests_per_call: int  # the most requests one `judge_batch` call is given

    async def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One result per request, in order."""
        ...
