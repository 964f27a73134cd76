"""Accuracy, per-class precision and recall, the confusion matrix (numbers and a PNG)."""
from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        matrix[int(t), int(p)] += 1
    return matrix


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def per_class(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision and recall per class; 0 where a class was never predicted or never present."""
    out = {}
    for i, name in enumerate(classes):
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        out[name] = {
            "precision": float(matrix[i, i] / predicted) if predicted else 0.0,
            "recall": float(matrix[i, i] / actual) if actual else 0.0,
            "support": int(actual),
        }
    return out


CONFIDENCE_TARGET = 0.95  # a prediction is "sure" where the validation set was right this often
MIN_CALIBRATION_EXAMPLES = 10


def confidence_threshold(val_true: Sequence[int], val_probabilities: np.ndarray | None,
                         target: float = CONFIDENCE_TARGET) -> float | None:
    """The lowest confidence at and above which validation predictions were right at least ``target`` of the
    time (so the bot says it is unsure below it); None with too few validation examples to tell.

    When even the most confident predictions miss the target, the threshold sits just above the highest
    confidence seen: such a model is never sure."""
    if val_probabilities is None or len(val_true) < MIN_CALIBRATION_EXAMPLES:
        return None
    probabilities = np.asarray(val_probabilities, dtype=np.float64)
    confidence = probabilities.max(1)
    right = probabilities.argmax(1) == np.asarray(val_true)
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    good = np.flatnonzero(hits >= target)
    if not len(good):
        return round(min(1.0, float(confidence.max()) + 1e-6), 6)
    last = good[-1]  # the largest confident set that is still right often enough
    return round(float(confidence[order][last]), 6)


def summarise(*, classes: Sequence[str], train_true, train_pred, val_true, val_pred, history: list[dict[str, Any]],
              duration_s: float, recipe: str, val_probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """The metrics document stored beside every model."""
    matrix = confusion_matrix(val_true, val_pred, len(classes))
    return {
        "confidence_threshold": confidence_threshold(val_true, val_probabilities),
        "confidence_target": CONFIDENCE_TARGET,
        "recipe": recipe,
        "classes": list(classes),
        "train_accuracy": accuracy(train_true, train_pred),
        "validation_accuracy": accuracy(val_true, val_pred),
        "per_class": per_class(matrix, classes),
        "confusion_matrix": matrix.tolist(),
        "history": history,
        "duration_s": round(duration_s, 3),
        "n_train": len(train_true),
        "n_validation": len(val_true),
    }


def confusion_png(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "Validation") -> bytes:
    """The confusion matrix as a PNG a chat can show."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data = np.asarray(matrix)
    size = 2.5 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    try:
        ax.imshow(data, cmap="Blues")
        ax.set_xticks(range(len(classes)), labels=classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), labels=classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} confusion matrix")
        threshold = data.max() / 2 if data.size else 0
        for (i, j), value in np.ndenumerate(data):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)
