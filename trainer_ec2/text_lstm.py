"""The ``seed`` sentiment recipe, the original: an LSTM over its own word vocabulary, trained from scratch.

Its input is ``input_ids`` (int64 N x max_len words, padded on the left, from platform_core.preprocess.text).
Measured here: about 2-2.5 s an epoch on 3000 texts; batch-1 inference under 1 ms.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from platform_core.preprocess import text as prep
from trainer_ec2.config import ProgressCallback, RecipeConfig, TrainConfig
from trainer_ec2.loop import Evaluation, Probabilities, evaluate, run_epochs, shuffled, train_one_epoch
from trainer_ec2.results import Fitted


@dataclass(frozen=True)
class LstmConfig(RecipeConfig):
    """The original recipe's settings."""

    epochs: int = 10
    learning_rate: float = 2e-4  # Adam
    width: int = 128  # of the word embedding and of the LSTM's hidden state
    vocabulary: int = 20000  # words kept, the most frequent in the training texts
    eval_batch: int = 256


class LstmClassifier(nn.Module):
    """Word ids -> embedding -> LSTM -> last hidden state -> linear: class logits."""

    def __init__(self, vocab_size: int, n_classes: int, width: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.fc = nn.Linear(width, n_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(self.embedding(input_ids))
        return self.fc(hidden[-1])


def fit_lstm(texts: list[str], y: np.ndarray, train_idx: list[int], val_idx: list[int], n_classes: int,
             run: TrainConfig, progress: ProgressCallback) -> Fitted:
    """A vocabulary from the training texts, then the LSTM trained on them with Adam."""
    settings = LstmConfig().for_run(run)
    train_texts = [texts[i] for i in train_idx]
    vocab = prep.build_vocab(train_texts, settings.vocabulary)
    max_len = max(1, min(run.max_text_tokens, max(len(prep.word_tokens(t)) for t in train_texts)))
    spec = prep.text_vocab_spec(max_len)
    files = {"vocab.json": json.dumps(vocab, ensure_ascii=False).encode("utf-8")}
    ids = torch.from_numpy(prep.preprocess_texts(texts, spec, files)["input_ids"])
    x_tr, x_val = ids[train_idx], ids[val_idx]
    y_tr, y_val = torch.from_numpy(y[train_idx]), torch.from_numpy(y[val_idx])
    model = LstmClassifier(len(vocab), n_classes, settings.width)
    net = Probabilities(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(run.seed)

    def in_order(x: torch.Tensor, labels: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(zip(x.split(settings.eval_batch), labels.split(settings.eval_batch)))

    def one_epoch() -> tuple[dict[str, float], Evaluation]:
        figures = train_one_epoch(model, shuffled(x_tr, y_tr, run.batch_size, generator), optimiser)
        val = evaluate(net, in_order(x_val, y_val))
        return {**figures, "validation_accuracy": val.accuracy}, val

    history, val = run_epochs(settings.epochs, one_epoch, progress)
    train = evaluate(net, in_order(x_tr, y_tr))
    return Fitted(net.eval(), history, train.predictions, val.predictions, spec, files)
