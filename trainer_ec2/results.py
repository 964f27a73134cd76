"""What every recipe hands back (``Fitted``), and the one way a fitted model and its checked graph become a
``TrainingResult``: the metrics document, the validation mistakes and the confusion-matrix picture."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from trainer_ec2 import mistakes
from trainer_ec2.config import TrainingResult
from trainer_ec2.metrics import confusion_png, summarise
from trainer_ec2.onnx_export import CheckedGraph


@dataclass
class Fitted:
    """A recipe's trained model, its history and its final predictions."""

    module: nn.Module  # preprocessed inputs -> class probabilities: what the graph computes
    history: list[dict[str, float]]
    train_pred: np.ndarray
    val_pred: np.ndarray
    preprocess: dict[str, Any]  # the platform_core.preprocess spec the module reads
    extra_files: dict[str, bytes] = field(default_factory=dict)  # vocab.json, tokenizer.json ...
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)  # beyond each input's batch axis
    # The float32 model's validation probabilities where the recipe has them at no extra cost; the graph
    # check then compares with them instead of running the whole model on every validation example.
    val_probabilities: np.ndarray | None = None
    # The recipe's own way to build ``module``'s graph where it has a cheaper one than a whole export.
    graph: Callable[[], bytes] | None = None


def training_result(fitted: Fitted, graph: CheckedGraph, *, recipe: str, classes: list[str],
                    train_true: np.ndarray, val_true: np.ndarray, shown_inputs: Sequence[str], started: float,
                    **extra_metrics: Any) -> TrainingResult:
    """The stored result: metrics (with ``extra_metrics``, the graph's difference and the mistakes, each
    named by its ``shown_inputs`` entry), the confusion PNG and the files the preprocessing reads."""
    metrics = summarise(classes=classes, train_true=train_true, train_pred=fitted.train_pred, val_true=val_true,
                        val_pred=fitted.val_pred, history=fitted.history, duration_s=time.perf_counter() - started,
                        recipe=recipe, val_probabilities=graph.probabilities)
    metrics.update(extra_metrics, onnx_max_probability_difference=graph.difference)
    metrics["mistakes"] = mistakes.wrong(val_true, graph.probabilities, classes, shown_inputs)
    return TrainingResult(classes=classes, onnx_model=graph.onnx_model, preprocess=fitted.preprocess,
                          metrics=metrics, confusion_png=confusion_png(metrics["confusion_matrix"], classes),
                          extra_files=dict(fitted.extra_files), module=fitted.module)
