"""A zip's images, read within the byte caps and the work budget: every entry's header first, then decoding only
what can change the verdict, refused before decoding when the pixels would cost more than the budget."""
from __future__ import annotations

import hashlib
import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field

from platform_core.config import Limits
from platform_core.validation import budget as work
from platform_core.validation import images
from platform_core.validation.report import ValidationReport
from platform_core.validation.similarity import Picture
from platform_core.validation.ziplayout import Layout
from platform_core.validation.zipsafety import ARCHIVE_MAGIC, Budget, EntryRefused, display_name, read_bounded


@dataclass(frozen=True)
class Candidate:
    """An entry whose header reads as a JPEG or PNG within the per-image cap: an image, if it decodes."""

    info: zipfile.ZipInfo
    shown: str
    header: images.Header


@dataclass
class Images:
    """What decoding found, class by class; each usable image is written to the stored form as it is decoded,
    so no list of re-encoded images is held beside it."""

    usable: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seen: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # sha256 -> names
    pictures: list[Picture] = field(default_factory=list)
    small: list[str] = field(default_factory=list)
    # Image files per class left undecoded because the verdict was known (the class is over its cap).
    unchecked: dict[str, int] = field(default_factory=dict)
    _out: io.BytesIO = field(default_factory=io.BytesIO)

    def __post_init__(self) -> None:
        self._zip = zipfile.ZipFile(self._out, "w", compression=zipfile.ZIP_STORED)

    def keep(self, cls: str, image: images.DecodedImage) -> None:
        """Store one usable image under our own name: one folder per class, numbered in name order."""
        self.usable[cls] += 1
        self._zip.writestr(f"{cls}/{self.usable[cls]:04d}.{image.extension}", image.data)

    def stored(self) -> bytes:
        """The stored form: our own names, one folder per class, re-encoded images."""
        self._zip.close()
        return self._out.getvalue()


def read_images(zf: zipfile.ZipFile, layout: Layout, limits: Limits, budget: work.WorkBudget,
                report: ValidationReport) -> Images | None:
    """Survey every entry, then decode what matters; None when checking had to stop part-way.

    Images over the pixel budget are refused before any is decoded; the class rules then still run on what the
    headers show, so the reply lists those problems too."""
    deadline = budget.start()
    found = _survey(zf, layout, limits, budget, deadline, report)
    if found is None:
        return None
    plan = _plan(found, layout, limits)
    planned = [c for cands in plan.values() for c in cands]
    total = sum(c.header.decode_pixels for c in planned)
    if total > budget.max_decode_pixels:
        _refuse_pixels(planned, total, budget, limits, report)
        plan = {cls: [] for cls in found}
    return _decode(zf, found, plan, limits, budget, deadline, report)


def _survey(zf: zipfile.ZipFile, layout: Layout, limits: Limits, budget: work.WorkBudget,
            deadline: work.Deadline, report: ValidationReport) -> dict[str, list[Candidate]] | None:
    """Decompress every entry with real byte counting and read its image header; collect rejections."""
    counted = Budget(limits.max_total_bytes)
    found: dict[str, list[Candidate]] = {}
    for cls in sorted(layout.classes):
        found[cls] = []
        for info in sorted(layout.classes[cls], key=lambda i: i.filename):
            shown = display_name(info.filename)
            if deadline.passed():
                report.error("too_slow", work.too_slow(deadline.seconds, shown, _side(budget, limits)), shown)
                return None
            try:
                raw = read_bounded(zf, info, limits, counted)
            except EntryRefused as exc:
                report.error("unsafe_entry", f"'{shown}' {exc}.", shown)
                if counted.used > counted.limit:
                    return None  # reading stopped part-way: counts per class would only mislead
                continue
            if raw.startswith(ARCHIVE_MAGIC):
                report.error("nested_archive", f"'{shown}' is an archive inside the archive.", shown)
                continue
            try:
                found[cls].append(Candidate(info, shown, images.probe(raw, limits.max_image_pixels)))
            except images.ImageRejected as exc:
                report.error("bad_image", f"'{shown}' {exc}.", shown)
    return found


def _plan(found: dict[str, list[Candidate]], layout: Layout, limits: Limits) -> dict[str, list[Candidate]]:
    """The images that must be decoded for a verdict: none when there are more class folders than allowed
    (no image can change that), else per class up to one past its cap (which proves the class too large)."""
    if len(set(layout.classes) | layout.empty_folders) > limits.max_image_classes:
        return {cls: [] for cls in found}
    return {cls: cands[:limits.max_images_per_class + 1] for cls, cands in found.items()}


def _decode(zf: zipfile.ZipFile, found: dict[str, list[Candidate]], plan: dict[str, list[Candidate]],
            limits: Limits, budget: work.WorkBudget, deadline: work.Deadline,
            report: ValidationReport) -> Images | None:
    """Decode class by class, stopping in a class once it is proved over its cap."""
    out = Images()
    spent = 0
    counted = Budget(limits.max_total_bytes)  # these entries were read once within the caps already
    for cls, cands in found.items():
        if not plan[cls]:
            out.unchecked[cls] = len(cands)
            continue
        for index, cand in enumerate(cands):
            if out.usable[cls] > limits.max_images_per_class:
                out.unchecked[cls] = len(cands) - index
                break
            spent += cand.header.decode_pixels  # more than planned only when planned images failed to decode
            if spent > budget.max_decode_pixels:
                _refuse_pixels(cands[:index + 1], None, budget, limits, report)
                return None
            if deadline.passed():
                report.error("too_slow", work.too_slow(deadline.seconds, cand.shown, _side(budget, limits)),
                             cand.shown)
                return None
            try:
                raw = read_bounded(zf, cand.info, limits, counted)
            except EntryRefused as exc:
                report.error("unsafe_entry", f"'{cand.shown}' {exc}.", cand.shown)
                continue
            try:
                decoded = images.decode_and_normalise(raw, limits.max_image_pixels)
            except images.ImageRejected as exc:
                report.error("bad_image", f"'{cand.shown}' {exc}.", cand.shown)
                continue
            out.keep(cls, decoded)
            digest = hashlib.sha256(raw).hexdigest()
            out.seen[digest].append(cand.shown)
            out.pictures.append((cls, cand.shown, decoded.dhash, digest, decoded.thumb))
            if min(decoded.width, decoded.height) < limits.min_image_side_warning:
                out.small.append(cand.shown)
    return out


def _side(budget: work.WorkBudget, limits: Limits) -> int:
    """The side at which the largest valid dataset fits the budget: the advice a refusal gives."""
    return budget.fitting_side(limits.max_image_classes * limits.max_images_per_class)


def _refuse_pixels(cands: list[Candidate], total: int | None, budget: work.WorkBudget, limits: Limits,
                   report: ValidationReport) -> None:
    dearest = sorted(cands, key=lambda c: (-c.header.decode_pixels, c.shown))
    largest = [(c.shown, c.header.width, c.header.height) for c in dearest[:3]]
    message = work.too_many_pixels(largest, len(cands), total, budget.max_decode_pixels, _side(budget, limits))
    report.error("too_many_pixels", message, dearest[0].shown)
