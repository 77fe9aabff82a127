"""The reference judge's regular expressions: each documented example holds, each is declared once,
and no name means one pattern in the judge and another in the training monitors."""
from __future__ import annotations

import re

import pytest

from exprl.judge.reference import arithmetic, checkpoints, patterns, statements
from exprl.rewards import monitors

DECLARED = {name: value for name, value in vars(patterns).items() if isinstance(value, re.Pattern)}


def test_every_pattern_has_examples_and_none_is_declared_twice():
    assert len(DECLARED) > 40  # the reader sees the declarations
    assert set(DECLARED.values()) == set(patterns.EXAMPLES)
    # re.compile returns the same object for the same (regex, flags): two names on one object are one
    # pattern declared twice.
    by_pattern: dict[re.Pattern, list[str]] = {}
    for name, pattern in DECLARED.items():
        by_pattern.setdefault(pattern, []).append(name)
    assert not [names for names in by_pattern.values() if len(names) > 1]
    assert all(patterns.EXAMPLES[p][0] for p in DECLARED.values())  # every pattern finds something


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_the_documented_examples_hold(name):
    pattern = DECLARED[name]
    finds, misses = patterns.EXAMPLES[pattern]
    for text, found in finds:
        match = pattern.search(text)
        assert match is not None and match.group(0) == found, (name, text)
    for text in misses:
        assert pattern.search(text) is None, (name, text)


def test_a_wrong_example_would_fail():
    """The check above can fail: a pattern that finds more than documented is caught."""
    finds, _ = patterns.EXAMPLES[patterns.EQUALS]
    assert patterns.EQUALS.search("x <= 5") is None and finds
    assert patterns.VERB.search("the total is 5").group(0) != "is 5"


def test_the_judge_modules_compile_no_pattern_of_their_own():
    for module in (arithmetic, statements, checkpoints):
        source = open(module.__file__, encoding="utf-8").read()
        assert not re.search(r"\bre\.(?:compile|search|match|fullmatch|findall|finditer|sub)\(", source), module


def test_one_name_one_pattern_across_the_judge_and_the_monitors():
    mine = {name.lstrip("_"): value.pattern for name, value in DECLARED.items()}
    theirs = {name.lstrip("_"): value.pattern for name, value in vars(monitors).items() if isinstance(value, re.Pattern)}
    clashes = {name for name in mine.keys() & theirs.keys() if mine[name] != theirs[name]}
    assert not clashes
    # The patterns both read alike are one object, imported from the monitors (the lower layer).
    assert patterns.ASY_DRAWING is monitors.ASY_DRAWING and patterns.THOUSANDS_COMMA is monitors.THOUSANDS_COMMA
