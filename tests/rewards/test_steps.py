"""Step splitting and the token -> step mapping, with a char tokenizer and a BPE tokenizer."""
from __future__ import annotations

import pytest

from exprl.rewards.steps import Step, decoded_offsets, split_steps, token_step_ids


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


def test_char_tokenizer_maps_every_char_to_its_step():
    from exprl.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    text = "x=1\n### y=2\n### so 3"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    decoded, offsets = decoded_offsets(ids, lambda t: tokenizer.decode(t, skip_special_tokens=True))
    assert decoded == text
    steps = split_steps(text)
    step_ids = token_step_ids(steps, offsets)
    expected = [next(k for k, s in enumerate(steps) if s.start <= i < s.end) for i in range(len(text))]
    assert step_ids == expected


def _bpe_tokenizer():
    """A byte-level BPE trained so that '###' merges with its neighbours ("\\n###", "###\\n")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    corpus = ["step\n###\nnext step\n###\n x = 12 ### é ü"] * 50
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


def test_bpe_tokens_that_swallow_the_delimiter_are_mapped_by_their_end():
    tokenizer = _bpe_tokenizer()
    text = "step\n###\nnext step\n###\n x = 12 é"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    pieces = [tokenizer.decode([i]) for i in ids]
    assert any("#" in p and p.strip("#") for p in pieces), f"no merged delimiter token in {pieces}"
    decoded, offsets = decoded_offsets(ids, lambda t: tokenizer.decode(t, skip_special_tokens=True))
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
    decoded, offsets = decoded_offsets(ids, lambda t: tokenizer.decode(t))
    assert decoded == "a ###ü"
    assert offsets[-2] == (5, 5) and offsets[-1] == (5, 6)
