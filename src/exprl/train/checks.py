"""Every value of a training stage checked before a model loads: the recipe's own sections (ranges
declared on their fields, `exprl.config.check_values`), the `trl` section (ranges below, TRL's
enumerations read from TRL's source by `exprl.train.trl_fields`, lengths against each other and
against the model's), the judge (endpoints, model), and the data sources' catalog names.

`check_stage` is called by `exprl.train.plan.plan_stage`, so `--dry-run` and the start of a real run
(and of every pipeline stage) refuse the same values, naming the key, before anything is written.

TRL checks some of these itself, but only when its config class is built or, worse, once the model
and vLLM are up (an unknown `loss_type` fails at the first loss, hours in on a GPU node); a range TRL
does not check at all (a negative temperature, a negative clip) trains something else silently.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exprl.config import check_number, check_values
from exprl.errors import ConfigError
from exprl.train.trl_fields import trl_choices

TRL_RANGES: dict[str, str] = {
    # optimiser and schedule
    "learning_rate": "(0, inf)", "weight_decay": "[0, inf)", "adam_beta1": "[0, 1)", "adam_beta2": "[0, 1)",
    "adam_epsilon": "(0, inf)", "max_grad_norm": "[0, inf)", "warmup_steps": "[0, inf)", "warmup_ratio": "[0, 1]",
    "num_train_epochs": "(0, inf)", "max_steps": "[-1, inf)", "logging_steps": "(0, inf)", "save_steps": "(0, inf)",
    "save_total_limit": "[1, inf)",
    # sampling
    "temperature": "(0, inf)", "top_p": "(0, 1]", "top_k": "[0, inf)", "min_p": "[0, 1]",
    "repetition_penalty": "(0, inf)",
    # lengths
    "max_completion_length": "[1, inf)", "max_prompt_length": "[1, inf)", "max_length": "[1, inf)",
    "vllm_max_model_length": "[1, inf)",
    # the loss
    "beta": "[0, inf)", "epsilon": "[0, inf)", "epsilon_high": "[0, inf)", "delta": "(1, inf)",
    "vllm_importance_sampling_clip_min": "[0, inf)", "vllm_importance_sampling_clip_max": "(0, inf)",
    "distillation_alpha": "[0, 1]",
    # vLLM
    "vllm_gpu_memory_utilization": "(0, 1]", "vllm_tensor_parallel_size": "[1, inf)",
}
"""The range of each TRL value exprl knows the meaning of (TRL's own help texts). A float TRL value
that is NaN or infinite is refused whatever its key. The batch keys (per-device batch, accumulation,
generations, iterations) are the batch-shape check's (`exprl.train.trl_args`), which names what to change."""


def check_trl_section(config: Any, effective: dict[str, Any]) -> None:
    """The `trl` values as TRL will get them (`effective`: the recipe's over the method's defaults over
    TRL's): each number finite and in its range, each enumerated string one TRL implements."""
    for key, value in effective.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            check_number(value, TRL_RANGES.get(key), f"trl.{key}", "")
        elif isinstance(value, str):
            choices = trl_choices(config.method, key)
            if choices is not None and value not in choices:
                near = _near(value, choices)
                raise ConfigError(f"'trl.{key}' = {value!r} is not one TRL implements ({', '.join(choices)})"
                                  + (f"; did you mean {near!r}?" if near else ""))


def _near(value: str, choices: tuple[str, ...]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


# -- lengths ------------------------------------------------------------------------------------------
def model_length(model: str) -> int | None:
    """The longest sequence the policy takes (its config's max_position_embeddings), when its config is
    at hand without a download: a local folder, the tiny model, or the hub cache. None otherwise."""
    if model == "tiny":
        import inspect

        from exprl.tiny import build_tiny_model

        return inspect.signature(build_tiny_model).parameters["max_positions"].default
    path = Path(model) / "config.json"
    if not path.is_file():
        if "/" not in model or Path(model).exists():
            return None
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
        except Exception:  # noqa: BLE001 - no cache, an odd id: the length is unknown, not wrong
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    length = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return length if isinstance(length, int) and length > 0 else None


def check_lengths(config: Any, effective: dict[str, Any]) -> None:
    """Prompt and completion against each other and against the model: the longest rollout a recipe
    allows (its prompt budget, data.max_prompt_tokens, plus its completion cap) must fit vLLM's model
    length, where vLLM would refuse it mid-run; the completion cap alone must fit the model's own
    length (a prompt budget is a filter's bound, seldom reached, so it is not held to the model's)."""
    from exprl.train.config import SAMPLING_METHODS

    def value(key: str) -> int | None:
        found = effective.get(key)
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    if config.method in SAMPLING_METHODS:
        completion, completion_key = value("max_completion_length"), "trl.max_completion_length"
        prompt, prompt_key = config.data.max_prompt_tokens, "data.max_prompt_tokens"
        if prompt is None and value("max_prompt_length") is not None:
            prompt, prompt_key = value("max_prompt_length"), "trl.max_prompt_length"
    else:
        completion, completion_key = value("max_length"), "trl.max_length"
        prompt, prompt_key = None, ""
    if completion is None:
        return
    longest = f"{completion_key} {completion}"
    if prompt is not None:
        longest = f"{prompt_key} {prompt} + {longest} = {prompt + completion} tokens"
    needed = completion + (prompt or 0)
    vllm_length = value("vllm_max_model_length") if effective.get("use_vllm") else None
    if vllm_length is not None and needed > vllm_length:
        raise ConfigError(f"'trl.vllm_max_model_length' = {vllm_length} cannot hold the longest rollout, {longest}; "
                          f"raise trl.vllm_max_model_length to at least {needed}, or lower {completion_key}")
    native = model_length(config.model)
    if native is not None and completion > native:
        raise ConfigError(f"'{completion_key}' = {completion} is above the model's length, {native} tokens "
                          f"({config.model}: max_position_embeddings); lower {completion_key}")


# -- the judge and the data -------------------------------------------------------------------------
def check_judge_section(config: Any) -> None:
    """What the stage's judge would refuse once built: endpoints, model, rubric store."""
    from exprl.errors import JudgeError
    from exprl.judge.service import check_judge
    from exprl.train.config import JUDGED_METHODS

    if config.method in JUDGED_METHODS:
        try:
            check_judge(config.judge)
        except JudgeError as exc:  # a ConfigError here, so the plan names the stage it belongs to
            raise ConfigError(str(exc)) from None


def check_data_names(config: Any) -> None:
    """Catalog names spelled wrong (a name that is no file, near a catalog dataset's). A training file
    may be missing at planning time (a fresh clone prepares its data later); a misspelt name never loads."""
    from exprl.data.loaders import check_source_name

    for source in config.data.sources():
        check_source_name(source)


def check_stage(config: Any, effective: dict[str, Any]) -> None:
    """Every check above, in the order a user fixes them; ConfigError naming the key. `effective`: the
    trl values as TRL will get them (`exprl.train.trl_args.effective_trl`)."""
    check_values(config, "recipe")
    check_trl_section(config, effective)
    check_lengths(config, effective)
    check_judge_section(config)
    check_data_names(config)
