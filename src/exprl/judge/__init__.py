"""Judge layer: prompts, parsing, backends, cache, rubrics, calibration.

    from exprl.judge import JudgeConfig, JudgeRequest, build_judge
    judge = build_judge(JudgeConfig(backend="openai", base_urls=[url], model="m"))
    results = judge.judge_sync([JudgeRequest(problem=..., reference=..., trace=...)])

Heavy backends (openai, torch) are imported only when `build_judge` picks them.
"""
from exprl.judge.cache import JudgeCache, cache_key, default_cache_path, open_cache
from exprl.judge.parsing import parse_score
from exprl.judge.prompts import (PROMPT_VERSION, PromptStyle, build_messages, build_prompt, fit_trace,
                                 prompt_version)
from exprl.judge.service import JudgeService, JudgeStats, build_backend, build_judge
from exprl.judge.types import Backend, Judge, JudgeConfig, JudgeRequest, JudgeResult, JudgeStatus

__all__ = [
    "Backend", "Judge", "JudgeCache", "JudgeConfig", "JudgeRequest", "JudgeResult", "JudgeService",
    "JudgeStats", "JudgeStatus", "PROMPT_VERSION", "PromptStyle", "build_backend", "build_judge", "build_messages",
    "build_prompt", "cache_key", "default_cache_path", "fit_trace", "open_cache", "parse_score",
    "prompt_version",
]
