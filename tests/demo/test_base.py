"""The demo's base model: whole-number tokens, pre-training on policy-style easy traces, caching."""
from __future__ import annotations

import json

import pytest

from exprl.data.synthetic import SyntheticTaskConfig, generate, policy_trace
from exprl.demo.base import BaseModelConfig, cache_key, pretrain_base
from exprl.tiny import build_char_tokenizer


def test_whole_number_tokens_round_trip_and_shorten_traces():
    plain, numbers = build_char_tokenizer(), build_char_tokenizer(number_tokens=100)
    for p in generate(SyntheticTaskConfig(num_problems=20, min_steps=5, max_steps=6)):
        text = policy_trace(p) + " 100 7 123"
        ids = numbers(text, add_special_tokens=False)["input_ids"]
        assert numbers.decode(ids) == text
        assert len(ids) < len(plain(text, add_special_tokens=False)["input_ids"])
    tokens = numbers.convert_ids_to_tokens(numbers("= 78", add_special_tokens=False)["input_ids"])
    assert tokens[-1] == "78"
    assert len(numbers) == len(plain) + 90


def test_cache_key_changes_with_anything_the_weights_depend_on():
    base, task = BaseModelConfig(), SyntheticTaskConfig()
    key = cache_key(base, [task], None)
    assert key == cache_key(BaseModelConfig(), [SyntheticTaskConfig()], None)
    assert key != cache_key(BaseModelConfig(steps=7), [task], None)
    assert key != cache_key(base, [SyntheticTaskConfig(seed=1)], None)
    assert key != cache_key(base, [task], "Be brief.")


@pytest.mark.slow
def test_pretraining_learns_the_trace_format_and_is_reused(tmp_path):
    base = BaseModelConfig(hidden_size=32, num_layers=1, num_heads=2, steps=60, batch_size=16,
                           num_problems=300, learning_rate=1e-2, warmup_steps=5, check_every=20,
                           check_problems=4)
    task = SyntheticTaskConfig(min_steps=1, max_steps=3, split="pretrain")
    logs: list[str] = []
    path = pretrain_base(base, [task], tmp_path, system_prompt=None, log=logs.append)
    done = json.loads((path / "base_done.json").read_text())
    assert [c["step"] for c in done["checks"]] == [20, 40, 60]  # 60 steps cannot reach 90% greedy
    assert done["checks"][-1]["loss"] < done["checks"][0]["loss"]  # it learnt something of the traces

    again: list[str] = []
    assert pretrain_base(base, [task], tmp_path, system_prompt=None, log=again.append) == path
    assert again == [f"base model: reusing {path}"]


@pytest.mark.slow
def test_pretraining_stops_at_the_first_competent_check(tmp_path, monkeypatch):
    import exprl.demo.base as base_module

    scores = iter([0.5, 0.95, 1.0])
    monkeypatch.setattr(base_module, "easy_greedy_accuracy", lambda *args: next(scores))
    base = BaseModelConfig(hidden_size=32, num_layers=1, num_heads=2, steps=500, batch_size=8,
                           num_problems=100, check_every=10, check_problems=3)
    path = pretrain_base(base, [SyntheticTaskConfig(min_steps=1, max_steps=2, split="pretrain")], tmp_path,
                         system_prompt=None, log=lambda m: None)
    done = json.loads((path / "base_done.json").read_text())
    assert done["steps_trained"] == 20
    assert [c["easy_greedy"] for c in done["checks"]] == [0.5, 0.95]


class ScriptedModel:
    """A stand-in for the base model whose greedy completion of each problem's prompt is scripted:
    `easy_greedy_accuracy` then has one right value, known in advance."""

    def __init__(self, tokenizer, completions: dict[str, str]):
        self.tokenizer, self.completions, self.training, self.device = tokenizer, completions, True, "cpu"

    def eval(self):
        self.training = False

    def train(self):
        self.training = True

    def generate(self, input_ids, attention_mask, do_sample, max_new_tokens, pad_token_id):
        import torch

        assert do_sample is False and not self.training  # greedy, in eval mode
        prompts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        texts = [next(text for problem, text in self.completions.items() if problem in prompt) for prompt in prompts]
        new = [self.tokenizer(t, add_special_tokens=False)["input_ids"][:max_new_tokens] for t in texts]
        width = max(map(len, new))
        tail = torch.tensor([ids + [pad_token_id] * (width - len(ids)) for ids in new])
        return torch.cat([input_ids, tail], dim=1)


def test_competence_check_is_the_share_of_greedy_completions_boxing_the_answer():
    from exprl.demo.base import easy_greedy_accuracy

    tokenizer = build_char_tokenizer(number_tokens=100)
    problems = generate(SyntheticTaskConfig(num_problems=4, min_steps=1, max_steps=3, seed=11))
    assert len({p.answer for p in problems}) > 1
    other = {p.id: next(q.answer for q in problems if q.answer != p.answer) for p in problems}
    right, wrong = policy_trace, lambda p: policy_trace(p).replace(f"\\boxed{{{p.answer}}}", f"\\boxed{{{other[p.id]}}}")
    scripts = [
        ([right, right, right, right], 1.0),
        ([right, wrong, right, right], 0.75),
        # the last boxed answer counts: a right one boxed before a wrong one is wrong
        ([right, lambda p: right(p) + f" \\boxed{{{other[p.id]}}}", wrong, right], 0.5),
        ([wrong, wrong, wrong, wrong], 0.0),
        ([lambda p: f"### {p.answer}", wrong, wrong, wrong], 0.0),  # the answer written but never boxed
    ]
    for writers, expected in scripts:
        model = ScriptedModel(tokenizer, {p.problem: write(p) for p, write in zip(problems, writers)})
        assert easy_greedy_accuracy(model, tokenizer, problems, None) == expected, expected
        assert model.training  # the pre-training loop goes on in train mode


@pytest.mark.slow
def test_competence_check_scores_greedy_answers(tmp_path):
    from exprl.demo.base import easy_greedy_accuracy
    from exprl.tiny import build_tiny_model

    tokenizer = build_char_tokenizer(number_tokens=100)
    model = build_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2)
    problems = generate(SyntheticTaskConfig(num_problems=3, min_steps=1, max_steps=1))
    assert easy_greedy_accuracy(model, tokenizer, problems, None) == 0.0  # an untrained model boxes nothing right
    assert model.training  # the pre-training loop goes on in train mode


def test_word_tokens_round_trip_and_shorten_the_task_more_than_twice():
    from exprl.data.prompts import policy_messages
    from exprl.data.synthetic import TOKEN_WORDS

    numbers, words = build_char_tokenizer(number_tokens=100), build_char_tokenizer(number_tokens=100, words=TOKEN_WORDS)
    problems = generate(SyntheticTaskConfig(num_problems=30, min_steps=1, max_steps=8, operations=["add", "sub", "mul"]))
    lengths = {"numbers": 0, "words": 0}
    for p in problems:
        text = words.apply_chat_template(policy_messages(p.problem, None), add_generation_prompt=True,
                                         tokenize=False) + policy_trace(p)
        for name, tokenizer in (("numbers", numbers), ("words", words)):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.decode(ids) == text
            lengths[name] += len(ids)
    assert lengths["words"] * 2 < lengths["numbers"]
    # Any other text still round-trips: word tokens only add merges.
    other = "Start here: Add more ###, then \\boxed{x} = 7 - 3 * 2."
    assert words.decode(words(other, add_special_tokens=False)["input_ids"]) == other


def test_slipped_traces_slip_at_the_rate_at_every_position_and_go_on_from_the_slip():
    import random

    from exprl.data.answers import last_boxed
    from exprl.data.synthetic import check_steps, slipped_trace

    problems = generate(SyntheticTaskConfig(num_problems=400, min_steps=8, max_steps=8, modulus=97, split="slips"))
    rng = random.Random(0)
    slipped = [0] * 8
    for problem in problems:
        trace = slipped_trace(problem, 0.3, rng)
        checks = check_steps(problem, trace)
        # Only the arithmetic slips: each step reads its operation and goes on from the value stated before it.
        assert len(checks) == 8 and all(c.operation and c.input and c.in_turn for c in checks)
        for position, check in enumerate(checks):
            slipped[position] += not check.arithmetic
        assert last_boxed(trace) == trace.split("\n")[-2].rsplit("= ", 1)[1]
    assert all(0.22 < count / 400 < 0.38 for count in slipped), slipped
    assert slipped_trace(problems[0], 0.0, rng) == policy_trace(problems[0])


def test_a_slip_rate_trains_another_base_and_no_slips_keep_the_old_key():
    task = SyntheticTaskConfig(num_problems=4)
    assert cache_key(BaseModelConfig(slip_rate=0.3), [task], None) != cache_key(BaseModelConfig(), [task], None)
    # The key clean bases were cached under before slips existed (format 4).
    assert cache_key(BaseModelConfig(), [], None) == "a5d0b05b56132361"
