"""A tiny byte-level BPE tokenizer trained on the spot, for tests of token <-> character mapping."""
from __future__ import annotations


def byte_level_bpe(corpus: list[str], vocab_size: int = 300):
    """A byte-level BPE (`<eos>` its end token) trained on `corpus`: a corpus dense in `###` makes it
    merge the marker with its neighbours, so some tokens run on past a step boundary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")
