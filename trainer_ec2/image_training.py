"""Image classification on a normalised image zip: read and split it, run a recipe (trainer_ec2.image_recipes),
export one graph and check it against torch.

The graph takes ``image`` (float32 N x 3 x 224 x 224, from platform_core.preprocess.image) to
``probabilities`` (softmax inside). It is checked on the validation set: against the whole torch model on
every image, or, when the recipe hands back its own float32 validation probabilities, against those on the
first REFERENCE_SAMPLE images and against the whole torch model on the first WHOLE_SAMPLE (which covers the
part of the graph the reference came through onnxruntime for; the full check costs 2.7 s of a 15 s fast run).
"""
from __future__ import annotations

import torch

from trainer_ec2 import mistakes
from trainer_ec2.backbone import mobilenet_v2_pretrained, replace_head
from trainer_ec2.config import ProgressCallback, TrainConfig, TrainingResult, no_progress
from trainer_ec2.image_data import Data
from trainer_ec2.image_recipes import RECIPES
from trainer_ec2.loop import recipe_named, training_run
from trainer_ec2.onnx_export import CheckedGraph, export_checked
from trainer_ec2.results import Fitted, training_result

INPUT_NAME = "image"
REFERENCE_SAMPLE, WHOLE_SAMPLE = 64, 16
CHECK_BATCH = 8  # inference passes: as fast as 32 here, with a third of the extra memory


def check_graph(fitted: Fitted, data: Data) -> CheckedGraph:
    """The fitted model exported and checked on the validation images (see the module docstring)."""
    reference = fitted.val_probabilities
    checked = data.val if reference is None else data.val[:REFERENCE_SAMPLE]
    side = data.spec["size"]
    return export_checked(fitted.module, {INPUT_NAME: data.images(checked)}, example=[torch.zeros(1, 3, side, side)],
                          reference=reference, whole_sample=WHOLE_SAMPLE, batch_size=CHECK_BATCH,
                          graph=fitted.graph() if fitted.graph else None)


def train_image_classifier(zip_bytes: bytes, config: TrainConfig,
                           progress: ProgressCallback | None = None) -> TrainingResult:
    """Train on a normalised image zip; return the ONNX model (checked against torch), spec and metrics."""
    recipe = recipe_named(RECIPES, "image", config.recipe)
    with training_run("image", config.seed) as started:
        size = config.image_size or (224 if config.recipe == "seed" else None)
        data = Data(zip_bytes, config.seed, size, framed=config.frame_images)
        model, source = mobilenet_v2_pretrained(config)
        replace_head(model, len(data.classes))
        fitted = recipe(model, data, config, progress or no_progress)
        result = training_result(fitted, check_graph(fitted, data), recipe=config.recipe, classes=data.classes,
                                 train_true=data.labels[data.train], val_true=data.labels[data.val],
                                 shown_inputs=[data.names[i] for i in data.val], started=started,
                                 weights_source=source)
        missed = result.metrics["mistakes"]
        if missed:
            result.extra_files["mistakes.png"] = mistakes.album_png(
                [data.raw[data.val[m["index"]]] for m in missed], missed)
    return result
