"""Sampling, evaluation and hard-set filter settings, and benchmark recipes, as TRL-style dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field

from exprl.data.prompts import POLICY_SYSTEM_PROMPT, POLICY_TEMPERATURE

CACHE_IMPLEMENTATIONS = ("auto", "dynamic", "static")
ENGINES = ("auto", "hf", "vllm")  # SamplingConfig.engine, `--engine`


@dataclass
class SamplingConfig:
    """How a checkpoint is sampled: shared by evaluation and by `exprl data filter`, which samples
    the same way so that its hard set is hard for the model as evaluation and training see it."""

    temperature: float = field(default=POLICY_TEMPERATURE, metadata={"range": "[0, inf)",
        "help": "Sampling temperature (0 = greedy); by default the one training samples rollouts at."})
    top_p: float = field(default=1.0, metadata={"range": "(0, 1]", "help": "Nucleus sampling mass."})
    max_tokens: int = field(default=1024, metadata={"range": "[1, inf)", "help": "Maximum new tokens per completion."})
    batch_size: int = field(default=8, metadata={"range": "[1, inf)",
        "help": "Requests per generate call, and per cache commit (use hundreds with vLLM)."})
    seed: int = field(default=0, metadata={
        "range": "[0, 4294967295]", "help": "Base seed; every (problem, sample) derives its own."})
    system_prompt: str | None = field(default=POLICY_SYSTEM_PROMPT, metadata={
        "help": "Policy system prompt (null: none); default: the paper's (exprl.data.prompts.POLICY_SYSTEM_PROMPT). "
                "Must match the one used in training (exprl pipeline checks it)."})
    engine: str = field(default="auto", metadata={
        "help": "auto (vLLM if installed and a GPU is present, else HF generate), hf, or vllm."})
    cache_implementation: str = field(default="auto", metadata={
        "help": "KV cache of HF generate (the hf engine; vLLM manages its own): dynamic (grows with each token), "
                "static (preallocated for prompt + max_tokens, which lets transformers compile the decoding step "
                "on a GPU: about 3x the tokens/s of dynamic on an H100 after a first call that compiles, "
                "docs/architecture.md), or auto (static on a GPU, dynamic on a CPU, where transformers does not "
                "compile). Like batch_size it is not part of the generation key: it changes speed, not the sampling "
                "settings (compiled GPU kernels round differently, so single samples may differ)."})

    def _check(self, what: str, n: int) -> None:
        from exprl.errors import ConfigError

        if n < 1:
            raise ConfigError(f"{what}: n must be at least 1, got {n}")
        if self.max_tokens < 1:
            raise ConfigError(f"{what}: max_tokens must be at least 1, got {self.max_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"{what}: batch_size must be at least 1, got {self.batch_size}")
        if self.temperature < 0:
            raise ConfigError(f"{what}: temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"{what}: top_p must be in (0, 1], got {self.top_p}")
        if self.engine not in ENGINES:
            raise ConfigError(f"{what}: engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.cache_implementation not in CACHE_IMPLEMENTATIONS:
            raise ConfigError(f"{what}: cache_implementation must be one of {', '.join(CACHE_IMPLEMENTATIONS)}, "
                              f"got {self.cache_implementation!r}")


@dataclass
class EvalConfig(SamplingConfig):
    """How a checkpoint is evaluated: which benchmarks, how many samples, how they are sampled."""

    benches: list[str] = field(default_factory=list, metadata={
        "help": "Benchmarks: bench-*.yaml recipes (files or bundled names, e.g. bench-math500), catalog datasets "
                "(math500, gsm8k-test: `exprl data list`), or data files/hub ids load_problems reads "
                "(JSONL/Parquet in the Problem schema; the reference may be absent)."})
    n: int = field(default=16, metadata={
        "range": "[1, inf)", "help": "Samples per problem; pass@k is reported for every k in 1..n."})
    limit: int | None = field(default=None, metadata={"range": "[1, inf)",
        "help": "Evaluate only the first LIMIT problems of each benchmark (smoke runs)."})
    traces: bool = field(default=False, metadata={
        "help": "Also write traces.jsonl: every sample with its problem, reference and verdict, one row each, "
                "in the input format of `exprl judge run` and `exprl judge calibrate` (off by default: at the "
                "paper's 128 samples of 16k tokens it is gigabytes)."})

    def __post_init__(self) -> None:
        self._check("eval", self.n)


@dataclass
class FilterConfig(SamplingConfig):
    """`exprl data filter`: which problems count as hard for a model (docs/method.md §5.1: the paper keeps
    the problems its base model fails in all 64 samples at a 32k-token budget)."""

    n: int = field(default=8, metadata={"range": "[1, inf)", "help": "Samples per problem."})
    max_solved: int = field(default=0, metadata={"range": "[0, inf)",
        "help": "Keep a problem when at most this many of its n samples are correct (0: the paper's hard set, "
                "solved in none)."})
    limit: int | None = field(default=None, metadata={"range": "[1, inf)",
        "help": "Filter only the first LIMIT problems of the input (smoke runs)."})

    def __post_init__(self) -> None:
        from exprl.errors import ConfigError

        self._check("filter", self.n)
        if not 0 <= self.max_solved <= self.n:
            raise ConfigError(f"filter: max_solved must be between 0 and n = {self.n}, got {self.max_solved}")


@dataclass
class BenchmarkConfig:
    """A benchmark recipe (bench-*.yaml). A relative `path` is read beside a user's recipe file, then from
    the working directory; a bundled recipe's `path` names a catalog dataset."""

    name: str = field(default="", metadata={"help": "Name used in result files and report tables."})
    path: str = field(default="", metadata={
        "help": "Catalog dataset (math500, gsm8k-test, ...), data file, folder or hub id that load_problems reads."})
    split: str | None = field(default=None, metadata={"help": "Split, for sources with several."})
    limit: int | None = field(default=None, metadata={
        "range": "[1, inf)", "help": "Use only the first LIMIT problems."})
    fields: dict[str, str] = field(default_factory=dict, metadata={
        "help": "Problem field -> source column, for layouts load_problems does not recognise "
                "(e.g. {problem: question, answer: final})."})
    description: str = field(default="", metadata={"help": "Free text shown in reports."})
