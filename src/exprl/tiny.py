"""Tiny models built from a config, with a character-level tokenizer exprl builds itself.

No hub access is needed: tests, the CPU recipes and the demo all start from these. A character
vocabulary keeps the embedding small, which on a tiny model is most of the cost (a 49k vocabulary
makes a 2-layer model several times slower).
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Sequence

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"

# Roles are marked with single special tokens so a prompt costs few positions.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_char_tokenizer(number_tokens: int = 0, words: Sequence[str] = ()):
    """A fast tokenizer with one token per character and a minimal chat template.

    `number_tokens` = N > 10 adds one token for each two-digit number below N (at most 100), as
    LLM tokenizers that keep short numbers whole do. Arithmetic on whole-number tokens is a lookup;
    on digits, a tiny model spends its capacity on carries (the synthetic task's choice).
    `words` become single tokens (spaces included), as frequent words are in any LLM vocabulary:
    a prompt of a few words then costs a few positions instead of dozens.
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    if not 0 <= number_tokens <= 100:
        raise ValueError(f"number_tokens must be in [0, 100], got {number_tokens}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in CHARSET:
        vocab.setdefault(ch, len(vocab))
    merges = []
    for number in range(10, number_tokens):
        vocab.setdefault(str(number), len(vocab))
        merges.append((str(number)[0], str(number)[1]))
    for word in words:
        # BPE builds a word from its prefixes, so each prefix needs a merge and a token of its own.
        for end in range(2, len(word) + 1):
            if word[:end] not in vocab:
                vocab[word[:end]] = len(vocab)
                merges.append((word[:end - 1], word[end - 1]))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
        unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def build_tiny_model(tokenizer, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                     max_positions: int = 1024, seed: int = 0):
    """A randomly initialised Llama-shaped causal LM sized to the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 4,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")]
    return model


def save_tiny_model(path: str | Path, **model_kwargs) -> Path:
    """Build a tiny model and its tokenizer and save both to `path` (a normal HF model folder)."""
    path = Path(path)
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, **model_kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
