"""The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models Trained on Code".

With n samples of which c are correct, pass@k = 1 - C(n-c, k) / C(n, k): the chance that k samples
drawn without replacement from the n contain at least one correct one. The binomials overflow a
float long before n = 128, so the ratio is computed as the product prod_{i=n-c+1}^{n} (1 - k/i).
"""
from __future__ import annotations

from typing import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem from `n` samples with `c` correct."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"pass_at_k: {name} must be an integer, got {value!r}")
    if n < 1:
        raise ValueError(f"pass_at_k: n must be at least 1 sample, got n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: c={c} correct samples is outside 0..n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k: k={k} must be between 1 and the number of samples n={n}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """pass@k averaged over problems, from (n, c) per problem."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("mean_pass_at_k: no problems")
    return sum(values) / len(values)


def pass_at_k_curve(counts: list[tuple[int, int]]) -> dict[int, float]:
    """Mean pass@k for every k from 1 to the smallest n over the problems."""
    if not counts:
        raise ValueError("pass_at_k_curve: no problems")
    n_min = min(n for n, _ in counts)
    return {k: mean_pass_at_k(counts, k) for k in range(1, n_min + 1)}
