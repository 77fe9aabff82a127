"""`data.mix`: the seeded weighted sampler behind mixed-domain training (method.md §5.3)."""
from __future__ import annotations

from collections import Counter

import pytest

from exprl.data.mix import MixSource, mix_draws, mix_problems, quotas
from exprl.data.problem import Problem
from exprl.errors import ConfigError

# Table 3 of the paper: InT, POPE, SciKnow-Physics, SciKnow-All, LCB v6 (examples and share of training).
TABLE3_SIZES = [440, 1076, 474, 1000, 1011]
SKEWED = [0.5, 0.1, 0.1, 0.1, 0.2]


@pytest.mark.parametrize("weights", [[s / sum(TABLE3_SIZES) for s in TABLE3_SIZES], SKEWED, [3, 1, 1, 1, 4]],
                         ids=["table3", "skewed", "unnormalised"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shares_over_10000_draws_are_within_one_point_of_the_weights(weights, seed):
    draws = mix_draws(TABLE3_SIZES, weights, 10_000, seed)
    assert len(draws) == 10_000
    counts = Counter(source for source, _ in draws)
    for source, weight in enumerate(weights):
        assert abs(counts[source] / 10_000 - weight / sum(weights)) <= 0.01
    # Every stretch of 1,000 draws (a few batches) follows the weights too, up to sampling noise.
    for start in range(0, 10_000, 1_000):
        window = Counter(source for source, _ in draws[start:start + 1_000])
        for source, weight in enumerate(weights):
            assert abs(window[source] / 1_000 - weight / sum(weights)) <= 0.05


def test_the_draw_is_fixed_by_the_seed_and_uses_a_source_evenly():
    assert mix_draws([5, 7], [1, 1], 40, seed=3) == mix_draws([5, 7], [1, 1], 40, seed=3)
    assert mix_draws([5, 7], [1, 1], 40, seed=3) != mix_draws([5, 7], [1, 1], 40, seed=4)
    draws = mix_draws([5, 7], [1, 1], 40, seed=3)
    for source, size in enumerate([5, 7]):
        uses = Counter(index for s, index in draws if s == source)
        assert set(uses) == set(range(size))  # weighted above its size: every problem, evenly repeated
        assert max(uses.values()) - min(uses.values()) <= 1
    # Weighted below its size: no problem twice.
    small = Counter(index for s, index in mix_draws([100, 10], [0.1, 0.9], 50, seed=0) if s == 0)
    assert sum(small.values()) == 5 and max(small.values()) == 1


def test_quotas_are_exact_and_sum_to_the_total():
    assert quotas([1, 1, 1], 10) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(quotas([0.37, 0.21, 0.42], 1001)) == 1001
    assert quotas([440, 1076, 474, 1000, 1011], 4001) == [440, 1076, 474, 1000, 1011]


def rows(prefix: str, n: int, domain: str = "math") -> list[Problem]:
    return [Problem(id=f"{prefix}/{i}", problem=f"{prefix} question {i}", reference="r \\boxed{1}", answer="1",
                    domain=domain, source=prefix) for i in range(n)]


def test_mix_problems_gives_each_source_its_domain_and_share():
    mix = [MixSource(path="math.jsonl", weight=3), MixSource(path="lcb.jsonl", weight=1, domain="coding")]
    problems = mix_problems([rows("math", 30), rows("lcb", 50)], mix, seed=0)
    assert len(problems) == 80
    by_source = Counter(p.source for p in problems)
    assert by_source == {"math": 60, "lcb": 20}
    assert {p.domain for p in problems if p.source == "lcb"} == {"code"}  # the alias, made canonical
    assert {p.domain for p in problems if p.source == "math"} == {"math"}  # the rows' own column


def test_bad_sources_are_config_errors():
    with pytest.raises(ConfigError, match="weights must be positive"):
        MixSource(path="a.jsonl", weight=0)
    with pytest.raises(ConfigError, match="every source needs a path"):
        MixSource(weight=1)
    with pytest.raises(ConfigError, match="a.jsonl.*unknown domain 'chemestry'"):
        MixSource(path="a.jsonl", domain="chemestry")
    with pytest.raises(ConfigError, match="source b.jsonl has no problems"):
        mix_problems([rows("a", 2), []], [MixSource(path="a.jsonl"), MixSource(path="b.jsonl")], seed=0)
