"""Real public data turned into user-style uploads for tests, benchmarks and the demo.

Images: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (idx gz files). Text: the human-rated
movie-review snippets of Hutto & Gilbert (ICWSM 2014), read in memory from the ``vaderSentiment==3.3.2``
source archive. Builders return bytes (a zip with one folder per class, or a ``text,label`` CSV) and are
deterministic for a given seed. CLI: ``python -m tools.realdata fetch`` / ``examples OUT_DIR``.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FASHION_CLASSES = ["tshirt_top", "trouser", "pullover", "dress", "coat",
                   "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
SENTIMENT_LABELS = ["positive", "negative", "neutral"]
VADER_SDIST = "vaderSentiment-3.3.2.tar.gz"
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
_INNER_TAR = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
_SNIPPETS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
_ZIP_TIME = (2024, 5, 17, 9, 30, 0)  # fixed, so the same seed gives the same bytes


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("MLBOT_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def data_dir() -> Path:
    return Path(os.environ.get("MLBOT_DATA_DIR", REPO / ".data"))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)  # read-only: safe to cache
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims}, found {data.size} bytes")
    return data.reshape(dims)


@lru_cache(maxsize=2)
def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 indexing FASHION_CLASSES; split train|test."""
    prefix = {"train": "train", "test": "t10k", "t10k": "t10k"}[split]
    folder = fashion_mnist_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} missing: apt-get install dataset-fashion-mnist "
                                "or set MLBOT_FASHION_MNIST_DIR")
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"unexpected shapes {images.shape} / {labels.shape}")
    return images, labels


def sample_images(classes: int | Sequence[str], per_class: int, *, seed: int = 0,
                  split: str = "train") -> dict[str, np.ndarray]:
    """Deterministic pick of per_class distinct images for each class (first N classes if an int)."""
    names = FASHION_CLASSES[:classes] if isinstance(classes, int) else list(classes)
    if (isinstance(classes, int) and not 1 <= classes <= 10) or not names \
            or len(set(names)) != len(names) or not set(names) <= set(FASHION_CLASSES):
        raise ValueError(f"classes must be 1-10 distinct names from {FASHION_CLASSES}")
    images, labels = load_fashion_mnist(split)
    rng = np.random.default_rng(seed)
    picked = {}
    for name in names:
        pool = np.flatnonzero(labels == FASHION_CLASSES.index(name))
        if per_class > pool.size:
            raise ValueError(f"{name}: only {pool.size} images in {split}")
        picked[name] = images[rng.choice(pool, per_class, replace=False)]
    return picked


def encode_image(pixels: np.ndarray, fmt: str = "PNG", size: int | None = None) -> bytes:
    img = Image.fromarray(pixels)
    if size:
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _zip(entries: Iterable[tuple[str, bytes | None]]) -> bytes:
    """Zip (name, data) pairs in order; data None is a directory entry, as zip tools write them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = (0o40755 << 16) | 0x10 if data is None else 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if data is None else zipfile.ZIP_DEFLATED
            zf.writestr(info, data or b"")
    return buf.getvalue()


def _class_entries(picked: dict[str, np.ndarray], prefix: str, fmt: str,
                   size: int | None) -> list[tuple[str, bytes | None]]:
    ext = "jpg" if fmt == "JPEG" else "png"
    entries: list[tuple[str, bytes | None]] = []
    for name, arrays in picked.items():
        entries.append((f"{prefix}{name}/", None))
        entries += [(f"{prefix}{name}/img_{i:04d}.{ext}", encode_image(a, fmt, size))
                    for i, a in enumerate(arrays, 1)]
    return entries


def build_image_zip(classes: int | Sequence[str], per_class: int, *, seed: int = 0,
                    fmt: str = "PNG", size: int | None = None, top_folder: str | None = None,
                    split: str = "train") -> bytes:
    """A user-style zip: <class>/img_0001.png ..., optionally inside one top-level folder."""
    fmt = {"JPG": "JPEG"}.get(fmt.upper(), fmt.upper())
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"fmt must be PNG or JPEG, not {fmt}")
    prefix = f"{top_folder.strip('/')}/" if top_folder else ""
    picked = sample_images(classes, per_class, seed=seed, split=split)
    return _zip(([(prefix, None)] if prefix else []) + _class_entries(picked, prefix, fmt, size))


def build_broken_zip(seed: int = 0) -> bytes:
    """An upload with several problems at once; see examples/README.md for the list."""
    picked = sample_images(["sneaker", "bag", "sandal"], 12, seed=seed)
    picked["sandal"] = picked["sandal"][:3]  # a class with too few images
    entries = _class_entries(picked, "", "PNG", None)
    names = [name for name, _ in entries]
    i = names.index("sneaker/img_0005.png")
    entries[i] = (entries[i][0], entries[i][1][: len(entries[i][1] or b"") // 2])  # truncated PNG
    entries.insert(names.index("sandal/"),  # a text file renamed to .jpg, at the end of bag/
                   ("bag/img_0013.jpg", b"todo: ask Sam for the rest of the bag photos\r\n"))
    entries.insert(0, ("preview.png", encode_image(picked["bag"][0])))  # stray file at the root
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(66)
    entries += [("__MACOSX/", None), ("__MACOSX/sneaker/", None),
                ("__MACOSX/sneaker/._img_0001.png", apple_double)]  # junk to be ignored
    return _zip(entries)


def vader_archive(*, download: bool = True) -> Path:
    """Path to the checked vaderSentiment sdist in data_dir(), fetched with pip if missing."""
    path = data_dir() / VADER_SDIST
    if not path.exists():
        if not download:
            raise FileNotFoundError(f"{path} missing: run python -m tools.realdata fetch")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                            ":all:", "vaderSentiment==3.3.2", "-d", tmp], check=True)
            fetched = Path(tmp) / VADER_SDIST
            if hashlib.sha256(fetched.read_bytes()).hexdigest() != VADER_SHA256:
                raise ValueError(f"{VADER_SDIST}: sha256 mismatch, refusing to use it")
            os.replace(fetched, path)
    if hashlib.sha256(path.read_bytes()).hexdigest() != VADER_SHA256:
        raise ValueError(f"{path}: sha256 mismatch; delete it and fetch again")
    return path


@lru_cache(maxsize=4)
def _ratings(corpus: str = _SNIPPETS) -> tuple[tuple[str, float], ...]:
    with tarfile.open(vader_archive(), "r:gz") as outer:
        inner = outer.extractfile(_INNER_TAR)
        assert inner is not None, _INNER_TAR
        with tarfile.open(fileobj=io.BytesIO(inner.read()), mode="r:gz") as snippets:
            member = snippets.extractfile(corpus)
            assert member is not None, corpus
            raw = member.read().decode("utf-8")
    rows, seen = [], set()
    for line in raw.split("\n"):
        parts = line.rstrip("\r").split("\t", 2)
        if len(parts) == 3 and parts[2].strip() and parts[2].strip() not in seen:
            seen.add(parts[2].strip())  # drop the two exact duplicate snippets
            rows.append((parts[2].strip(), float(parts[1])))
    return tuple(rows)


def load_movie_reviews(*, neutral: bool = False) -> list[tuple[str, str]]:
    """(text, label): positive at rating >= 0.5, negative at <= -0.5, neutral between if asked."""
    out = []
    for text, rating in _ratings():
        label = "positive" if rating >= 0.5 else "negative" if rating <= -0.5 else "neutral"
        if label != "neutral" or neutral:
            out.append((text, label))
    return out


def load_rated_snippets(corpus: str) -> list[tuple[str, float]]:
    """(text, mean human rating) of one VADER corpus, e.g. 'nytEditorialSnippets'."""
    return list(_ratings(f"hutto_ICWSM_2014/{corpus}_GroundTruth.txt"))


def _pick_reviews(per_class: int, classes: int, seed: int, accented: int = 0) -> list[list[str]]:
    if classes not in (2, 3):
        raise ValueError("classes must be 2 or 3")
    reviews, rng, rows = load_movie_reviews(neutral=classes == 3), random.Random(seed), []
    for label in SENTIMENT_LABELS[:classes]:
        pool = [text for text, lab in reviews if lab == label]
        if per_class > len(pool):
            raise ValueError(f"only {len(pool)} {label} reviews, asked for {per_class}")
        chosen = [t for t in pool if not t.isascii()][:accented]  # the accents show an encoding
        chosen += rng.sample([t for t in pool if t not in chosen], per_class - len(chosen))
        rows += [[text, label] for text in chosen]
    rng.shuffle(rows)
    return rows


def _csv(rows: list[list[str]], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buf.getvalue()


def build_sentiment_csv(per_class: int, *, classes: int = 2, seed: int = 0,
                        header: bool = True) -> bytes:
    """A balanced UTF-8 ``text,label`` CSV of movie-review snippets (neutral too if classes=3)."""
    return _csv(_pick_reviews(per_class, classes, seed), header).encode("utf-8")


def build_corpus_csv(corpus: str, per_class: int, *, classes: int = 2, seed: int = 0) -> bytes:
    """A balanced ``text,label`` CSV from one VADER corpus ('movieReviewSnippets', 'amazonReviewSnippets',
    'tweets', 'nytEditorialSnippets'): positive at a mean rating >= 0.5, negative <= -0.5, neutral between
    (with classes=3)."""
    rng, rows = random.Random(seed), []
    rated = load_rated_snippets(corpus)
    for label in SENTIMENT_LABELS[:classes]:
        pool = [t for t, r in rated if label == ("positive" if r >= 0.5 else "negative" if r <= -0.5 else "neutral")]
        if per_class > len(pool):
            raise ValueError(f"{corpus}: only {len(pool)} {label} texts, asked for {per_class}")
        rows += [[text, label] for text in rng.sample(pool, per_class)]
    rng.shuffle(rows)
    return _csv(rows, True).encode("utf-8")


def largest_zip() -> bytes:
    """10 classes x 100 real Fashion-MNIST images, upscaled to 96 px as phone-sized thumbnails would be."""
    return build_image_zip(10, 100, size=96)


def largest_csv() -> bytes:
    """3 x 1000 real human-rated snippets: movie reviews, with NYT editorial snippets topping up neutral."""
    rng = random.Random(0)
    movie = load_movie_reviews(neutral=True)
    nyt = [(t, r) for t, r in load_rated_snippets("nytEditorialSnippets") if -0.5 < r < 0.5]
    rows = []
    for label in ("positive", "negative"):
        rows += [(t, label) for t in rng.sample([t for t, lab in movie if lab == label], 1000)]
    neutral = [t for t, lab in movie if lab == "neutral"]
    neutral += rng.sample([t for t, _ in nyt], 1000 - len(neutral))
    rows += [(t, "neutral") for t in neutral]
    rng.shuffle(rows)
    out = io.StringIO()
    csv.writer(out).writerows([("text", "label"), *rows])
    return out.getvalue().encode("utf-8")


def build_broken_csv(per_class: int = 100, *, seed: int = 0) -> bytes:
    """A valid-looking CSV saved as Windows-1252 (as Excel does), so not UTF-8."""
    data = _csv(_pick_reviews(per_class, 2, seed, accented=4), True).encode("cp1252")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    raise AssertionError("sample happens to be valid UTF-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.realdata", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="make sure Fashion-MNIST and the VADER archive are present")
    ex = sub.add_parser("examples", help="write the committed demo samples")
    ex.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        status = 0
        try:
            print(f"vader: {vader_archive()}")
        except (OSError, ValueError, subprocess.CalledProcessError) as exc:
            print(f"vader: {exc}", file=sys.stderr)
            status = 1
        names = [f"{p}-{k}-idx{n}-ubyte.gz" for p in ("train", "t10k")
                 for k, n in (("images", 3), ("labels", 1))]
        if all((fashion_mnist_dir() / name).is_file() for name in names):
            print(f"fashion-mnist: {fashion_mnist_dir()}")
        else:
            print(f"fashion-mnist: not found in {fashion_mnist_dir()}; run "
                  "`apt-get install dataset-fashion-mnist` (or set MLBOT_FASHION_MNIST_DIR)",
                  file=sys.stderr)
            status = 1
        return status
    args.out_dir.mkdir(parents=True, exist_ok=True)
    samples = {
        "fashion_small.zip": build_image_zip(["tshirt_top", "trouser", "sneaker", "bag"], 30,
                                             top_folder="fashion_small"),
        "movie_reviews.csv": build_sentiment_csv(150),
        "broken.zip": build_broken_zip(),
        "broken.csv": build_broken_csv(),
    }
    for name, data in samples.items():
        (args.out_dir / name).write_bytes(data)
        print(f"{args.out_dir / name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
