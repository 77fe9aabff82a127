"""The conditions under which the demo can test the paper's claim, measured on the base model.

The paper claims that a reference-scaffolded dense reward lets RL learn on hard problems where the
sparse reward gives no signal. That claim is only testable where (issue 12, docs/architecture.md):

- C1 competence: the base solves easy problems (pass@1 >= 60% at the evaluation temperature);
- C2 no sparse signal: on the hard *training* problems, at most 10% of sparse GRPO's groups (of the
  training group size) contain a right final answer, and hard pass@1 is at most twice what a guess
  gives (1 / modulus);
- C3 partial coverage: the first step of a hard problem is right in at least half the samples, and
  the mean right prefix (steps right in a row from the first, each checked on operation, input and
  arithmetic) is at least 2 steps;
- C4 a floor that does not hide the effect: besides final-answer pass@k, which a wrong chain can
  reach by luck, the report gives a guess-free metric: every step right.

`sample_stats` samples a model on one split and checks every step of every sample
(`exprl.data.synthetic.check_steps`); `check_conditions` turns the base model's figures into C1-C4.
Both `benchmarks/demo_base.py` and the demo's report use them, so the figures mean the same thing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

from exprl.data.problem import Problem

MIN_EASY_PASS1 = 60.0
MAX_GROUP_SUCCESS_SHARE = 10.0
MAX_PASS1_OVER_GUESS = 2.0
MIN_FIRST_STEP_RIGHT = 50.0
MIN_RIGHT_PREFIX = 2.0


@dataclass
class SplitStats:
    """How a model does on one split: final answers, every-step-right, and each step checked. In %."""

    samples: int
    samples_per_problem: int
    pass1: float
    pass_n: float
    group_success: float      # share of groups of `group_size` samples with a right final answer
    group_size: int
    every_step_pass1: float   # guess-free: every step right and the right answer
    every_step_pass_n: float
    lucky_share: float        # right final answers whose steps are not all right
    steps_per_sample: float
    operation_right: float    # per written step: operation and operand read right
    input_right: float        # per written step: input is the previous step's result
    arithmetic_right: float   # per written step: result right given its own inputs
    first_step_right: float   # per sample: the first step is right on every count
    right_prefix: float       # per sample: mean steps right in a row from the first
    operation_right_by_step: list[float] = field(default_factory=list)  # operation read right at step 1, 2, ...
    right_given_prefix_by_step: list[float] = field(default_factory=list)  # step t right when steps < t are

    def to_dict(self) -> dict:
        return asdict(self)


def split_stats(problems: Sequence[Problem], texts: Sequence[Sequence[str]], group_size: int) -> SplitStats:
    """Stats of `texts[i]` (the samples of `problems[i]`); every problem has the same sample count."""
    from exprl.data.answers import last_boxed
    from exprl.data.synthetic import check_steps, every_step_right, right_prefix
    from exprl.eval.passk import mean_pass_at_k

    n = len(texts[0]) if texts else 0
    if n < 1 or any(len(samples) != n for samples in texts) or len(texts) != len(problems):
        raise ValueError("split_stats needs the same positive number of samples for every problem")
    answer_counts, every_counts = [], []
    by_step: dict[int, list[int]] = {}      # position -> [operation read right, steps written]
    extends: dict[int, list[int]] = {}      # position -> [right, samples whose steps before it were right]
    steps = operation = input_ = arithmetic = first = prefix = right_answers = lucky = 0
    for problem, samples in zip(problems, texts):
        answered = every = 0
        for text in samples:
            checks = check_steps(problem, text)
            right = last_boxed(text) == problem.answer
            all_steps = every_step_right(problem, text)
            answered += right
            every += all_steps
            right_answers += right
            lucky += right and not all_steps
            steps += len(checks)
            operation += sum(c.operation for c in checks)
            input_ += sum(c.input for c in checks)
            arithmetic += sum(c.arithmetic for c in checks)
            run = right_prefix(checks)
            for position, check in enumerate(checks, 1):
                counts = by_step.setdefault(position, [0, 0])
                counts[0] += check.operation
                counts[1] += 1
            for position in range(1, min(run + 1, len(checks)) + 1):
                counts = extends.setdefault(position, [0, 0])
                counts[0] += position <= run
                counts[1] += 1
            first += run >= 1
            prefix += run
        answer_counts.append((n, answered))
        every_counts.append((n, every))
    total = n * len(problems)
    per_step = max(1, steps)
    return SplitStats(
        samples=total, samples_per_problem=n,
        pass1=100 * mean_pass_at_k(answer_counts, 1), pass_n=100 * mean_pass_at_k(answer_counts, n),
        group_success=100 * mean_pass_at_k(answer_counts, min(group_size, n)), group_size=min(group_size, n),
        every_step_pass1=100 * mean_pass_at_k(every_counts, 1),
        every_step_pass_n=100 * mean_pass_at_k(every_counts, n),
        lucky_share=100 * lucky / max(1, right_answers), steps_per_sample=steps / total,
        operation_right=100 * operation / per_step, input_right=100 * input_ / per_step,
        arithmetic_right=100 * arithmetic / per_step, first_step_right=100 * first / total,
        right_prefix=prefix / total,
        operation_right_by_step=[round(100 * by_step[t][0] / by_step[t][1], 1) for t in sorted(by_step)],
        right_given_prefix_by_step=[round(100 * extends[t][0] / extends[t][1], 1) for t in sorted(extends)])


def sample_stats(model: str, problems: Sequence[Problem], *, n: int, temperature: float, max_tokens: int,
                 group_size: int, seed: int, name: str, system_prompt: str | None = None,
                 batch_size: int = 256) -> SplitStats:
    """Sample `model` `n` times per problem and measure the samples (`split_stats`)."""
    from exprl.data.prompts import policy_messages
    from exprl.eval.generate import HFGenerator, SamplingSettings, sample_seed

    settings = SamplingSettings(temperature=temperature, max_new_tokens=max_tokens, system_prompt=system_prompt)
    generator = HFGenerator(model, settings, batch_size=batch_size)
    requests = [(p, i) for p in problems for i in range(n)]
    outputs = generator.generate([policy_messages(p.problem, system_prompt) for p, _ in requests],
                                 [sample_seed(seed, name, p.id, i) for p, i in requests])
    texts = [[outputs[j * n + i].text for i in range(n)] for j in range(len(problems))]
    return split_stats(problems, texts, group_size)


@dataclass
class Condition:
    name: str
    claim: str
    measured: str
    holds: bool


def check_conditions(easy_pass1: float, train_hard: SplitStats, modulus: int) -> list[Condition]:
    """C1-C4 from the base model's easy pass@1 (%) and its stats on the hard training problems."""
    guess = 100 / modulus
    return [
        Condition("C1 competence", f"easy pass@1 >= {MIN_EASY_PASS1:.0f}%",
                  f"easy pass@1 {easy_pass1:.1f}%", easy_pass1 >= MIN_EASY_PASS1),
        Condition("C2 no sparse signal",
                  f"groups of {train_hard.group_size} with a right answer <= {MAX_GROUP_SUCCESS_SHARE:.0f}%, "
                  f"hard pass@1 <= {MAX_PASS1_OVER_GUESS:.0f} x guessing ({guess:.1f}%)",
                  f"{train_hard.group_success:.1f}% of groups; pass@1 {train_hard.pass1:.2f}% "
                  f"({train_hard.pass1 / guess:.1f} x guessing)",
                  train_hard.group_success <= MAX_GROUP_SUCCESS_SHARE
                  and train_hard.pass1 <= MAX_PASS1_OVER_GUESS * guess),
        Condition("C3 partial coverage",
                  f"first step right >= {MIN_FIRST_STEP_RIGHT:.0f}%, mean right prefix >= {MIN_RIGHT_PREFIX:g} steps",
                  f"first step right {train_hard.first_step_right:.1f}%, right prefix {train_hard.right_prefix:.2f} "
                  f"steps", train_hard.first_step_right >= MIN_FIRST_STEP_RIGHT
                  and train_hard.right_prefix >= MIN_RIGHT_PREFIX),
        Condition("C4 guess-free metric",
                  "the tables give 'every step right' beside final-answer pass@k",
                  f"guessing gives pass@1 {guess:.1f}%; {train_hard.lucky_share:.0f}% of the base's right hard "
                  f"answers are lucky; every step right: pass@1 {train_hard.every_step_pass1:.2f}%",
                  True),
    ]
