"""Real training steps on tiny models: every method, per-token process advantages, unscorable
rollouts, resume. The judge is a real OpenAI-compatible HTTP server on 127.0.0.1 (the loopback
server scores by a stable hash of the request, so groups get varied scores)."""
from __future__ import annotations

import json

import pytest
import torch

from exprl.errors import ConfigError, RunStateError
from testing.loopback import LoopbackJudgeServer
from exprl.judge.types import JudgeConfig
from exprl.rewards.advantages import process_advantages
from exprl.rewards.steps import split_steps
from exprl.train.callbacks import StopAfterStepsCallback
from exprl.train.config import DataConfig, TrainConfig
from exprl.train.runner import run_training
from exprl.train.trainer import ExpRLTrainer

METHODS = ["exprl-outcome", "exprl-process", "grpo", "sft", "self-distill"]


@pytest.fixture(scope="module")
def judge_server():
    with LoopbackJudgeServer() as server:
        yield server


def make_config(method, model, problems_file, server=None, **trl):
    judge = JudgeConfig(backend="openai", base_urls=[server.base_url] if server else [], model="loopback",
                        cache_path="", max_retries=0)
    if method == "sft":
        base = dict(max_steps=2, per_device_train_batch_size=2, max_length=256)
    else:
        base = dict(max_steps=2, per_device_train_batch_size=4, num_generations=4, max_completion_length=24)
    base.update(learning_rate=1e-3, weight_decay=0.0, save_steps=1, **trl)
    return TrainConfig(method=method, model=str(model), data=DataConfig(train_files=[str(problems_file)]),
                       judge=judge, trl=base)


def load_weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_real_steps_change_the_parameters(method, answer_model, problems_file, judge_server, tmp_path):
    result = run_training(make_config(method, answer_model, problems_file, judge_server), tmp_path / "run")
    assert result.global_step == 2 and not result.already_done
    before, after = load_weights(answer_model), load_weights(result.checkpoint_dir)
    changed = [name for name in before if name in after and not torch.equal(before[name], after[name])]
    assert changed, f"{method}: no parameter changed after 2 steps"
    rows = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    if method in ("exprl-outcome", "exprl-process", "grpo"):
        for key in ("exprl/sparse_correct", "exprl/unsolved_share", "entropy", "kl", "completions/clipped_ratio"):
            assert key in steps[0], key
    if method in ("exprl-outcome", "exprl-process"):
        for key in ("exprl/dense_reward_mean", "exprl/judge_ok", "exprl/judge_cache_hit_rate",
                    "exprl/judge_latency_s", "exprl/steps_per_trace_mean"):
            assert key in steps[0], key
        assert sum(r["exprl/judge_ok"] for r in steps) > 0


@pytest.mark.slow
def test_process_loss_sees_each_steps_advantage_on_every_token(answer_model, problems_file, judge_server,
                                                                tmp_path, monkeypatch):
    seen_losses, generated = [], []
    original_loss, original_rewards = ExpRLTrainer._compute_loss, ExpRLTrainer._calculate_rewards

    def capture_loss(self, model, inputs):
        seen_losses.append({k: inputs[k].clone() for k in ("advantages", "completion_ids", "completion_mask")})
        return original_loss(self, model, inputs)

    def capture_rewards(self, inputs, prompts, completions, completion_ids_list):
        out = original_rewards(self, inputs, prompts, completions, completion_ids_list)
        generated.append((list(map(tuple, completion_ids_list)), [r.step_rewards for r in self._batch.rollouts],
                          self._tokenizer))
        return out

    monkeypatch.setattr(ExpRLTrainer, "_compute_loss", capture_loss)
    monkeypatch.setattr(ExpRLTrainer, "_calculate_rewards", capture_rewards)
    config = make_config("exprl-process", answer_model, problems_file, judge_server, max_steps=1)
    config.reward.single_step = "raw"  # every rollout, one step or many, gets a non-trivial advantage
    run_training(config, tmp_path / "run")

    ids_list, step_rewards, tokenizer = generated[0]
    expected = process_advantages(step_rewards, [i // 4 for i in range(len(ids_list))], single_step="raw")
    by_ids = dict(zip(ids_list, expected))
    multi_step = 0
    for batch in seen_losses:
        adv, cids, mask = batch["advantages"], batch["completion_ids"], batch["completion_mask"]
        assert adv.shape == cids.shape
        for row in range(cids.size(0)):
            n = int(mask[row].sum())
            ids = tuple(cids[row, :n].tolist())
            step_adv = by_ids[ids]
            text = tokenizer.decode(list(ids), skip_special_tokens=True)
            steps = split_steps(text)
            multi_step += len(steps) > 1
            # char tokenizer: token i is character i (special tokens close the text, in the last step)
            for i in range(n):
                char = min(i, len(text) - 1)
                t = next(k for k, s in enumerate(steps) if s.start <= char < s.end) if text else 0
                assert adv[row, i].item() == pytest.approx(step_adv[t]), (text, i)
            assert torch.all(adv[row, n:] == 0)
    assert multi_step > 0, "no multi-step trace was generated: the test checked nothing per step"


@pytest.mark.slow
def test_judging_runs_while_trl_computes_log_probs(answer_model, problems_file, judge_server, tmp_path,
                                                    monkeypatch):
    """The batch's judging is set going right after sampling: it is under way when TRL's reference
    log-prob pass starts, and the reward step takes that judging rather than starting its own."""
    events = []
    original_logps, original_rewards = ExpRLTrainer._get_per_token_logps_and_entropies, ExpRLTrainer._find_rewards

    def logps(self, *args, **kwargs):
        events.append(("log-probs", self._batch.judging is not None))
        return original_logps(self, *args, **kwargs)

    def rewards(self, inputs, completions, completion_ids, judging):
        events.append(("rewards", judging is not None and judging[0] is completion_ids))
        return original_rewards(self, inputs, completions, completion_ids, judging)

    original_start = ExpRLTrainer._start_judging

    def start(self, *args):
        events.append(("judging", True))
        return original_start(self, *args)

    monkeypatch.setattr(ExpRLTrainer, "_get_per_token_logps_and_entropies", logps)
    monkeypatch.setattr(ExpRLTrainer, "_find_rewards", rewards)
    monkeypatch.setattr(ExpRLTrainer, "_start_judging", start)
    run_training(make_config("exprl-process", answer_model, problems_file, judge_server, max_steps=1, beta=0.001),
                 tmp_path / "run")
    first_rewards = events.index(("rewards", True))
    assert events[0] == ("judging", True) and events[1][0] == "log-probs", events
    assert all(seen for _, seen in events[:first_rewards]), events
    assert events.count(("judging", True)) == 1, events  # judged once, not again in the reward step


@pytest.mark.slow
def test_static_cache_rollouts_decode_into_a_static_cache_with_compiling_allowed(
        answer_model, problems_file, judge_server, tmp_path, monkeypatch):
    """trl.cache_implementation: static reaches TRL's generate, and exprl lets transformers compile
    it (TRL forbids it for every cache; on a CPU transformers compiles nothing anyway)."""
    from transformers.cache_utils import StaticCache

    built, disable_compile = [], []
    real_init, real_generate = StaticCache.__init__, ExpRLTrainer._generate

    def init(self, *args, **kwargs):
        built.append(kwargs.get("max_cache_len"))
        real_init(self, *args, **kwargs)

    def generate(self, prompts):
        disable_compile.append(self.generation_config.disable_compile)
        return real_generate(self, prompts)

    monkeypatch.setattr(StaticCache, "__init__", init)
    monkeypatch.setattr(ExpRLTrainer, "_generate", generate)
    result = run_training(make_config("exprl-outcome", answer_model, problems_file, judge_server, max_steps=1,
                                      cache_implementation="static"), tmp_path / "run")
    assert result.global_step == 1
    assert disable_compile == [False] and len(built) == 1


@pytest.mark.slow
def test_unscorable_rollouts_leave_the_loss(answer_model, problems_file, tmp_path, monkeypatch):
    masks = []
    original_loss = ExpRLTrainer._compute_loss

    def capture_loss(self, model, inputs):
        masks.append(inputs["completion_mask"].clone())
        return original_loss(self, model, inputs)

    monkeypatch.setattr(ExpRLTrainer, "_compute_loss", capture_loss)
    # The first fault answers the judge preflight (an unscorable answer there is only a warning); the
    # next three are rollouts of the one step.
    with LoopbackJudgeServer(behaviour="unparseable", faults=4) as server:
        run_training(make_config("exprl-outcome", answer_model, problems_file, server, max_steps=1), tmp_path / "r")
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["exprl/judge_unparseable"] == 3
    assert rows[0]["exprl/unscorable_share"] == pytest.approx(3 / 4)  # one prompt x 4 rollouts per step
    empty_rows = sum(int(m.sum(dim=1).eq(0).sum()) for m in masks)
    assert empty_rows == 3


@pytest.mark.slow
def test_stop_resume_finishes_at_the_same_step(answer_model, problems_file, judge_server, tmp_path):
    config = make_config("exprl-outcome", answer_model, problems_file, judge_server, max_steps=3)
    run_dir = tmp_path / "run"
    partial = run_training(config, run_dir, callbacks=[StopAfterStepsCallback(1)])
    assert partial.global_step == 1 and not (run_dir / "final").exists()
    changed = make_config("exprl-outcome", answer_model, problems_file, judge_server, max_steps=4)
    with pytest.raises(RunStateError, match=r"trl\.max_steps: 3 -> 4"):
        run_training(changed, run_dir)
    resumed = run_training(config, run_dir)  # the same call again resumes: no flag to remember
    assert resumed.global_step == 3 and resumed.resumed
    logged = [json.loads(line)["step"] for line in resumed.metrics_path.read_text().splitlines()
              if "loss" in json.loads(line)]
    assert logged == [1, 2, 3]
    again = run_training(config, run_dir)
    assert again.already_done and again.global_step == 3
    with pytest.raises(RunStateError, match=r"trl\.max_steps: 3 -> 4"):  # never the old run reported as new
        run_training(changed, run_dir)


def test_unknown_trl_key_is_a_config_error(problems_file, tmp_path):
    config = make_config("grpo", tmp_path / "no-model-needed", problems_file, max_stepz=3)
    with pytest.raises(ConfigError, match="trl.max_stepz"):
        run_training(config, tmp_path / "run")


def test_overlong_rules_and_token_end_requests():
    from exprl.tiny import build_char_tokenizer
    from exprl.judge.requests import judge_requests
    from exprl.rewards.rollouts import overlong_flags

    ids = [[5, 5, 5, 0], [5, 5, 5, 5], [5, 0]]  # 0 is the end token; the cap is 4
    assert overlong_flags(ids, {0}, 4) == [False, True, False]
    assert overlong_flags(ids, {0}, 4, "at-cap") == [True, True, False]  # the official test counts the end token
    with pytest.raises(ValueError, match="overlong rule"):
        overlong_flags(ids, {0}, 4, "cut")

    tokenizer = build_char_tokenizer(words=("###",))
    text = "### a\n### b"
    completion = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    row = dict(problem_text="p", reference="r", answer="1", domain="math", problem_id="0")
    for segmentation, steps in (("merged", ["### a\n###", " b"]), ("token-end", ["###", " a\n###", " b"])):
        requests, counts = judge_requests([row], [text], [completion], "process", "###", "segment", tokenizer,
                                          segmentation=segmentation)
        assert [r.trace for r in requests[0]] == steps
        assert sum(counts[0]) == len(completion)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["exprl-outcome", "exprl-process"])
def test_a_step_under_the_paper_recipes_switches(method, answer_model, problems_file, judge_server, tmp_path):
    """Every official-value switch of paper-exprl-* at once, through a real TRL step and HTTP judge."""
    from exprl.recipes import read_yaml

    config = make_config(method, answer_model, problems_file, judge_server, max_steps=1)
    paper = read_yaml(f"paper-{method}")
    for key in ("prompt_layout", "score_parsing", "untrusted_fence", "max_trace_tokens"):
        setattr(config.judge, key, paper["judge"][key])
    for key, value in paper["reward"].items():
        setattr(config.reward, key, value)
    result = run_training(config, tmp_path / "run")
    assert result.global_step == 1
    (row,) = [json.loads(line) for line in result.metrics_path.read_text().splitlines() if '"loss"' in line]
    assert row["exprl/judge_ok"] > 0
