"""Test doubles that keep real formats: a tiny real ONNX classifier and training functions without torch."""
from __future__ import annotations

import io
import json
import threading
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from trainer_ec2.config import TrainConfig, TrainingResult

IMAGE_SPEC = {"type": "image", "size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
              "layout": "NCHW"}


def colour_classifier_onnx(n_classes: int) -> bytes:
    """Mean colour per channel -> linear -> softmax: a real ONNX graph over preprocessed images."""
    weights = np.zeros((3, n_classes), dtype=np.float32)
    for c in range(n_classes):
        weights[c % 3, c] = 4.0  # class c likes channel c % 3
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["mean", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "colour", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_classes])],
        [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def word_classifier_onnx(vocab: dict[str, int], weights: dict[str, list[float]], n_classes: int) -> bytes:
    """input_ids (N, L) -> per-word class scores summed -> softmax: a real ONNX text classifier over the ids
    platform_core.preprocess makes from a vocab.json (0 pads and scores nothing)."""
    table = np.zeros((len(vocab), n_classes), dtype=np.float32)
    for word, scores in weights.items():
        table[vocab[word]] = scores
    graph = helper.make_graph(
        [helper.make_node("Gather", ["W", "input_ids"], ["scores"], axis=0),
         helper.make_node("ReduceSum", ["scores", "axes"], ["logits"], keepdims=0),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "words", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_classes])],
        [numpy_helper.from_array(table, "W"), numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def fake_text_result(classes: list[str], accuracy: float = 0.8) -> TrainingResult:
    """A word-vocabulary sentiment model: 'good'-like words for the first class, 'bad'-like for the second."""
    vocab = {"<pad>": 0, "<unk>": 1, "good": 2, "great": 3, "bad": 4, "awful": 5, "!": 6, "movie": 7}
    n = len(classes)
    lean = {"good": 1.5, "great": 2.5, "bad": -1.5, "awful": -2.5, "!": 0.3, "movie": 0.1}
    weights = {w: [v if c == 0 else -v if c == 1 else 0.2 for c in range(n)] for w, v in lean.items()}
    result = fake_result(classes, accuracy)
    result.onnx_model = word_classifier_onnx(vocab, weights, n)
    result.preprocess = {"type": "text_vocab", "max_len": 16, "vocab_file": "vocab.json"}
    result.extra_files = {"vocab.json": json.dumps(vocab).encode()}
    return result


def png(colour: tuple[int, int, int], size: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


def fake_result(classes: list[str], accuracy: float = 0.9, threshold: float | None = None) -> TrainingResult:
    n = len(classes)
    return TrainingResult(
        classes=classes, onnx_model=colour_classifier_onnx(n), preprocess=dict(IMAGE_SPEC),
        metrics={"recipe": "fast", "classes": classes, "train_accuracy": 1.0, "validation_accuracy": accuracy,
                 "per_class": {c: {"precision": accuracy, "recall": accuracy, "support": 2} for c in classes},
                 "confusion_matrix": np.eye(n, dtype=int).tolist(), "history": [], "duration_s": 0.1,
                 "n_train": 8, "n_validation": 2, "confidence_threshold": threshold},
        confusion_png=png((1, 2, 3)))


class FakeTrainer:
    """Records calls; reports ``epochs`` progress events; can fail or block on demand."""

    def __init__(self, classes: list[str] | None = None, *, epochs: int = 3,
                 fail: BaseException | None = None) -> None:
        self.classes = classes or ["red", "green", "blue"]
        self.epochs = epochs
        self.fail = fail
        self.calls: list[tuple[bytes, TrainConfig]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.on_epoch: Callable[[int], Any] | None = None
        self.threshold: float | None = None  # the confidence_threshold its models carry

    def __call__(self, data: bytes, config: TrainConfig, progress=None) -> TrainingResult:
        self.calls.append((data, config))
        self.started.set()
        if not self.release.wait(timeout=30):  # a test that holds training must let it go
            raise AssertionError("the fake trainer was held and never released")
        for epoch in range(1, self.epochs + 1):
            if self.on_epoch:
                self.on_epoch(epoch)
            if progress:
                progress(epoch, self.epochs, {"train_loss": 1.0 / epoch, "train_accuracy": 0.5,
                                              "validation_accuracy": 0.5})
        if self.fail is not None:
            raise self.fail
        return fake_result(self.classes, threshold=self.threshold)
