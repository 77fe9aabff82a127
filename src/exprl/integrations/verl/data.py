"""exprl problems as verl's dataset rows (the parquet verl's `RLHFDataset` reads).

The policy's prompt is built here by `exprl.data.prompts.policy_messages` from the problem text
alone: verl tokenises `prompt` (its `data.prompt_key`) and nothing else for the policy. The
reference goes only to `reward_model`, the column verl hands, untouched, to the reward manager with
the rollout; `extra_info` carries what the judge needs besides (the problem text, its id, its
domain). `tests/integrations/verl/test_data.py` plants a canary in every reference and reads
verl's own dataset to check it.

    python -m exprl.integrations.verl.data PROBLEMS OUT.parquet

PROBLEMS is anything `exprl.data.loaders.load_problems` reads (a prepared JSONL, a Parquet file, a
catalog name).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from exprl.data.problem import Problem
from exprl.data.prompts import POLICY_SYSTEM_PROMPT, policy_messages
from exprl.errors import DataError

REWARD_STYLE = "exprl-judge"


def verl_row(problem: Problem, index: int, system_prompt: str | None = POLICY_SYSTEM_PROMPT) -> dict[str, Any]:
    """One verl dataset row: the policy's chat prompt, and the judge's inputs where only the
    reward manager reads them."""
    return {
        "data_source": f"exprl/{problem.source or problem.domain}",
        "prompt": policy_messages(problem.problem, system_prompt),
        "ability": problem.domain,
        "reward_model": {"style": REWARD_STYLE, "ground_truth": problem.answer, "reference": problem.reference},
        "extra_info": {"index": index, "problem_id": problem.id, "problem": problem.problem,
                       "domain": problem.domain},
    }


def judge_row(reward_model: dict[str, Any], extra_info: dict[str, Any]) -> dict[str, Any]:
    """The row `exprl.judge.requests.judge_requests` reads, from a verl row's `reward_model` and
    `extra_info` as the reward manager receives them; a row this module did not write is a
    DataError naming what is missing."""
    if not isinstance(reward_model, dict) or reward_model.get("style") != REWARD_STYLE:
        raise DataError(f"reward_model {reward_model!r} was not written by exprl.integrations.verl.data "
                        f"(style {REWARD_STYLE!r}): the judge needs the reference it carries")
    missing = [key for key in ("problem", "problem_id", "domain") if key not in (extra_info or {})]
    if missing:
        raise DataError(f"extra_info lacks {', '.join(missing)}; write the dataset with "
                        f"exprl.integrations.verl.data")
    return dict(problem_text=extra_info["problem"], reference=reward_model["reference"],
                answer=reward_model.get("ground_truth") or "", domain=extra_info["domain"],
                problem_id=extra_info["problem_id"])


def write_verl_parquet(problems: Sequence[Problem], path: str | Path,
                       system_prompt: str | None = POLICY_SYSTEM_PROMPT) -> Path:
    """Every problem as a verl row, in order, written to `path` whole or not at all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from exprl.runs import atomic_path

    rows = [verl_row(problem, index, system_prompt) for index, problem in enumerate(problems)]
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    from exprl.data.loaders import load_problems
    from exprl.runs import check_output_file

    parser = argparse.ArgumentParser(prog="python -m exprl.integrations.verl.data",
                                     description="Write exprl problems as verl's parquet dataset rows.")
    parser.add_argument("problems", help="what exprl.data.loaders.load_problems reads")
    parser.add_argument("out", help="the parquet file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    out = check_output_file(args.out, inputs=[args.problems], overwrite=args.overwrite, flag="OUT")
    problems = load_problems(args.problems)
    write_verl_parquet(problems, out)
    print(f"{len(problems)} problems -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
