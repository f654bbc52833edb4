"""Image preprocessing shared by training, evaluation and serving (so they can never disagree)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Deterministic eval preprocessing: resize the short side, centre-crop, normalise."""

    image_size: int = 224
    resize_size: int = 0  # 0 → the classic 256/224 ratio
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 1024:
            raise ValueError("image_size must be between 16 and 1024")
        if self.resize_size == 0:
            object.__setattr__(self, "resize_size", round(self.image_size * 256 / 224))
        if self.resize_size < self.image_size:
            raise ValueError("resize_size must be >= image_size")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        return cls(
            image_size=int(data["image_size"]),
            resize_size=int(data.get("resize_size", 0)),
            mean=tuple(data.get("mean", IMAGENET_MEAN)),
            std=tuple(data.get("std", IMAGENET_STD)),
        )


def resize_and_center_crop(image: torch.Tensor, size: int, crop: int) -> torch.Tensor:
    """uint8 CHW → uint8 CHW: short side to ``size`` (antialiased), then a ``crop`` × ``crop`` centre."""
    image = v2.functional.resize(image, [size], antialias=True)
    return v2.functional.center_crop(image, [crop, crop])


def eval_tensor(image: torch.Tensor, pp: Preprocess) -> torch.Tensor:
    """uint8 CHW (any size) → normalised float CHW ready for the network."""
    return normalize(resize_and_center_crop(image, pp.resize_size, pp.image_size).unsqueeze(0), pp)[0]


def normalize(batch: torch.Tensor, pp: Preprocess) -> torch.Tensor:
    """uint8 NCHW → float NCHW with ImageNet statistics (on the batch's own device)."""
    mean = torch.tensor(pp.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(pp.std, device=batch.device).view(1, 3, 1, 1) * 255.0
    return (batch.float() - mean) / std


def center_crop_batch(batch: torch.Tensor, crop: int) -> torch.Tensor:
    h, w = batch.shape[-2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return batch[..., top : top + crop, left : left + crop]


def random_resized_crop_flip(
    batch: torch.Tensor,
    out_size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Per-sample random-resized-crop + horizontal flip for a whole batch in one ``grid_sample``.

    Works on any device, so a decoded uint8 cache on the GPU is augmented without a CPU round trip.
    ``generator`` lives on the CPU; the random parameters are drawn there (cheap) for reproducibility.
    """
    n = batch.shape[0]
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    theta = theta.to(batch.device)
    grid = F.affine_grid(theta, [n, 3, out_size, out_size], align_corners=False)
    out = F.grid_sample(batch.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.clamp_(0, 255)
