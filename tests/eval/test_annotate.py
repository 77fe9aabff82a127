"""The behaviour annotators: the rule patterns on labelled traces written for these tests, and the LLM
annotator against a real HTTP endpoint (the loopback server) with its cache."""
from __future__ import annotations

import json

import pytest

from exprl.errors import ConfigError
from exprl.eval.annotate import (ANNOTATION_PROMPT_VERSION, BEHAVIOURS, LLMAnnotator, RuleAnnotator, matches,
                                 parse_annotation)
from testing.loopback import LoopbackJudgeServer
from exprl.judge.types import JudgeConfig

# (trace, the behaviours it shows). Written for these tests; each behaviour has plain positives, and
# near misses that share its words without the behaviour.
LABELLED = [
    # verification
    ("x = 4. Let me check: 4^2 - 16 = 0, so the root is right. \\boxed{4}", {"verification"}),
    ("Plugging x = 3 back into the original equation gives 9 = 9. \\boxed{3}", {"verification"}),
    ("The total is 42. Double-check by adding the columns again: 42. \\boxed{42}", {"verification"}),
    ("We verify that n = 7 satisfies both congruences. \\boxed{7}", {"verification"}),
    ("Substituting y = 2 into the first equation back gives x = 5, which checks out. \\boxed{5}", {"verification"}),
    ("A sanity check: the probability is between 0 and 1. \\boxed{0.3}", {"verification"}),
    ("The cheque was cashed for 50 dollars, so she has \\boxed{50} left.", set()),
    # backtracking
    ("So the area is 12. Wait, the base is 6, not 4, so the area is 18. \\boxed{18}", {"backtracking"}),
    ("This gives 2/3. That's wrong: I dropped a sign. Redo: it is -2/3. \\boxed{-2/3}", {"backtracking"}),
    ("I made a mistake in the second line; the product is 35. \\boxed{35}", {"backtracking"}),
    ("Factoring does not work here, so let's try again with the quadratic formula. \\boxed{1}", {"backtracking"}),
    ("The sum is 10. Actually, the last term was counted twice, so it is 8. \\boxed{8}", {"backtracking"}),
    ("Let me go back to the first step and reconsider the parity. \\boxed{0}", {"backtracking"}),
    ("The waiter brought 3 plates, so there are \\boxed{3}.", set()),
    # enumeration
    ("Case 1: n is even, then n^2 is even. Case 2: n is odd, then n^2 is odd. \\boxed{2}", {"enumeration"}),
    ("We split the count into two cases by the first digit. \\boxed{90}", {"enumeration"}),
    ("In the first case the point is inside; in the other case it is outside. \\boxed{1}", {"enumeration"}),
    ("Consider each possible value of k from 1 to 4. \\boxed{4}", {"enumeration"}),
    ("Case A: both coins are heads. Case B: at least one is tails. \\boxed{1/4}", {"enumeration"}),
    ("In this case a triangle has three sides, so \\boxed{3}.", set()),
    # subgoal setting
    ("First, we need to find the radius. The radius is 5, so the area is 25 pi. \\boxed{25\\pi}", {"subgoal_setting"}),
    ("Our goal is to express y in terms of x. y = 2x + 1. \\boxed{2x+1}", {"subgoal_setting"}),
    ("It suffices to show that f is increasing on the interval. \\boxed{\\text{yes}}", {"subgoal_setting"}),
    ("We need to compute the number of paths first. There are 6. \\boxed{6}", {"subgoal_setting"}),
    ("Once we know the speed, the time follows. Speed 3, time 4. \\boxed{4}", {"subgoal_setting"}),
    ("The first term is 3 and the ratio is 2, so the fifth term is \\boxed{48}.", set()),
    # several at once, and none
    ("### Step 1\nFirst, we need to find a. Case 1: a > 0 gives a = 2. Case 2: a < 0 gives nothing.\n"
     "### Step 2\nWait, a = 0 is possible too. Let me check a = 2: 2*2 = 4. \\boxed{2}",
     {"subgoal_setting", "enumeration", "backtracking", "verification"}),
    ("### 1: 5 + 3 = 8\n### 2: 8 * 2 = 16\n\\boxed{16}", set()),
]


@pytest.mark.parametrize("text,expected", LABELLED, ids=[f"trace{i}" for i in range(len(LABELLED))])
def test_rule_annotator_on_labelled_traces(text, expected):
    flags = RuleAnnotator().annotate([text])[0].flags
    found = {name for name, shown in flags.items() if shown}
    assert found == expected, {name: matches(text, name) for name in BEHAVIOURS}


def test_rule_counts_count_each_phrase_once():
    text = "Wait. Wait, no. Let me check: ok. Let's verify again: ok."
    counts = RuleAnnotator().annotate([text])[0].counts
    assert counts["backtracking"] == 2
    assert counts["verification"] == 2  # "let me check" and "let's verify" (one phrase each, not one per pattern)


def test_parse_annotation_takes_the_last_complete_object():
    answer = 'Thinking {"x": 1}. Result: {"verification": 1, "backtracking": 0, "enumeration": true, ' \
             '"subgoal_setting": false}'
    assert parse_annotation(answer) == {"verification": 1, "backtracking": 0, "enumeration": 1, "subgoal_setting": 0}
    assert parse_annotation('{"verification": 1}') is None
    assert parse_annotation("no json at all") is None
    assert parse_annotation('{"verification": 2, "backtracking": 0, "enumeration": 0, "subgoal_setting": 0}') is None


class Answers:
    """What the endpoint says to each trace: a JSON verdict naming the behaviours the trace's text lists
    after `SHOWS:`, or prose (unparseable) for a trace that says `PROSE`."""

    def __call__(self, body: dict) -> str:
        text = body["messages"][-1]["content"]
        if "PROSE" in text:
            return "This solution is quite good."
        shown = text.split("SHOWS:")[1].split("\n")[0].split(",")
        return "Analysis done.\n" + json.dumps({name: int(name in shown) for name in BEHAVIOURS})


def test_llm_annotator_through_an_openai_endpoint_with_its_cache(tmp_path):
    texts = ["SHOWS:verification,enumeration\nwork", "SHOWS:\nwork", "PROSE SHOWS:x\n", "SHOWS:verification,enumeration\nwork"]
    cache = tmp_path / "annotations.sqlite"
    with LoopbackJudgeServer(reply=Answers()) as server:
        config = JudgeConfig(backend="openai", base_urls=[server.base_url], model="loopback", concurrency=2)
        annotator = LLMAnnotator(config, cache)
        first = annotator.annotate(texts)
        assert server.request_count == 3  # the repeated trace is asked once
        assert first[0].flags == {"verification": True, "backtracking": False, "enumeration": True,
                                  "subgoal_setting": False}
        assert first[3] == first[0]
        assert first[1].counts == dict.fromkeys(BEHAVIOURS, 0)
        assert first[2].counts is None and "not the JSON asked for" in first[2].error  # unannotated, never zeros
        prompt = server.requests[0]["messages"]
        assert "BEGIN SOLUTION" in prompt[-1]["content"] and "classify" in prompt[0]["content"]
        annotator.close()

        again = LLMAnnotator(config, cache)
        assert again.annotate(texts) == first
        assert server.request_count == 4  # only the unparseable one is asked again
        assert again.version == ANNOTATION_PROMPT_VERSION and again.name == "openai:loopback"
        again.close()


def test_the_reference_judge_cannot_annotate():
    with pytest.raises(ConfigError, match="reads no prose"):
        LLMAnnotator(JudgeConfig(backend="reference"), None)
