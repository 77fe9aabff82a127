"""TRL's config classes read from their source with `ast`, without importing trl or transformers.

Which class configures each method (`CONFIG_SOURCES`), every field of it with its declared default
(`trl_defaults`) and type (`trl_annotations`), a recipe value checked against that type
(`check_trl_value`), and the values TRL implements for its enumerated string fields (`trl_choices`).
Reading the installed sources means `--dry-run` answers in a second and sees exactly the defaults
and choices the run will get; a TRL upgrade that moves a class is a ConfigError naming the file.
"""
from __future__ import annotations

import ast
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from exprl.errors import ConfigError
from exprl.train.config import RL_METHODS

# Where each method's TRL config class is declared, base classes first (later ones override).
_TRAINING_ARGUMENTS = ("transformers", "training_args.py", "TrainingArguments")
_TRL_BASE = ("trl", "trainer/base_config.py", "_BaseConfig")
CONFIG_SOURCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "grpo": (_TRAINING_ARGUMENTS, _TRL_BASE, ("trl", "trainer/grpo_config.py", "GRPOConfig")),
    "sft": (_TRAINING_ARGUMENTS, _TRL_BASE, ("trl", "trainer/sft_config.py", "SFTConfig")),
    "self-distill": (_TRAINING_ARGUMENTS, _TRL_BASE, ("trl", "experimental/sdft/sdft_config.py", "SDFTConfig")),
}


class Computed:
    """A TRL default that is an expression, not a literal (kept as its source text)."""

    def __init__(self, source: str):
        self.source = source

    def __repr__(self) -> str:
        return f"<{self.source}>"


REQUIRED = Computed("required")


def config_kind(method: str) -> str:
    """The TRL config family of a method: every RL method is configured by GRPOConfig."""
    return "grpo" if method in RL_METHODS else method


def _source_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)  # a top-level package is located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{package} is not installed; the training extra provides it")
    return Path(list(spec.submodule_search_locations)[0]) / relative


@lru_cache(maxsize=None)
def _class_fields(package: str, relative: str, class_name: str) -> dict[str, Any]:
    path = _source_file(package, relative)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return dict(_field_default(item) for item in node.body
                        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name))
    raise ConfigError(f"{path}: no class {class_name}; this TRL/transformers version is not the one exprl knows")


def _field_default(item: ast.AnnAssign) -> tuple[str, Any]:
    name = item.target.id  # type: ignore[union-attr]
    value = item.value
    if value is None:
        return name, REQUIRED
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        keywords = {k.arg: k.value for k in value.keywords}
        if "default" in keywords:
            value = keywords["default"]
        else:
            return name, Computed(ast.unparse(keywords.get("default_factory", value)))
    try:
        return name, ast.literal_eval(value)
    except ValueError:
        return name, Computed(ast.unparse(value))


@lru_cache(maxsize=None)
def _class_annotations(package: str, relative: str, class_name: str) -> dict[str, ast.expr]:
    path = _source_file(package, relative)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {item.target.id: item.annotation for item in node.body  # type: ignore[union-attr]
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    raise ConfigError(f"{path}: no class {class_name}; this TRL/transformers version is not the one exprl knows")


def trl_annotations(method: str) -> dict[str, ast.expr]:
    """Every field of the method's TRL config class with its declared type, as source (no import)."""
    fields: dict[str, ast.expr] = {}
    for source in CONFIG_SOURCES[config_kind(method)]:
        fields.update(_class_annotations(*source))
    return fields


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str, "dict": dict, "list": list, "tuple": tuple}


def check_trl_value(key: str, value: Any, annotation: ast.expr) -> Any:
    """`value` checked against a TRL field's declared type (read from its source), so a recipe with
    `trl.max_steps: abc` stops here, naming the key, rather than in TRL after the model is built.
    A YAML string that spells a number becomes that number where the field is a float ("1e-6"
    reads as text in YAML 1.1). Types exprl cannot check without importing TRL (its enums, its
    classes) accept any value; TRL checks those."""
    accepted = _accepts(annotation, value)
    if accepted is _REFUSED:
        raise ConfigError(f"trl.{key} must be {ast.unparse(annotation)}, got {value!r}")
    return accepted


_REFUSED = object()


def _accepts(annotation: ast.expr, value: Any) -> Any:
    """`value` (or its float reading) when it fits `annotation`, else _REFUSED."""
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return value if value is None else _REFUSED
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        options = [annotation.left, annotation.right]
    elif isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) in ("Optional", "Union"):
        inner = annotation.slice
        options = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if annotation.value.id == "Optional":  # type: ignore[attr-defined]
            options.append(ast.Constant(None))
    else:
        options = None
    if options is not None:
        fits = [_accepts(option, value) for option in options]
        exact = [f for f in fits if f is value]  # a member the value fits as is wins over a conversion
        return exact[0] if exact else next((f for f in fits if f is not _REFUSED), _REFUSED)
    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", None) == "Literal":
        inner = annotation.slice
        allowed = [e.value for e in (inner.elts if isinstance(inner, ast.Tuple) else [inner])
                   if isinstance(e, ast.Constant)]
        return value if value in allowed else _REFUSED
    name = annotation.value.id if isinstance(annotation, ast.Subscript) else getattr(annotation, "id", None)
    expected = _SCALARS.get(name or "")
    if expected is None:
        return value  # an enum or class of TRL's: TRL itself checks it
    if expected is bool or isinstance(value, bool):
        return value if expected is bool and isinstance(value, bool) else _REFUSED
    if expected is float:
        if isinstance(value, (int, float)):
            return value
        try:
            return float(value) if isinstance(value, str) else _REFUSED
        except ValueError:
            return _REFUSED
    if expected in (list, tuple):
        return value if isinstance(value, (list, tuple)) else _REFUSED
    return value if isinstance(value, expected) else _REFUSED


def trl_defaults(method: str) -> dict[str, Any]:
    """Every field of the method's TRL config class with its declared default (literal, or Computed)."""
    fields: dict[str, Any] = {}
    for source in CONFIG_SOURCES[config_kind(method)]:
        fields.update(_class_fields(*source))
    return fields


# TRL fields typed `str` whose values form an enumeration, and the TRL (or transformers) source files
# that compare the field with each value it implements: the enumeration is read there, so a TRL
# upgrade that adds a loss type is accepted without a change here.
_GRPO_SOURCES = ("trainer/grpo_trainer.py", "trainer/grpo_config.py")
COMPARED_ENUMERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "grpo": {"loss_type": _GRPO_SOURCES, "vllm_mode": _GRPO_SOURCES, "importance_sampling_level": _GRPO_SOURCES,
             "scale_rewards": _GRPO_SOURCES, "vllm_importance_sampling_mode": _GRPO_SOURCES},
    "sft": {"loss_type": ("trainer/sft_trainer.py", "trainer/sft_config.py")},
    "self-distill": {"distillation_mode": ("experimental/sdft/sdft_trainer.py", "experimental/sdft/sdft_config.py")},
}
# Fields typed with an enum class of transformers: its members are the enumeration.
ENUM_CLASSES: dict[str, tuple[str, str, str]] = {
    "lr_scheduler_type": ("transformers", "trainer_utils.py", "SchedulerType"),
    "optim": ("transformers", "training_args.py", "OptimizerNames"),
}



@lru_cache(maxsize=None)
def _compared_values(package: str, files: tuple[str, ...], key: str) -> tuple[str, ...]:
    """Every string `<anything>.key` is compared with (==, !=, in [...]) in `files`: the values the
    code implements."""
    found: dict[str, None] = {}
    for relative in files:
        path = _source_file(package, relative)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == key):
                continue
            for comparator in node.comparators:
                items = comparator.elts if isinstance(comparator, (ast.List, ast.Tuple, ast.Set)) else [comparator]
                found.update((item.value, None) for item in items
                             if isinstance(item, ast.Constant) and isinstance(item.value, str))
    return tuple(found)


@lru_cache(maxsize=None)
def _enum_members(package: str, relative: str, class_name: str) -> tuple[str, ...]:
    path = _source_file(package, relative)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return tuple(item.value.value for item in node.body
                         if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                         and isinstance(item.value.value, str))
    raise ConfigError(f"{path}: no class {class_name}; this transformers version is not the one exprl knows")


def trl_choices(method: str, key: str) -> tuple[str, ...] | None:
    """The values TRL implements for the enumerated field `key` of the method's config, read from
    TRL's (or transformers') source; None for a field that is no enumeration exprl reads."""
    if key in ENUM_CLASSES:
        return _enum_members(*ENUM_CLASSES[key])
    files = COMPARED_ENUMERATIONS.get(config_kind(method), {}).get(key)
    if files is None:
        return None
    values = _compared_values("trl", files, key)
    if not values:
        raise ConfigError(f"found no values of trl.{key} in TRL's {', '.join(files)}; this TRL version is not the "
                          f"one exprl knows")
    return values
