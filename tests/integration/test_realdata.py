"""Quick checks of tools.realdata: the builders give the folders, counts and labels they promise,
decodable images, and the same bytes for the same seed. They fail, never skip, when the real data is
absent: `make data` fetches it."""
from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tools import realdata

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


needs_fashion = pytest.mark.usefixtures("fashion_mnist")
needs_vader = pytest.mark.usefixtures("vader_reviews")


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _rows(data: bytes, encoding: str = "utf-8") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


@needs_fashion
def test_fashion_mnist_loads_both_splits() -> None:
    images, labels = realdata.load_fashion_mnist("train")
    assert images.shape == (60000, 28, 28) and images.dtype.name == "uint8"
    assert sorted(set(labels.tolist())) == list(range(10))
    assert realdata.load_fashion_mnist("test")[0].shape == (10000, 28, 28)


@needs_fashion
def test_image_zip_has_class_folders_counts_and_decodable_pngs() -> None:
    data = realdata.build_image_zip(3, 5, size=64, top_folder="mine")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = [n for n in zf.namelist() if not n.endswith("/")]
        assert Counter(n.split("/")[1] for n in files) == {"tshirt_top": 5, "trouser": 5, "pullover": 5}
        assert all(n.startswith("mine/") and n.endswith(".png") for n in files)
        assert "mine/trouser/img_0001.png" in files and "mine/trouser/img_0005.png" in files
        for name in files:
            img = _decode(zf.read(name))
            assert (img.format, img.size) == ("PNG", (64, 64))


@needs_fashion
def test_image_zip_jpeg_and_named_classes() -> None:
    data = realdata.build_image_zip(["bag", "sneaker"], 2, fmt="jpeg")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = [n for n in zf.namelist() if not n.endswith("/")]
        assert sorted(files) == ["bag/img_0001.jpg", "bag/img_0002.jpg",
                                 "sneaker/img_0001.jpg", "sneaker/img_0002.jpg"]
        decoded = [_decode(zf.read(n)) for n in files]
        assert {(img.format, img.size) for img in decoded} == {("JPEG", (28, 28))}
    with pytest.raises(ValueError):
        realdata.build_image_zip(["bag", "hat"], 2)


@needs_fashion
def test_image_zip_is_deterministic() -> None:
    assert realdata.build_image_zip(2, 4, seed=3) == realdata.build_image_zip(2, 4, seed=3)
    assert realdata.build_image_zip(2, 4, seed=3) != realdata.build_image_zip(2, 4, seed=4)


@needs_fashion
def test_broken_zip_has_each_problem() -> None:
    with zipfile.ZipFile(io.BytesIO(realdata.build_broken_zip())) as zf:
        names = zf.namelist()
        assert "preview.png" in names and "__MACOSX/sneaker/._img_0001.png" in names
        assert sum(n.startswith("sandal/img_") for n in names) == 3
        with pytest.raises(OSError):
            _decode(zf.read("sneaker/img_0005.png"))
        with pytest.raises(OSError):
            _decode(zf.read("bag/img_0013.jpg"))
        _decode(zf.read("sneaker/img_0004.png"))


@needs_vader
def test_movie_review_labels_follow_the_rating_thresholds() -> None:
    ratings = dict(realdata._ratings())
    reviews = realdata.load_movie_reviews(neutral=True)
    counts = Counter(label for _, label in reviews)
    assert counts["positive"] > 4900 and counts["negative"] > 4900 and counts["neutral"] > 500
    for text, label in reviews:
        rating = ratings[text]
        assert label == ("positive" if rating >= 0.5 else "negative" if rating <= -0.5 else "neutral")
    assert "neutral" not in {label for _, label in realdata.load_movie_reviews()}


@needs_vader
def test_sentiment_csv_is_balanced_and_deterministic() -> None:
    data = realdata.build_sentiment_csv(50, seed=1)
    rows = _rows(data)
    assert rows[0] == ["text", "label"] and len(rows) == 101
    assert Counter(label for _, label in rows[1:]) == {"positive": 50, "negative": 50}
    assert all(text.strip() for text, _ in rows[1:])
    assert data == realdata.build_sentiment_csv(50, seed=1) != realdata.build_sentiment_csv(50, seed=2)
    assert _rows(realdata.build_sentiment_csv(50, seed=1, header=False)) == rows[1:]


@needs_vader
def test_sentiment_csv_three_classes_and_limits() -> None:
    rows = _rows(realdata.build_sentiment_csv(120, classes=3))
    assert Counter(label for _, label in rows[1:]) == {"positive": 120, "negative": 120, "neutral": 120}
    with pytest.raises(ValueError):
        realdata.build_sentiment_csv(600, classes=3)


@needs_vader
def test_broken_csv_is_cp1252_not_utf8() -> None:
    data = realdata.build_broken_csv()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    rows = _rows(data, "cp1252")
    assert Counter(label for _, label in rows[1:]) == {"positive": 100, "negative": 100}


@needs_vader
@needs_fashion
def test_committed_examples_match_the_builders() -> None:
    assert (EXAMPLES / "movie_reviews.csv").read_bytes() == realdata.build_sentiment_csv(150)
    assert (EXAMPLES / "broken.csv").read_bytes() == realdata.build_broken_csv()
    for name, data in [("fashion_small.zip", realdata.build_image_zip(
            ["tshirt_top", "trouser", "sneaker", "bag"], 30, top_folder="fashion_small")),
            ("broken.zip", realdata.build_broken_zip())]:
        with zipfile.ZipFile(EXAMPLES / name) as committed, zipfile.ZipFile(io.BytesIO(data)) as built:
            assert committed.namelist() == built.namelist()
    for path in EXAMPLES.glob("*.*"):
        assert path.stat().st_size < 200_000, path
