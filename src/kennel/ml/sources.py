"""Where training batches come from: cached features, a decoded uint8 cache, or image files.

All three hand out ``(inputs, targets)`` on the training device for a given list of sample indices,
so the loop (and the DistributedSampler that picks the indices) is the same for every pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .data import DecodedSplit, ImageFiles, Split, collate_skip_bad
from .transforms import (
    Preprocess,
    center_crop_batch,
    normalize,
    random_resized_crop_flip,
    resize_and_center_crop,
)


@dataclass
class BatchStats:
    skipped: int = 0  # unreadable images dropped while iterating (files pipeline)


class TensorSource:
    """Features ``[N, D]`` or decoded images ``[N, 3, R, R]`` already in memory (CPU or GPU)."""

    def __init__(
        self, data: torch.Tensor, targets: torch.Tensor, *, images: Preprocess | None = None
    ) -> None:
        self.data = data
        self.targets = targets
        self.preprocess = images  # None: the tensors are features and need no preprocessing

    def __len__(self) -> int:
        return self.data.shape[0]

    def batches(
        self,
        indices: list[int],
        batch_size: int,
        device: torch.device,
        *,
        augment: bool,
        generator: torch.Generator,
        stats: BatchStats,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.as_tensor(indices, dtype=torch.long)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            x = self.data[chunk.to(self.data.device)].to(device, non_blocking=True)
            y = self.targets[chunk.to(self.targets.device)].to(device, non_blocking=True)
            if self.preprocess is not None:
                pp = self.preprocess
                x = (
                    random_resized_crop_flip(x, pp.image_size, generator)
                    if augment
                    else center_crop_batch(x, pp.image_size)
                )
                x = normalize(x, pp)
            yield x, y


class _TrainAugment:
    def __init__(self, size: int) -> None:
        self.transform = v2.Compose(
            [v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip()]
        )

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(image)


class _EvalCrop:
    def __init__(self, pp: Preprocess) -> None:
        self.pp = pp

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return resize_and_center_crop(image, self.pp.resize_size, self.pp.image_size)


class _Subset(Dataset):
    def __init__(self, base: ImageFiles, indices: list[int]) -> None:
        self.base, self.indices = base, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]


class FileSource:
    """Decodes JPEG files every epoch in DataLoader workers (the plain, uncached pipeline)."""

    def __init__(self, split: Split, pp: Preprocess, num_workers: int) -> None:
        self.split = split
        self.preprocess = pp
        self.num_workers = num_workers
        self.train_files = ImageFiles(split.samples, _TrainAugment(pp.image_size))
        self.eval_files = ImageFiles(split.samples, _EvalCrop(pp))

    def __len__(self) -> int:
        return len(self.split.samples)

    def batches(self, indices, batch_size, device, *, augment, generator, stats):
        files = self.train_files if augment else self.eval_files
        loader = DataLoader(
            _Subset(files, list(indices)),
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_skip_bad,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator))),
            persistent_workers=False,
        )
        for images, targets, _, skipped in loader:
            stats.skipped += skipped
            if images is None:
                continue
            yield normalize(images.to(device, non_blocking=True), self.preprocess), targets.to(device)


def decoded_source(decoded: DecodedSplit, pp: Preprocess, device: torch.device) -> TensorSource:
    images = decoded.images
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # Keep the uint8 cache on the GPU when it fits comfortably: decoding and host→device copies
        # are what starve a fast GPU, not the model.
        images = images.to(device) if images.numel() < free * 0.4 else images.pin_memory()
    return TensorSource(images, decoded.targets.to(images.device), images=pp)
