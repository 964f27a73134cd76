"""The two image recipes: transfer learning from ImageNet MobileNetV2, each with its settings in one config.

``seed``, the original: every layer fine-tuned, SGD lr 0.01 momentum 0.9, StepLR(6, 0.1), 10 epochs, batch
32, 224 px, random horizontal flips, images decoded again every epoch.
``fast``, the default: the frozen trunk (features[:17], BatchNorm on ImageNet statistics) runs once over
every image in onnxruntime and its 160x7x7 output is cached; the last two blocks (BatchNorm training) and
a new linear head train on that cache for 4 epochs (AdamW, head lr 2.5e-3, blocks a quarter of it, weight
decay 0.01, cosine decay), in bfloat16 autocast where the CPU computes it natively.

Measured here (2 cores; 10 classes x 100 real Fashion-MNIST, 700/300 split):
- Trunk over 1000 images, decoding included: onnxruntime 5.0-5.7 s; torch 34 s (10.8 s with jemalloc).
  Batches of 8 run as fast as 32 with 160 instead of 400 MB of extra memory.
- Heads on cached features, mean validation accuracy over 5 seeded splits: linear on the pooled features
  0.829-0.836 (AdamW or L-BFGS; flipped-image features and an MLP head no better); last block tuned 0.838;
  last two blocks, 10 epochs at 1e-3/1e-4 with a constant rate, 0.853 in 16 s (bfloat16 autocast: 25% faster,
  0.847 against 0.846 over 3 splits); 6 epochs at 2e-3/5e-4 with cosine
  decay 0.855 in 7.7 s (bfloat16) or 10.5 s (float32); 5 epochs 0.851; 6 epochs at 3e-3/1e-3 0.847; a
  linear probe first, then 4-5 epochs of the blocks, 0.832-0.834. At 160 px (small pictures), 5 seeded
  splits: 6 epochs at 2e-3 0.847 (tail 4.8-6.3 s), 5 epochs 0.845, 4 epochs 0.843 (4.1 s), 4 epochs at
  2.5e-3 0.847 (4.3 s): the default.
- Whole runs, split 0: seed 0.860 in 339 s with jemalloc (468 s without); fast 0.857 in 15.4 s (22x).
  Reusing the fast recipe's own float32 validation probabilities in the graph check saves 3.9 s. On 5
  look-alike classes x 25, scored on held-out test images: fast 0.75, seed 0.48 (40 SGD steps are too few
  to fine-tune everything).
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torchvision.models import MobileNetV2

from trainer_ec2.backbone import freeze
from trainer_ec2.config import ProgressCallback, RecipeConfig, TrainConfig
from trainer_ec2.image_data import Data, chunks
from trainer_ec2.loop import Batch, Evaluation, Probabilities, cpu_cores, evaluate, run_epochs, train_one_epoch
from trainer_ec2.onnx_export import OUTPUT_NAME, chained, export_onnx, session
from trainer_ec2.results import Fitted


@dataclass(frozen=True)
class SeedConfig(RecipeConfig):
    """The original recipe's settings."""

    epochs: int = 10
    learning_rate: float = 0.01
    momentum: float = 0.9
    step_size: int = 6  # epochs between the learning rate's drops ...
    gamma: float = 0.1  # ... to this share of it
    flip_probability: float = 0.5
    eval_batch: int = 8  # inference passes: as fast as 32 here, with a third of the extra memory


@dataclass(frozen=True)
class FastConfig(RecipeConfig):
    """The fast recipe's settings (the measurements above chose them)."""

    epochs: int = 4
    learning_rate: float = 2.5e-3  # the head's
    tuned_blocks: int = 2  # MobileNetV2 blocks trained on the cached trunk output
    top_lr_ratio: float = 0.25  # the tuned blocks' share of the head's learning rate
    weight_decay: float = 0.01
    trunk_batch: int = 8  # the trunk's one pass over every image (onnxruntime)
    eval_batch: int = 64  # passes over cached features


def seed_recipe(model: MobileNetV2, data: Data, run: TrainConfig, progress: ProgressCallback) -> Fitted:
    """The original: every layer fine-tuned with SGD and a step schedule, on randomly flipped images."""
    settings = SeedConfig().for_run(run)
    order, flips = np.random.default_rng(run.seed), np.random.default_rng(run.seed + 1)

    def training_batches() -> Iterator[Batch]:
        for chunk in chunks(order.permutation(data.train), run.batch_size):
            x = torch.from_numpy(data.images(chunk))  # decoded again each epoch, as the original did
            flip = torch.from_numpy(flips.random(len(chunk)) < settings.flip_probability)[:, None, None, None]
            yield torch.where(flip, x.flip(3), x), data.targets(chunk)

    optimiser = torch.optim.SGD(model.parameters(), lr=settings.learning_rate, momentum=settings.momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=settings.step_size, gamma=settings.gamma)

    def one_epoch() -> tuple[dict[str, float], Evaluation]:
        figures = train_one_epoch(model, training_batches(), optimiser)
        scheduler.step()
        val = evaluate(model, data.batches(data.val, settings.eval_batch))
        return {**figures, "validation_accuracy": val.accuracy}, val

    history, val = run_epochs(settings.epochs, one_epoch, progress)
    train = evaluate(model, data.batches(data.train, settings.eval_batch))
    return Fitted(Probabilities(model).eval(), history, train.predictions, val.predictions, data.spec)


def trunk_outputs(trunk: nn.Module, data: Data, size: int) -> tuple[bytes, np.ndarray]:
    """The trunk's graph, and every image through it once, run by onnxruntime (several times torch's speed
    here): one one-thread session per core, each decoding and running its share of the batches (Pillow and
    onnxruntime release the GIL). 1000 images at 160 px, 2 cores, side by side: 2.1-2.5 s, against 2.2-3.3 s
    for one two-thread session, with or without a thread decoding ahead."""
    side = data.spec["size"]
    graph = export_onnx(trunk, [torch.zeros(1, 3, side, side)], ["image"], ["trunk"])
    batches = chunks(np.arange(len(data.raw)), size)
    workers = max(1, min(cpu_cores(), len(batches)))

    def share(slot: int) -> list[np.ndarray]:
        sess = session(graph, threads=1)
        return [sess.run(None, {"image": data.images(chunk)})[0] for chunk in batches[slot::workers]]

    with ThreadPoolExecutor(workers) as pool:
        shares = list(pool.map(share, range(workers)))
    outputs = [shares[i % workers][i // workers] for i in range(len(batches))]
    return graph, np.concatenate(outputs)


def bfloat16_is_fast() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere autocast would be slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class CachedTail(nn.Module):
    """What the fast recipe trains, over the cached trunk output: the tuned blocks, MobileNetV2's global average
    pool and the head. Training passes run in bfloat16 autocast where the CPU has it (the weights stay float32;
    every evaluation, the metrics and the export are float32)."""

    def __init__(self, top: nn.Module, head: nn.Module, low_precision: bool) -> None:
        super().__init__()
        self.top, self.head, self.low_precision = top, head, low_precision
        self.approximate = False  # evaluation passes in bfloat16 too (progress figures, the train accuracy)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16,
                            enabled=self.low_precision and (self.training or self.approximate)):
            return self.head(self.top(features).mean((2, 3))).float()


def fast_recipe(model: MobileNetV2, data: Data, run: TrainConfig, progress: ProgressCallback) -> Fitted:
    """Frozen trunk run once by onnxruntime; the last ``tuned_blocks`` blocks and the head trained on it."""
    settings = FastConfig().for_run(run)
    split = len(model.features) - settings.tuned_blocks
    trunk, top, head = model.features[:split], model.features[split:], model.classifier[-1]
    freeze(trunk)
    trunk_graph, features = trunk_outputs(trunk, data, settings.trunk_batch)
    cached = torch.from_numpy(features)
    tail = CachedTail(top, head, bfloat16_is_fast())
    order = np.random.default_rng(run.seed)

    def cached_batches(indices: np.ndarray, size: int) -> Iterator[Batch]:
        return ((cached[chunk], data.targets(chunk)) for chunk in chunks(indices, size))

    lr = settings.learning_rate
    optimiser = torch.optim.AdamW([{"params": top.parameters(), "lr": lr * settings.top_lr_ratio},
                                   {"params": head.parameters(), "lr": lr}], weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs)

    epochs = itertools.count(1)

    def one_epoch() -> tuple[dict[str, float], Evaluation]:
        figures = train_one_epoch(tail, cached_batches(order.permutation(data.train), run.batch_size), optimiser)
        scheduler.step()
        tail.approximate = next(epochs) < settings.epochs  # the last epoch's is float32: see below
        val = evaluate(tail, cached_batches(data.val, settings.eval_batch))
        return {**figures, "validation_accuracy": val.accuracy}, val

    history, val = run_epochs(settings.epochs, one_epoch, progress)
    tail.approximate = True
    train = evaluate(tail, cached_batches(data.train, settings.eval_batch))
    tail.approximate = False
    # The last epoch's float32 validation outputs are the graph check's reference: no second pass.

    def graph() -> bytes:  # the trunk's graph, already made, then the trained tail's: 0.17 s less than whole
        tail_graph = export_onnx(Probabilities(tail), [torch.zeros(1, *cached.shape[1:])], ["trunk"],
                                 [OUTPUT_NAME])
        return chained(trunk_graph, tail_graph)

    return Fitted(Probabilities(model).eval(), history, train.predictions, val.predictions, data.spec,
                  val_probabilities=torch.softmax(val.outputs, 1).numpy(), graph=graph)


RECIPES: dict[str, Callable[[MobileNetV2, Data, TrainConfig, ProgressCallback], Fitted]] = {
    "fast": fast_recipe, "seed": seed_recipe}
