"""The sparse (0/1) final-answer verifier used by sparse GRPO, Stage II and evaluation.

A completion is correct when the contents of its LAST `\\boxed{}` equal the gold answer: first by a
cheap normalised-string comparison, then by math-verify's symbolic equivalence. A completion with no
box is wrong: the policy prompt asks for a box, and guessing an answer from free text would reward
formats the prompt does not ask for. A gold answer that is a single letter A-E is a multiple-choice
key and is matched as a letter only (math-verify would read `B` as the symbol b and accept `b`).

Threads. math-verify bounds parsing and comparison with `signal.alarm`, which Python only allows in
the main thread. Disabling that timeout would let one adversarial completion (e.g. `10^{10^{10}}`)
hang training, so instead: in the main thread we call math-verify directly with its timeout; from
any other thread (TRL's reward thread, the background asyncio loop TRL awaits async rewards on) the
whole batch is shipped to a small process pool whose workers run math-verify in *their* main thread,
where the timeout works. A comparison that times out or crashes counts as incorrect (the sparse
reward has no "unscorable" state) and is logged.
"""
from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

from exprl.data.answers import last_boxed
from exprl.data.domains import canonical_domain
from exprl.errors import ConfigError

logger = logging.getLogger(__name__)

VERIFY_TIMEOUT_S = 5
"""Per-parse and per-comparison limit inside math-verify (seconds, whole numbers: it uses alarm)."""

POOL_WORKERS = 2
"""Worker processes for off-main-thread verification; the CPU machines have two cores."""

VERIFIED_DOMAINS: tuple[str, ...] = ("math", "science")
"""Domains whose problems end in a final answer this verifier can check: math, and science (short
answers and multiple-choice letters; the paper grades GPQA and OlympiadPhysics by answer,
docs/method.md §5.2). Code is graded by running tests (LiveCodeBench), which exprl does not do: a
code problem has no verifier, so sparse GRPO cannot train on it and evaluation leaves it unscored."""

_CHOICE_LETTERS = set("ABCDE")
_CHOICE_WRAPPERS = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$")
_SPACES = re.compile(r"\s+")
# Formatting that never changes a value: size hints, display-style fractions, math-mode dollars.
_COSMETIC = [("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
             ("\\!", ""), ("\\,", ""), ("\\;", ""), ("$", "")]

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def is_correct(completion: Any, answer: str) -> bool:
    """Whether the last `\\boxed{}` of `completion` is equivalent to the gold `answer`.

    `completion` is a string or a chat completion (a list of messages, as TRL passes for
    conversational datasets). Safe to call from any thread.
    """
    return sparse_rewards([completion], [answer])[0] == 1.0


def has_verifier(domain: str) -> bool:
    """Whether problems of `domain` (any name `exprl.data.domains` knows) can be verified."""
    return canonical_domain(domain) in VERIFIED_DOMAINS


def refuse_unverifiable(problems: Sequence[Any], what: str) -> None:
    """A ConfigError when any of `problems` is in a domain without a verifier, for `what` (e.g.
    "stage2 (method grpo)"), which needs the verifier's reward; names the domain and an example."""
    unverifiable: dict[str, list[Any]] = {}
    for problem in problems:
        if not has_verifier(problem.domain):
            unverifiable.setdefault(canonical_domain(problem.domain), []).append(problem)
    if unverifiable:
        domain, found = next(iter(unverifiable.items()))
        example = found[0]
        raise ConfigError(
            f"{what}: {len(found)} problem(s) are in domain '{domain}' (e.g. id {example.id!r}"
            f"{f', source {example.source!r}' if example.source else ''}), which has no verifier: exprl checks "
            f"final answers in {' and '.join(VERIFIED_DOMAINS)} only, and a sparse reward needs that check. "
            f"Leave {domain} out of this stage's data (its data.mix, or `exprl data prepare --set "
            f"domains=[{','.join(VERIFIED_DOMAINS)}]`).")


def sparse_rewards(completions: Sequence[Any], answers: Sequence[str]) -> list[float]:
    """1.0 for each completion whose last box matches its answer, else 0.0. Safe from any thread."""
    if len(completions) != len(answers):
        raise ValueError(f"sparse_rewards: {len(completions)} completions but {len(answers)} answers")
    pairs = [(completion_text(c), str(a)) for c, a in zip(completions, answers)]
    if threading.current_thread() is threading.main_thread():
        verdicts = [_verify_pair(text, gold) for text, gold in pairs]
    else:
        verdicts = _verify_in_pool(pairs)
    return [1.0 if ok else 0.0 for ok in verdicts]


def normalize_answer(text: str) -> str:
    """The answer with cosmetic LaTeX and all whitespace removed, for the exact-match fast path."""
    text = text.strip()
    for old, new in _COSMETIC:
        text = text.replace(old, new)
    text = _SPACES.sub("", text)
    return text.rstrip(".")


def completion_text(completion: Any) -> str:
    """The model's text from a TRL completion: a string, or the assistant turn(s) of a chat."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):  # chat format: the model's own turn(s)
        return "".join(m.get("content") or "" for m in completion
                       if isinstance(m, dict) and m.get("role", "assistant") == "assistant")
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")


def _choice_letter(text: str) -> str:
    """`(B)`, `\\text{B}`, `B.` -> `B`; anything else is returned normalised, not as a letter."""
    text = normalize_answer(text)
    while (match := _CHOICE_WRAPPERS.match(text)) is not None:
        text = match.group(1)
    return text.strip("()")


def _verify_pair(text: str, gold: str) -> bool:
    predicted = last_boxed(text)
    if predicted is None:
        return False
    gold = gold.strip()
    if gold in _CHOICE_LETTERS:
        return _choice_letter(predicted) == gold
    if normalize_answer(predicted) == normalize_answer(gold):
        return True
    return _math_verify_equal(predicted, gold)


def _math_verify_equal(predicted: str, gold: str) -> bool:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # Both sides are re-boxed so math-verify extracts exactly the answer, not some other number.
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    try:
        gold_parsed = parse("\\boxed{" + gold + "}", extraction_config=config,
                            parsing_timeout=VERIFY_TIMEOUT_S)
        predicted_parsed = parse("\\boxed{" + predicted + "}", extraction_config=config,
                                 parsing_timeout=VERIFY_TIMEOUT_S)
        if not gold_parsed or not predicted_parsed:
            return False
        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=VERIFY_TIMEOUT_S))
    except Exception as exc:  # math-verify raises on timeouts and on sympy internals alike
        logger.warning("verifier: comparing %r with gold %r failed (%s); counted incorrect",
                       predicted[:80], gold[:80], exc)
        return False


def _verify_batch(pairs: list[tuple[str, str]]) -> list[bool]:
    """Pool worker entry point: runs in the worker's main thread, so math-verify's alarm works."""
    return [_verify_pair(text, gold) for text, gold in pairs]


def _verify_in_pool(pairs: list[tuple[str, str]]) -> list[bool]:
    pool = _get_pool()
    chunk = max(1, -(-len(pairs) // POOL_WORKERS))
    futures = [pool.submit(_verify_batch, pairs[i:i + chunk]) for i in range(0, len(pairs), chunk)]
    # Each pair is bounded by two parses and one comparison; a dead worker must not hang the caller.
    budget = 3 * VERIFY_TIMEOUT_S * chunk + 60
    verdicts: list[bool] = []
    for future, start in zip(futures, range(0, len(pairs), chunk)):
        try:
            verdicts.extend(future.result(timeout=budget))
        except Exception as exc:
            n = len(pairs[start:start + chunk])
            logger.warning("verifier: a worker batch of %d failed (%s); counted incorrect", n, exc)
            verdicts.extend([False] * n)
            _reset_pool()
    return verdicts


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            import multiprocessing

            # spawn, not fork: the caller is usually a torch process with live threads.
            _pool = ProcessPoolExecutor(max_workers=POOL_WORKERS,
                                        mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _reset_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
