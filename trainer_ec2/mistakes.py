"""The mistakes album: the validation examples a new model got wrong, most confident first, shown to the
user after training as "true -> predicted (confidence)" (a picture grid for images, a list for texts)."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

MAX_SHOWN = 12
TILE = 112  # px per picture in the album
CAPTION = 30


def wrong(val_true: Sequence[int], probabilities: np.ndarray, classes: Sequence[str],
          inputs: Sequence[str]) -> list[dict]:
    """Up to MAX_SHOWN misclassified validation examples, most confident mistakes first."""
    probabilities = np.asarray(probabilities)
    predicted = probabilities.argmax(1)
    confidence = probabilities.max(1)
    missed = [i for i in range(len(val_true)) if predicted[i] != val_true[i]]
    missed.sort(key=lambda i: -confidence[i])
    return [{"input": inputs[i], "true": classes[val_true[i]], "predicted": classes[predicted[i]],
             "confidence": round(float(confidence[i]), 4), "index": int(i)} for i in missed[:MAX_SHOWN]]


def album_png(pictures: Sequence[bytes], mistakes: Sequence[dict]) -> bytes:
    """A grid of the mistaken pictures, each captioned "true -> predicted NN%"."""
    columns = min(4, len(pictures)) or 1
    rows = -(-len(pictures) // columns)
    sheet = Image.new("RGB", (columns * TILE, rows * (TILE + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (raw, mistake) in enumerate(zip(pictures, mistakes)):
        x, y = (n % columns) * TILE, (n // columns) * (TILE + CAPTION)
        with Image.open(io.BytesIO(raw)) as img:
            tile = img.convert("RGB")
            tile.thumbnail((TILE - 8, TILE - 8))
            sheet.paste(tile, (x + (TILE - tile.width) // 2, y + (TILE - tile.height) // 2))
        draw.text((x + 4, y + TILE), f"{mistake['true'][:14]} ->", fill="black")
        draw.text((x + 4, y + TILE + 13), f"{mistake['predicted'][:10]} {mistake['confidence'] * 100:.0f}%", fill="firebrick")
    out = io.BytesIO()
    sheet.save(out, "PNG")
    return out.getvalue()
