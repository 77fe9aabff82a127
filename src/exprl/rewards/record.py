"""What the reward functions found for each rollout, and the advantages computed from it.

One `Rollout` per sampled completion holds everything the advantages and the logged metrics need:
the overlong flag, the verifier's verdict, the judge's reward for every judged step (an outcome
judgment is one step: the whole trace), each judgment's status, how many completion tokens
each step holds, and what the training monitors read from its text (`Traits`). Plain values only (a status is its string, `JudgeStatus.value`), so a record
crosses processes in one gather and this module needs nothing from the judge layer above it.

The path of a judge score to the loss, with the one conversion it goes through:

    JudgeResult.score 1..5 --score_reward--> (score - 1) / 4 | None   (JudgeResult.reward; the only conversion)
      -> exprl.rewards.rollouts.record_rollouts -> Rollout.step_rewards
      -> advantages() -> per rollout: float | per-step list | None
      -> Rollout.token_advantages (process: each token gets its step's advantage) -> the loss

`None` is *unscorable* everywhere, as in `exprl.rewards.advantages`: the rollout leaves the loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Literal, Sequence, get_args

from exprl.rewards.advantages import (
    apply_overlong,
    apply_overlong_steps,
    outcome_advantages,
    process_advantages,
)
from exprl.rewards.config import RewardConfig

def score_reward(score: float) -> float:
    """A judge's score on the 1..5 scale as a reward in [0, 1]: (score - 1) / 4, the paper's s.
    The only score -> reward conversion: `JudgeResult.reward` applies it to every judge's score
    (the demo's oracle gives an exact score, 1 + 4 x its share, on the same scale)."""
    return (score - 1) / 4


JudgedSignal = Literal["outcome", "process"]
"""What a judge grades: the whole trace (one judgment), or each step (one judgment per step); also
`exprl judge run --mode`."""
Signal = Literal[JudgedSignal, "sparse"]
"""What a method trains on: the judge's reward for the whole trace (ExpRL-Outcome), its reward per
step (ExpRL-Process), or the verifier's 0/1 (sparse GRPO)."""


@dataclass(frozen=True)
class Judgment:
    """How one judge call went, for the metrics (its reward is in `Rollout.step_rewards`)."""

    status: str        # a JudgeStatus value: ok, unparseable, timeout, error
    cached: bool
    latency_s: float


@dataclass(frozen=True)
class Traits:
    """What the training monitors read from a rollout's text (`exprl.rewards.monitors.read_traits`)."""

    tokens: int          # completion tokens
    steps: int           # `###` steps of the text (`exprl.rewards.steps.split_steps`), whatever the method
    bare_answer: bool    # a boxed answer without work (`monitors.is_bare_answer`)
    number_list: bool    # a long run of listed numbers (`monitors.is_number_list`)


@dataclass
class Rollout:
    """What the reward functions found for one rollout."""

    overlong: bool     # hit the completion-length cap without an end token
    correct: float     # the sparse verifier: 1.0 when the last \\boxed{} matches the answer, else 0.0
    step_rewards: list[float | None] = field(default_factory=list)
    """The judge's reward per step (an outcome judgment: one entry, the whole trace); [] when the
    method asks no judge. A rollout the overlong policy zeroes is not judged: its entries are 0.0."""
    judgments: list[Judgment] = field(default_factory=list)   # [] when not judged
    tokens_per_step: list[int] = field(default_factory=list)
    """Process rollouts: how many completion tokens each step holds, in order (tokens map onto
    steps monotonically, `exprl.rewards.steps.token_step_ids`); [] otherwise."""
    traits: Traits | None = None   # for the monitors; None where the trainer did not read the text

    @property
    def dense_reward(self) -> float | None:
        """The judge's reward for the rollout as a whole: its last step's (an outcome judgment's
        only one); None when any judgment of it is unscorable or it was not judged."""
        if not self.step_rewards or any(r is None for r in self.step_rewards):
            return None
        return self.step_rewards[-1]

    @property
    def num_steps(self) -> int:
        return len(self.step_rewards)

    def token_advantages(self, step_advantages: Sequence[float]) -> list[float]:
        """One advantage per completion token: every token of step t gets A_t."""
        if len(step_advantages) != len(self.tokens_per_step):
            raise ValueError(f"{len(step_advantages)} step advantages for {len(self.tokens_per_step)} steps")
        return [a for a, count in zip(step_advantages, self.tokens_per_step) for _ in range(count)]


def tokens_per_step(token_steps: Sequence[int], num_steps: int) -> list[int]:
    """`token_step_ids`' map as counts per step; the map must not go back to an earlier step."""
    if any(b < a for a, b in zip(token_steps, token_steps[1:])):
        raise ValueError("a token maps to an earlier step than the token before it")
    counts = [0] * num_steps
    for step in token_steps:
        counts[step] += 1
    return counts


def advantages(rollouts: Sequence[Rollout], group_ids: Sequence[Hashable], signal: Signal,
               config: RewardConfig) -> list[float | list[float] | None]:
    """Every rollout's advantage, over the whole generation batch: a float (outcome, sparse), a list
    per step (process), or None (unscorable, or masked by the overlong policy)."""
    overlong = [r.overlong for r in rollouts]
    if signal == "process":
        steps = apply_overlong_steps([r.step_rewards for r in rollouts], overlong, config.overlong)
        return process_advantages(steps, group_ids, mode=config.process_mode, single_step=config.single_step,
                                  unscorable=config.unscorable)  # type: ignore[return-value]
    if signal == "outcome":
        rewards = [r.dense_reward for r in rollouts]
    elif signal == "sparse":
        rewards = [r.correct for r in rollouts]
    else:
        raise ValueError(f"signal must be one of {', '.join(get_args(Signal))}, got {signal!r}")
    return outcome_advantages(apply_overlong(rewards, overlong, config.overlong), group_ids,  # type: ignore[return-value]
                              config.outcome_normalize, config.unscorable)
