"""YAML recipes mapped onto typed dataclasses, in TRL's convention.

Every config is a dataclass whose fields carry a default and a `metadata={"help": ...}` text where
they are declared. A recipe file and `key=value` command-line overrides (dotted keys reach nested
sections) are merged onto the defaults; an unknown key (with the nearest known ones), a value of the
wrong type, a key written twice in one YAML mapping, or a number outside its field's range is a
`ConfigError` that names the key.

A numeric field declares its range beside its help text, `metadata={"help": ..., "range": "[0, 1]"}`
(interval notation; `inf` for no bound), and `check_values` holds every field of every config to it,
whatever set the value (a recipe, `--set`, a command-line flag, code). A float is also refused when it
is NaN or infinite unless its field says `"finite": False`. `tests/test_config.py` checks that every
numeric field of every command's config declares a range.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from exprl.errors import ConfigError
from exprl.recipes import read_yaml
from exprl.runs import write_text_atomic

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                section: str | None = None) -> T:
    """Build `cls` from an optional YAML file (or one top-level `section` of it) plus overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path)
        if section is not None:
            raw = raw.get(section) or {}
    for item in overrides or []:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    return from_dict(cls, raw, where=str(path) if path else "config")


def add_override_argument(parser: Any, what: str, example: str) -> None:
    """`--set KEY=VALUE` (repeatable) into `args.overrides`: the one override flag of every command."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a {what} key (dotted for sections, e.g. {example}); repeatable")


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=3` -> ("a.b", 3); the value is read as a YAML scalar/list so types come out right."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{item}' must look like key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{item}': cannot read the value: {exc}") from exc
    return key.strip(), value


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def from_dict(cls: type[T], raw: dict[str, Any], where: str = "config", prefix: str = "") -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or cls.__name__}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"{where}: {unknown_keys(unknown, fields, cls.__name__, prefix)}")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(hints[name], value, where, prefix + name)
        check_field(fields[name], kwargs[name], where, prefix + name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def unknown_keys(unknown: list[str], known: Any, owner: str, prefix: str = "") -> str:
    """"unknown key 'stepz' for Outer; did you mean 'steps'?": the nearest known keys (difflib), or,
    when none is near, every known key (a short list) or how many there are."""
    names = ", ".join(f"'{prefix}{k}'" for k in unknown)
    known = sorted(map(str, known))
    near = sorted({m for k in unknown for m in difflib.get_close_matches(str(k), known, n=3, cutoff=0.6)})
    if near:
        hint = f"did you mean {' or '.join(repr(prefix + m) for m in near)}?"
    elif len(known) <= 40:
        hint = f"known keys: {', '.join(known)}"
    else:
        hint = f"none of its {len(known)} keys is near it"
    return f"unknown key {names} for {owner}; {hint}"


# -- ranges ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Range:
    """An interval from interval notation: "[0, 1]", "(0, inf)", "[1, inf)"."""

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, spec: str) -> "Range":
        text = spec.strip()
        try:
            low, high = (part.strip() for part in text[1:-1].split(","))
            if text[0] not in "[(" or text[-1] not in "])":
                raise ValueError
            return cls(float(low), float(high), text[0] == "[", text[-1] == "]")
        except ValueError:
            raise ValueError(f"range {spec!r} is not interval notation such as '[0, 1]' or '(0, inf)'") from None

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def describe(self) -> str:
        def shown(x: float) -> str:
            return str(int(x)) if x.is_integer() else repr(x)

        if math.isinf(self.high):
            return f"at least {shown(self.low)}" if self.low_closed else f"greater than {shown(self.low)}"
        if math.isinf(self.low):
            return f"at most {shown(self.high)}" if self.high_closed else f"less than {shown(self.high)}"
        opening, closing = "[" if self.low_closed else "(", "]" if self.high_closed else ")"
        return f"in {opening}{shown(self.low)}, {shown(self.high)}{closing}"


def check_number(value: Any, spec: str | None, key: str, where: str = "config", *, finite: bool = True) -> None:
    """ConfigError naming `key` when the number `value` is NaN or infinite (unless not `finite`), or
    outside the interval `spec`. None, booleans and non-numbers pass: their type is checked elsewhere."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    at = f"{where}: " if where else ""
    if isinstance(value, float) and finite and not math.isfinite(value):
        raise ConfigError(f"{at}'{key}' must be a finite number, got {value}")
    if spec is not None:
        bounds = Range.parse(spec)
        if not (isinstance(value, float) and math.isnan(value)) and value not in bounds:
            raise ConfigError(f"{at}'{key}' must be {bounds.describe()}, got {value!r}")


def check_field(f: dataclasses.Field, value: Any, where: str, key: str) -> None:
    """`value` of field `f` held to the field's declared range (and finiteness), items of a list too."""
    spec, finite = f.metadata.get("range"), f.metadata.get("finite", True)
    for index, item in enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]:
        check_number(item, spec, key if index is None else f"{key}[{index}]", where, finite=finite)


def check_values(config: Any, where: str = "config", prefix: str = "") -> Any:
    """Every field of the dataclass `config`, nested sections and lists of them included, held to its
    declared range: for values set after loading (command-line flags, code). Returns `config`."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_values(value, where, key + ".")
        elif isinstance(value, (list, tuple)) and value and all(dataclasses.is_dataclass(v) for v in value):
            for index, item in enumerate(value):
                check_values(item, where, f"{key}[{index}].")
        else:
            check_field(f, value, where, key)
    return config


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_yaml(config: Any, path: str | Path) -> None:
    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def _coerce(tp: Any, value: Any, where: str, key: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value or {}, where, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: '{key}' = {value!r} does not fit {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: '{key}' must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        item_tp = args[0] if args else Any
        return [_coerce(item_tp, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-6" as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
    return value
