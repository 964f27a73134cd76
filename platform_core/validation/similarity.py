"""The report card's look-alike checks: near-duplicate images within a class, and the same picture in two
classes (label leakage: one copy is probably mislabeled, and it inflates validation accuracy)."""
from __future__ import annotations

import numpy as np

from platform_core.validation.report import ValidationReport, plural, summarise_items

# Measured on 1000 real Fashion-MNIST images, and on copies of them resized and saved as JPEG quality 70:
# copies differ by at most 12 of 256 dHash bits and by at most 1.1 (of 255) mean absolute grey level on a
# 32x32 thumbnail; 181 pairs of different pictures also come within 12 bits, but none within 6.5 grey levels.
NEAR_BITS = 12
NEAR_GREY = 3.0
MAX_COMPARED = 1000  # at most 10 x 100 images are kept; past that the upload is refused anyway


Picture = tuple[str, str, int, str, bytes]  # class, name as shown, dHash, sha256 of the upload, 32x32 thumbnail


def near_groups(hashes: list[Picture]) -> list[list[Picture]]:
    """Groups of pictures that are copies of one another: dHashes within NEAR_BITS, confirmed on thumbnails
    (mean absolute grey difference within NEAR_GREY), grouped transitively.

    Exact copies (one dHash, one thumbnail) are merged first by a dictionary; the distinct pictures left are
    compared one against all the rest at once with numpy, and only against pictures not already in its group,
    so a thousand copies of one image cost one comparison, not half a million."""
    items = hashes[:MAX_COMPARED]
    component = list(range(len(items)))
    first_of: dict[tuple[int, bytes], int] = {}
    distinct: list[int] = []
    for i, p in enumerate(items):
        component[i] = first_of.setdefault((p[2], bytes(p[4])), i)
        if component[i] == i:
            distinct.append(i)
    by_size: dict[int, list[int]] = {}
    for i in distinct:  # thumbnails are compared only with thumbnails of their own size
        by_size.setdefault(len(items[i][4]), []).append(i)
    for members in by_size.values():
        for index, label in _link([items[i] for i in members]).items():
            component[members[index]] = members[label]
    groups: dict[int, list[Picture]] = {}
    for i, item in enumerate(items):
        groups.setdefault(component[component[i]], []).append(item)
    return [g for g in groups.values() if len(g) > 1]


def _link(pictures: list[Picture]) -> dict[int, int]:
    """Each picture's group, as the index of the group's first picture (its own index when it has none)."""
    n = len(pictures)
    if n < 2:
        return {}
    words = np.array([[(p[2] >> (64 * k)) & (2**64 - 1) for k in range(4)] for p in pictures], dtype=np.uint64)
    side = len(pictures[0][4])
    thumbs = np.frombuffer(b"".join(bytes(p[4]) for p in pictures), np.uint8).reshape(n, side).astype(np.int16)
    sums = thumbs.sum(axis=1, dtype=np.int64)
    grey_total = NEAR_GREY * max(1, side)  # the bound on the mean grey difference, as a bound on the total
    label = np.arange(n)
    for i in range(n - 1):
        others = np.arange(i + 1, n)
        others = others[label[others] != label[i]]  # already in its group: nothing to learn
        # |sum a - sum b| never exceeds sum |a - b|: a cheap, exact filter before the pixel comparison
        others = others[np.abs(sums[others] - sums[i]) <= grey_total]
        if others.size:
            others = others[np.bitwise_count(words[others] ^ words[i]).sum(axis=1) <= NEAR_BITS]
        if others.size:
            same = others[np.abs(thumbs[others] - thumbs[i]).sum(axis=1) <= grey_total]
            if same.size:
                label[np.isin(label, label[same])] = label[i]
    first = {}
    for index, group in enumerate(label.tolist()):
        first.setdefault(group, index)
    return {index: first[group] for index, group in enumerate(label.tolist())}


def warn_look_alikes(hashes: list[Picture], report: ValidationReport) -> None:
    """Warnings (never errors: the user decides) for near-duplicates and for pictures in two classes.
    Byte-identical copies within a class are already reported as duplicate files."""
    groups = near_groups(hashes)
    across = [g for g in groups if len({p[0] for p in g}) > 1]
    within = [g for g in groups if len({p[0] for p in g}) == 1 and len({p[3] for p in g}) > 1]
    if across:
        shown = summarise_items([" ~ ".join(p[1] for p in g[:3]) for g in across], 3)
        report.warn("label_leakage", f"{plural(len(across), 'picture')} appear in more than one class ({shown}); "
                    "one copy is probably mislabeled, and copies on both sides of the split flatter the "
                    "validation accuracy.")
    if within:
        extra = sum(len(g) - 1 for g in within)
        shown = summarise_items([" ~ ".join(p[1] for p in g[:3]) for g in within], 3)
        report.warn("near_duplicates", f"{plural(extra, 'image')} nearly repeat another of the same class "
                    f"({shown}); they add little and flatter the validation accuracy.")
