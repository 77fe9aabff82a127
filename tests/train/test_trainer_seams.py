"""The table of TRL seams in `exprl.train.trainer`'s docstring is the whole truth, checked against
the TRL installed (its source read with ast, not imported): the version it names, every method the
trainer overrides, the order of `_generate`'s result it reads by position, and every attribute of
TRL's it reads or writes."""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
from pathlib import Path

import exprl.train.trainer as trainer_module

SOURCE = Path(trainer_module.__file__).read_text(encoding="utf-8")
DOC = ast.get_docstring(ast.parse(SOURCE))
TABLE = DOC[DOC.index("seam (TRL"):DOC.index("The three overrides")]


def trl_grpo() -> ast.ClassDef:
    root = Path(importlib.util.find_spec("trl").submodule_search_locations[0])
    tree = ast.parse((root / "trainer" / "grpo_trainer.py").read_text(encoding="utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GRPOTrainer")


def ours() -> ast.ClassDef:
    return next(n for n in ast.parse(SOURCE).body if isinstance(n, ast.ClassDef) and n.name == "ExpRLTrainer")


def methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def test_the_table_names_the_trl_version_installed():
    assert re.search(r"TRL (\d+\.\d+\.\d+)", TABLE).group(1) == importlib.metadata.version("trl")


def test_every_overridden_trl_method_is_in_the_table_with_trl_s_parameters():
    theirs = methods(trl_grpo())
    overridden = sorted(set(methods(ours())) & set(theirs) - {"__init__"})
    assert overridden == ["_calculate_rewards", "_generate", "_generate_and_score_completions"]
    for name in overridden:
        assert name in TABLE, name
        assert [a.arg for a in methods(ours())[name].args.args] == [a.arg for a in theirs[name].args.args], name


def test_generate_returns_completion_ids_and_completions_where_the_trainer_reads_them():
    returns = [n for n in ast.walk(methods(trl_grpo())["_generate"]) if isinstance(n, ast.Return)]
    names = [[getattr(e, "id", None) for e in r.value.elts] for r in returns if isinstance(r.value, ast.Tuple)]
    assert names and all(len(n) == 8 and n[1] == "completion_ids" and n[3] == "completions" for n in names), names
    assert "_, completion_ids, _, completions, *_ = result" in SOURCE
    assert "[1] completion ids, [3] completions" in TABLE


def test_every_trl_attribute_the_trainer_touches_is_in_the_table():
    """`self.X` read or written in ExpRLTrainer where X is set by TRL's GRPOTrainer (or is one of its
    methods), not by exprl: each must appear in the table."""
    own = {t.attr for n in ast.walk(ours()) if isinstance(n, (ast.Assign, ast.AnnAssign))
           for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
           for t in ([t] + (list(t.elts) if isinstance(t, ast.Tuple) else []))
           if isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == "self"}
    grpo = trl_grpo()
    trl_set = {t.attr for n in ast.walk(grpo) if isinstance(n, (ast.Assign, ast.AnnAssign))
               for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
               if isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == "self"}
    used = {n.attr for n in ast.walk(ours()) if isinstance(n, ast.Attribute) and getattr(n.value, "id", None) == "self"}
    trl_used = sorted((used & trl_set) - own - {"args", "model", "accelerator", "state"})
    assert {"_tokenizer", "_metrics", "eos_token_ids", "generation_config"} <= set(trl_used)  # the check sees them
    missing = [name for name in trl_used if name not in TABLE]
    assert not missing, f"TRL attributes used but not in the seam table: {missing}"
    assert "reward_weights" in TABLE and "disable_compile" in TABLE
