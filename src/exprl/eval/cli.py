"""`exprl eval` and `exprl report`."""
from __future__ import annotations

import argparse

from exprl.data.prompts import POLICY_SYSTEM_PROMPT


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="sample n completions per benchmark problem and report unbiased pass@k",
        description="Evaluate a checkpoint. Re-running into the same --out resumes: finished samples "
                    "are never regenerated.")
    p.add_argument("--model", required=True, help="checkpoint folder (or hub id org/name)")
    p.add_argument("--bench", required=True, nargs="+", metavar="FILE",
                   help="bench-*.yaml recipes or data files (JSONL/Parquet in the Problem schema)")
    p.add_argument("--n", type=int, default=16, help="samples per problem (default 16)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (default 1.0)")
    p.add_argument("--max-tokens", type=int, default=1024, help="max new tokens per sample (default 1024)")
    p.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems of each benchmark")
    p.add_argument("--batch-size", type=int, default=8, help="requests per generate call (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=["auto", "hf", "vllm"], default="auto")
    p.add_argument("--system-prompt", default=POLICY_SYSTEM_PROMPT,
                   help="policy system prompt; '' for none (default: the training prompt)")
    p.add_argument("--out", default="eval", help="output directory (default ./eval)")
    p.set_defaults(handler=_eval)

    r = subparsers.add_parser(
        "report", help="tables like the paper's Tables 1-2 and plots over pipeline run directories")
    r.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by `exprl pipeline`")
    r.add_argument("--out", default=None, help="report directory (default: RUN_DIR/report for one run, "
                                                "./report for several)")
    r.add_argument("--k", type=int, default=None,
                   help="the pass@k column of the Stage-I table (default: the largest k every run has)")
    r.set_defaults(handler=_report)


def _eval(args: argparse.Namespace) -> int:
    from exprl.eval.evaluate import evaluate, results_table

    results = evaluate(args.model, args.bench, n=args.n, temperature=args.temperature,
                       max_tokens=args.max_tokens, out_dir=args.out, top_p=args.top_p, limit=args.limit,
                       batch_size=args.batch_size, seed=args.seed, system_prompt=args.system_prompt or None,
                       engine=args.engine)
    print(results_table(results))
    print(f"results in {args.out}/")
    return 0


def _report(args: argparse.Namespace) -> int:
    from exprl.eval.report import write_report

    path = write_report(args.runs, args.out, k=args.k)
    print(f"report written to {path}")
    return 0
