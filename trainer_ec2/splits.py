"""Stratified, seeded train/validation splits: 80:20 for the smallest datasets up to 70:30 for the largest,
and the rule on what can be split at all."""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Collection, Sequence

from platform_core.errors import TooFewExamples

MIN_CLASSES = 2  # a classifier needs two classes to tell apart


def require_classes(kind: str, class_sizes: Collection[int], min_per_class: int = 1) -> None:
    """Raise TooFewExamples unless there are MIN_CLASSES classes, each of at least ``min_per_class`` examples."""
    smallest = min(class_sizes, default=0)
    if len(class_sizes) < MIN_CLASSES or smallest < min_per_class:
        raise TooFewExamples(kind, len(class_sizes), smallest, MIN_CLASSES, min_per_class)


def validation_fraction(smallest_class: int, small: int = 10, large: int = 100) -> float:
    """0.2 at ``small`` examples per class, 0.3 at ``large``, linear in between."""
    if smallest_class <= small:
        return 0.2
    if smallest_class >= large:
        return 0.3
    return 0.2 + 0.1 * (smallest_class - small) / (large - small)


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, validation): each class split in the same ratio, at least one example on each side
    of a class that has two or more."""
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    rng = random.Random(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(by_class):
        members = by_class[label][:]
        rng.shuffle(members)
        n_val = min(max(1, round(len(members) * val_fraction)), len(members) - 1)
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)
