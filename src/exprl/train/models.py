"""Resolving a recipe's `model` to a folder TRL can load."""
from __future__ import annotations

import os
from pathlib import Path

from exprl.judge.server import smollm2_gguf_path

SMOLLM2_ALIAS = "smollm2-135m"
TINY_ALIAS = "tiny"


def model_cache_dir() -> Path:
    """Where converted models are kept ($EXPRL_CACHE_DIR, else the user cache directory)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("EXPRL_CACHE_DIR") or user_cache_dir("exprl")) / "models"


def smollm2_model_dir() -> Path:
    """SmolLM2-135M-Instruct as fp32 safetensors, dequantised from the GGUF once and cached.

    A quantised GGUF load is refused by save_pretrained and by GRPOTrainer, so it is dequantised.
    """
    target = model_cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 quantization_config=GgufConfig(dequantize=True))
    model.config.quantization_config = None
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # a crash mid-write never leaves a half model where a whole one is expected
    return target


def resolve_model(name: str, run_dir: Path) -> str:
    """`tiny` -> a fresh tiny model in the run folder (same seed, so a resumed run gets the same one);
    `smollm2-135m` -> the cached conversion; anything else is passed to from_pretrained as given."""
    if name == TINY_ALIAS:
        from exprl.tiny import save_tiny_model

        target = run_dir / "base-model"
        if not (target / "config.json").is_file():
            save_tiny_model(target)
        return str(target)
    if name.lower() == SMOLLM2_ALIAS:
        return str(smollm2_model_dir())
    return name
