"""What a training stage does differently from the official code, worked out from its recipe.

`departures(config, plan)` compares a planned stage with the official code's run of the same stage
and method (the verl scripts of Stage I, the PipelineRL configs of Stage II; docs/method.md §2, §3, §7) and
returns one entry per difference, each with the official value beside exprl's and what the
difference is expected to change. Four kinds:

- `switch`: a recipe setting whose value is not the official one; setting it to the official value
  removes the entry. The `paper-*` recipes hold none of these; the `exprl-*` recipes hold exactly
  exprl's improvements.
- `trl`: what TRL cannot do the official way (listed for every recipe of the method, with the
  closest TRL setting chosen and its expected effect).
- `kept-out`: an official-code flaw exprl does not reproduce because it would corrupt training
  (a -100 sentinel trained as an advantage, a crash on an odd judge digit).
- `wording`: prompt text exprl words itself (the project ships no copied prompt); `system_prompt`
  takes any text.

This module is the one place that states the official values; `docs/architecture.md` (the fidelity
table) gives each row's source and measurement, and `tests/test_fidelity.py` checks exprl's
functions against small transcriptions of the official logic under the official settings.
It reads configs and a plan only: no model, no trainer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from exprl.data.prompts import policy_prompt_name
from exprl.train.config import JUDGED_METHODS, RL_METHODS, SAMPLING_METHODS, TrainConfig

STAGE1_SCRIPTS = "stage1_verl/.../train_stage1/qwen4b/*.sh"
STAGE2_CONFIGS = "stage2_pipeline_rl/conf/exp_stage2_*.yaml, conf/finetune/base.yaml"
GENRM = "ray_trainer_genrm.py"


@dataclass(frozen=True)
class Row:
    """One compared setting: where its value is read, what it is, the official code's source, and
    what departing from it changes."""

    key: str
    what: str
    source: str
    effect: str
    when: Callable[["Stage"], bool] = lambda stage: True


@dataclass
class Stage:
    """What the comparison needs to know about a planned stage."""

    name: str        # stage1 | stage2: the official run to compare with
    method: str
    config: TrainConfig
    trl: dict[str, Any]          # effective TRL values (TRL's defaults, exprl's, the recipe's)
    numbers: dict[str, Any] = field(default_factory=dict)   # batch numbers from the plan

    def value(self, key: str) -> Any:
        section, _, name = key.partition(".")
        if section == "trl":
            value = self.trl.get(name)
            return getattr(value, "source", value)
        if section == "plan":
            return self.numbers.get(name)
        if section in ("reward", "judge", "data"):
            return getattr(getattr(self.config, section), name)
        if key == "system_prompt":
            return policy_prompt_name(self.config.system_prompt)
        return getattr(self.config, key)

    @property
    def vllm(self) -> bool:
        return bool(self.trl.get("use_vllm"))


def _judged(stage: Stage) -> bool:
    return stage.name == "stage1" and stage.method in JUDGED_METHODS


def _process(stage: Stage) -> bool:
    return stage.name == "stage1" and stage.method == "exprl-process"


def _outcome(stage: Stage) -> bool:
    return stage.name == "stage1" and stage.method == "exprl-outcome"


def _rl(stage: Stage) -> bool:
    return stage.method in RL_METHODS


ROWS: dict[str, Row] = {r.key: r for r in [
    # ------------------------------------------------------------------ the judge and the reward
    Row("reward.single_step", "advantage of a one-step rollout (T = 1) under DeltaNorm",
        f"{GENRM}: compute_process_genrm_score (update order)",
        "official A = s_1 >= 0, uncentred, while multi-step advantages sum to 0: a standing reward for "
        "dropping every `###` (docs/method.md §9); exprl's outcome rule centres it in its group. On the demo "
        "task no one-step rollout earned credit and both rules gave the same share and `###` count "
        "(benchmarks/single_step_share.py); unmeasured on the paper's model",
        lambda s: _process(s) and s.config.reward.process_mode in ("delta", "end")),
    Row("reward.segmentation", "where a step ends", f"{GENRM}: _find_step_spans",
        "official: a step closes at every token ending in `###`, so a leading or repeated marker is a "
        "judged step of (almost) no text; exprl merges it into the next step: fewer judge calls, no "
        "score for a bare heading. Effect on a capable judge unmeasured", _process),
    Row("reward.delimiter", "step delimiter", f"{GENRM}: compute_process_genrm_score (step_str)",
        "another marker splits traces elsewhere", _process),
    Row("reward.process_mode", "process advantage", f"{STAGE1_SCRIPTS}: dense_pr_delta.sh",
        "the paper's main method is DeltaNorm; EndNorm and GroupNorm are its ablations (and their code "
        "differs from the paper's equations: docs/architecture.md)", _process),
    Row("reward.unscorable", "an unscorable rollout in its group's statistics",
        f"{GENRM}: compute_genrm_score (reward stays 0) + core_algos.py: compute_grpo_outcome_advantage",
        "official: counted as a reward of 0, so a judge failure lowers its group's mean and raises its "
        "siblings' advantages; exprl leaves it out. Unmeasured (needs the judge's failure rate)",
        lambda s: _outcome(s) or (_process(s) and (s.config.reward.process_mode == "group"
                                                   or s.config.reward.single_step == "outcome"))),
    Row("reward.overlong", "a rollout that reached the length cap",
        f"{GENRM}: clip_length (outcome score 0; process clip_by=full_sequence)",
        "zero skips the judge call for a cut rollout and trains it at reward 0 even when the judge's "
        "answer would have been unreadable (officially: dropped from the loss). Differs only for cut "
        "rollouts the judge cannot score", _judged),
    Row("reward.overlong_rule", "which rollouts count as reaching the cap", f"{GENRM}: clip_length",
        "official: a rollout of exactly max length, end token counted, is overlong even when it "
        "finished; exprl's unfinished rule pays it. Differs for rollouts ending on the cap's last token",
        _judged),
    Row("reward.outcome_normalize", "group normalisation of outcome rewards",
        "core_algos.py: compute_grpo_outcome_advantage; PipelineRL divide_advantage_by_std: false",
        "std divides by the group's spread (Stage I); mean does not (Stage II)",
        lambda s: s.method in ("exprl-outcome", "grpo")),
    Row("judge.prompt_layout", "order of the judge prompt's sections",
        "prompt_templates/math_likelihood_{judge,process}.py (USER_PROMPT)",
        "official: problem, trace, reference. exprl's shared-first puts the reference before the trace "
        "so a prefix cache prefills it once (measured: 0.10 of the prompt tokens left to prefill vs "
        "0.47, benchmarks/judge_prefill.py); the scores of a capable judge under each are unmeasured",
        _judged),
    Row("judge.score_parsing", "reading the score from the judge's answer",
        f"{GENRM}: compute_genrm_score, compute_process_genrm_score",
        "official: the first `Score:` and the digit after it (a score quoted while reasoning counts; "
        "`Score: [4]` is unreadable); exprl: only a final score line. Unmeasured on a capable judge",
        _judged),
    Row("judge.untrusted_fence", "the candidate's text fenced as untrusted data",
        "prompt_templates/math_likelihood_{judge,process}.py",
        "official: the trace goes into its section as it is, its own `###` headings beside the prompt's; "
        "exprl fences it and tells the judge it is data. Unmeasured on a capable judge", _judged),
    Row("judge.max_trace_tokens", "trace cut before judging",
        f"{GENRM}: compute_genrm_score (prompt_max_length 32,768)",
        "official: the whole trace (the prompt is cut only past 32,768 tokens); exprl's budget cuts the "
        "middle of long traces (3 characters a token), hiding work from the judge", _judged),
    Row("judge.process_view", "what a process judgment is shown", f"{GENRM}: compute_process_genrm_score",
        "official: the segment alone; prefix/step change what s_t measures and so what DeltaNorm "
        "rewards (docs/architecture.md)", _process),
    Row("judge.known_answer", "known final answer in the judge prompt", "prompt_templates/*.py",
        "official prompts show the reference only", _judged),
    Row("judge.rubric", "checkpoints extracted inside each judge call", "prompt_templates/math_likelihood_process.py",
        "cached checkpoints are the same for every call of a problem", _judged),
    Row("judge.json_mode", "judge answer format", "prompt_templates/*.py", "JSON answers instead of a Score line",
        _judged),
    Row("judge.temperature", "judge decoding", f"{GENRM}: do_sample=False", "a sampled judge is noisier", _judged),
    Row("judge.max_new_tokens", "judge output cap", f"{STAGE1_SCRIPTS}: genrm.rollout.response_length",
        "a shorter cap cuts the judge's analysis before its score", _judged),
    # ------------------------------------------------------------------ the policy and its data
    Row("sft_prompt", "the prompt an SFT reference follows", "verl/utils/dataset/sft_dataset.py",
        "official: the problem as the only message; exprl's policy prompt adds the system message "
        "that evaluation and Stage II show. Unmeasured", lambda s: s.method == "sft"),
    Row("data.max_prompt_tokens", "problems with longer prompts left out",
        f"{STAGE1_SCRIPTS}: max_prompt_length + filter_overlong_prompts (none in sft.sh or PipelineRL)",
        "a different set of training problems"),
    # ------------------------------------------------------------------ TRL keys
    Row("trl.learning_rate", "learning rate", "scripts' optim.lr", "a different step size"),
    Row("trl.lr_scheduler_type", "learning-rate schedule", "actor.yaml / sft_trainer.yaml", "a different schedule"),
    Row("trl.warmup_steps", "warmup", "actor.yaml / sft_trainer.yaml", "a different schedule"),
    Row("trl.weight_decay", "weight decay", "actor.yaml / finetune/base.yaml", "different regularisation"),
    Row("trl.max_grad_norm", "gradient-norm clip", "actor.yaml / finetune/base.yaml", "clipping binds elsewhere"),
    Row("trl.adam_beta2", "Adam beta2", "sft_trainer.yaml (0.95); verl/PipelineRL AdamW default",
        "a different second-moment horizon"),
    Row("trl.temperature", "sampling temperature", "rollout.temperature", "other rollouts",
        lambda s: s.method in SAMPLING_METHODS),
    Row("trl.top_p", "top-p", "rollout.top_p", "other rollouts", lambda s: s.method in SAMPLING_METHODS),
    Row("trl.top_k", "top-k (off)", "rollout.top_k", "other rollouts", lambda s: s.method in SAMPLING_METHODS),
    Row("trl.num_generations", "rollouts per prompt", "rollout.n / finetune.attempts",
        "other group statistics", lambda s: s.method in SAMPLING_METHODS),
    Row("trl.max_completion_length", "rollout length cap", "data.max_response_length / llm max_tokens",
        "another cap, other overlong rollouts", lambda s: s.method in SAMPLING_METHODS),
    Row("trl.vllm_max_model_length", "vLLM context", "rollout.max_model_len / seq_length",
        "a shorter context cuts rollouts", lambda s: s.method in SAMPLING_METHODS and s.vllm),
    Row("trl.beta", "KL coefficient", "kl_loss_coef / rl.kl_coef", "another pull toward the base", _rl),
    Row("trl.use_bias_correction_kl", "KL term weighted by the ratio", "dp_actor.py (k3 added as is)",
        "TRL's correction multiplies k3 by the ratio", lambda s: _rl(s) and bool(s.trl.get("beta"))),
    Row("trl.epsilon", "lower clip", "clip_ratio_low / rl.epsilon", "other clipping", _rl),
    Row("trl.epsilon_high", "upper clip", "clip_ratio_high / rl.epsilon", "other clipping", _rl),
    Row("trl.delta", "dual clip", "actor.yaml clip_ratio_c", "other clipping of negative advantages", _rl),
    Row("trl.loss_type", "loss aggregation (TRL's closest to the official)", "actor.yaml loss_agg_mode; rl_step",
        "another weighting of tokens and rollouts", _rl),
    Row("trl.entropy_coef", "entropy bonus", "entropy_coeff / rl.entropy_bonus", "more or less exploration", _rl),
    Row("trl.num_iterations", "updates per rollout batch", "ppo_epochs", "more off-policy updates", _rl),
    Row("trl.mask_truncated_completions", "TRL's own masking of cut rollouts",
        "(none: the overlong rule decides)", "cut rollouts leave the loss before exprl's overlong rule", _rl),
    Row("trl.vllm_importance_sampling_correction", "trainer/vLLM importance weight",
        "ray_trainer_genrm.py (sampler log-probs only logged) / PipelineRL old = sampler log-probs",
        "a reweighting and filter of rollouts the official Stage I did not have", lambda s: _rl(s) and s.vllm),
    Row("trl.vllm_importance_sampling_mode", "importance weight per token or sequence", "PipelineRL rl_step",
        "another truncation of the sampler ratio",
        lambda s: s.name == "stage2" and s.vllm and bool(s.trl.get("vllm_importance_sampling_correction"))),
    Row("trl.vllm_importance_sampling_clip_max", "importance weight cap (1 + epsilon)", "PipelineRL rl.epsilon",
        "another cap on the sampler ratio",
        lambda s: s.name == "stage2" and s.vllm and bool(s.trl.get("vllm_importance_sampling_correction"))),
    Row("trl.max_prompt_length", "teacher prompt length", "self-distillation: no truncation",
        "a cut teacher prompt loses the problem", lambda s: s.method == "self-distill"),
    Row("trl.num_train_epochs", "SFT epochs", "sft.sh: total_epochs", "a longer or shorter SFT",
        lambda s: s.method == "sft" and "max_steps" not in s.config.trl),
    Row("trl.max_length", "SFT sequence cap", "sft.sh: max_length", "longer references cut",
        lambda s: s.method == "sft"),
    Row("trl.completion_only_loss", "loss on the reference only", "sft_dataset.py loss_mask",
        "the prompt trained too", lambda s: s.method == "sft"),
    # ------------------------------------------------------------------ the batch (docs/scaling.md)
    Row("plan.prompts_per_batch", "prompts per rollout batch", "data.train_batch_size / train_batch_size x passes",
        "another batch: at this world size the batch keys give other shapes", lambda s: s.method in SAMPLING_METHODS),
    Row("plan.optimizer_steps_per_batch", "optimiser steps per rollout batch", "ppo_mini_batch_size",
        "more or fewer off-policy steps", lambda s: s.method in SAMPLING_METHODS),
    Row("plan.rollout_batches", "budget in rollout batches",
        "paper: 230 Stage-I steps (the code's total_epochs=5 gives ~210); Stage II evaluated at step 500",
        "a longer or shorter run", lambda s: s.method in SAMPLING_METHODS),
    Row("plan.sequences_per_optimizer_step", "SFT sequences per optimiser step", "sft.sh: train_batch_size",
        "another batch", lambda s: s.method == "sft"),
]}

_RL1 = {"trl.learning_rate": 1e-6, "trl.lr_scheduler_type": "constant", "trl.warmup_steps": 0,
        "trl.weight_decay": 0.01, "trl.max_grad_norm": 1.0, "trl.adam_beta2": 0.999, "trl.temperature": 0.8,
        "trl.top_p": 1.0, "trl.top_k": None, "trl.max_completion_length": 16384, "trl.vllm_max_model_length": 32768,
        "trl.beta": 0.001, "trl.use_bias_correction_kl": False, "trl.epsilon": 0.2, "trl.delta": 3.0,
        "trl.loss_type": "dapo", "trl.entropy_coef": 0.0, "trl.num_iterations": 1,
        "trl.mask_truncated_completions": False, "trl.vllm_importance_sampling_correction": False,
        "data.max_prompt_tokens": 4096, "plan.rollout_batches": 230}
_JUDGE = {"judge.prompt_layout": "paper", "judge.score_parsing": "first-score", "judge.untrusted_fence": False,
          "judge.max_trace_tokens": None, "judge.known_answer": False, "judge.rubric": "implicit",
          "judge.json_mode": False, "judge.temperature": 0.0, "judge.max_new_tokens": 2048,
          "reward.overlong": "zero-after-judge", "reward.overlong_rule": "at-cap"}
OFFICIAL: dict[tuple[str, str], dict[str, Any]] = {
    ("stage1", "exprl-outcome"): {**_RL1, **_JUDGE, "trl.num_generations": 10, "trl.epsilon_high": 0.28,
                                  "reward.outcome_normalize": "std", "reward.unscorable": "zero-in-group",
                                  "plan.prompts_per_batch": 36, "plan.optimizer_steps_per_batch": 2},
    ("stage1", "exprl-process"): {**_RL1, **_JUDGE, "trl.num_generations": 16, "trl.epsilon_high": 0.26,
                                  "reward.process_mode": "delta", "reward.single_step": "raw",
                                  "reward.segmentation": "token-end", "reward.delimiter": "###",
                                  "reward.unscorable": "zero-in-group", "judge.process_view": "segment",
                                  "plan.prompts_per_batch": 36, "plan.optimizer_steps_per_batch": 1},
    ("stage1", "grpo"): {**_RL1, "trl.num_generations": 16, "trl.epsilon_high": 0.26,
                         "reward.outcome_normalize": "std", "plan.prompts_per_batch": 32,
                         "plan.optimizer_steps_per_batch": 2},
    ("stage1", "self-distill"): {key: _RL1[key] for key in (
        "trl.lr_scheduler_type", "trl.warmup_steps", "trl.weight_decay", "trl.max_grad_norm", "trl.adam_beta2",
        "trl.temperature", "trl.top_p", "trl.top_k", "trl.max_completion_length", "trl.vllm_max_model_length",
        "data.max_prompt_tokens", "plan.rollout_batches")} | {
        "trl.learning_rate": 1e-7, "trl.num_generations": 16, "trl.max_prompt_length": None,
        "trl.vllm_max_model_length": 40000,
        "plan.prompts_per_batch": 32, "plan.optimizer_steps_per_batch": 1},
    ("stage1", "sft"): {"trl.learning_rate": 1e-6, "trl.lr_scheduler_type": "cosine", "trl.warmup_steps": 0.1,
                        "trl.weight_decay": 0.01, "trl.max_grad_norm": 1.0, "trl.adam_beta2": 0.95,
                        "trl.num_train_epochs": 2, "trl.max_length": 20480, "trl.completion_only_loss": True,
                        "sft_prompt": "user-only", "data.max_prompt_tokens": None,
                        "plan.sequences_per_optimizer_step": 32},
    # PipelineRL runs one algorithm whatever the method; exprl's Stage II is sparse GRPO.
    ("stage2", "grpo"): {"trl.learning_rate": 1e-6, "trl.lr_scheduler_type": "constant", "trl.warmup_steps": 0,
                         "trl.weight_decay": 0.01, "trl.max_grad_norm": 0.3, "trl.adam_beta2": 0.999,
                         "trl.temperature": 0.8, "trl.top_p": 1.0, "trl.top_k": None,
                         "trl.max_completion_length": 16384, "trl.vllm_max_model_length": 32768,
                         "trl.num_generations": 32, "trl.beta": 0.0, "trl.epsilon": 4.0, "trl.epsilon_high": 4.0,
                         "trl.delta": None, "trl.loss_type": "dapo", "trl.entropy_coef": 1e-4,
                         "trl.num_iterations": 1, "trl.mask_truncated_completions": False,
                         "trl.vllm_importance_sampling_correction": True,
                         "trl.vllm_importance_sampling_mode": "token_truncate",
                         "trl.vllm_importance_sampling_clip_max": 5.0, "data.max_prompt_tokens": None,
                         "reward.outcome_normalize": "mean", "reward.overlong": "keep",
                         "plan.prompts_per_batch": 16, "plan.optimizer_steps_per_batch": 1,
                         "plan.rollout_batches": 500},
}
"""The official code's value of each compared setting, by (stage, method). A key absent for a stage
is not compared there."""


@dataclass(frozen=True)
class Fixed:
    """A departure no recipe setting removes (kinds trl, kept-out, wording)."""

    kind: str
    key: str
    what: str
    exprl: str
    official: str
    effect: str
    when: Callable[[Stage], bool]


FIXED: list[Fixed] = [
    Fixed("trl", "loss aggregation", "Stage I token weighting",
          "dapo: one token mean over each optimiser step's rollouts, all processes",
          "verl token-mean per dynamic micro-batch (<= 32,768 tokens a GPU) times its share of the "
          "mini-batch's rollouts, averaged over GPUs",
          "equal when the micro-batches' mean lengths agree; otherwise a token of a micro-batch of short "
          "rollouts weighs more in verl. TRL cannot batch by tokens. Unmeasured",
          lambda s: s.name == "stage1" and _rl(s)),
    Fixed("trl", "mini-batch order", "how a rollout batch is split into optimiser steps",
          "TRL shuffles the rollout batch, then splits it", "verl splits it in order (whole prompt groups)",
          "none expected on the objective",
          lambda s: s.name == "stage1" and _rl(s) and (s.numbers.get("optimizer_steps_per_batch") or 1) > 1),
    Fixed("trl", "KL clamp", "the k3 estimator's bounds", "k3 unclamped",
          "log-ratio clamped at +-20, then k3 clamped at 10",
          "differs where k3 > 10: tokens the policy makes over ~13.6x less likely than the base (or over "
          "~60,000x more likely): there verl's KL term has no gradient and TRL's pulls back (beta 0.001)",
          lambda s: _rl(s) and bool(s.trl.get("beta"))),
    Fixed("trl", "asynchronous actors", "Stage II off-policy lag",
          "synchronous: every rollout batch from the current weights",
          "PipelineRL actors sample with weights up to several versions old (max_lag null)",
          "slightly more on-policy updates; none on the objective", lambda s: s.name == "stage2"),
    Fixed("trl", "sampler ratio", "Stage II PPO ratio against the sampler's log-probs",
          "ratio trainer/trainer = 1 times a per-token trainer/vLLM weight capped at 5",
          "PPO ratio new/sampler clipped at 1 +- 4",
          "equal below 5; past it PipelineRL zeroes a positive-advantage token's gradient, TRL caps its weight",
          lambda s: s.name == "stage2"),
    Fixed("trl", "loss aggregation", "Stage II token weighting",
          "dapo: token mean over the step; the entropy bonus a per-micro-batch token mean",
          "rl_step: token losses (entropy bonus included) summed and divided by the rollouts per step "
          "(512); `aggregate_loss: sum` is read by nothing",
          "same direction within a step (equal token weights); the step's size follows its token count in "
          "PipelineRL and not in TRL, so the 0.3 grad clip binds at other steps. Unmeasured",
          lambda s: s.name == "stage2"),
    Fixed("trl", "SFT end of turn", "what follows an SFT reference",
          "the chat template's end-of-turn token and its newline, both trained",
          "the reference then the tokenizer's end token alone", "one more trained token a sequence",
          lambda s: s.method == "sft"),
    Fixed("kept-out", "unscorable first step", "a first step the judge cannot score, the last scored above 1",
          "the rollout leaves the loss, as every rollout with an unscorable step",
          "its -100 sentinel minus s_T stays on the first step and escapes the NA check: trained at "
          "advantage ~ -100", "no rare huge negative updates", _process),
    Fixed("kept-out", "judge digit outside 1-5", "a score digit 0 or 6-9 after `Score:`",
          "unscorable", "outcome: the run stops on an assertion (a cut rollout is zeroed first and trained "
          "at 0); process: (d - 1)/4 outside [0, 1] trained",
          "none expected (a greedy judge told to write 1-5)", _judged),
    Fixed("kept-out", "judge prompt over 32,768 tokens", "an outcome prompt longer than the judge's budget",
          "sent whole; a server that cannot take it answers an error: unscorable",
          "the prompt's end (reference, generation header) cut away and judged anyway",
          "none expected below a 16,384-token trace plus a ~12k-token reference",
          lambda s: _outcome(s) and s.config.judge.max_trace_tokens is None),
    Fixed("wording", "judge prompts", "the judge's instructions",
          "exprl's own words for docs/method.md §2.3's criteria, scale and output line (exprl.judge.prompts)",
          "prompt_templates/math_likelihood_{judge,process}.py",
          "unmeasured: the official text cannot ship with exprl; scoring the same traces under both on a "
          "capable judge would measure it", _judged),
    Fixed("wording", "teacher prompt", "self-distillation's teacher message (problem, then reference)",
          "exprl's own words (teacher_template)", "ray_onpolicy_distill.py",
          "unmeasured; teacher_template takes any text", lambda s: s.method == "self-distill"),
    Fixed("wording", "policy prompt", "the policy's system message",
          "exprl's own words (data.prompts.POLICY_SYSTEM_PROMPT); system_prompt takes any text",
          "reason step by step, final answer in \\boxed{} (verl data; PipelineRL actor.system_prompt)",
          "unmeasured", lambda s: s.method != "sft" or s.config.sft_prompt == "policy"),
]


def _same(value: Any, official: Any) -> bool:
    if official is None:
        return value in (None, 0, -1)  # top_k off, no cut, no truncation
    if isinstance(official, bool) or isinstance(value, bool):
        return value is official
    if isinstance(official, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(float(value), float(official), rel_tol=1e-9, abs_tol=0.0)
    return value == official


def stage_of(config: TrainConfig, name: str) -> str:
    """The official run a planned stage is compared with: a pipeline's Stage II, or a recipe's `stage`."""
    return "stage2" if name == "stage2" else config.stage


def departures(config: TrainConfig, trl: dict[str, Any], numbers: dict[str, Any], name: str = "train") -> list[dict[str, Any]]:
    """Every way the planned stage departs from the official code: the settings first (kind
    switch), then what no setting changes (trl, kept-out, wording). `trl` are the effective TRL
    values, `numbers` the plan's batch numbers."""
    stage = Stage(stage_of(config, name), config.method, config, trl, numbers)
    official = OFFICIAL.get((stage.name, config.method), OFFICIAL[("stage2", "grpo")] if stage.name == "stage2" else {})
    found = []
    for key, expected in official.items():
        row = ROWS[key]
        if not row.when(stage):
            continue
        value = stage.value(key)
        if key.startswith("plan.") and value is None:
            continue  # a number the plan could not work out (e.g. no rollout budget)
        if not _same(value, expected):
            found.append(dict(kind="switch", key=key, what=row.what, value=value, official=expected,
                              effect=row.effect, source=row.source))
    for fixed in FIXED:
        if fixed.when(stage):
            found.append(dict(kind=fixed.kind, key=fixed.key, what=fixed.what, value=fixed.exprl,
                              official=fixed.official, effect=fixed.effect, source=""))
    return found


def render(found: list[dict[str, Any]]) -> list[str]:
    """The plan's text lines for `departures`."""
    switches = [d for d in found if d["kind"] == "switch"]
    lines = ["  official code    " + (f"{len(switches)} setting(s) differ:" if switches else
                                      "every compared setting as the official code's")]
    lines += [f"    {d['key']} {d['value']!r} (official {d['official']!r}): {d['effect']}" for d in switches]
    titles = {"trl": "TRL cannot", "kept-out": "not reproduced", "wording": "own words"}
    for kind, title in titles.items():
        lines += [f"    [{title}] {d['key']}: {d['value']} (official: {d['official']}); {d['effect']}"
                  for d in found if d["kind"] == kind]
    return lines

