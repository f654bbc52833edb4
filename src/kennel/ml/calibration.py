"""The validation sample an artifact carries, so a model server can prove a reduced precision.

``calibration.npz`` in the model directory holds a few dozen of the model's own validation images,
already resized and centre-cropped to the model's input (uint8 ``[N, 3, S, S]``, normalised at load,
so it is four times smaller than floats) and their labels (class indices). The trainer writes it next
to the weights; ``kennel package --data-dir`` adds or refreshes it for a model directory without one.
The precision gate (:mod:`kennel.ml.precision`) runs it in fp32 and in the reduced precision; int8
quantization calibrates on it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .transforms import Preprocess, normalize, resize_and_center_crop

log = logging.getLogger(__name__)

SAMPLE_FILE = "calibration.npz"
DEFAULT_SAMPLE_SIZE = 48
MAX_SAMPLE_SIZE = 512  # a sample is for a gate, not a test set; bounds what a server reads at load


class SampleError(ValueError):
    """A calibration file that is not what Kennel writes."""


@dataclass(frozen=True)
class Sample:
    pixels: np.ndarray  # uint8 [N, 3, S, S]
    targets: np.ndarray  # int64 [N]
    digest: str  # sha256 of the file: keys caches built from it (an int8 model, a gate verdict)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def batches(self, pp: Preprocess, size: int = 16) -> list[np.ndarray]:
        """Normalised float32 batches of at most ``size`` images, in file order."""
        out = []
        for start in range(0, len(self), size):
            chunk = torch.from_numpy(self.pixels[start : start + size])
            out.append(normalize(chunk, pp).numpy().astype(np.float32, copy=False))
        return out


def choose(samples: Sequence[tuple[Path, int]], count: int = DEFAULT_SAMPLE_SIZE, seed: int = 0) -> list:
    """``count`` samples spread over the classes (round-robin over a seeded shuffle of each class), so
    a few dozen images still cover many classes rather than the first few folders."""
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for item in samples:
        by_class.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    for items in by_class.values():
        rng.shuffle(items)
    chosen: list[tuple[Path, int]] = []
    depth = 0
    while len(chosen) < count and any(depth < len(items) for items in by_class.values()):
        for label in sorted(by_class):
            if depth < len(by_class[label]) and len(chosen) < count:
                chosen.append(by_class[label][depth])
        depth += 1
    return chosen


def build(
    images: Sequence[torch.Tensor], targets: Sequence[int], pp: Preprocess
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 CHW images of any size → the sample's arrays at the model's input size."""
    cropped = [resize_and_center_crop(image, pp.resize_size, pp.image_size) for image in images]
    pixels = (
        torch.stack(cropped).to(torch.uint8).numpy()
        if cropped
        else np.zeros((0, 3, pp.image_size, pp.image_size), np.uint8)
    )
    return pixels, np.asarray(list(targets), dtype=np.int64)


def write(model_dir: Path, pixels: np.ndarray, targets: np.ndarray) -> Path:
    path = Path(model_dir) / SAMPLE_FILE
    buffer = io.BytesIO()
    np.savez_compressed(buffer, pixels=pixels.astype(np.uint8, copy=False), targets=targets.astype(np.int64))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path


def write_from_files(model_dir: Path, samples: Sequence[tuple[Path, int]], pp: Preprocess, *,
                     count: int = DEFAULT_SAMPLE_SIZE, seed: int = 0) -> Path | None:  # fmt: skip
    """Decode ``count`` of ``samples`` (image files and labels) into the model directory's sample.
    Unreadable images are skipped; with none readable nothing is written (None)."""
    from .data import load_image_file  # lazy: data.py pulls in the dataset scanner

    images, targets = [], []
    for path, target in choose(samples, count, seed):
        try:
            images.append(load_image_file(path))
        except Exception as exc:  # a broken image costs one sample, not the artifact
            log.warning("kennel: calibration sample skips %s (%s)", path, exc)
            continue
        targets.append(target)
    if not images:
        return None
    return write(model_dir, *build(images, targets, pp))


def read(model_dir: Path, pp: Preprocess, num_classes: int) -> Sample | None:
    """The model directory's sample, checked against the model (None when there is none)."""
    path = Path(model_dir) / SAMPLE_FILE
    if not path.is_file():
        return None
    raw = path.read_bytes()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            pixels, targets = data["pixels"], data["targets"]
    except (OSError, ValueError, KeyError) as exc:
        raise SampleError(f"{SAMPLE_FILE} is not a readable sample: {exc}") from exc
    size = pp.image_size
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
        raise SampleError(
            f"{SAMPLE_FILE} holds {pixels.dtype} {pixels.shape}; the model needs uint8 Nx3x{size}x{size}"
        )
    if targets.shape != (pixels.shape[0],) or not np.issubdtype(targets.dtype, np.integer):
        raise SampleError(f"{SAMPLE_FILE} has {targets.shape} labels for {pixels.shape[0]} images")
    if len(targets) > MAX_SAMPLE_SIZE:
        raise SampleError(f"{SAMPLE_FILE} holds {len(targets)} images; at most {MAX_SAMPLE_SIZE} are read")
    if len(targets) and (targets.min() < 0 or targets.max() >= num_classes):
        raise SampleError(f"{SAMPLE_FILE} has labels outside 0..{num_classes - 1}")
    return Sample(pixels, targets.astype(np.int64), hashlib.sha256(raw).hexdigest())


__all__ = ["SAMPLE_FILE", "Sample", "SampleError", "build", "choose", "read", "write", "write_from_files"]
