"""ImageFolder datasets (``split/NNN.Breed_Name/*.jpg``): scanning, manifests, robust decoding, caches.

Bad files (corrupt, truncated, not an image) are skipped with a warning and counted, never a crash
mid-epoch. The decoded uint8 cache decodes every image once (short side resized, centre square) so
later epochs, runs and tuning trials skip JPEG decoding, and a GPU can be fed from device memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import InferenceError
from .images import decode_image
from .labels import readable_label
from .progress import Bar
from .synth import METADATA_FILE
from .transforms import resize_and_center_crop

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
MANIFEST_FILE = "manifest.json"


class DatasetError(Exception):
    """A dataset directory that cannot be used, with the reason in words."""


@dataclass
class Split:
    name: str
    samples: list[tuple[Path, int]]
    non_image_files: int = 0


@dataclass
class DatasetInfo:
    root: Path
    classes: list[str]
    splits: dict[str, Split]
    content_hash: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [readable_label(c) for c in self.classes]

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic", False))

    def counts(self) -> dict[str, int]:
        return {name: len(split.samples) for name, split in self.splits.items()}

    def describe(self) -> dict:
        """What model artifacts record about the data they were trained on."""
        return {
            "root": str(self.root),
            "content_hash": self.content_hash,
            "synthetic": self.synthetic,
            "num_classes": len(self.classes),
            "counts": self.counts(),
        }


def _scan_split(split_dir: Path, class_index: dict[str, int]) -> Split:
    samples: list[tuple[Path, int]] = []
    non_images = 0
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if class_dir.name not in class_index:
            raise DatasetError(
                f"{split_dir.name}/{class_dir.name} is not a class of the train split; every split must "
                "use the train split's class folders"
            )
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                samples.append((path, class_index[class_dir.name]))
            else:
                non_images += 1
    if non_images:
        log.warning("%s: skipped %d files that are not images", split_dir, non_images)
    return Split(split_dir.name, samples, non_images)


def scan_dataset(root: Path, *, splits: Iterable[str] = SPLITS, with_hash: bool = True) -> DatasetInfo:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist")
    train_dir = root / "train"
    if not train_dir.is_dir():
        found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())[:8]) or "no folders"
        raise DatasetError(f"{root} has no train/ folder (found: {found}); expected train/ valid/ test/")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetError(f"{train_dir} needs at least two class folders, found {len(classes)}")
    class_index = {c: i for i, c in enumerate(classes)}
    found_splits = {name: _scan_split(root / name, class_index) for name in splits if (root / name).is_dir()}
    if not found_splits["train"].samples:
        raise DatasetError(f"{train_dir} holds no images")
    metadata: dict = {}
    meta_path = root / METADATA_FILE
    if meta_path.is_file():
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    info = DatasetInfo(root, classes, found_splits, metadata=metadata)
    if with_hash:
        info.content_hash = content_hash(info)
    return info


def content_hash(info: DatasetInfo) -> str:
    """SHA-256 over every image's relative path and bytes, memoised in the manifest by size and mtime."""
    cached = _read_manifest(info.root)
    known = cached.get("files", {}) if cached else {}
    digest = hashlib.sha256()
    files: dict[str, list] = {}
    for split in info.splits.values():
        for path, _ in split.samples:
            rel = path.relative_to(info.root).as_posix()
            st = path.stat()
            entry = known.get(rel)
            if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
                file_hash = entry[2]
            else:
                file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            files[rel] = [st.st_size, st.st_mtime_ns, file_hash]
            digest.update(f"{rel}\0{file_hash}\n".encode())
    info.content_hash = digest.hexdigest()
    _write_manifest(info, files)
    return info.content_hash


def _read_manifest(root: Path) -> dict | None:
    try:
        return json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_manifest(info: DatasetInfo, files: dict[str, list]) -> None:
    manifest = {
        "classes": info.classes,
        "labels": info.labels,
        "counts": info.counts(),
        "non_image_files": {n: s.non_image_files for n, s in info.splits.items()},
        "content_hash": info.content_hash,
        "synthetic": info.synthetic,
        "files": files,
    }
    try:
        (info.root / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    except OSError as exc:  # a read-only dataset (e.g. a SageMaker input channel) still trains
        log.info("could not write %s: %s", info.root / MANIFEST_FILE, exc)


def load_image_file(path: Path) -> torch.Tensor:
    """uint8 CHW RGB; raises ``InferenceError`` subclasses for undecodable files."""
    return decode_image(path.read_bytes())


class ImageFiles(Dataset):
    """Decodes files on access; a bad file yields ``None`` (dropped and counted by ``collate_skip_bad``)."""

    def __init__(self, samples: list[tuple[Path, int]], transform=None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            image = load_image_file(path)
        except (InferenceError, OSError) as exc:
            log.warning("skipping unreadable image %s: %s", path, exc)
            return None
        if self.transform is not None:
            image = self.transform(image)
        return image, target, index


def collate_skip_bad(batch):
    good = [b for b in batch if b is not None]
    skipped = len(batch) - len(good)
    if not good:
        return None, None, None, skipped
    images = torch.stack([b[0] for b in good])
    targets = torch.tensor([b[1] for b in good], dtype=torch.long)
    indices = torch.tensor([b[2] for b in good], dtype=torch.long)
    return images, targets, indices, skipped


@dataclass
class DecodedSplit:
    """Every good image of a split as one uint8 tensor ``[N, 3, R, R]`` plus its targets."""

    images: torch.Tensor
    targets: torch.Tensor
    skipped: int

    def __len__(self) -> int:
        return self.images.shape[0]


class _Square:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return resize_and_center_crop(image, self.size, self.size)


def decode_split(
    split: Split,
    resize_size: int,
    *,
    num_workers: int = 0,
    cache_dir: Path | None = None,
    dataset_hash: str = "",
    progress: bool = False,
) -> DecodedSplit:
    cache_file = None
    if cache_dir is not None and dataset_hash:
        cache_file = Path(cache_dir) / f"{dataset_hash[:16]}-{split.name}-{resize_size}.pt"
        if cache_file.is_file():
            data = torch.load(cache_file, weights_only=True)
            return DecodedSplit(data["images"], data["targets"], int(data["skipped"]))
    n = len(split.samples)
    images = torch.empty((n, 3, resize_size, resize_size), dtype=torch.uint8)
    targets = torch.empty(n, dtype=torch.long)
    keep = torch.zeros(n, dtype=torch.bool)
    loader = DataLoader(
        ImageFiles(split.samples, _Square(resize_size)),
        batch_size=64,
        num_workers=num_workers,
        collate_fn=collate_skip_bad,
    )
    skipped = 0
    with Bar(progress, f"decoding {split.name}", n) as bar:
        for batch, batch_targets, indices, bad in loader:
            skipped += bad
            if batch is not None:
                images[indices] = batch
                targets[indices] = batch_targets
                keep[indices] = True
            bar.advance(bad + (len(indices) if indices is not None else 0))
    if skipped:
        log.warning("%s: skipped %d unreadable images out of %d", split.name, skipped, n)
    decoded = DecodedSplit(images[keep].contiguous(), targets[keep].contiguous(), skipped)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        torch.save({"images": decoded.images, "targets": decoded.targets, "skipped": skipped}, tmp)
        tmp.replace(cache_file)
    return decoded
