"""The sparse verifier on MATH-500 / GSM8K answers (generated, and the real ones where present), known
equivalent forms, and off-main-thread use."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from exprl.rewards.verifier import is_correct, normalize_answer, sparse_rewards


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_math500_reference_solution_verifies_against_its_answer(catalog_data):
    rows = _rows(catalog_data / "math500.jsonl")
    assert len(rows) >= 120
    rewards = sparse_rewards([r["solution"] for r in rows], [r["answer"] for r in rows])
    failing = [r["id"] for r, x in zip(rows, rewards) if x != 1.0]
    assert failing == []


def test_math500_solutions_do_not_verify_against_other_problems_answers(catalog_data):
    rows = _rows(catalog_data / "math500.jsonl")[:120]
    shifted = rows[1:] + rows[:1]
    distinct = [(r, s) for r, s in zip(rows, shifted)
                if normalize_answer(r["answer"]) != normalize_answer(s["answer"])]
    rewards = sparse_rewards([r["solution"] for r, _ in distinct], [s["answer"] for _, s in distinct])
    # A different problem's answer can coincide in value (`\frac12` vs `0.5`), but almost never.
    assert sum(rewards) <= 2, [(r["answer"], s["answer"]) for (r, s), x in zip(distinct, rewards) if x]


def test_gsm8k_answers_in_a_box_verify_and_off_by_one_does_not(catalog_data):
    rows = _rows(catalog_data / "gsm8k_test.jsonl")[:100]
    right = [f"{r['solution']}\nSo the answer is $\\boxed{{{r['answer']}}}$." for r in rows]
    wrong = [f"{r['solution']}\nSo the answer is $\\boxed{{{int(r['answer']) + 1}}}$." for r in rows]
    answers = [r["answer"] for r in rows]
    assert sparse_rewards(right, answers) == [1.0] * len(rows)
    assert sparse_rewards(wrong, answers) == [0.0] * len(rows)


@pytest.mark.parametrize("predicted, gold", [
    ("0.5", "\\frac{1}{2}"),
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("\\tfrac12", "\\frac{1}{2}"),
    ("10\\sqrt 2", "10\\sqrt{2}"),
    ("1+x^2", "x^2+1"),
    ("\\{2,1\\}", "\\{1,2\\}"),
    ("72.0", "72"),
    ("1,080", "1080"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
])
def test_equivalent_forms_are_correct(predicted, gold):
    assert is_correct(f"Steps... the answer is \\boxed{{{predicted}}}.", gold)


@pytest.mark.parametrize("predicted, gold", [
    ("3", "4"),
    ("\\frac{1}{3}", "\\frac{1}{2}"),
    ("10\\sqrt{3}", "10\\sqrt{2}"),
    ("(2,1)", "(1,2)"),
    ("[1,2)", "(1,2]"),
    ("x^2-1", "x^2+1"),
    ("\\frac{", "\\frac{1}{2}"),  # unparsable prediction: wrong, not an exception
])
def test_non_equivalent_forms_are_wrong(predicted, gold):
    assert not is_correct(f"\\boxed{{{predicted}}}", gold)


def test_only_the_last_box_counts_and_no_box_is_wrong():
    assert is_correct("First I thought \\boxed{3}, but actually \\boxed{5}", "5")
    assert not is_correct("First I thought \\boxed{5}, but actually \\boxed{3}", "5")
    assert not is_correct("The answer is 5.", "5")
    assert not is_correct("", "5")


def test_multiple_choice_is_an_exact_letter_match():
    assert is_correct("so \\boxed{B}", "B")
    assert is_correct("so \\boxed{(B)}", "B")
    assert is_correct("so \\boxed{\\text{(C)}}", "C")
    assert not is_correct("so \\boxed{b}", "B")  # math-verify alone would accept the symbol b
    assert not is_correct("so \\boxed{A}", "B")
    assert not is_correct("so \\boxed{AB}", "B")


def test_chat_format_completions_are_read_from_the_assistant_turn():
    completion = [{"role": "assistant", "content": "### Step 1\n2+2=4\n\\boxed{4}"}]
    assert sparse_rewards([completion, [{"role": "assistant", "content": "\\boxed{5}"}]], ["4", "4"]) == [1.0, 0.0]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        sparse_rewards(["\\boxed{1}", "\\boxed{2}"], ["1"])


CASES = [("\\boxed{0.5}", "\\frac{1}{2}"), ("\\boxed{10\\sqrt 2}", "10\\sqrt{2}"),
         ("\\boxed{3}", "4"), ("no box", "1"), ("\\boxed{x^2+1}", "1+x^2"), ("\\boxed{(B)}", "B")]
EXPECTED = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_verification_from_a_worker_thread_uses_the_pool_and_agrees():
    """TRL scores rewards off the main thread, where math-verify's signal timeout cannot work."""
    results: dict[str, object] = {}

    def worker():
        try:
            results["rewards"] = sparse_rewards([c for c, _ in CASES], [a for _, a in CASES])
        except Exception as exc:  # pragma: no cover - surfaced by the assert below
            results["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=120)
    assert "error" not in results, results.get("error")
    assert results["rewards"] == EXPECTED


def test_verification_from_an_asyncio_loop_on_a_background_thread():
    """The shape TRL uses for async reward functions: gathered on a loop in another thread."""
    async def score(completion, answer):
        return await asyncio.to_thread(is_correct, completion, answer)

    async def gather():
        return await asyncio.gather(*(score(c, a) for c, a in CASES))

    out: list = []
    thread = threading.Thread(target=lambda: out.extend(asyncio.run(gather())))
    thread.start()
    thread.join(timeout=120)
    assert [1.0 if ok else 0.0 for ok in out] == EXPECTED
