"""`exprl recipes list | show NAME | diff A B | copy NAME... DIR`: the bundled recipes, to read, compare and
start from."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(commands) -> None:
    commands.group(
        "recipes", help="list, show and copy the recipes exprl ships (--config NAME uses them directly)",
        description="exprl ships its training, pipeline, benchmark and demo recipes inside the package. "
                    "`--config NAME` reads the file NAME when there is one, else the bundled recipe NAME. "
                    "Copy one out to change it: paths in a copy are read beside it first.")
    commands.action("recipes", "list", None, _list,
                    help="every bundled recipe: name, kind and what it is for")
    commands.action("recipes", "show", _name_argument, _show, help="print a bundled recipe (comments included)")
    commands.action(
        "recipes", "diff", _add_diff_arguments, _diff,
        help="the settings that separate two recipes (e.g. paper-exprl-process exprl-process)",
        description="Every key two recipes set differently, after `extends` is resolved: dotted key, value in "
                    "A, value in B ('-' where a recipe leaves the key to its default). The plan "
                    "(`exprl train --config NAME --dry-run`) lists each recipe's departures from the official code.")
    commands.action(
        "recipes", "path", _add_path_arguments, _path,
        help="print the file of a bundled recipe or accelerate config",
        description="The installed file of NAME: a bundled recipe (paper-grpo) or an "
                    "accelerate config exprl ships (accelerate/fsdp2), for a launch line: "
                    'accelerate launch --config_file "$(exprl recipes path accelerate/fsdp2)" ...')
    commands.action(
        "recipes", "copy", _add_copy_arguments, _copy,
        help="copy bundled recipes into a folder to edit them",
        description="Copies NAME.yaml into DIR (created if needed); an existing file of that name is never "
                    "overwritten.")


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="recipe name, with or without .yaml")


def _add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="recipe file or bundled recipe name")
    parser.add_argument("b", metavar="B", help="recipe file or bundled recipe name")


def _add_path_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="recipe name, or accelerate/NAME (fsdp2, zero3, zero2, ddp)")


def _add_copy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="recipe names, with or without .yaml")
    parser.add_argument("dir", metavar="DIR", help="destination folder")


def recipe_kind(raw: dict[str, Any]) -> str:
    """What a recipe is for, from its keys (the dataclass each command maps it onto)."""
    if "stage1" in raw or "stage2" in raw:
        return "pipeline"
    if "method" in raw:
        return f"train {raw['method']}"
    if "path" in raw:
        return f"benchmark {raw['path']}"
    if "task" in raw or "training" in raw:
        return "demo"
    return "settings"


def recipe_summary(text: str) -> str:
    """The recipe's first comment line, up to the end of its first clause."""
    first = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
    depth = 0
    for i, char in enumerate(first):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".:;" and first[i + 1:i + 2] == " ":
            return first[:i]
    return first.rstrip(".")


def _list(args: argparse.Namespace) -> int:
    from exprl.recipes import bundled_recipes, read_yaml

    rows = []
    for name, path in bundled_recipes().items():
        text = path.read_text(encoding="utf-8")
        rows.append((name, recipe_kind(read_yaml(path)), recipe_summary(text)))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, kind, summary in rows:
        print(f"{name:{width[0]}}  {kind:{width[1]}}  {summary}")
    print("\n`exprl recipes show NAME` prints one; `--config NAME` uses it; `exprl recipes copy NAME DIR` "
          "copies it out to edit.")
    return 0


def _show(args: argparse.Namespace) -> int:
    from exprl.recipes import require_bundled

    print(require_bundled(args.name).read_text(encoding="utf-8"), end="")
    return 0


def recipe_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key the two recipe mappings set differently;
    a key one of them leaves out is `MISSING` there."""
    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict) and value:
            out: dict[str, Any] = {}
            for key, item in value.items():
                out.update(flat(item, f"{prefix}{key}."))
            return out
        return {prefix.rstrip("."): value}

    left, right = flat(a), flat(b)
    return [(key, left.get(key, MISSING), right.get(key, MISSING)) for key in sorted(set(left) | set(right))
            if left.get(key, MISSING) != right.get(key, MISSING)]


MISSING = "-"


def _diff(args: argparse.Namespace) -> int:
    from exprl.recipes import read_yaml

    rows = recipe_differences(read_yaml(args.a), read_yaml(args.b))
    if not rows:
        print(f"{args.a} and {args.b} set every key alike")
        return 0
    width = [max(len(str(r[i])) for r in rows + [("key", args.a, args.b)]) for i in range(2)]
    print(f"{'key':{width[0]}}  {args.a:{width[1]}}  {args.b}")
    for key, left, right in rows:
        print(f"{key:{width[0]}}  {str(left):{width[1]}}  {right}")
    return 0


def _path(args: argparse.Namespace) -> int:
    from exprl.recipes import accelerate_config_path, require_bundled

    if args.name.startswith("accelerate/"):
        print(accelerate_config_path(args.name))
    else:
        print(require_bundled(args.name))
    return 0


def _copy(args: argparse.Namespace) -> int:
    from exprl.errors import ConfigError
    from exprl.recipes import require_bundled
    from exprl.runs import write_text_atomic

    sources = [require_bundled(name) for name in args.names]  # every name checked before any copy
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder")
    targets = [folder / source.name for source in sources]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise ConfigError(f"{', '.join(existing)}: already exists; exprl does not overwrite it (remove it or "
                          f"copy into another folder)")
    folder.mkdir(parents=True, exist_ok=True)
    for source, target in zip(sources, targets):
        write_text_atomic(target, source.read_text(encoding="utf-8"))
        print(f"{source.stem} -> {target}")
    return 0
