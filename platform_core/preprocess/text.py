"""Text preprocessing shared by training and inference: word vocabularies and subword tokenizers.

numpy and ``tokenizers`` only (never torch), so the inference Lambda stays small. A text model's spec
(stored as preprocess.json) is one of

- ``{"type": "text_vocab", "max_len": L, "vocab_file": "vocab.json"}``: lower-cased words mapped through
  the model's own vocabulary, giving ``{"input_ids": int64 (N, L)}``;
- ``{"type": "text_tokenizer", "tokenizer_file": "tokenizer.json", "max_len": 128}``: a Hugging Face
  ``tokenizer.json``, giving ``{"input_ids", "attention_mask"}`` as int64 (N, longest text, at most max_len).

The arrays are exactly the ONNX graph's inputs, by name.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from typing import Any, Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[!?]")


def text_vocab_spec(max_len: int, vocab_file: str = "vocab.json") -> dict[str, Any]:
    """The spec of a word-vocabulary model reading ``max_len`` words."""
    return {"type": "text_vocab", "max_len": int(max_len), "vocab_file": vocab_file}


def text_tokenizer_spec(max_len: int = 128, tokenizer_file: str = "tokenizer.json") -> dict[str, Any]:
    """The spec of a subword-tokenizer model reading at most ``max_len`` tokens."""
    return {"type": "text_tokenizer", "tokenizer_file": tokenizer_file, "max_len": int(max_len)}


def word_tokens(text: str) -> list[str]:
    """Lower-cased words (with inner apostrophes: "don't") plus '!' and '?', which carry sentiment."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str], max_size: int = 20000, min_freq: int = 1) -> dict[str, int]:
    """Word -> id: 0 is <pad>, 1 is <unk>, then the most frequent words (ties alphabetical)."""
    counts = Counter(word for text in texts for word in word_tokens(text))
    ranked = sorted((item for item in counts.items() if item[1] >= min_freq), key=lambda kv: (-kv[1], kv[0]))
    vocab = {PAD: 0, UNK: 1}
    for word, _ in ranked[: max(0, max_size - 2)]:
        vocab[word] = len(vocab)
    return vocab


def encode_words(texts: Sequence[str], vocab: dict[str, int], max_len: int) -> np.ndarray:
    """int64 (N, max_len): the first max_len word ids of each text, padded on the left with 0."""
    out = np.zeros((len(texts), max_len), dtype=np.int64)
    unk = vocab[UNK]
    for row, text in enumerate(texts):
        ids = [vocab.get(word, unk) for word in word_tokens(text)][:max_len]
        # Left padding: an LSTM classifies from its last state, so every text must end on the last step.
        if ids:
            out[row, max_len - len(ids):] = ids
    return out


@lru_cache(maxsize=8)
def load_vocab(json_bytes: bytes) -> dict[str, int]:
    """A vocab.json (cached by content: the caller must not modify the result)."""
    vocab = json.loads(json_bytes.decode("utf-8"))
    if not isinstance(vocab, dict) or vocab.get(PAD) != 0 or vocab.get(UNK) != 1:
        raise ValueError("vocab.json must map words to ids with <pad> = 0 and <unk> = 1")
    return vocab


@lru_cache(maxsize=4)
def load_tokenizer(json_bytes: bytes, max_len: int) -> Tokenizer:
    """A tokenizer.json set to truncate at max_len and pad to the batch's longest text (cached by content)."""
    tokenizer = Tokenizer.from_str(json_bytes.decode("utf-8"))
    pad = tokenizer.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    pad_id = pad.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_truncation(max_length=max_len)
    # The stored file pads every text to a fixed 128; the longest in the batch is enough and faster.
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, pad_type_id=pad.get("pad_type_id", 0))
    return tokenizer


def encode_tokenizer(tokenizer: Tokenizer, texts: Sequence[str], token_type_ids: bool = False) -> dict[str, np.ndarray]:
    """input_ids and attention_mask (and token_type_ids if asked) as int64 (N, longest)."""
    encodings = tokenizer.encode_batch(list(texts)) if texts else []
    width = len(encodings[0].ids) if encodings else 0
    out = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), width),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(encodings), width),
    }
    if token_type_ids:
        out["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64).reshape(len(encodings), width)
    return out


def preprocess_texts(texts: Sequence[str], spec: dict[str, Any], files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """The model's input arrays for ``texts``; ``files`` holds the model's extra files by name."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    kind = spec.get("type")
    if kind == "text_vocab":
        vocab = load_vocab(_file(files, spec.get("vocab_file", "vocab.json")))
        return {"input_ids": encode_words(texts, vocab, int(spec["max_len"]))}
    if kind == "text_tokenizer":
        tokenizer = load_tokenizer(_file(files, spec.get("tokenizer_file", "tokenizer.json")), int(spec["max_len"]))
        return encode_tokenizer(tokenizer, texts)
    raise ValueError(f"not a text preprocessing spec: {spec!r}")


def _file(files: dict[str, bytes], name: str) -> bytes:
    if name not in files:
        raise ValueError(f"the model's {name} is missing")
    return files[name]
