"""exprl installed from its wheel, outside the checkout: recipes, catalog data and the CLI all come along.

The wheel is built from a copy of the sources and installed, without network and without its
dependencies, into a fresh virtualenv that reuses this interpreter's site-packages (a .pth line) for
torch, trl and the rest. Every command then runs from an empty folder with no PYTHONPATH, so nothing
can be read from the checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from exprl import __version__
from exprl.recipes import bundled_recipes

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def clone_files() -> list[str]:
    """The checkout's files a clone holds: tracked, or new and not ignored."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode:  # no git (an unpacked source archive): the folders a clone holds
        return [str(p.relative_to(REPO)) for top in ("src", "testing", "tests", "benchmarks") for p in
                (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts] + ["pyproject.toml",
                                                                                              "README.md"]
    return [name for name in listed.stdout.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(the wheel, the virtualenv's bin folder, a clean environment) with exprl installed from the wheel."""
    root = tmp_path_factory.mktemp("wheel")
    # A copy of what a clone holds (tests/, benchmarks/ and testing/ included, so that the wheel could
    # take them), so the build leaves nothing in the checkout.
    source = root / "source"
    for name in clone_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(root / "dist"), str(source)], root, env)
    (wheel,) = (root / "dist").glob("exprl-*.whl")

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    purelib = Path(run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       root, env).stdout.strip())
    # The dependencies already installed here, after the venv's own site-packages (which gets exprl).
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], root, env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return wheel, bin_dir, env


def test_the_wheel_holds_every_recipe(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"exprl/recipes/{p.name}" for p in bundled_recipes().values()} <= names
    assert "exprl/data/catalog.py" in names and "exprl/py.typed" in names
    assert {f"exprl/integrations/verl/config/exprl_stage1_{m}.yaml" for m in ("common", "outcome", "process")} <= names
    assert {f"exprl/recipes/accelerate/{n}.yaml" for n in ("fsdp2", "zero3", "zero2", "ddp")} <= names


def test_the_wheel_holds_no_test_or_benchmark_tooling(installed, tmp_path):
    """The test-support package (testing/: the loopback judge server, the red-teaming traces), the tests
    and the benchmarks stay in the repository: the wheel is the exprl package and its metadata."""
    wheel, bin_dir, env = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"exprl", f"exprl-{__version__}.dist-info"}
    modules = {Path(n).stem for n in names if n.endswith(".py")}
    assert not modules & {"loopback", "hacking", "conftest", "_paths"}
    assert not [n for n in names if Path(n).name.startswith("test_")]
    assert "exprl/judge/service.py" in names  # the listing is the package's, not an empty one
    # installed: neither the old module paths nor the tooling package import from an empty folder
    probe = ("import importlib.util as u\n"
             "for name in ('testing', 'exprl.judge.loopback', 'exprl.judge.hacking'):\n"
             "    print(name, u.find_spec(name) is not None)")
    found = run([str(bin_dir / "python"), "-c", probe], tmp_path, env).stdout.split()
    assert found == ["testing", "False", "exprl.judge.loopback", "False", "exprl.judge.hacking", "False"]


@pytest.mark.parametrize("catalog_data", ["generated"], indirect=True)  # the behaviour is not the data's
def test_installed_cli_runs_bundled_recipes_on_catalog_data_from_an_empty_folder(installed, catalog_data, tmp_path):
    _, bin_dir, env = installed
    env = {**env, "EXPRL_DATA_DIR": str(catalog_data), "OMP_NUM_THREADS": "1"}
    work = tmp_path / "empty"
    work.mkdir()
    exprl = str(bin_dir / "exprl")

    where = run([str(bin_dir / "python"), "-c", "import exprl; print(exprl.__file__)"], work, env).stdout
    assert Path(where.strip()).is_relative_to(bin_dir.parent) and str(REPO) not in where
    assert run([exprl, "--version"], work, env).stdout.strip() == f"exprl {__version__}"
    listed = run([exprl, "recipes", "list"], work, env).stdout
    assert {line.split()[0] for line in listed.splitlines()[:len(bundled_recipes())]} == set(bundled_recipes())

    fsdp2 = Path(run([exprl, "recipes", "path", "accelerate/fsdp2"], work, env).stdout.strip())
    assert fsdp2.is_file() and fsdp2.is_relative_to(bin_dir.parent)  # a launch line's config, installed

    data = run([exprl, "data", "list"], work, env).stdout
    assert str(catalog_data / "gsm8k_train.jsonl") in data

    run([exprl, "train", "--config", "cpu-tiny-sft", "--output-dir", "runs/sft", "--set", "trl.max_steps=1",
         "--set", "data.max_problems=4", "--set", "trl.save_steps=1"], work, env)
    result = json.loads((work / "runs" / "sft" / "train_result.json").read_text())
    assert result["global_step"] == 1
    assert (work / "runs" / "sft" / "final" / "config.json").is_file()

    plan = json.loads(run([exprl, "pipeline", "--config", "pipeline-cpu-smoke", "--dry-run", "--json"], work,
                          env).stdout)
    assert [(s["name"], s["method"]) for s in plan["stages"]] == [("stage1", "exprl-outcome"), ("stage2", "grpo")]
    assert sorted(p.name for p in work.iterdir()) == ["runs"]
