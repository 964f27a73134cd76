"""The report card's look-alike checks: near-duplicate images within a class, and the same picture in two
classes (label leakage: one copy is probably mislabeled, and it inflates validation accuracy)."""
from __future__ import annotations

from platform_core.validation.report import ValidationReport, plural, summarise_items

# Measured on 1000 real Fashion-MNIST images, and on copies of them resized and saved as JPEG quality 70:
# copies differ by at most 12 of 256 dHash bits and by at most 1.1 (of 255) mean absolute grey level on a
# 32x32 thumbnail; 181 pairs of different pictures also come within 12 bits, but none within 6.5 grey levels.
NEAR_BITS = 12
NEAR_GREY = 3.0
MAX_COMPARED = 1000  # pairwise over at most 10 x 100 images: half a million integer comparisons


Picture = tuple[str, str, int, str, bytes]  # class, name as shown, dHash, sha256 of the upload, 32x32 thumbnail


def _same_picture(a: Picture, b: Picture) -> bool:
    if (a[2] ^ b[2]).bit_count() > NEAR_BITS:
        return False
    grey = sum(abs(x - y) for x, y in zip(a[4], b[4])) / max(1, len(a[4]))
    return grey <= NEAR_GREY


def near_groups(hashes: list[Picture]) -> list[list[Picture]]:
    """Groups of pictures that are copies of one another: dHashes within NEAR_BITS, confirmed on thumbnails."""
    items = hashes[:MAX_COMPARED]
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if _same_picture(items[i], items[j]):
                parent[root(j)] = root(i)
    groups: dict[int, list[Picture]] = {}
    for i, item in enumerate(items):
        groups.setdefault(root(i), []).append(item)
    return [g for g in groups.values() if len(g) > 1]


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
