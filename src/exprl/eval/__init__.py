"""Evaluation: sampling, unbiased pass@k, result files, and reports over pipeline runs."""
from exprl.eval.config import BenchmarkConfig, EvalConfig
from exprl.eval.evaluate import evaluate, evaluate_config, load_benchmark, read_results
from exprl.eval.passk import mean_pass_at_k, pass_at_k, pass_at_k_curve

__all__ = ["BenchmarkConfig", "EvalConfig", "evaluate", "evaluate_config", "load_benchmark",
           "read_results", "pass_at_k", "mean_pass_at_k", "pass_at_k_curve"]
