"""The recipes exprl ships (training, pipeline, benchmark and demo YAMLs), package data beside this file.

They live inside the package, as TRL's accelerate configs do (exprl's own accelerate configs are in
`accelerate/`: `exprl recipes path accelerate/fsdp2`), so that an installed exprl has them too.
`--config NAME` (train, pipeline, eval, demo; with or without .yaml) reads the file NAME when one
exists and the bundled recipe NAME otherwise; `exprl recipes list|show|copy` shows them and copies
them out to start from.

Paths written inside a recipe never resolve against this folder, which is an install location, not
a place for a user's files. A recipe's data names catalog datasets (`exprl.data.catalog`) or files
from the working directory; its stage and benchmark entries name other bundled recipes. A user's own
recipe file also finds files beside itself first (`resolve_entry`).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from exprl.errors import ConfigError

RECIPES_DIR = Path(__file__).resolve().parent
RECIPE_SUFFIXES = (".yaml", ".yml")
# Suffixes that mark an entry as a file to read (so a missing one is reported where it was expected)
# rather than a name (catalog dataset, bundled recipe, hub id).
FILE_SUFFIXES = (*RECIPE_SUFFIXES, ".jsonl", ".ndjson", ".parquet", ".pq", ".json", ".csv", ".tsv", ".arrow",
                 ".txt")


def bundled_recipes() -> dict[str, Path]:
    """Every bundled recipe, name (file stem) -> file, sorted by name."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


def bundled_recipe(name: str) -> Path | None:
    """The bundled recipe called `name` (`cpu-tiny-grpo` or `cpu-tiny-grpo.yaml`), else None."""
    if not name or Path(name).name != name:
        return None
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix in RECIPE_SUFFIXES else name
    return bundled_recipes().get(stem)


def is_bundled(path: str | Path) -> bool:
    return Path(path).resolve().parent == RECIPES_DIR


def find_recipe(spec: str | Path) -> Path:
    """The recipe file `spec` names: a file of that name, else the bundled recipe of that name."""
    path = Path(spec)
    if path.is_file():
        return path
    bundled = bundled_recipe(str(spec))
    if bundled is not None:
        return bundled
    if path.is_dir():
        raise ConfigError(f"{spec}: is a folder, not a recipe file")
    raise ConfigError(f"{spec}: no such file and no bundled recipe of that name{_near(spec)}")


def require_bundled(name: str) -> Path:
    """The bundled recipe `name`; a ConfigError naming the nearest names (did you mean ...?) when there is none."""
    bundled = bundled_recipe(name)
    if bundled is None:
        raise ConfigError(f"no bundled recipe named '{name}'{_near(name)}")
    return bundled


def _near(spec: str | Path) -> str:
    near = difflib.get_close_matches(Path(spec).stem, list(bundled_recipes()), n=4, cutoff=0.5)
    return (f"; did you mean {' or '.join(near)}?" if near else "") + " (`exprl recipes list` shows them all)"


def recipe_folder(path: str | Path) -> Path | None:
    """The folder relative paths inside the recipe `path` are looked up in first: its own folder for
    a user's file, None for a bundled recipe (its paths are the working directory's and the catalog's)."""
    return None if is_bundled(path) else Path(path).resolve().parent


def resolve_entry(value: str, folder: Path | None, *, recipes: bool = False) -> str:
    """A file named inside a recipe whose folder is `folder` (None: bundled).

    In order: an absolute path; a file beside the recipe (a user's recipe only); a file from the
    working directory; with `recipes`, a bundled recipe of that name; a missing file (a data or YAML
    suffix) beside the user's recipe, so that the error names where it was expected; otherwise the
    value as written, for the loader to resolve (a catalog dataset, a hub id) or report."""
    if not value or Path(value).is_absolute():
        return value
    if folder is not None and (folder / value).exists():
        return str((folder / value).resolve())
    if Path(value).exists():
        return str(Path(value).resolve())
    if recipes and (bundled := bundled_recipe(value)) is not None:
        return str(bundled)
    if folder is not None and Path(value).suffix in FILE_SUFFIXES:
        return str(folder / value)
    return value


ACCELERATE_DIR = RECIPES_DIR / "accelerate"


def shipped_accelerate_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(ACCELERATE_DIR.glob("*.yaml"))}


def accelerate_config_path(spec: str) -> Path:
    """The file `spec` names: a shipped config (`fsdp2`, `fsdp2.yaml`, `accelerate/fsdp2`) or a YAML file."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    stem = Path(spec).name
    stem = stem[: -len(Path(stem).suffix)] if Path(stem).suffix in RECIPE_SUFFIXES else stem
    shipped = shipped_accelerate_configs()
    if stem in shipped and Path(spec).parent in (Path("."), Path("accelerate")):
        return shipped[stem]
    raise ConfigError(f"accelerate config {spec!r}: neither a file nor an accelerate config exprl ships "
                      f"({', '.join(shipped)})")


EXTENDS = "extends"
"""A recipe key naming the recipe it starts from: its own keys are merged over that one's (mappings
key by key, anything else replaced), so a variant states only what it changes."""


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's top-level mapping: the file `path`, else the bundled recipe of that name, with
    the recipe it `extends` (a file beside it, else a file or bundled recipe as `--config` finds
    them) merged under it."""
    path = find_recipe(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader) or {}
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}); save the recipe as UTF-8") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    if EXTENDS not in raw:
        return raw
    base = raw.pop(EXTENDS)
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: '{EXTENDS}' must name one recipe, got {base!r}")
    beside = path.parent / base
    base_path = find_recipe(beside if beside.is_file() else base)
    if base_path.resolve() in _seen + (path.resolve(),):
        raise ConfigError(f"{path}: '{EXTENDS}: {base}' leads back to a recipe it extends")
    return _merged(read_yaml(base_path, _seen + (path.resolve(),)), raw)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class DuplicateKeyError(yaml.YAMLError):
    """One key written twice in one YAML mapping."""


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping. PyYAML keeps the last value
    silently, so a recipe that sets `learning_rate` twice trains at whichever came second."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        where = f"on line {seen[key]} and line {line}" if seen[key] != line else f"twice on line {line}"
                        raise DuplicateKeyError(f"key '{key}' is written {where} (YAML would keep the second "
                                                f"silently); keep one")
                    seen[key] = line
                except TypeError:
                    continue  # an unhashable key: the constructor below reports it
        return super().construct_mapping(node, deep=deep)
