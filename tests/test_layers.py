"""The layer rule of docs/architecture.md, read from the source with ast: imports only point down.

    base      errors, config, runs, weights, tiny, recipes, progress
    data      Problem, loaders, preparation, the policy prompt, the synthetic task
    rewards   steps, advantages, reward config, per-rollout record and reward path, sparse verifier
    judge     types, prompts, parsing, backends, cache, service, rubrics, calibration, requests, server, cli
    eval      generation, pass@k, evaluation, reports
    train     the TRL adapter
    integrations  adapters to other trainers (verl); nothing in exprl imports them
    top       pipeline, demo, the `exprl` command

An import made inside a function counts like one at the top of a module: it is the same
dependency, only paid later.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS = [
    ("base", ["exprl", "exprl.errors", "exprl.config", "exprl.runs", "exprl.weights", "exprl.tiny", "exprl.recipes",
              "exprl.progress"]),
    ("data", ["exprl.data"]),
    ("rewards", ["exprl.rewards"]),
    ("judge", ["exprl.judge"]),
    ("eval", ["exprl.eval"]),
    ("train", ["exprl.train"]),
    ("integrations", ["exprl.integrations"]),
    ("top", ["exprl.pipeline", "exprl.demo", "exprl.cli"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "exprl").rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer holding `module`: its longest listed prefix decides (exprl.data before exprl)."""
    best = max(((len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    if best is None or (best[0] == len("exprl") and module != "exprl"):
        raise AssertionError(f"{module} is on no layer: add it to LAYERS and to docs/architecture.md")
    return best[1]


def imported_modules(module: str) -> set[str]:
    """Every exprl module `module` imports, at the top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from exprl.judge import calibrate` imports the module exprl.judge.calibrate
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]  # a name inside a module: the module itself
            if name.startswith("exprl") and name != module:
                found.add(name)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_every_module_is_on_a_layer():
    assert {"exprl", "exprl.cli", "exprl.judge.types", "exprl.train.trainer"} <= set(MODULES)  # src/ was read
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_nothing_above_its_layer(module):
    upward = sorted(target for target in GRAPH[module] if layer_of(target) > layer_of(module))
    assert not upward, (f"{module} (layer {LAYERS[layer_of(module)][0]}) imports "
                        + ", ".join(f"{t} (layer {LAYERS[layer_of(t)][0]})" for t in upward))


def test_no_core_module_imports_a_cli_module():
    """Argument parsing stays at the edge: a layer's CLI (`<layer>/cli.py`) drives its core, never the
    other way round. The top (pipeline, demo, the `exprl` command) may share a lower layer's flags."""
    top = len(LAYERS) - 1
    for module, targets in GRAPH.items():
        if layer_of(module) == top or module.endswith(".cli"):
            continue
        assert not [t for t in targets if t.endswith(".cli")], f"{module} imports {sorted(targets)}"


def test_only_the_train_package_imports_trl():
    for module, path in MODULES.items():
        if not module.startswith("exprl.train"):
            assert "trl" not in imported_roots(path), f"{module} imports trl"


def imported_roots(path: Path) -> set[str]:
    """The top-level packages a module imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return roots | {(node.module or "").split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and not node.level}


def test_only_the_integrations_import_verl():
    """verl pins versions the main environment does not use (pyproject.toml's `verl` extra): only
    `exprl.integrations.verl` may import it, and `make test-verl` tests it in verl's own environment."""
    offenders = [m for m, path in MODULES.items() if "verl" in imported_roots(path)
                 and not m.startswith("exprl.integrations.verl.")]
    assert not offenders, f"{offenders} import verl"
    assert "verl" in imported_roots(MODULES["exprl.integrations.verl.reward_manager"])  # the check sees imports


def test_nothing_in_exprl_imports_the_integrations():
    """The integrations are entry points for other frameworks; the core, the TRL adapter and the
    command line never load them."""
    for module, targets in GRAPH.items():
        if not module.startswith("exprl.integrations"):
            assert not [t for t in targets if t.startswith("exprl.integrations")], f"{module} imports {sorted(targets)}"


def test_importing_exprl_imports_no_verl():
    """In a fresh interpreter: the package, the command line, and the verl adapter's verl-free parts
    (its package, dataset rows, settings, records) load without verl."""
    import subprocess
    import sys

    code = ("import sys, exprl, exprl.cli, exprl.integrations.verl, exprl.integrations.verl.data, "
            "exprl.integrations.verl.settings, exprl.integrations.verl.records; "
            "print(sorted(m for m in sys.modules if m == 'verl' or m.startswith('verl.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_src_exprl_has_no_import_cycle():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_checks_see_what_they_check():
    """The reader resolves the import forms the code uses, so a passing test is not an empty one."""
    assert "exprl.judge.types" in GRAPH["exprl.train.trainer"]
    assert "exprl.rewards.steps" in GRAPH["exprl.judge.cli"]           # a top-level `from` import
    assert "exprl.judge.service" in GRAPH["exprl.judge.cli"]           # an import inside a handler
    assert "exprl.runs" in GRAPH["exprl.eval.report"]
    assert "exprl.rewards.rollouts" in GRAPH["exprl.integrations.verl.reward_manager"]
    assert layer_of("exprl.rewards.record") < layer_of("exprl.judge.types") < layer_of("exprl.train.trainer")


TOOLING = ("testing", "tests", "benchmarks")  # outside src/, so outside the wheel


def top_level_packages_imported(path: Path) -> set[str]:
    """The first name of every absolute import in `path`, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_source_module_imports_the_test_tooling():
    """The wheel holds src/ only: a module importing `testing` (or tests, benchmarks) breaks once installed."""
    offenders = {module: sorted(top_level_packages_imported(path) & set(TOOLING)) for module, path in MODULES.items()}
    assert {m: names for m, names in offenders.items() if names} == {}
    # the reader sees such an import where there is one
    assert "testing" in top_level_packages_imported(SRC.parent / "tests" / "judge" / "test_hacking.py")
