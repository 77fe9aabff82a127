"""One word per idea: each vocabulary of choices (a `Literal`) is declared once, and a config field,
an argparse `choices` or a check reads it from there (`typing.get_args`) instead of spelling its
words out again. Read from the source with ast, like tests/test_layers.py."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "exprl"

# Lists that hold a vocabulary's words on purpose, with why.
ALLOWED = {
    ("demo/config.py", "ALL_METHODS"): "the demo's methods in the order its report shows them",
}


def _strings(node: ast.AST) -> tuple[str, ...] | None:
    """The strings of a tuple or list of string constants (two or more), else None."""
    if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2 and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return tuple(e.value for e in node.elts)
    return None


def _literal_words(node: ast.AST) -> tuple[str, ...] | None:
    """The string words of `Literal[...]` (the direct ones; a nested alias adds its own elsewhere)."""
    if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        words = tuple(e.value for e in inner if isinstance(e, ast.Constant) and isinstance(e.value, str))
        return words if len(words) == len(inner) and len(words) >= 2 else None
    return None


def _scan():
    """(file, line, words) of every Literal declared, and of every other list of strings."""
    declared, spelt = [], []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                names[id(node.value)] = node.targets[0].id
        inside_literal = {id(node.slice) for node in ast.walk(tree) if _literal_words(node) is not None}
        for node in ast.walk(tree):
            words = _literal_words(node)
            if words is not None:
                declared.append((rel, node.lineno, words))
            elif id(node) not in inside_literal and (words := _strings(node)) is not None:
                spelt.append((rel, node.lineno, words, names.get(id(node))))
    return declared, spelt


def test_no_vocabulary_is_spelt_out_twice():
    declared, spelt = _scan()
    vocabularies = {}
    for rel, line, words in declared:
        vocabularies.setdefault(frozenset(words), []).append(f"{rel}:{line}")
    twice = {words: where for words, where in vocabularies.items() if len(where) > 1}
    assert not twice, f"a Literal declared more than once: {twice}"
    again = [f"{rel}:{line} {list(words)} (declared at {vocabularies[frozenset(words)][0]})"
             for rel, line, words, name in spelt
             if frozenset(words) in vocabularies and (rel, name) not in ALLOWED]
    assert not again, "spell these with typing.get_args of the declared Literal:\n" + "\n".join(again)


def test_the_scan_sees_what_it_checks():
    declared, spelt = _scan()
    assert any(rel == "judge/types.py" and words == ("prefix", "segment", "step") for rel, _, words in declared)
    assert any(rel == "demo/config.py" and name == "ALL_METHODS" for rel, _, _, name in spelt)


def test_choices_and_fields_read_the_declared_vocabularies():
    import argparse
    from typing import get_args, get_type_hints

    from exprl.demo.config import DemoConfig
    from exprl.judge.cli import add_run_arguments
    from exprl.judge.types import BACKENDS, PROCESS_VIEWS, JudgeConfig, ProcessView
    from exprl.rewards.record import JudgedSignal

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    choices = {a.dest: tuple(a.choices) for a in parser._actions if a.choices}
    assert choices["process_view"] == PROCESS_VIEWS == get_args(ProcessView)
    assert choices["mode"] == get_args(JudgedSignal)
    assert choices["backend"] == BACKENDS == get_args(get_type_hints(JudgeConfig)["backend"])
    assert get_type_hints(DemoConfig)["judge_process_view"] == get_type_hints(JudgeConfig)["process_view"]
