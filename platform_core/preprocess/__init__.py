"""One preprocessing path for training and inference (numpy and Pillow, never torch).

A model's ``preprocess`` spec (stored beside it as preprocess.json) names which function applies:
``image`` -> platform_core.preprocess.image, ``text_vocab`` / ``text_tokenizer`` -> platform_core.preprocess.text.
"""
