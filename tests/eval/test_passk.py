from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import pytest

from exprl.eval import mean_pass_at_k, pass_at_k, pass_at_k_curve


def closed_form(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@pytest.mark.parametrize("n, c, k, expected", [
    (1, 0, 1, 0.0), (1, 1, 1, 1.0),
    (4, 1, 1, 0.25), (4, 2, 1, 0.5),
    (4, 1, 2, 0.5),            # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 2, 2, 5 / 6),          # 1 - C(2,2)/C(4,2) = 1 - 1/6
    (4, 3, 2, 1.0),            # fewer wrong samples than k: every pair holds a correct one
    (10, 0, 5, 0.0), (10, 10, 1, 1.0),
    (16, 1, 16, 1.0),
])
def test_hand_made_cases(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_random_cases_match_the_exact_closed_form():
    rng = random.Random(1234)
    for _ in range(2000):
        n = rng.randint(1, 300)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(float(closed_form(n, c, k)), rel=1e-9, abs=1e-12)


def test_pass_at_1_is_the_fraction_correct_and_curves_increase():
    assert pass_at_k(128, 37, 1) == pytest.approx(37 / 128)
    curve = pass_at_k_curve([(128, 3), (128, 0), (128, 60)])
    values = [curve[k] for k in range(1, 129)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))
    assert curve[128] == pytest.approx(2 / 3)
    assert mean_pass_at_k([(4, 1), (4, 2)], 2) == pytest.approx((0.5 + 5 / 6) / 2)


def test_large_n_does_not_overflow():
    # C(1024, 512) overflows a float; the product form stays exact enough.
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5)


@pytest.mark.parametrize("n, c, k, message", [
    (4, 1, 5, "k=5 must be between 1 and the number of samples n=4"),
    (4, 1, 0, "k=0"),
    (0, 0, 1, "n must be at least 1"),
    (4, 5, 1, "c=5 correct samples is outside 0..n=4"),
    (4, -1, 1, "c=-1"),
])
def test_invalid_arguments_are_named(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_non_integers_are_rejected():
    with pytest.raises(TypeError, match="k must be an integer"):
        pass_at_k(4, 1, 1.5)
