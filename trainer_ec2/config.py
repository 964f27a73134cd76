"""Training configuration: one run's knobs, each recipe's own settings, and the shape of a finished run."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Self


@dataclass(frozen=True)
class TrainConfig:
    """One run's knobs. ``None`` means the recipe's own default (its ``RecipeConfig``)."""

    recipe: str
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    seed: int = 0
    image_size: int | None = None  # None: the recipe's (seed 224; fast 160 for small pictures, else 224)
    frame_images: bool = True  # trim uniform borders, bring large inputs down to the training side (portable.frame)
    max_text_tokens: int = 128
    # Where torchvision's own MobileNetV2 ImageNet weights lie, when they do (else the packaged ones).
    torchvision_weights: str | None = None


@dataclass(frozen=True)
class RecipeConfig:
    """A recipe's settings, nanoGPT style: every number the recipe uses, with its measured default.

    Each recipe subclasses it with its own fields; a run may override only the epochs and learning rate."""

    epochs: int
    learning_rate: float

    def for_run(self, run: TrainConfig) -> Self:
        """These settings with the run's epochs and learning rate where it gives them."""
        return replace(self, epochs=run.epochs or self.epochs, learning_rate=run.learning_rate or self.learning_rate)


@dataclass
class TrainingResult:
    """Everything a run produces; the artifact store persists it, inference reads nothing else."""

    classes: list[str]
    onnx_model: bytes  # one graph: preprocessed input -> class probabilities
    preprocess: dict[str, Any]  # the spec platform_core.preprocess applies before the graph
    metrics: dict[str, Any]  # see trainer_ec2.metrics.summarise
    confusion_png: bytes
    extra_files: dict[str, bytes] = field(default_factory=dict)  # vocab.json, tokenizer.json ...
    # The trained torch module (preprocessed input -> probabilities), in memory only, never stored:
    # what the exported graph was checked against; benchmarks time it against onnxruntime.
    module: Any = None


# (epoch, total_epochs, figures of that epoch) -> None; raising stops the run.
ProgressCallback = Callable[[int, int, dict[str, float]], None]


def no_progress(epoch: int, total: int, figures: dict[str, float]) -> None:
    """The default progress callback: nothing to report to."""
