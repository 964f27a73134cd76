"""Image robustness benchmark: does a model answer the same for the same picture resized, recompressed or framed?

Run by `make bench` (bench.run robustness), or alone with `python -m bench.image_robustness`.

A model is trained with the fast recipe on 10 classes x 100 real Fashion-MNIST images (28 px PNGs, as a user
would zip them); then 300 held-out pictures from Fashion-MNIST's test split (30 a class, never trained on)
are predicted through the inference path (platform_core.preprocess.portable, onnxruntime), each as sent
and as people send them again: upscaled (x4, to 1280 px the way Telegram delivers photos), downscaled
again after that, re-encoded as JPEG at quality 70 and 90, and with a border of white, black or grey (a
quarter of the side on each edge). For each variant: accuracy, and agreement with the answer for the
original; then the share of answers that went to the single most-chosen class (a collapse).
"""
from __future__ import annotations

import io
import json
import os
import time
from collections import Counter
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from bench.child import run_child, serve

PER_CLASS, TEST_PER_CLASS = 100, 30


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _up(img: Image.Image, side: int) -> Image.Image:
    return img.resize((side, side), Image.Resampling.BICUBIC)


def _border(img: Image.Image, colour: int) -> Image.Image:
    return ImageOps.expand(img, border=img.width // 4, fill=colour)


VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "original (28 px PNG)": _png,
    "upscaled x4 (112 px PNG)": lambda i: _png(_up(i, 112)),
    "upscaled to 1280 px, JPEG 80 (Telegram)": lambda i: _jpeg(_up(i, 1280), 80),
    "1280 px then down to 300 px, JPEG 85": lambda i: _jpeg(_up(i, 1280).resize((300, 300), Image.Resampling.LANCZOS), 85),
    "JPEG quality 70": lambda i: _jpeg(i, 70),
    "JPEG quality 90": lambda i: _jpeg(i, 90),
    "upscaled x8, JPEG 70": lambda i: _jpeg(_up(i, 224), 70),
    "white border": lambda i: _png(_border(i, 255)),
    "black border": lambda i: _png(_border(i, 0)),
    "grey border": lambda i: _png(_border(i, 128)),
}


def child(views: str) -> None:
    """Train (``views``: the recipe's default, or "1" for one view and no input normalisation, as before) and
    print each variant's figures as JSON."""
    import onnxruntime as ort

    from platform_core.preprocess.portable import probabilities
    from tools import realdata
    from trainer_ec2.config import TrainConfig
    from trainer_ec2.image_training import train_image_classifier

    data = realdata.build_image_zip(10, PER_CLASS)
    from platform_core.config import Limits
    from platform_core.validation import validate_dataset

    stored = validate_dataset(data, "fashion.zip", Limits()).normalised
    config = TrainConfig(recipe="fast", frame_images=views == "default")
    start = time.perf_counter()
    result = train_image_classifier(stored, config)
    wall = time.perf_counter() - start
    sess = ort.InferenceSession(result.onnx_model, providers=["CPUExecutionProvider"])
    test = realdata.sample_images(result.classes, TEST_PER_CLASS, seed=5, split="test")
    figures = {}
    for name, make in VARIANTS.items():
        answers, truth = [], []
        for label, arrays in test.items():
            for pixels in arrays:
                p = probabilities(sess, result.preprocess, {}, image=make(Image.fromarray(pixels)))
                answers.append(int(np.argmax(p)))
                truth.append(result.classes.index(label))
        figures[name] = {"answers": answers, "truth": truth}
    print(json.dumps({"wall_s": wall, "validation_accuracy": result.metrics["validation_accuracy"],
                      "figures": figures}))


def main() -> int:
    runs = {"before (one view, no input normalisation)": run_child("bench.image_robustness", "--child", "plain"),
            "now (the fast recipe)": run_child("bench.image_robustness", "--child", "default")}
    print(f"Fast recipe on 10 classes x {PER_CLASS} Fashion-MNIST PNGs; {TEST_PER_CLASS * 10} held-out test pictures "
          f"per variant; {os.cpu_count()} cores.\n")
    for title, run in runs.items():
        original = run["figures"]["original (28 px PNG)"]["answers"]
        print(f"**{title}**: trained in {run['wall_s']:.1f} s, validation accuracy {run['validation_accuracy']:.3f}\n")
        print("| variant | accuracy | same answer as the original | share of the most-chosen class |")
        print("|---|---:|---:|---:|")
        for name, fig in run["figures"].items():
            answers, truth = np.array(fig["answers"]), np.array(fig["truth"])
            top = Counter(fig["answers"]).most_common(1)[0][1] / len(answers)
            print(f"| {name} | {float((answers == truth).mean()):.3f} | {float((answers == np.array(original)).mean()):.3f} "
                  f"| {top:.2f} |")
        print()
    return 0


if __name__ == "__main__":
    serve(main, {"child": child})
