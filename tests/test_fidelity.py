"""The paper recipes' settings behave as the official code does (issue 23).

For each row of the fidelity table that exprl implements, a small transcription of the official
logic, in this file's own words (read from violetxi/ExpRL's `ray_trainer_genrm.py` and
`core_algos.py`, paraphrased in method.md §2.3-2.7), is run beside exprl's function under the
official setting on a few hundred seeded random inputs. The transcriptions keep the official
code's order of operations, which is what decides the T = 1 advantage and the NA cases. Where
exprl deliberately does not reproduce the official code (`exprl.train.fidelity.FIXED`, kind
kept-out) the test asserts that exact case and nothing else differs.

Then the recipes: every `paper-*` recipe plans with no departing setting, and each `exprl-*`
recipe differs from its `paper-*` recipe in fidelity switches only.
"""
from __future__ import annotations

import math
import random
from collections import deque

import pytest

from exprl.recipes import read_yaml
from exprl.judge.parsing import first_score, parse_score
from exprl.rewards.advantages import apply_overlong, apply_overlong_steps, outcome_advantages, process_advantages
from exprl.rewards.record import Rollout, tokens_per_step
from exprl.rewards.steps import decoded_offsets, token_end_steps

CASES = 400
OFFICIAL_EPS = 1e-6


# ---------------------------------------------------------------- transcriptions of the official logic
def official_score(answer: str) -> int | str:
    """The official reading of a judge answer: a digit, or 'NA' where its try block fails."""
    try:
        if "Score:" in answer:
            tail = answer.split("Score:")[1].lstrip().split("\n")[0]
        elif "Score" in answer:
            tail = answer.split("Score")[1].lstrip().split("\n")[0]
        else:
            raise ValueError("no score")
        return int(tail.replace("*", "").lstrip()[0])
    except (ValueError, IndexError):
        return "NA"


def official_steps(ids: list[int], decode, lookback: int = 10) -> list[int]:
    """The official step id (from 1) of every token: a window of the last `lookback` tokens is
    decoded at each token (special tokens as their text) and a step closes where it ends with ###."""
    marks = [0] * len(ids)
    window: deque[int] = deque(maxlen=lookback)
    last, step = 0, 1
    for i, token in enumerate(ids):
        window.append(token)
        if decode(list(window), skip_special_tokens=False).endswith("###"):
            for j in range(last, i + 1):
                marks[j] = step
            last, step = i + 1, step + 1
    for j in range(last, len(ids)):
        marks[j] = step
    return marks


def official_process_rewards(scores: list[float | None], marks: list[int], clipped: bool) -> list[float]:
    """The official per-token process reward for DeltaNorm, written in the code's order: each
    scored step writes its difference with the previous scored step over its tokens, the last one
    first subtracts its score from the first step's tokens; an NA step writes -100."""
    reward = [0.0] * len(marks)
    previous = 0.0
    for t, score in enumerate(scores):
        span = [i for i, m in enumerate(marks) if m == t + 1]
        if score is None:
            for i in span:
                reward[i] = -100.0
            continue
        difference, previous = score - previous, score
        if t == len(scores) - 1:
            for i, m in enumerate(marks):
                if m == 1:
                    reward[i] -= score
        for i in span:
            reward[i] = difference
    if clipped and -100.0 not in reward:
        reward = [0.0] * len(marks)
    return reward


def official_outcome_advantages(answers: list[str], lengths: list[int], cap: int, groups: list[int]):
    """compute_genrm_score then verl's GRPO: a readable score is (d - 1)/4 (0 at the cap), an NA
    leaves the reward 0 and masks the rollout; every rollout of a prompt enters its group's mean
    and unbiased std. Returns (advantage or None per rollout), or 'stops' when a digit outside 1-5
    trips the official assertion that rewards lie in [0, 1], or 'odd digit' when such a digit was
    zeroed by the cap first (trained at 0 officially, unscorable in exprl: kept-out)."""
    rewards, keep, odd = [], [], False
    for answer, length in zip(answers, lengths):
        digit = official_score(answer)
        if digit == "NA":
            rewards.append(0.0)
            keep.append(False)
            continue
        score = (digit - 1) / 4
        if length == cap:
            score = 0.0
        if not 0 <= score <= 1:
            return "stops"
        odd = odd or not 1 <= digit <= 5
        rewards.append(score)
        keep.append(True)
    if odd:
        return "odd digit"
    advantages = []
    for i, reward in enumerate(rewards):
        members = [rewards[j] for j in range(len(rewards)) if groups[j] == groups[i]]
        mean = sum(members) / len(members)
        std = math.sqrt(sum((m - mean) ** 2 for m in members) / (len(members) - 1))
        advantages.append((reward - mean) / (std + OFFICIAL_EPS) if keep[i] else None)
    return advantages


# ---------------------------------------------------------------- random inputs
PIECES = ["Score:", "Score", "score:", "SCORE:", "Score: ", "**", "*", " ", "  ", "\n", "\n\n", "[", "]", "/5",
          "Reasoning:", "the step", "0", "1", "2", "3", "4", "5", "6", "9", "10", "٣", "²", "x"]


def judge_answer(rng: random.Random) -> str:
    """A judge's answer: mostly well-formed, often decorated, sometimes broken."""
    if rng.random() < 0.5:
        digit = rng.choice("12345" if rng.random() < 0.9 else "06789")
        form = rng.choice(["Score: {d}", "**Score:** {d}", "Score: **{d}**", "Score:\n\n{d}", "Score: [{d}]",
                           "Score {d}", "Score: {d}/5", "**Score**: {d}", "score: {d}"])
        return rng.choice(["", "Reasoning: checkpoint 2 is reached.\n", "Reasoning: Score: 3 would be fair.\n"]) + \
            form.format(d=digit) + rng.choice(["", "\n", "\nScore: 1", " because"])
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))


def test_score_parsing_reads_what_the_official_code_reads():
    rng = random.Random(0)
    seen = {"digit": 0, "NA": 0}
    for _ in range(CASES * 3):
        answer = judge_answer(rng)
        official = official_score(answer)
        ours = parse_score(answer, rule="first-score")
        if official == "NA" or not 1 <= official <= 5:
            # kept-out: a digit outside 1-5 stops the official outcome run; exprl calls it unscorable
            assert ours is None, answer
            seen["NA"] += 1
        else:
            assert ours == official, answer
            seen["digit"] += 1
        assert first_score(answer) == ours
    assert min(seen.values()) > 100  # both kinds were drawn


@pytest.fixture(scope="module")
def tokenizers():
    """A byte-level BPE that merges `###` with its neighbours (so some tokens go on past a marker),
    and exprl's char tokenizer with `###` as one word token."""
    from exprl.tiny import build_char_tokenizer
    from testing.bpe import byte_level_bpe

    bpe = byte_level_bpe(["step\n###\nnext ### step\n####\n x = 12 ### é ü ###."] * 50)
    return [bpe, build_char_tokenizer(words=("###",))]


TRACE_PIECES = ["###", "#", "##", "####", "\n", " ", "step", "x = 12", "é", "ü", "\n###\n", ".###", "### a", "\n\n"]


def test_segmentation_closes_where_the_official_window_does(tokenizers):
    rng = random.Random(1)
    empty_steps = 0
    for case in range(CASES):
        tokenizer = tokenizers[case % len(tokenizers)]
        text = "".join(rng.choice(TRACE_PIECES) for _ in range(rng.randint(0, 14)))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if ids and rng.random() < 0.2:  # a special token inside the trace: text in the official window only
            at = rng.randrange(len(ids))
            ids = ids[:at] + [tokenizer.eos_token_id] + ids[at:]
        if rng.random() < 0.8:
            ids = ids + [tokenizer.eos_token_id]
        if not ids:
            continue
        marks = official_steps(ids, tokenizer.decode)
        decoded, offsets = decoded_offsets(ids, tokenizer)
        steps, token_steps = token_end_steps(decoded, offsets)
        assert [s + 1 for s in token_steps] == marks, (text, ids)
        # what the official code shows the judge for step t: its tokens decoded alone
        official_texts = [tokenizer.decode([i for i, m in zip(ids, marks) if m == t], skip_special_tokens=True)
                          for t in range(1, max(marks) + 1)]
        assert [s.text for s in steps] == official_texts, (text, ids)
        empty_steps += sum(not s.text.replace("###", "").strip() for s in steps)
    assert empty_steps > 50  # leading, repeated and trailing markers were drawn


def test_delta_norm_and_na_handling_follow_the_official_update_order():
    rng = random.Random(2)
    leaks = compared = single = 0
    for _ in range(CASES):
        steps = rng.choice([1, 1, 2, 3, 5])
        counts = [rng.randint(1, 4) for _ in range(steps)]
        marks = [t + 1 for t, n in enumerate(counts) for _ in range(n)]
        answers = [judge_answer(rng) if rng.random() < 0.2 else f"Reasoning: ok\nScore: {rng.randint(1, 5)}"
                   for _ in range(steps)]
        digits = [official_score(a) for a in answers]
        if any(d != "NA" and not 1 <= d <= 5 for d in digits):
            continue  # kept-out: covered by the parsing test
        scores = [None if d == "NA" else (d - 1) / 4 for d in digits]
        clipped = rng.random() < 0.2
        official = official_process_rewards(scores, marks, clipped)
        masked = -100.0 in official

        rewards = [None if (s := parse_score(a, rule="first-score")) is None else (s - 1) / 4 for a in answers]
        assert rewards == scores
        rollout = Rollout(overlong=clipped, correct=0.0, step_rewards=rewards,
                          tokens_per_step=tokens_per_step([m - 1 for m in marks], steps))
        zeroed = apply_overlong_steps([rollout.step_rewards], [clipped], "zero-after-judge")
        [ours] = process_advantages(zeroed, [0], mode="delta", single_step="raw")
        if (not masked and scores[0] is None and scores[-1] is not None and steps > 1
                and (clipped or scores[-1] > 0)):
            # kept-out: the official first-step sentinel minus s_T escapes the NA check
            assert ours is None
            assert clipped or official[0] == -100.0 - scores[-1]
            leaks += 1
            continue
        compared += 1
        single += steps == 1
        if masked:
            assert ours is None
        else:
            assert rollout.token_advantages(ours) == pytest.approx(official, abs=1e-12)
    assert compared > 250 and single > 80 and leaks > 0


def test_outcome_rewards_na_and_overlong_follow_the_official_code():
    rng = random.Random(3)
    cap, compared, stopped = 50, 0, 0
    for _ in range(CASES):
        size = rng.choice([2, 4, 10])
        groups = [i // size for i in range(size * rng.randint(1, 3))]
        answers = [judge_answer(rng) if rng.random() < 0.3 else f"Score: {rng.randint(1, 5)}" for _ in groups]
        lengths = [rng.choice([cap, cap - 1, 10]) for _ in groups]
        ends_with_eos = [rng.random() < 0.5 for _ in groups]
        official = official_outcome_advantages(answers, lengths, cap, groups)
        from exprl.rewards.rollouts import overlong_flags

        ids = [[7] * (n - 1) + [0 if eos else 7] for n, eos in zip(lengths, ends_with_eos)]
        overlong = overlong_flags(ids, {0}, cap, "at-cap")
        assert overlong == [n == cap for n in lengths]
        rewards = [None if (s := parse_score(a, rule="first-score")) is None else (s - 1) / 4 for a in answers]
        ours = outcome_advantages(apply_overlong(rewards, overlong, "zero-after-judge"), groups, "std", "zero-in-group")
        if official in ("stops", "odd digit"):
            # kept-out: exprl reads a digit outside 1-5 as unscorable
            assert any(official_score(a) not in ("NA", 1, 2, 3, 4, 5) and r is None for a, r in zip(answers, rewards))
            stopped += 1
            continue
        compared += 1
        assert [a is None for a in ours] == [a is None for a in official]
        # verl computes in float32; these are the same float64 formulas
        assert [a for a in ours if a is not None] == pytest.approx([a for a in official if a is not None], abs=1e-9)
    assert compared > 250 and stopped > 0


def test_judge_prompt_under_the_official_settings_shows_problem_trace_reference_whole():
    from exprl.judge.prompts import PromptStyle, build_prompt, trace_char_budget
    from exprl.judge.types import JudgeConfig, JudgeRequest

    config = read_judge("paper-exprl-outcome")
    style = PromptStyle.of(config)
    rng = random.Random(4)
    for _ in range(CASES // 4):
        problem, trace, reference = ("".join(rng.choice(TRACE_PIECES + ["Find x.", "UNTRUSTED", "<<<"])
                                             for _ in range(rng.randint(1, 40))).strip() or "p" for _ in range(3))
        trace = trace * rng.choice([1, 200])  # long traces too: the official judge sees them whole
        for mode in ("outcome", "segment"):
            prompt = build_prompt(JudgeRequest(problem=problem, reference=reference, trace=trace, mode=mode), style,
                                  max_trace_chars=trace_char_budget(config.max_trace_tokens))
            user = prompt.messages[1]["content"]
            assert not prompt.truncated
            at_problem = user.index(problem)
            at_trace = user.index("\n" + trace + "\n\n", at_problem + len(problem)) + 1
            at_reference = user.index(reference, at_trace + len(trace))
            assert at_problem < at_trace < at_reference
            assert user[at_trace - 1] == "\n" and not user[:at_trace].rstrip().endswith(">>>")  # no fence line
            assert "untrusted" not in prompt.messages[0]["content"].lower()


def read_judge(recipe: str):
    from exprl.config import from_dict
    from exprl.judge.types import JudgeConfig

    return from_dict(JudgeConfig, read_yaml(recipe)["judge"])


def test_sft_user_only_prompt_is_the_problem_alone():
    from exprl.data.problem import Problem
    from exprl.train.config import load_train_config
    from exprl.train.runner import build_rows

    config = load_train_config("paper-sft")
    rng = random.Random(5)
    problems = [Problem(id=str(i), problem="".join(rng.choice(TRACE_PIECES) for _ in range(8)) + " ?",
                        reference="r", answer="1") for i in range(50)]
    for problem, row in zip(problems, build_rows(problems, config)):
        assert row["prompt"] == [{"role": "user", "content": problem.problem}]


# ---------------------------------------------------------------- the recipes
PAPER = {"paper-exprl-outcome": 6, "paper-exprl-process": 6, "paper-grpo": 8, "paper-sft": 8,
         "paper-self-distill": 8, "paper-stage2": 8}
VARIANTS = {"exprl-outcome": "paper-exprl-outcome", "exprl-process": "paper-exprl-process", "exprl-sft": "paper-sft"}


@pytest.mark.parametrize("recipe", sorted(PAPER))
def test_paper_recipes_depart_from_the_official_code_in_no_setting(recipe):
    from exprl.train.config import load_train_config
    from exprl.train.plan import plan_stage

    plan = plan_stage(load_train_config(recipe), PAPER[recipe], "train", recipe)
    assert [d for d in plan.departures if d["kind"] == "switch"] == []
    assert {d["kind"] for d in plan.departures} <= {"trl", "kept-out", "wording"}
    assert all(d["effect"] for d in plan.departures)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_exprl_recipes_differ_from_paper_recipes_in_switches_only(variant):
    from exprl.recipes.cli import recipe_differences
    from exprl.train.config import load_train_config
    from exprl.train.fidelity import OFFICIAL
    from exprl.train.plan import plan_stage

    paper = VARIANTS[variant]
    changed = {key for key, _, _ in recipe_differences(read_yaml(paper), read_yaml(variant))}
    assert changed
    config = load_train_config(variant)
    official = OFFICIAL[("stage1", config.method)]
    assert changed <= set(official), changed - set(official)
    plan = plan_stage(config, PAPER[paper], "train", variant)
    departed = {d["key"] for d in plan.departures if d["kind"] == "switch"}
    # every changed switch shows in the plan, except those that do not act under this method
    assert departed <= changed and departed


def test_method_defaults_hold_the_official_values():
    """exprl's per-method TRL defaults (what a recipe gets when it says nothing) are the official
    values wherever the fidelity table states one."""
    from exprl.train.config import method_defaults
    from exprl.train.fidelity import OFFICIAL

    for method in ("exprl-outcome", "exprl-process", "grpo", "self-distill", "sft"):
        defaults = method_defaults(method)
        for key, value in OFFICIAL[("stage1", method)].items():
            name = key.removeprefix("trl.")
            if key.startswith("trl.") and name in defaults:
                assert defaults[name] == value or (value is None and defaults[name] in (None, 0)), (method, key)
