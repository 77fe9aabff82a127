"""How a stage is launched: the accelerate configs exprl ships, the strategy one names, the launch line.

The configs live in the package (`exprl/recipes/accelerate/*.yaml`), as TRL ships its own, so that an
installed exprl can print a launch line that works: `exprl recipes path accelerate/fsdp2` gives the
file. A recipe's `launch.accelerate_config` names one of them or a YAML file of the user's; the
memory plan reads the strategy (plain DDP, FSDP2, ZeRO-2/3, offloading) from that file.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from exprl.errors import ConfigError
from exprl.recipes import ACCELERATE_DIR, accelerate_config_path, shipped_accelerate_configs  # noqa: F401
from exprl.train.memory import Strategy, strategy_from_accelerate_config


@dataclass
class LaunchConfig:
    num_processes: int | None = field(default=None, metadata={"range": "[1, inf)",
        "help": "Training processes (one per GPU) this stage runs on in the paper's layout: 6 for ExpRL beside a "
                "2-GPU judge, 8 for the others. The plan's default world size; `--num-processes` overrides it, "
                "and a real run trains on the processes accelerate launched."})
    accelerate_config: str | None = field(default=None, metadata={
        "help": "accelerate config of the launch: a config exprl ships (fsdp2, zero3, zero2, ddp: "
                "`exprl recipes path accelerate/NAME`) or a YAML file. It decides the memory plan's strategy; "
                "null = accelerate's plain data parallelism (a full copy of the model states on every GPU)."})
    architecture: str = field(default="", metadata={
        "help": "The model whose shape the memory plan assumes when `model` is a checkpoint not written yet "
                "(Stage II from a Stage-I run); empty = `model` itself."})
    gpus: str = field(default="", metadata={
        "help": "CUDA_VISIBLE_DEVICES of the launch line the plan prints, e.g. '0,1,2,3,4,5' (GPUs 6-7 serve the "
                "judge); empty = all the machine's GPUs."})


def launch_strategy(spec: str | None, bf16: bool) -> tuple[Strategy, Path | None]:
    """The strategy of `launch.accelerate_config` (None: accelerate's plain data parallelism)."""
    if not spec:
        return Strategy("ddp", "bf16" if bf16 else "no"), None
    import yaml

    try:
        path = accelerate_config_path(spec)
    except ConfigError as exc:
        raise ConfigError(f"launch.accelerate_config: {exc}") from None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not a YAML accelerate config ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an accelerate config is a mapping, got {type(raw).__name__}")
    return strategy_from_accelerate_config(raw), path


def config_file_argument(spec: str, path: Path) -> str:
    """How a launch line names the config: through `exprl recipes path` for a shipped one (so the line
    works wherever exprl is installed), else the user's file as given."""
    if path.parent == ACCELERATE_DIR:
        return f'"$(exprl recipes path accelerate/{path.stem})"'
    return shlex.quote(spec)


def launch_line(*, recipe: str, world_size: int, accelerate_config: str | None, config_path: Path | None,
                gpus: str = "", output_dir: str = "", overrides: Sequence[str] = ()) -> str:
    """The command that trains this stage on `world_size` processes."""
    parts = [f"CUDA_VISIBLE_DEVICES={gpus}"] if gpus else []
    parts.append("accelerate launch")
    if config_path is not None and accelerate_config:
        parts.append(f"--config_file {config_file_argument(accelerate_config, config_path)}")
    elif world_size > 1:
        parts.append("--multi_gpu")
    parts += [f"--num_processes {world_size}", "-m exprl.cli train", f"--config {shlex.quote(recipe)}"]
    parts += [f"--set {shlex.quote(item)}" for item in overrides]
    if output_dir:
        parts.append(f"--output-dir {shlex.quote(output_dir)}")
    return " ".join(parts)


def recipe_argument(recipe: str) -> str:
    """A recipe as a command line names it: a bundled recipe by its name, a user's file by its path."""
    from exprl.recipes import is_bundled

    if recipe and Path(recipe).is_file() and is_bundled(recipe):
        return Path(recipe).stem
    return recipe


def launch_section(launch: Any, world_size: int, recipe: str, bf16: bool, *, output_dir: str = "",
                   overrides: Sequence[str] = ()) -> tuple[dict[str, Any], Strategy]:
    """The plan's launch section (processes, GPUs, config file, the full line) and the strategy it implies."""
    strategy, path = launch_strategy(launch.accelerate_config, bf16)
    shown = recipe_argument(recipe) or "RECIPE.yaml"
    line = launch_line(recipe=shown, world_size=world_size, accelerate_config=launch.accelerate_config,
                       config_path=path, gpus=launch.gpus, output_dir=output_dir, overrides=overrides)
    return {"num_processes": world_size, "recipe_num_processes": launch.num_processes, "gpus": launch.gpus or None,
            "accelerate_config": launch.accelerate_config, "config_file": str(path) if path else None,
            "strategy": strategy.name, "command": line}, strategy
