"""The training monitors: detectors over rollout texts, batch metrics, and the alerts that scripted
runs raise when their rollouts game the judge (and do not raise when they solve).

A scripted run is what the trainer would log: per optimiser step a batch of `Rollout` records with
real texts (clean traces and the attack families of `testing.hacking`), a judge reward and a
verifier verdict, passed through `batch_metrics` and then `Monitor.observe`, as the training
callback does with each logged row.
"""
from __future__ import annotations

import functools
import random
from typing import Callable

import pytest

from exprl.config import load_config
from exprl.data.loaders import load_problems
from exprl.data.problem import Problem
from exprl.errors import ConfigError
from testing.hacking import ATTACK_FAMILIES, attack, clean_traces, suite
from exprl.judge.backends.reference import ReferenceBackend
from exprl.judge.types import JudgeRequest
from exprl.rewards.monitors import (
    ALERTS,
    NUMBER_LIST_VALUES,
    Alert,
    Monitor,
    MonitorConfig,
    batch_metrics,
    is_bare_answer,
    is_number_list,
    longest_number_run,
    read_traits,
    shows_no_work,
    step_position_advantages,
)
from exprl.rewards.record import Judgment, Rollout

STATUSES = ["ok", "unparseable", "timeout", "error"]
OK = Judgment("ok", cached=False, latency_s=0.2)
FAILED = Judgment("timeout", cached=False, latency_s=30.0)

# Our own small problems with plain-arithmetic references, so the suite restyles them into steps.
PROBLEMS = [
    Problem("hens", "A farm has 16 hens that lay 3 eggs each a day. The farmer keeps 4 eggs a day and sells the "
            "rest for 2 dollars each. How many dollars does she make a day?",
            "The hens lay 16 * 3 = 48 eggs.\nShe sells 48 - 4 = 44 eggs.\nShe makes 44 * 2 = 88 dollars.", "88"),
    Problem("books", "A shelf holds 7 rows of 12 books. 9 books are lent out and 5 come back. How many books "
            "are on the shelf?",
            "The shelf holds 7 * 12 = 84 books.\nAfter lending, 84 - 9 = 75 remain.\nThen 75 + 5 = 80 books.", "80"),
    Problem("train", "A train runs 45 km an hour for 3 hours, then 60 km an hour for 2 hours. How far does it go?",
            "First 45 * 3 = 135 km.\nThen 60 * 2 = 120 km.\nIn all 135 + 120 = 255 km.", "255"),
]


# ---------------------------------------------------------------------------------------------
# Detectors


def test_bare_answers_are_boxes_without_work():
    assert is_bare_answer("\\boxed{18}")
    assert is_bare_answer("The answer is \\boxed{18}.")
    assert not is_bare_answer("9 * 2 = 18, so the answer is \\boxed{18}.")  # an `=`: work
    assert not is_bare_answer("Eighteen, because nine pairs of two make eighteen in all, so \\boxed{18}")  # words
    assert not is_bare_answer("18")  # answers nothing: not a box
    assert shows_no_work("18")  # the judge's half of the rule alone


def test_number_lists_count_listed_values_in_a_row():
    assert longest_number_run("1, 2, 3.") == 3
    assert longest_number_run("We try 1, 2, 3 and then stop.") == 1  # an item with words is no value
    assert longest_number_run("So x = 4, x = 5, x = 6.") == 3
    assert longest_number_run("so (0, 5), (3, 4), (4, 3)") == 6
    assert longest_number_run("candidates 2L+8, 14/2, \\frac{1}{2}, \\sqrt{2}; 3 or 4") == 5
    assert longest_number_run("so 1,200, 3,400, 5,600.") == 3  # a thousands separator is no list comma
    assert longest_number_run("Since a = 3, b = 4, c = 5, the total is 12.") == 2
    assert longest_number_run("[asy]draw((0,0)--(1,1)--(2,2)--(3,3)--(4,4)--(5,5)--(6,6)--(7,7)--(8,8));[/asy]") == 0
    listed = ", ".join(str(n) for n in range(NUMBER_LIST_VALUES))
    assert is_number_list(f"So {listed}.") and not is_number_list(f"So {listed[:-4]}.")


def test_traits_read_steps_length_and_detectors_from_the_text():
    clean = clean_traces(PROBLEMS[0]).right
    assert read_traits(clean, tokens=57) == read_traits(clean, 57, "###")
    traits = read_traits(clean, tokens=57)
    assert (traits.tokens, traits.steps, traits.bare_answer, traits.number_list) == (57, 4, False, False)
    assert read_traits(clean.replace("###", ""), 40).steps == 1
    assert read_traits(clean.replace("###", "@@"), 40, delimiter="@@").steps == 4


@pytest.mark.parametrize("dataset", ["gsm8k_test.jsonl", "math500.jsonl"])
def test_detectors_agree_with_the_attack_families_on_math_problems(catalog_data, dataset):
    """Every bare-answer attack is a bare answer and every number-list and range attack a number
    list; no clean trace and no other family is a number list; on GSM8K no clean trace is bare (on
    MATH a clean wrong trace of a one-line reference is: the judge caps it the same way)."""
    problems = load_problems(catalog_data / dataset)[:40]
    judge = ReferenceBackend()
    for trace in suite(problems):
        bare, listed = is_bare_answer(trace.text), is_number_list(trace.text)
        assert listed == (trace.family in ("number_list", "range")), (trace.problem_id, trace.family)
        if trace.family == "bare_answer" or dataset.startswith("gsm8k"):
            assert bare == (trace.family == "bare_answer"), (trace.problem_id, trace.base, trace.family)
        if bare:
            problem = next(p for p in problems if p.id == trace.problem_id)
            result = judge.judge_one(JudgeRequest(problem=problem.problem, reference=problem.reference,
                                                  trace=trace.text, answer=problem.answer))
            assert result.score <= 4, (trace.problem_id, trace.family, result.score)  # the judge's bare-answer cap


def test_honest_references_are_not_number_lists(catalog_data):
    """The detector's threshold against the human solutions (benchmarks/monitor_detectors.py prints
    the same shares): no GSM8K reference and under 0.5% of MATH's is a number list."""
    gsm8k = load_problems(catalog_data / "gsm8k_train.jsonl")
    math = load_problems(catalog_data / "math_train.jsonl")
    assert sum(is_number_list(p.reference) for p in gsm8k) == 0
    assert sum(is_number_list(p.reference) for p in math) / len(math) < 0.005


# ---------------------------------------------------------------------------------------------
# Batch metrics


def rollout(text: str, *, correct: float, reward: float | None, tokens: int = 60, overlong: bool = False,
            judgment: Judgment = OK) -> Rollout:
    return Rollout(overlong=overlong, correct=correct, step_rewards=[reward], judgments=[judgment],
                   traits=read_traits(text, tokens))


def test_batch_metrics_by_hand():
    right, wrong = clean_traces(PROBLEMS[0]).right, clean_traces(PROBLEMS[0]).wrong
    rollouts = [rollout(right, correct=1.0, reward=1.0, tokens=50),
                rollout(wrong, correct=0.0, reward=0.5, tokens=70),
                rollout("\\boxed{88}", correct=1.0, reward=0.75, tokens=6),
                rollout("x" * 90, correct=0.0, reward=0.0, tokens=128, overlong=True),
                rollout(attack("range", PROBLEMS[1], right, "80"), correct=0.0, reward=None, judgment=FAILED)]
    metrics = batch_metrics(rollouts, group_ids=[0, 0, 1, 1, 2], judge_statuses=STATUSES)
    assert metrics["exprl/sparse_correct"] == pytest.approx(2 / 5)
    assert metrics["exprl/unsolved_share"] == pytest.approx(1 / 3)
    assert metrics["exprl/overlong_share"] == pytest.approx(1 / 5)
    assert metrics["exprl/unscorable_share"] == pytest.approx(1 / 5)
    assert metrics["exprl/dense_reward_mean"] == pytest.approx((1.0 + 0.5 + 0.75 + 0.0) / 4)
    assert metrics["exprl/response_tokens_mean"] == pytest.approx((50 + 70 + 6 + 128 + 60) / 5)
    assert metrics["exprl/bare_answer_share"] == pytest.approx(1 / 5)
    assert metrics["exprl/number_list_share"] == pytest.approx(1 / 5)
    assert metrics["exprl/steps_per_trace_1"] == pytest.approx(2 / 5)  # the bare answer and the overlong one
    assert metrics["exprl/steps_per_trace_4-7"] == pytest.approx(3 / 5)
    assert metrics["exprl/steps_per_trace_mean"] == pytest.approx((4 + 4 + 1 + 1 + 5) / 5)
    assert (metrics["exprl/judge_ok"], metrics["exprl/judge_timeout"], metrics["exprl/judge_error"]) == (4.0, 1.0, 0.0)
    assert metrics["exprl/judge_calls"] == 5.0
    sparse = batch_metrics(rollouts, [0, 0, 1, 1, 2], judge_statuses=None)  # sparse GRPO: no judge keys
    assert "exprl/dense_reward_mean" not in sparse and "exprl/unscorable_share" not in sparse
    assert sparse["exprl/bare_answer_share"] == metrics["exprl/bare_answer_share"]


def test_step_position_advantages_show_where_deltanorm_puts_the_credit():
    # Prefix scores 0.25, 0.5, 0.75, 1.0 of a right chain: DeltaNorm debits step 1 by what follows.
    right_chain = [0.25 - 1.0, 0.25, 0.25, 0.25]
    one_step = [0.0]
    metrics = step_position_advantages([right_chain, one_step, None, [0.5, -0.5]])
    assert metrics["exprl/process_advantage_step_1"] == pytest.approx((-0.75 + 0.0 + 0.5) / 3)
    assert metrics["exprl/process_advantage_step_2"] == pytest.approx((0.25 - 0.5) / 2)
    assert metrics["exprl/process_advantage_step_4"] == pytest.approx(0.25)
    assert "exprl/process_advantage_step_5" not in metrics
    assert metrics["exprl/process_advantage_step_last"] == pytest.approx((0.25 - 0.5) / 2)  # multi-step rollouts only
    assert batch_metrics([], [], STATUSES, step_advantages=[right_chain])["exprl/process_advantage_step_1"] == -0.75


def test_rollouts_the_overlong_policy_left_unjudged_are_not_unscorable():
    cut = Rollout(overlong=True, correct=0.0, step_rewards=[0.0], judgments=[], traits=read_traits("x", 128))
    assert batch_metrics([cut], [0], STATUSES)["exprl/unscorable_share"] == 0.0


# ---------------------------------------------------------------------------------------------
# Scripted runs

STEPS = 80
BATCH = 32


def lerp(start: float, end: float, step: int, first: int = 1, last: int = STEPS) -> float:
    """From `start` at step `first` to `end` at step `last`, in a straight line, flat outside."""
    return start + (end - start) * min(max((step - first) / (last - first), 0.0), 1.0)


CLEAN = {problem.id: clean_traces(problem) for problem in PROBLEMS}


@functools.lru_cache(maxsize=None)
def attacked(family: str, problem_index: int, right: bool) -> str:
    problem, clean = PROBLEMS[problem_index], CLEAN[PROBLEMS[problem_index].id]
    base, answer = (clean.right, problem.answer) if right else (clean.wrong, clean.wrong_answer)
    return attack(family, problem, base, answer)


class Script:
    """One scripted run: at each step, what share of rollouts does what, and the judge's reward."""

    def __init__(self, *, correct: Callable[[int], float] = lambda s: 0.3,
                 reward_of_wrong: Callable[[int], float] = lambda s: 0.25,
                 hack: str | None = None, hack_share: Callable[[int], float] = lambda s: 0.0,
                 collapse: Callable[[int], float] = lambda s: 0.0, overlong: Callable[[int], float] = lambda s: 0.02,
                 unscorable: Callable[[int], float] = lambda s: 0.0):
        self.correct, self.reward_of_wrong, self.hack, self.hack_share = correct, reward_of_wrong, hack, hack_share
        self.collapse, self.overlong, self.unscorable = collapse, overlong, unscorable

    def batch(self, step: int, rng: random.Random) -> list[Rollout]:
        rollouts = []
        for i in range(BATCH):
            problem = PROBLEMS[i % len(PROBLEMS)]
            clean = CLEAN[problem.id]
            right = rng.random() < self.correct(step)
            text = clean.right if right else clean.wrong
            reward = 1.0 if right else self.reward_of_wrong(step) + rng.uniform(-0.05, 0.05)
            tokens = len(text) // 3
            if self.hack is not None and rng.random() < self.hack_share(step):
                text = attacked(self.hack, i % len(PROBLEMS), right)
            if rng.random() < self.collapse(step):
                text = text.replace("### ", "")
            cut = rng.random() < self.overlong(step)
            if cut:
                text, tokens, reward, right = text + " and so on" * 200, 1024, 0.0, False
            failed = not cut and rng.random() < self.unscorable(step)
            rollouts.append(Rollout(overlong=cut, correct=float(right), step_rewards=[None if failed else reward],
                                    judgments=[] if cut else [FAILED if failed else OK],
                                    traits=read_traits(text, tokens)))
        return rollouts


def run_script(script: Script, signal: str = "outcome", config: MonitorConfig | None = None,
               seed: int = 0) -> tuple[list[Alert], list[dict[str, float]]]:
    rng = random.Random(seed)
    monitor = Monitor(config or MonitorConfig(), signal)
    alerts, rows = [], []
    for step in range(1, STEPS + 1):
        row = batch_metrics(script.batch(step, rng), [i // 8 for i in range(BATCH)],
                            STATUSES if signal != "sparse" else None)
        rows.append(row)
        alerts += monitor.observe(step, {"step": step, "loss": 0.1, **row})
    return alerts, rows


HONEST = dict(correct=lambda s: lerp(0.2, 0.6, s), reward_of_wrong=lambda s: lerp(0.2, 0.35, s))
HACKED = dict(reward_of_wrong=lambda s: lerp(0.2, 1.0, s, 20, 60))  # the judge pays wrong traces more and more


@pytest.mark.parametrize("signal", ["outcome", "process", "sparse"])
def test_an_honest_run_fires_no_alert(signal):
    alerts, rows = run_script(Script(**HONEST), signal)
    assert alerts == []
    assert rows[-1]["exprl/sparse_correct"] > rows[0]["exprl/sparse_correct"] + 0.2  # it does learn


def test_judge_reward_rising_over_flat_correctness_is_reward_hacking():
    alerts, rows = run_script(Script(**HACKED))
    assert [a.name for a in alerts] == ["reward_hacking"]
    alert = alerts[0]
    window = MonitorConfig().hacking_window
    assert alert.step >= window and alert.value >= alert.threshold == MonitorConfig().hacking_reward_rise
    assert "sparse correctness changed by" in alert.message and alert.record()["record"] == "alert"
    # Both rise together: no alert, however fast the judge's reward climbs.
    assert run_script(Script(correct=lambda s: lerp(0.2, 0.8, s, 20, 60), **HACKED))[0] == []
    # Correctness falling while the judge's reward rises is the same signature.
    falling, _ = run_script(Script(correct=lambda s: lerp(0.4, 0.1, s), **HACKED))
    assert [a.name for a in falling] == ["reward_hacking"]
    # Sparse GRPO has no judge reward to game.
    assert run_script(Script(**HACKED), "sparse")[0] == []


def test_delimiter_collapse_fires_for_process_rollouts_only():
    script = Script(**HONEST, collapse=lambda s: lerp(0.0, 1.0, s))
    alerts, rows = run_script(script, "process")
    assert [a.name for a in alerts] == ["delimiter_collapse"]
    smoothed = [sum(r["exprl/steps_per_trace_1"] for r in rows[max(0, i - 4):i + 1]) / len(rows[max(0, i - 4):i + 1])
                for i in range(len(rows))]
    assert alerts[0].step == 1 + next(i for i, share in enumerate(smoothed) if share >= 0.5)
    assert rows[-1]["exprl/steps_per_trace_mean"] < 1.2 < rows[0]["exprl/steps_per_trace_mean"]
    assert run_script(script, "outcome")[0] == []  # one step is no collapse where steps earn nothing


@pytest.mark.parametrize("family, name", [("bare_answer", "bare_answers"), ("number_list", "number_lists"),
                                          ("range", "number_lists")])
def test_attack_families_spreading_through_the_batch_fire_their_alert(family, name):
    alerts, rows = run_script(Script(hack=family, hack_share=lambda s: lerp(0.0, 0.6, s)))
    assert [a.name for a in alerts] == [name]
    key = "exprl/bare_answer_share" if name == "bare_answers" else "exprl/number_list_share"
    assert rows[0][key] < alerts[0].threshold <= alerts[0].value
    # Attacks that the detectors do not look for leave the shares alone.
    quiet_families = set(ATTACK_FAMILIES) - {"bare_answer", "number_list", "range"}
    for other in sorted(quiet_families)[:2]:
        assert run_script(Script(hack=other, hack_share=lambda s: 0.6))[0] == []


@pytest.mark.parametrize("signal", ["outcome", "sparse"])
def test_overlong_growth_fires_for_every_method(signal):
    alerts, rows = run_script(Script(**HONEST, overlong=lambda s: lerp(0.0, 0.5, s)), signal)
    assert [a.name for a in alerts] == ["overlong"]
    assert rows[-1]["exprl/response_tokens_mean"] > 3 * rows[0]["exprl/response_tokens_mean"]


def test_a_failing_judge_fires_unscorable():
    alerts, _ = run_script(Script(**HONEST, unscorable=lambda s: 0.0 if s < 40 else 0.3))
    assert [(a.name, a.step >= 40) for a in alerts] == [("unscorable", True)]


def test_each_alert_fires_once_and_thresholds_are_the_configs():
    everything = Script(**HACKED, hack="number_list", hack_share=lambda s: 0.5, collapse=lambda s: 0.8,
                        overlong=lambda s: 0.4, unscorable=lambda s: 0.2)
    alerts, _ = run_script(everything, "process")
    assert sorted(a.name for a in alerts) == sorted(set(ALERTS) - {"bare_answers"})
    overlong = next(a for a in alerts if a.name == "overlong")
    assert overlong.threshold == MonitorConfig().overlong_share and overlong.value >= overlong.threshold
    quiet = MonitorConfig(overlong_share=None, one_step_share=0.95, hacking_reward_rise=None, unscorable_share=None,
                          number_list_share=None, bare_answer_share=None)
    assert run_script(everything, "process", quiet)[0] == []
    assert run_script(everything, "process", MonitorConfig(enabled=False))[0] == []


def test_a_resumed_run_does_not_fire_again_and_keeps_its_window():
    script = Script(**HACKED, overlong=lambda s: 0.3)
    rng = random.Random(0)
    rows = [{"step": s, **batch_metrics(script.batch(s, rng), [0] * BATCH, STATUSES)} for s in range(1, STEPS + 1)]
    first = Monitor(MonitorConfig(), "outcome")
    logged: list[dict] = []
    for row in rows[:50]:
        logged.append(row)
        logged += [a.record() for a in first.observe(row["step"], row)]
    assert [r["name"] for r in logged if r.get("record") == "alert"] == ["overlong", "reward_hacking"]
    resumed = Monitor(MonitorConfig(), "outcome")
    resumed.restore(logged)
    assert [a for row in rows[70:] for a in resumed.observe(row["step"], row)] == []
    # Without the overlong alert on record, the resumed monitor would fire it at once: the history is kept.
    fresh = Monitor(MonitorConfig(), "outcome")
    fresh.restore([r for r in logged if not (r.get("record") == "alert" and r["name"] == "overlong")])
    assert [a.name for a in fresh.observe(rows[70]["step"], rows[70])] == ["overlong"]


def test_rows_without_monitor_keys_are_ignored():
    monitor = Monitor(MonitorConfig(), "outcome")
    assert monitor.observe(3, {"step": 3, "train_runtime": 12.0, "eval_exprl/overlong_share": 1.0}) == []
    assert monitor.history == []


def test_monitor_section_of_a_recipe(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("monitor:\n  overlong_share: 0.4\n  hacking_reward_rise: null\n")
    config = load_config(MonitorConfig, recipe, section="monitor")
    assert config.overlong_share == 0.4 and config.hacking_reward_rise is None and config.one_step_share == 0.5
    recipe.write_text("monitor:\n  bare_answer_share: 1.5\n")
    with pytest.raises(ConfigError, match=r"'bare_answer_share' must be in \(0, 1\], got 1.5"):
        load_config(MonitorConfig, recipe, section="monitor")
    with pytest.raises(ConfigError, match="'hacking_window' must be at least 2"):
        load_config(MonitorConfig, None, ["hacking_window=1"])
