"""Step time of `exprl train` against TRL's own GRPOTrainer, and static vs dynamic cache generation, on one GPU.

What it measures, at the shape of the TRL anchor measurement (docs/scaling.md, "On a GPU"): a randomly
initialised Qwen3-0.6B-shaped model built from its config (no hub), a word-level tokenizer built in
memory, prompts of 96 random words, 64 completions (8 per prompt) of up to 256 tokens, bf16 on CUDA.

  generate-dynamic      exprl's eval sampler (exprl.eval.generate.HFGenerator) on 64 prompts x 256 new
  generate-static       tokens, cache_implementation dynamic / static (static: transformers compiles the
                        decoding step on the first call, which is timed apart from the steady calls)
  exprl-outcome         `exprl train` (exprl.train.runner.run_training) with a loopback judge (a real
                        HTTP server in its own process answering after --latency seconds, concurrency 64)
                        that judges every rollout (reward.overlong keep: a random model seldom ends one).
  exprl-process         The same for ExpRL-Process. Traces are split at the word prefix --delimiter, as
                        random words hold no `###`; the table gives the steps per trace that made.
  exprl-outcome-static  exprl-outcome with trl.cache_implementation static (exprl lets transformers
                        compile its decoding step; TRL alone would not).
  anchor                TRL's GRPOTrainer on the same shape with a length reward: the script given by
                        --anchor, run as it is (its hf_generate row; its other rows go into the JSON).

The exprl runs take exprl's method settings (loss, clipping) except what the anchor fixes: batch
shape, temperature 0.8, beta 0 (no reference model), learning rate 1e-6, no gradient checkpointing.
A step is timed as the anchor times it: from the trainer's step-begin to step-end callback, the CUDA
device synchronised at both; the first step is warm-up and left out of the median. Each row runs in a
process of its own, so its peak GPU memory is its own.

On the device machine (Python 3.12, torch and transformers installed, no network). exprl also needs
trl 1.16.0, datasets 5.2.0, dill 0.4.1 and multiprocess 0.70.19 there; the script names any module it
misses. Fetch their wheels on a machine with a package index, into a folder git ignores, and carry it:

    pip download --no-deps --only-binary=:all: --python-version 3.12 -d gpu-wheels \\
        trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
    # on the GPU machine (the `run` tool: carry ["gpu-wheels"]):
    pip install --no-deps --no-index gpu-wheels/*.whl

All rows take about 9 minutes on an H100 (estimated from the anchor's figures; the anchor alone, which
also runs paged generation and gradient checkpointing, about 4), more than one 10-minute device call,
so run them in two parts (the ratios to the anchor need the anchor in the same call):

    PYTHONPATH=src python benchmarks/gpu_step_time.py --anchor ANCHOR --rows anchor exprl-outcome exprl-process
    PYTHONPATH=src python benchmarks/gpu_step_time.py --rows generate-dynamic generate-static exprl-outcome-static

`--tiny` (or TINY=1) runs the same code at a tiny shape on a CPU in a minute or two; `--smoke` is `--tiny`
with one timed generate call and without the exprl-outcome row, which exprl-outcome-static runs with
one setting changed (benchmarks/_smoke.py).
Prints one table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _paths import LOOPBACK_SERVER
import _smoke

GENERATE_ROWS = ("generate-dynamic", "generate-static")
TRAIN_ROWS = ("exprl-outcome", "exprl-process", "exprl-outcome-static")
ROWS = GENERATE_ROWS + TRAIN_ROWS + ("anchor",)
# The modules `exprl train` imports beyond torch and transformers, with the pins of pyproject.toml.
NEEDED = {"trl": "trl==1.16.0", "datasets": "datasets==5.2.0", "dill": "dill==0.4.1",
          "multiprocess": "multiprocess==0.70.19", "accelerate": "accelerate==1.15.0",
          "math_verify": "math-verify[antlr4_13_2]==0.9.0", "openai": "openai==3.57.0", "aiohttp": "aiohttp==3.14.5",
          "yaml": "PyYAML==6.0.4", "platformdirs": "platformdirs", "tqdm": "tqdm", "pyarrow": "pyarrow",
          "xxhash": "xxhash", "fsspec": "fsspec", "huggingface_hub": "huggingface_hub", "pandas": "pandas"}


@dataclass(frozen=True)
class Shape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    prompt_words: int
    completions: int
    generations: int
    completion_tokens: int
    steps: int


# The anchor's shapes (full: Qwen3-0.6B's dimensions; tiny: its TINY=1 shape).
SHAPES = {"full": Shape(151936, 1024, 3072, 28, 16, 8, 128, 96, 64, 8, 256, 4),
          "tiny": Shape(2000, 64, 128, 2, 4, 2, 16, 96, 8, 8, 16, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("TINY") == "1",
                        help="the tiny shape (a CPU check of the script; also TINY=1)")
    parser.add_argument("--anchor", type=Path, default=None,
                        help="TRL's GRPO anchor script (trl_grpo_anchor.py); without it the anchor row is skipped")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default: the anchor's)")
    parser.add_argument("--repeats", type=int, default=2, help="timed generate calls after the first")
    parser.add_argument("--latency", type=float, default=0.05, help="loopback judge latency per call, seconds")
    parser.add_argument("--delimiter", default="w15",
                        help="ExpRL-Process step delimiter: a word prefix that about 2%% of the random words carry")
    parser.add_argument("--row-timeout", type=float, default=420,
                        help="seconds one row (or the anchor) may take before it is stopped and reported failed")
    parser.add_argument("--workdir", type=Path, default=None, help="model, data and runs (default: a temporary folder)")
    parser.add_argument("--row", choices=ROWS, default=None, help=argparse.SUPPRESS)  # a child process's one row
    parser.add_argument("--judge-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    if args.smoke:
        args.tiny, args.repeats = True, 1
        args.rows = [row for row in args.rows if row != "exprl-outcome"]
    shape = SHAPES["tiny" if args.tiny else "full"]
    if args.steps is not None:
        shape = Shape(**{**asdict(shape), "steps": args.steps})
    if args.row is not None:
        print("RESULT " + json.dumps(run_row(args.row, shape, args)), flush=True)
        return
    missing = [pin for module, pin in NEEDED.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.exit("missing: " + " ".join(missing) + "\nfetch their wheels where a package index is reachable:\n"
                 "  pip download --no-deps --only-binary=:all: --python-version 3.12 -d gpu-wheels "
                 + " ".join(missing) + "\ncarry gpu-wheels to this machine and: pip install --no-deps --no-index "
                 "gpu-wheels/*.whl")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        orchestrate(args, shape, workdir)


def orchestrate(args: argparse.Namespace, shape: Shape, workdir: Path) -> None:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    started = time.time()
    write_model_and_data(shape, workdir, cuda)
    results: dict[str, dict] = {}
    judge = None
    if any(row in TRAIN_ROWS for row in args.rows):
        judge = subprocess.Popen([*LOOPBACK_SERVER, "--latency", str(args.latency)],
                                 stdout=subprocess.PIPE, text=True)
    try:
        judge_url = judge.stdout.readline().strip() if judge else ""
        for row in args.rows:
            if row == "anchor":
                results[row] = run_anchor(args, workdir)
                continue
            command = [sys.executable, __file__, "--row", row, "--workdir", str(workdir), "--judge-url", judge_url,
                       "--steps", str(shape.steps), "--repeats", str(args.repeats), "--delimiter", args.delimiter]
            results[row] = child(command + (["--tiny"] if args.tiny else []), row, args.row_timeout)
    finally:
        if judge is not None:
            judge.kill()
            judge.wait()

    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    print(f"\n{'tiny' if args.tiny else 'Qwen3-0.6B'}-shaped random model, {shape.completions} completions "
          f"({shape.generations}/prompt) x <= {shape.completion_tokens} tokens, prompts of {shape.prompt_words} "
          f"words, {device}, torch {torch.__version__}, transformers {transformers.__version__}; "
          f"judge latency {args.latency * 1000:.0f} ms")
    print(f"| {'row':<21}| {'s (median)':>10} | {'first s':>8} | {'tokens':>7} | {'tok/s':>8} | {'peak GiB':>8} "
          f"| note")
    print(f"|{'-' * 22}|{'-' * 12}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 10}|------")
    for row, r in results.items():
        if "skipped" in r or "failed" in r:
            print(f"| {row:<21}| {'-':>10} | {'-':>8} | {'-':>7} | {'-':>8} | {'-':>8} | "
                  f"{r.get('skipped') or 'FAILED: ' + r['failed']}")
            continue
        peak = f"{r['peak_gib']:>8.2f}" if cuda else f"{'-':>8}"
        print(f"| {row:<21}| {r['s']:>10.3f} | {r.get('first_s', float('nan')):>8.2f} | {r['tokens']:>7.0f} | "
              f"{r['tok_per_s']:>8.0f} | {peak} | {r.get('note', '')}")
    ratios = {}
    anchor_s = results.get("anchor", {}).get("s")
    for row in TRAIN_ROWS:
        if anchor_s and "s" in results.get(row, {}):
            ratios[f"{row}/anchor"] = round(results[row]["s"] / anchor_s, 3)
    if "s" in results.get("generate-dynamic", {}) and "s" in results.get("generate-static", {}):
        ratios["static_speedup"] = round(results["generate-dynamic"]["s"] / results["generate-static"]["s"], 3)
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    print(f"wall {time.time() - started:.0f} s")
    print(json.dumps({"shape": "tiny" if args.tiny else "full", **asdict(shape), "device": device,
                      "torch": torch.__version__, "transformers": transformers.__version__,
                      "judge_latency_s": args.latency, "delimiter": args.delimiter, "rows": results,
                      "ratios": ratios}))


def write_model_and_data(shape: Shape, workdir: Path, cuda: bool) -> None:
    """The random Qwen3-shaped model with its word-level tokenizer, and 256 problems of random words."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen3Config

    from exprl.data.loaders import write_problems
    from exprl.data.problem import Problem

    model_dir = workdir / "model"
    if not (model_dir / "config.json").is_file():
        vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, **{f"w{i}": i + 3 for i in range(shape.vocab - 3)}}
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                            bos_token="<bos>")
        tokenizer.padding_side = "left"
        # The problem's words and nothing else, so that a prompt is as long as the anchor's.
        tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
        config = Qwen3Config(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                             num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                             num_key_value_heads=shape.kv_heads, head_dim=shape.head_dim, max_position_embeddings=4096,
                             tie_word_embeddings=True, eos_token_id=1, pad_token_id=0, bos_token_id=2)
        torch.manual_seed(0)
        with torch.device("cuda" if cuda else "cpu"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda else torch.float32)
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        del model
    rng = random.Random(0)
    words = lambda n: " ".join(f"w{rng.randrange(shape.vocab - 3)}" for _ in range(n))  # noqa: E731
    write_problems(workdir / "problems.jsonl",
                   [Problem(id=f"random/{i}", problem=words(shape.prompt_words), reference=words(32), answer="7")
                    for i in range(256)])


def child(command: list[str], row: str, timeout: float) -> dict:
    """One row in a process of its own; its last RESULT line, or why there is none."""
    print(f"== {row}", flush=True)
    try:
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        print("\n".join(output.splitlines()[-40:]), flush=True)
        return {"failed": f"stopped after {timeout:.0f} s (--row-timeout)"}
    lines = process.stdout.splitlines()
    found = [line for line in lines if line.startswith("RESULT ")]
    if process.returncode != 0 or not found:
        print("\n".join(lines[-40:]), flush=True)
        return {"failed": f"exit {process.returncode}: {lines[-1][:200] if lines else 'no output'}"}
    return json.loads(found[-1][len("RESULT "):])


def run_anchor(args: argparse.Namespace, workdir: Path) -> dict:
    if args.anchor is None:
        return {"skipped": "no --anchor given: the TRL anchor script is not part of exprl (trl_grpo_anchor.py)"}
    if not args.anchor.is_file():
        return {"skipped": f"--anchor {args.anchor}: no such file"}
    print("== anchor", flush=True)
    out = workdir / "anchor"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OUT": str(out), **({"TINY": "1"} if args.tiny else {})}
    try:
        process = subprocess.run([sys.executable, str(args.anchor)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=env, timeout=args.row_timeout)
        output = process.stdout
    except subprocess.TimeoutExpired as exc:
        # Its rows print as they finish: the hf_generate row (the first) may be there all the same.
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
    rows = {}
    for line in output.splitlines():
        if line.startswith("RESULT "):
            found = json.loads(line[len("RESULT "):])
            rows[found["name"]] = found
    if "hf_generate" not in rows:
        print("\n".join(output.splitlines()[-40:]), flush=True)
        return {"failed": "the anchor gave no hf_generate row"}
    main_row = rows["hf_generate"]
    return {"s": main_row["step_s"], "first_s": main_row["steps"][0], "steps": main_row["steps"],
            "tokens": main_row["completions"] * main_row["mean_len"], "tok_per_s": main_row["tok_per_s"],
            "peak_gib": main_row["peak_gib"],
            "note": "TRL GRPOTrainer, HF generate (" + ", ".join(f"{k} {v['step_s']} s" for k, v in rows.items()
                                                              if k != "hf_generate") + ")",
            "anchor_rows": rows}


# ---------------------------------------------------------------- one row, in its own process
def run_row(row: str, shape: Shape, args: argparse.Namespace) -> dict:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = run_generation(row, shape, args) if row in GENERATE_ROWS else run_train(row, shape, args)
    result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else 0.0
    return result


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_generation(row: str, shape: Shape, args: argparse.Namespace) -> dict:
    from exprl.data.loaders import load_problems
    from exprl.eval.generate import HFGenerator, SamplingSettings

    cache = row.split("-")[1]
    problems = load_problems(str(args.workdir / "problems.jsonl"))[:shape.completions]
    conversations = [[{"role": "user", "content": p.problem}] for p in problems]
    settings = SamplingSettings(temperature=0.8, max_new_tokens=shape.completion_tokens, system_prompt=None)
    generator = HFGenerator(str(args.workdir / "model"), settings, batch_size=shape.completions,
                            cache_implementation=cache)
    times, tokens = [], []
    for call in range(1 + args.repeats):
        sync()
        start = time.perf_counter()
        generations = generator.generate(conversations, list(range(call * 1000, call * 1000 + len(conversations))))
        sync()
        times.append(time.perf_counter() - start)
        tokens.append(sum(g.num_tokens for g in generations))
    steady = times[1:] or times
    s = statistics.median(steady)
    return {"s": round(s, 3), "first_s": round(times[0], 2), "calls": [round(t, 3) for t in times],
            "tokens": statistics.mean(tokens[1:] or tokens), "tok_per_s": round(statistics.mean(tokens[1:] or tokens) / s, 1),
            "note": f"exprl.eval HFGenerator, {generator.cache_implementation} cache, "
                    f"{len(conversations)} x {shape.completion_tokens} new tokens"}


def run_train(row: str, shape: Shape, args: argparse.Namespace) -> dict:
    from transformers import TrainerCallback

    from exprl.judge.types import JudgeConfig
    from exprl.rewards.config import RewardConfig
    from exprl.train.config import DataConfig, TrainConfig
    from exprl.train.runner import run_training

    class StepTimer(TrainerCallback):
        """The anchor's timing: step-begin to step-end, the device synchronised at both."""

        def __init__(self):
            self.times: list[float] = []
            self.start = 0.0

        def on_step_begin(self, *unused, **unused_kwargs):
            sync()
            self.start = time.perf_counter()

        def on_step_end(self, *unused, **unused_kwargs):
            sync()
            self.times.append(time.perf_counter() - self.start)

    method = "exprl-process" if row == "exprl-process" else "exprl-outcome"
    trl = dict(max_steps=shape.steps, per_device_train_batch_size=shape.completions, num_generations=shape.generations,
               max_completion_length=shape.completion_tokens, temperature=0.8, beta=0.0, learning_rate=1e-6,
               save_strategy="no", logging_steps=1, gradient_checkpointing=False, dataloader_num_workers=0)
    if row.endswith("-static"):
        trl["cache_implementation"] = "static"
    config = TrainConfig(method=method, model=str(args.workdir / "model"),
                         data=DataConfig(train_files=[str(args.workdir / "problems.jsonl")]), system_prompt=None,
                         judge=JudgeConfig(backend="openai", base_urls=[args.judge_url], model="loopback",
                                           cache_path="", concurrency=64),
                         # A random model seldom samples its end token, so nearly every rollout hits the
                         # cap; `keep` has them judged all the same, as the paper's finished rollouts are.
                         reward=RewardConfig(delimiter=args.delimiter, overlong="keep"), print_logs=False, trl=trl)
    timer = StepTimer()
    started = time.perf_counter()
    result = run_training(config, args.workdir / f"run-{row}", callbacks=[timer])
    wall = time.perf_counter() - started
    logged = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    logged = [r for r in logged if "completions/mean_length" in r]
    mean_len = statistics.mean(r["completions/mean_length"] for r in logged)
    steady = timer.times[1:] or timer.times
    s = statistics.median(steady)
    note = f"exprl train {method}"
    calls = statistics.mean(r.get("exprl/judge_calls", 0.0) for r in logged)
    note += f", {calls:.0f} judge calls/step"
    if method == "exprl-process":
        note += f", {statistics.mean(r.get('exprl/steps_per_trace_mean', 0.0) for r in logged):.1f} steps/trace"
    if row.endswith("-static"):
        note += ", static cache"
    return {"s": round(s, 3), "first_s": round(timer.times[0], 2), "steps": [round(t, 3) for t in timer.times],
            "wall_s": round(wall, 1), "tokens": round(shape.completions * mean_len, 1),
            "tok_per_s": round(shape.completions * mean_len / s, 1), "note": note}


if __name__ == "__main__":
    main()
