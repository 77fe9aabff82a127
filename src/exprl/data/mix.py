"""Several problem sources mixed by weight (`data.mix`): the paper's mixed-domain Stage I (docs/method.md §5.3,
Table 3: InT and POPE math, SciKnowEval science, LiveCodeBench code).

A mix is drawn once, before training, as a list of problems the trainer then iterates like any
training file (TRL shuffles it with the run's seed, which keeps the shares). The list has as many
entries as the sources have problems together, and source i fills round(w_i x that) of them (the
largest-remainder rounding, so the shares are exact to one problem); the sources' entries are then
interleaved in a seeded random order, so every stretch of the list, hence every batch, follows the
weights up to sampling noise. Within a source, problems are taken in a seeded shuffled order and
the order starts again only when all have been used: a source weighted above its natural share
repeats its problems evenly, one below it leaves some out.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Sequence

from exprl.data.domains import DOMAINS, canonical_domain
from exprl.data.problem import Problem
from exprl.errors import ConfigError, DataError


@dataclass
class MixSource:
    """One source of a `data.mix`."""

    path: str = field(default="", metadata={
        "help": "Problems: a prepared or filtered folder, a data file, a catalog dataset or a hub id (anything "
                "data.train_files takes)."})
    weight: float = field(default=1.0, metadata={"range": "(0, inf)",
        "help": "Share of the training problems drawn from this source, relative to the other sources' weights "
                "(they are normalised to sum to 1)."})
    domain: str = field(default="", metadata={
        "help": f"The domain of every problem of this source ({', '.join(DOMAINS)}): it chooses the judge's prompt, "
                f"and whether a verifier can grade the problem. Empty: each row's own domain column (math where "
                f"the source has none)."})

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("data.mix: every source needs a path")
        if not self.weight > 0:
            raise ConfigError(f"data.mix: source {self.path} has weight {self.weight}; weights must be positive "
                              f"(leave a source out instead of weighting it 0)")
        if self.domain:
            try:
                self.domain = canonical_domain(self.domain)
            except DataError as exc:
                raise ConfigError(f"data.mix: source {self.path}: {exc}") from None


def quotas(weights: Sequence[float], total: int) -> list[int]:
    """How many of `total` draws each source gets: proportional to its weight, rounded by largest
    remainder so that they sum to `total` exactly."""
    norm = sum(weights)
    exact = [w / norm * total for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (exact[i] - counts[i], -i), reverse=True)
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return counts


def mix_draws(sizes: Sequence[int], weights: Sequence[float], total: int, seed: int) -> list[tuple[int, int]]:
    """`total` (source index, problem index) picks following `weights` (see the module docstring)."""
    if len(sizes) != len(weights) or not sizes:
        raise ValueError("mix_draws: one size and one weight per source, at least one source")
    if any(size < 1 for size in sizes):
        raise ValueError("mix_draws: every source needs at least one problem")
    rng = random.Random(seed)
    labels = [source for source, count in enumerate(quotas(weights, total)) for _ in range(count)]
    rng.shuffle(labels)
    orders: list[list[int]] = [[] for _ in sizes]
    picks = []
    for source in labels:
        if not orders[source]:  # a fresh pass over the source, in a new order
            orders[source] = list(range(sizes[source]))
            rng.shuffle(orders[source])
        picks.append((source, orders[source].pop()))
    return picks


def mix_problems(sources: Sequence[Sequence[Problem]], mix: Sequence[MixSource], seed: int) -> list[Problem]:
    """The training problems of a mix, from each source's loaded problems (in `mix` order): as many as
    the sources hold together, drawn by weight, each given its source's domain when the mix sets one."""
    if len(sources) != len(mix):
        raise ValueError("mix_problems: one list of problems per source")
    for problems, source in zip(sources, mix):
        if not problems:
            raise ConfigError(f"data.mix: source {source.path} has no problems")
    typed = [[replace(p, domain=source.domain) if source.domain else p for p in problems]
             for problems, source in zip(sources, mix)]
    picks = mix_draws([len(p) for p in typed], [s.weight for s in mix], sum(len(p) for p in typed), seed)
    return [typed[source][index] for source, index in picks]
