"""A stored image dataset as training reads it: the normalised zip's images (kept encoded), their labels and
the seeded stratified split, with the batches every image recipe draws from them."""
from __future__ import annotations

import io
import zipfile
from collections import Counter
from typing import Iterator

import numpy as np
import torch

from platform_core.errors import TrainingDataUnreadable
from platform_core.preprocess.image import batch, framing_of, image_spec, median_side, preprocess_image_bytes
from trainer_ec2.loop import Batch
from trainer_ec2.splits import require_classes, stratified_split, validation_fraction


# Measured on 10 classes x 100 Fashion-MNIST (28 px), 3 seeded splits, fast recipe: 224 px 0.858 in 10.3 s,
# 160 px 0.856 in 6.0 s, 128 px 0.828 in 4.0 s. Pictures this small or smaller train at SMALL_SIDE.
SMALL_SIDE, SMALL_PICTURE = 160, 112


class Data:
    """A normalised zip's images (kept encoded), labels, classes in sorted order and seeded split."""

    def __init__(self, zip_bytes: bytes, seed: int, size: int | None, *, framed: bool = True) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
                names = sorted(n for n in zf.namelist() if not n.endswith("/"))
                self.raw = [zf.read(n) for n in names]
                self.names = names
        except zipfile.BadZipFile as exc:
            raise TrainingDataUnreadable("image", f"is not a readable zip ({exc})") from None
        if any(n.count("/") != 1 for n in names):
            raise TrainingDataUnreadable("image", "is not a normalised image zip (<class>/<image> entries)")
        self.classes = sorted({n.split("/")[0] for n in names})
        self.labels = np.array([self.classes.index(n.split("/")[0]) for n in names], dtype=np.int64)
        sizes = Counter(self.labels.tolist()).values()
        require_classes("image", sizes)
        train, val = stratified_split(self.labels.tolist(), validation_fraction(min(sizes)), seed=seed)
        self.train, self.val = np.array(train), np.array(val)
        # Framed (portable.frame) unless asked not to: the model then answers alike for a picture resized,
        # recompressed or set in a border (bench/image_robustness.py measures it).
        if size is None:  # small pictures lose nothing at 160 px (bench/RESULTS.md): the trunk costs half
            size = SMALL_SIDE if median_side([self.raw[i] for i in self.train]) <= SMALL_PICTURE else 224
        self.spec = image_spec(size, **(framing_of([self.raw[i] for i in self.train], size) if framed else {}))

    def images(self, indices: np.ndarray) -> np.ndarray:
        """Preprocessed float32 (N, 3, H, W) for these indices."""
        return batch([preprocess_image_bytes(self.raw[i], self.spec) for i in indices])

    def targets(self, indices: np.ndarray) -> torch.Tensor:
        """The labels of these indices, as cross-entropy takes them."""
        return torch.from_numpy(self.labels[indices])

    def batches(self, indices: np.ndarray, size: int) -> Iterator[Batch]:
        """(decoded images, labels) for these indices, ``size`` at a time, in order."""
        for chunk in chunks(indices, size):
            yield torch.from_numpy(self.images(chunk)), self.targets(chunk)


def chunks(indices: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive slices of at most ``size`` indices."""
    return [indices[i:i + size] for i in range(0, len(indices), size)]
