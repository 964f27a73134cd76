"""The training pieces every recipe shares: one epoch of mini-batch training, one evaluation, the epoch loop
that keeps the history and reports progress, and a run's set-up (threads, seed, out of memory as a typed error).
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from platform_core.errors import TrainerOutOfMemory
from trainer_ec2.config import ProgressCallback

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels) -> loss
T = TypeVar("T")
# torch's CPU allocator reports a failed allocation as a plain RuntimeError naming itself.
CPU_ALLOCATOR = "DefaultCPUAllocator"


def cpu_cores() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def recipe_named(recipes: Mapping[str, T], kind: str, name: str) -> T:
    """The recipe called ``name``; a ValueError naming the choices for any other (a caller's mistake: a job
    names one of platform_core.jobs.RECIPES)."""
    if name not in recipes:
        raise ValueError(f"unknown {kind} recipe {name!r}: choose one of {sorted(recipes)}")
    return recipes[name]


@contextmanager
def training_run(kind: str, seed: int) -> Iterator[float]:
    """A run's start (its perf_counter time), then inside: torch on every core this process may use, seeded;
    running out of memory leaves as TrainerOutOfMemory (``kind`` says what to advise: fewer images, shorter
    texts)."""
    started = time.perf_counter()
    torch.set_num_threads(cpu_cores())
    torch.manual_seed(seed)
    try:
        yield started
    except (MemoryError, torch.OutOfMemoryError) as exc:
        raise TrainerOutOfMemory(kind, str(exc)) from exc
    except RuntimeError as exc:
        # The one test on a message: torch gives a failed CPU allocation no type of its own.
        if CPU_ALLOCATOR in str(exc):
            raise TrainerOutOfMemory(kind, str(exc)) from exc
        raise


class Probabilities(nn.Module):
    """A classifier's logits turned into class probabilities, so that the exported graph ends in softmax."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(*inputs), dim=1)  # logits are (examples, classes)


def train_mode(model: nn.Module) -> None:
    """model.train(), except that frozen BatchNorm layers stay in eval mode on their ImageNet statistics."""
    model.train()
    for m in model.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and params and not any(p.requires_grad for p in params):
            m.eval()


def shuffled(inputs: torch.Tensor, labels: torch.Tensor, size: int, generator: torch.Generator) -> Iterator[Batch]:
    """One epoch's mini-batches of in-memory tensors, in an order drawn from ``generator``."""
    for rows in torch.randperm(len(labels), generator=generator).split(size):
        yield inputs[rows], labels[rows]


def train_one_epoch(model: nn.Module, batches: Iterable[Batch], optimiser: torch.optim.Optimizer, *,
                    loss: Loss = F.cross_entropy, after_step: Callable[[], object] | None = None) -> dict[str, float]:
    """One pass of mini-batch training; the epoch's running mean loss and accuracy.

    ``model`` maps inputs to logits, classes on the last axis; heads trained side by side add a leading axis
    and each of their predictions counts in the accuracy. ``after_step`` runs after every optimiser step (a
    per-step learning-rate schedule)."""
    train_mode(model)
    loss_sum, examples, hits, predictions = 0.0, 0, 0, 0
    for inputs, labels in batches:
        logits = model(inputs)
        value = loss(logits, labels)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        if after_step is not None:
            after_step()
        correct = logits.argmax(-1) == labels
        loss_sum, examples = loss_sum + value.item() * len(labels), examples + len(labels)
        hits, predictions = hits + int(correct.sum()), predictions + correct.numel()
    return {"train_loss": loss_sum / examples, "train_accuracy": hits / predictions}


@dataclass
class Evaluation:
    """A model's outputs over a set of examples, and how they score."""

    outputs: torch.Tensor  # every batch's outputs, joined along the examples axis (the second to last)
    predictions: np.ndarray
    accuracy: float | np.ndarray  # an array of one per head where heads sit side by side
    loss: float | np.ndarray | None = None


def evaluate(model: nn.Module, batches: Iterable[Batch], *, loss: Loss | None = None) -> Evaluation:
    """The model in eval mode over every batch: its outputs, their argmax, the accuracy and, given ``loss``,
    the loss of the whole set's outputs."""
    model.eval()
    with torch.no_grad():
        scored = [(model(inputs), labels) for inputs, labels in batches]
        outputs = torch.cat([out for out, _ in scored], dim=-2)
        labels = torch.cat([truth for _, truth in scored])
        predictions = outputs.argmax(-1)
        accuracy = (predictions == labels).double().mean(-1)
        value = None if loss is None else loss(outputs, labels)
    return Evaluation(outputs, predictions.numpy(), _number(accuracy), None if value is None else _number(value))


def _number(t: torch.Tensor) -> float | np.ndarray:
    return t.item() if t.dim() == 0 else t.numpy()


def run_epochs(epochs: int, one_epoch: Callable[[], tuple[dict[str, float], T]],
               progress: ProgressCallback) -> tuple[list[dict[str, float]], T]:
    """Runs ``one_epoch`` ``epochs`` times, keeping and reporting the figures of each; returns the history
    and what the last epoch handed back beside its figures (its evaluation)."""
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        figures, last = one_epoch()
        history.append({"epoch": epoch, **figures})
        progress(epoch, epochs, figures)
    return history, last
