"""The synthetic coverage task: chains of modular arithmetic, in two solution styles.

A problem is a start value and a chain of operations on small numbers modulo `modulus`:

    Start at 7. (1) Add 5. (2) Multiply by 3. (3) Subtract 4. Work modulo 100.

It reproduces the paper's conditions in miniature (docs/architecture.md, "Synthetic coverage task"):

- difficulty is the chain length: a base model pre-trained on short chains (the easy split) has no
  coverage of long ones (the hard split), while each single step stays within its skill;
- the policy-style trace (`policy_trace`, what the base model is pre-trained on) writes one `###`
  step per operation, `### 1: 7 + 5 = 12`, then `\\boxed{32}`. Steps are numbered like the
  operations, so finding the next operation is a lookup by content (`(4)`), not by position: a
  model that has never written a 4th step still has the skill to, once it explores one;
- the reference (`Problem.reference`, shown only to the judge) is terse and in another style,
  `a = 12, b = 36, c = 32, so \\boxed{32}`: it states every intermediate result as the right-hand
  side of an `=`, which is what the reference judge checks a trace against.

Everything is a pure function of the config: the same config always gives the same problems.
"""
from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass, field

from exprl.data.answers import last_boxed
from exprl.data.problem import Problem
from exprl.errors import ConfigError

# name -> (problem wording, trace symbol, function). The wording is deliberately unlike the
# trace's symbol so that the model has to translate, as a real problem statement would require.
OPERATIONS = {
    "add": ("Add", "+", lambda value, operand: value + operand),
    "sub": ("Subtract", "-", lambda value, operand: value - operand),
    "mul": ("Multiply by", "*", lambda value, operand: value * operand),
}

SOURCE = "synthetic-chain"
# The pieces every problem and policy trace is made of: a tokenizer that keeps each whole
# (`exprl.tiny.build_char_tokenizer(words=...)`) spends one position on each, as an LLM's would.
TOKEN_WORDS = ("Start at ", ". (", ") ", *(f"{wording} " for wording, _, _ in OPERATIONS.values()), "Stop",
               "Work modulo ", "### ", ": ", " = ", *(f" {symbol} " for _, symbol, _ in OPERATIONS.values()),
               "\\boxed{")
# Reference variable names: one letter per intermediate result, so chains are capped by it.
_VARIABLES = string.ascii_lowercase
STEP_LABELS = ("letters", "numbers")


@dataclass
class SyntheticTaskConfig:
    """One split of the synthetic coverage task."""

    num_problems: int = field(default=256, metadata={"range": "[0, inf)", "help": "How many problems to generate."})
    min_steps: int = field(default=1, metadata={
        "range": "[1, inf)", "help": "Shortest chain (operations per problem)."})
    max_steps: int = field(default=3, metadata={"range": "[1, inf)",
        "help": "Longest chain. Easy = 1-3 (what the base model is pre-trained on), hard = 5-6."})
    modulus: int = field(default=100, metadata={
        "range": "[2, inf)", "help": "All values are reduced modulo this number."})
    operations: list[str] = field(default_factory=lambda: ["add", "sub", "mul"], metadata={
        "help": f"Operations to draw from: any of {', '.join(OPERATIONS)}."})
    min_operand: int = field(default=2, metadata={"range": "[1, inf)", "help": "Smallest operand of an operation."})
    max_operand: int = field(default=9, metadata={"range": "[1, inf)", "help": "Largest operand of an operation."})
    seed: int = field(default=0, metadata={
        "range": "[0, 4294967295]", "help": "Random seed; the same config gives the same problems."})
    split: str = field(default="train", metadata={
        "help": "Split name: part of every id and of the random stream, so splits with one seed differ."})
    last_first: bool = field(default=False, metadata={
        "help": "List the operations last first, after a stop item: `Start at 68. (d) Stop. (c) Add 7. (b) Subtract "
                "2. (a) Add 4.`. Step k's operation then always sits the same number of tokens before the end of the "
                "problem, whatever the chain's length, so reading it is the same lookup on short and long problems "
                "(docs/architecture.md)."})
    step_labels: str = field(default="letters", metadata={
        "help": "How operations and trace steps are labelled: letters, `(c) Add 4.` / `### c: ...`, or "
                "numbers, `(3) Add 4.` / `### 3: ...`. With number labels a label is the same token as a "
                "value or an operand, and a tiny base model reads long problems wrongly "
                "(docs/architecture.md)."})

    def __post_init__(self) -> None:
        if self.num_problems < 0:
            raise ConfigError(f"num_problems must be >= 0, got {self.num_problems}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ConfigError(f"need 1 <= min_steps <= max_steps, got {self.min_steps} and {self.max_steps}")
        if self.max_steps > len(_VARIABLES):
            raise ConfigError(f"max_steps must be <= {len(_VARIABLES)} (one reference variable per step)")
        if self.modulus < 2:
            raise ConfigError(f"modulus must be >= 2, got {self.modulus}")
        unknown = [op for op in self.operations if op not in OPERATIONS]
        if unknown or not self.operations:
            raise ConfigError(f"operations must be a non-empty list of {', '.join(OPERATIONS)}; "
                              f"got {self.operations}")
        if not 1 <= self.min_operand <= self.max_operand:
            raise ConfigError(f"need 1 <= min_operand <= max_operand, got {self.min_operand} "
                              f"and {self.max_operand}")
        if self.last_first and self.max_steps >= len(_VARIABLES):
            raise ConfigError(f"with last_first, max_steps must be < {len(_VARIABLES)} (one label for the stop item)")
        if self.step_labels not in STEP_LABELS:
            raise ConfigError(f"step_labels must be one of {', '.join(STEP_LABELS)}, got {self.step_labels!r}")


@dataclass(frozen=True)
class Chain:
    """A problem's content before it is worded: start value, operations, and every result."""

    start: int
    steps: tuple[tuple[str, int], ...]  # (operation name, operand)
    modulus: int
    step_labels: str = "letters"
    last_first: bool = False  # the text lists `(k) Stop.` first, then the steps last first

    def label(self, index: int) -> str:
        """The label of step `index` (1-based), in the problem and in the trace."""
        return _VARIABLES[index - 1] if self.step_labels == "letters" else str(index)

    def step_of(self, label: str) -> int | None:
        """The step (1-based) that `label` names; None when the chain has no such step."""
        return next((i for i in range(1, len(self.steps) + 1) if self.label(i) == label), None)

    @property
    def values(self) -> list[int]:
        """The intermediate results, one per step; the last is the answer."""
        values, value = [], self.start
        for name, operand in self.steps:
            value = OPERATIONS[name][2](value, operand) % self.modulus
            values.append(value)
        return values


def generate(config: SyntheticTaskConfig, exclude: set[str] | frozenset[str] = frozenset()) -> list[Problem]:
    """`config.num_problems` distinct problems; problem texts in `exclude` are never produced.

    `exclude` keeps a test split disjoint from a training split: pass the training problems' texts.
    """
    rng = random.Random(_stream_seed(config.seed, config.split))
    problems: list[Problem] = []
    seen = set(exclude)
    attempts = 0
    while len(problems) < config.num_problems:
        attempts += 1
        if attempts > 100 * config.num_problems + 1000:
            raise ConfigError(
                f"cannot draw {config.num_problems} distinct problems from this config "
                f"(min_steps={config.min_steps}, max_steps={config.max_steps}, modulus={config.modulus}); "
                "widen it or ask for fewer")
        chain = _draw_chain(rng, config)
        text = problem_text(chain)
        if text in seen:
            continue
        seen.add(text)
        problems.append(_to_problem(chain, text, config, index=len(problems)))
    return problems


def problem_text(chain: Chain) -> str:
    items = [f"{OPERATIONS[name][0]} {operand}" for name, operand in chain.steps]
    if chain.last_first:
        items.append("Stop")
    labelled = [f"({chain.label(i)}) {item}." for i, item in enumerate(items, 1)]
    sentences = [f"Start at {chain.start}."] + (labelled[::-1] if chain.last_first else labelled)
    sentences.append(f"Work modulo {chain.modulus}.")
    return " ".join(sentences)


_PROBLEM = re.compile(r"Start at (\d+)\. ((?:\(\w+\) [A-Za-z ]+?(?: \d+)?\. )+)Work modulo (\d+)\.")
_ITEM = re.compile(r"\((\w+)\) ([A-Za-z ]+?)(?: (\d+))?\. ")
_NAME_OF_WORDING = {wording: name for name, (wording, _, _) in OPERATIONS.items()}


def parse_problem_text(text: str) -> Chain:
    """The chain a problem text states (the inverse of `problem_text`); a ConfigError if it states none."""
    match = _PROBLEM.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"not a synthetic chain problem: {text[:80]!r}")
    start, listed, modulus = match.groups()
    items = _ITEM.findall(listed)
    last_first = bool(items) and items[0][1] == "Stop" and len(items) > 1
    if last_first:
        items = items[::-1][:-1]
    try:
        operations = tuple((_NAME_OF_WORDING[wording], int(operand)) for _, wording, operand in items)
    except (KeyError, ValueError):
        raise ConfigError(f"not a synthetic chain problem (operations): {text[:80]!r}") from None
    for step_labels in STEP_LABELS:
        chain = Chain(start=int(start), modulus=int(modulus), step_labels=step_labels, steps=operations,
                      last_first=last_first)
        if operations and problem_text(chain) == text.strip():
            return chain
    raise ConfigError(f"not a synthetic chain problem (labels or operations): {text[:80]!r}")


def reference_solution(chain: Chain) -> str:
    """Terse, human-style: named results and no working, unlike the policy's `###` steps."""
    values = chain.values
    named = ", ".join(f"{_VARIABLES[i]} = {v}" for i, v in enumerate(values))
    return f"{named}, so \\boxed{{{values[-1]}}}"


def policy_trace(problem: Problem) -> str:
    """The policy's own style for `problem`: one `###` step per operation, then the boxed answer.

    This is what the base model is pre-trained on (easy split only); the reference is never used
    for that.
    """
    chain = chain_of(problem)
    lines, value = [], chain.start
    for index, ((name, operand), result) in enumerate(zip(chain.steps, chain.values), 1):
        lines.append(f"### {chain.label(index)}: {value} {OPERATIONS[name][1]} {operand} = {result}")
        value = result
    lines.append(f"\\boxed{{{chain.values[-1]}}}")
    return "\n".join(lines)


def slipped_trace(problem: Problem, slip_rate: float, rng: random.Random) -> str:
    """`policy_trace` with arithmetic slips: each step's result is off by one (up or down, modulo the
    modulus) with probability `slip_rate`, and the steps after it go on from the stated value, as a
    careless solver's would; the boxed answer is the last value stated.

    A base model pre-trained on such traces has every step's skill (the right result is its most
    likely one) and slips at about the same rate at every position of a chain, so its chance of a
    whole chain right compounds, p ** L, rather than failing at a position it cannot read
    (docs/architecture.md, "The machinery check")."""
    chain = chain_of(problem)
    lines, value = [], chain.start
    for index, (name, operand) in enumerate(chain.steps, 1):
        result = OPERATIONS[name][2](value, operand) % chain.modulus
        if rng.random() < slip_rate:
            result = (result + rng.choice((-1, 1))) % chain.modulus
        lines.append(f"### {chain.label(index)}: {value} {OPERATIONS[name][1]} {operand} = {result}")
        value = result
    lines.append(f"\\boxed{{{value}}}")
    return "\n".join(lines)


def chain_of(problem: Problem) -> Chain:
    """The chain a synthetic problem was generated from (kept in `meta`)."""
    meta = problem.meta
    try:
        return Chain(start=int(meta["start"]), modulus=int(meta["modulus"]),
                     steps=tuple((str(name), int(operand)) for name, operand in meta["ops"]),
                     step_labels=str(meta.get("step_labels", "numbers")),
                     last_first=bool(meta.get("last_first", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"problem {problem.id} is not a synthetic chain problem "
                          f"(meta lacks start/ops/modulus): {exc}") from exc


@dataclass(frozen=True)
class StepCheck:
    """One `###` step of a trace, checked against the problem's chain."""

    in_turn: bool     # its label is the next one: the k-th step of the trace is labelled step k
    operation: bool   # operation and operand are those of the problem's step with this label
    input: bool       # its input is the previous step's result (the start value for the first step)
    arithmetic: bool  # its result is right given its own input, operation and operand

    @property
    def right(self) -> bool:
        return self.in_turn and self.operation and self.input and self.arithmetic


_STEP = re.compile(r"### (\w+): (-?\d+) ([-+*]) (-?\d+) = (-?\d+)")
_NOT_A_STEP = StepCheck(in_turn=False, operation=False, input=False, arithmetic=False)


def check_steps(problem: Problem | Chain, completion: str) -> list[StepCheck]:
    """Every `###` step of `completion`, in order, checked on its own inputs against the chain of
    `problem` (a Problem, or a Chain, e.g. from `parse_problem_text`).

    A step that does not have the form `### c: 70 + 4 = 74` is wrong on every count. The checks of
    a step do not depend on whether earlier steps were right (its input is compared with the
    previous step's *stated* result), so per-step rates measure each skill alone, and
    `right_prefix` measures how far a trace gets before its first mistake.
    """
    return [check for _, check in located_step_checks(problem, completion)]


def located_step_checks(problem: Problem | Chain, completion: str) -> list[tuple[int, StepCheck]]:
    """`check_steps`, each with the offset in `completion` where its step's body starts (just after
    its `###`), so that a caller can tell which step a span of the text holds."""
    chain = problem if isinstance(problem, Chain) else chain_of(problem)
    found: list[tuple[int, StepCheck]] = []
    previous = chain.start
    body = 0
    for position, segment in enumerate(completion.split("###")[1:], 1):
        body = completion.index("###", body) + 3
        match = _STEP.match("###" + segment)
        if match is None:
            found.append((body, _NOT_A_STEP))
            continue
        found.append((body, _check_step(chain, match, position, previous)))
        previous = int(match.group(5))
    return found


def _check_step(chain: Chain, match: re.Match, position: int, previous: int) -> StepCheck:
    """One `_STEP` match, written as the trace's step `position` after a step that ended on `previous`."""
    label, left, symbol, operand, result = match.groups()
    left, operand, result = int(left), int(operand), int(result)
    name = _NAME_OF_SYMBOL[symbol]
    index = chain.step_of(label)
    return StepCheck(in_turn=index == position,
                     operation=index is not None and chain.steps[index - 1] == (name, operand),
                     input=left == previous,
                     arithmetic=OPERATIONS[name][2](left, operand) % chain.modulus == result)


def match_step(text: str) -> re.Match | None:
    """The one step `text` holds (`c: 49 + 2 = 51`, with or without its `###`), its groups label,
    input, operation symbol, operand and result; None if it is not a step."""
    return _STEP.match("### " + text.strip().removeprefix("###").lstrip())


def step_right_alone(chain: Chain, text: str) -> bool:
    """Is the one step `text` holds right by itself: `c: 49 + 2 = 51` (with or without its `###`)
    when step c's operation and operand are + 2, its input is the chain's value before step c, and
    the arithmetic is right. What a grader shown only the step, not the steps before it, can check."""
    match = match_step(text)
    index = chain.step_of(match.group(1)) if match else None
    if index is None:
        return False
    # Written where its label says, after the chain's own value there: right on every count or not.
    return _check_step(chain, match, index, chain.start if index == 1 else chain.values[index - 2]).right


def right_prefix(checks: list[StepCheck]) -> int:
    """How many steps are right in a row from the first (partial progress along the chain)."""
    return next((i for i, check in enumerate(checks) if not check.right), len(checks))


def every_step_right(problem: Problem, completion: str) -> bool:
    """The guess-free success: exactly the chain's steps, each right, and the right boxed answer.

    A final answer can be right by luck (a wrong chain still ends on one of `modulus` values); this
    cannot.
    """
    checks = check_steps(problem, completion)
    return (len(checks) == len(chain_of(problem).steps) and all(c.right for c in checks)
            and last_boxed(completion) == problem.answer)


_NAME_OF_SYMBOL = {symbol: name for name, (_, symbol, _) in OPERATIONS.items()}


def _draw_chain(rng: random.Random, config: SyntheticTaskConfig) -> Chain:
    length = rng.randint(config.min_steps, config.max_steps)
    start = rng.randrange(config.modulus)
    steps = tuple((rng.choice(config.operations), rng.randint(config.min_operand, config.max_operand))
                  for _ in range(length))
    return Chain(start=start, steps=steps, modulus=config.modulus, step_labels=config.step_labels,
                 last_first=config.last_first)


def _to_problem(chain: Chain, text: str, config: SyntheticTaskConfig, index: int) -> Problem:
    values = chain.values
    return Problem(
        id=f"synthetic/{config.split}/s{config.seed}/{index}", problem=text,
        reference=reference_solution(chain), answer=str(values[-1]), domain="math", source=SOURCE,
        meta={"start": chain.start, "ops": [[name, operand] for name, operand in chain.steps],
              "modulus": chain.modulus, "steps": len(chain.steps), "values": values,
              "step_labels": chain.step_labels,
              **({"last_first": True} if chain.last_first else {})})


def _stream_seed(seed: int, split: str) -> int:
    # Python's hash() of a str is salted per process; a digest keeps the stream reproducible.
    return int.from_bytes(hashlib.sha256(f"{seed}:{split}".encode()).digest()[:8], "big")
