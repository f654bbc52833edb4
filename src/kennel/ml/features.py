"""The frozen-backbone fast path: run the backbone once per image and keep the features.

With a frozen backbone (in eval mode) the features of the un-augmented images never change, so
every epoch — and every tuning trial with the same backbone — can train the head on them alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from .data import DecodedSplit
from .distributed import Placement
from .progress import Bar
from .transforms import Preprocess, center_crop_batch, normalize


@torch.inference_mode()
def _features_for(
    backbone: nn.Module, images: torch.Tensor, pp: Preprocess, device: torch.device, batch_size: int, bar: Bar
) -> torch.Tensor:
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(center_crop_batch(images[start : start + batch_size].to(device), pp.image_size), pp)
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                outputs.append(backbone(x.contiguous(memory_format=torch.channels_last)).float())
        else:
            outputs.append(backbone(x).float())
        bar.advance(x.shape[0])
    if not outputs:
        return torch.empty(0, 0, device=device)
    return torch.cat(outputs)


def compute_features(
    backbone: nn.Module,
    decoded: DecodedSplit,
    pp: Preprocess,
    placement: Placement,
    *,
    cache_dir: Path | None = None,
    cache_key: str = "",
    batch_size: int = 128,
    progress: bool = False,
) -> torch.Tensor:
    """Features ``[N, D]`` on the training device; under torchrun each rank computes a shard."""
    cache_file = Path(cache_dir) / f"features-{cache_key}.pt" if cache_dir is not None and cache_key else None
    if cache_file is not None and cache_file.is_file():
        return torch.load(cache_file, weights_only=True).to(placement.device)
    was_training = backbone.training
    backbone.eval()
    n = len(decoded)
    try:
        with Bar(progress, "computing backbone features", math.ceil(n / placement.world_size)) as bar:
            if placement.distributed:
                features = _sharded(backbone, decoded, pp, placement, batch_size, bar)
            else:
                features = _features_for(backbone, decoded.images, pp, placement.device, batch_size, bar)
    finally:
        backbone.train(was_training)
    if cache_file is not None and placement.local_rank == 0:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        torch.save(features.cpu(), tmp)
        tmp.replace(cache_file)
    return features


def _sharded(
    backbone, decoded: DecodedSplit, pp: Preprocess, placement: Placement, batch_size: int, bar: Bar
):
    n, world = len(decoded), placement.world_size
    shard = math.ceil(n / world)
    # Pad by wrapping so every rank holds an equal shard (all_gather needs equal sizes).
    index = torch.arange(placement.rank * shard, (placement.rank + 1) * shard) % max(n, 1)
    local = _features_for(backbone, decoded.images[index], pp, placement.device, batch_size, bar).contiguous()
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    return torch.cat(gathered)[:n]
