"""Validation's work budget: how many pixels an upload's images may take to decode, and how long checking may run.

The byte caps (config.Limits) bound what is read, not what decoding costs: a 6300x6300 PNG of one colour
deflates to a few hundred bytes and takes most of a second to decode. Headers are read first (Pillow opens
lazily), so an archive whose images would cost more than the pixel budget is refused before a pixel is
decoded; the clock is the backstop for costs that pixel counts do not foresee.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from platform_core.validation.report import summarise_items

# The dearest images to check are flat-colour PNGs of about 1024 px, whose re-encoding costs more than their
# decoding: about 35 ms a megapixel here (2 cores, one used, glibc malloc; bench/intake.py measures every
# kind). 400 megapixels is then about 14 s, so with reading and hashing any upload's answer comes well within
# the 30 s a chat user waits. A valid dataset at the advised size fits: 1000 images of 600x600 are 360.
MAX_DECODE_PIXELS = 400_000_000
MAX_SECONDS = 20.0  # the backstop, for costs that pixel counts do not foresee
_STORED_SIDE = 1024  # images.MAX_STORED_SIDE: larger sides are never needed (training uses 224 px)


@dataclass(frozen=True)
class WorkBudget:
    """What validating one upload may cost; the defaults suit a chat reply, tests pass smaller ones."""

    max_decode_pixels: int = MAX_DECODE_PIXELS
    max_seconds: float = MAX_SECONDS
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def start(self) -> "Deadline":
        """The moment, from now, at which checking must stop."""
        return Deadline(self.clock, self.clock() + self.max_seconds, self.max_seconds)

    def fitting_side(self, images: int) -> int:
        """A side that keeps ``images`` square images within the pixel budget (round, at most the stored side)."""
        side = min(math.isqrt(self.max_decode_pixels // max(1, images)), _STORED_SIDE)
        return side - side % 100 if side >= 200 else max(1, side)


@dataclass(frozen=True)
class Deadline:
    clock: Callable[[], float]
    at: float
    seconds: float

    def passed(self) -> bool:
        return self.clock() > self.at


def megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:,.0f}" if pixels >= 10_000_000 else f"{pixels / 1_000_000:,.1f}"


def too_many_pixels(largest: list[tuple[str, int, int]], count: int, total: int | None, limit: int,
                    side: int) -> str:
    """The sentence for images that would take more than the budget to decode.

    ``largest`` is (name, width, height) of the dearest images first, ``count`` how many images there are;
    ``total`` is the pixels to decode when known (None when decoding was stopped part-way); ``side`` is the
    size that would fit."""
    shown = [f"{name} ({w}x{h})" for name, w, h in largest[:3]]
    names = summarise_items(shown, 3) if count <= len(shown) else f"{', '.join(shown)} and {count - len(shown)} more"
    amount = f"{megapixels(total)} megapixels" if total is not None else f"more than {megapixels(limit)} megapixels"
    return (f"The images are too large to check in time: decoding them takes {amount}, over the limit of "
            f"{megapixels(limit)} for one upload (the largest: {names}). Resize the images to at most {side} px "
            "on a side (training uses 224 px) and upload again.")


def too_slow(seconds: float, where: str, side: int) -> str:
    """The sentence for an upload whose checking ran past the clock."""
    return (f"Checking the images took longer than {seconds:g} s, so it stopped at '{where}'. Send fewer or "
            f"smaller images (at most {side} px on a side) and upload again.")
