"""A learnable, deterministic synthetic dataset in the dogImages layout, so everything runs offline.

Each class is a distinct (shape, hue) pair drawn at a random place, scale and rotation over a noisy
background; image sizes and aspect ratios vary like real photos. A small network learns it in a few
epochs, which is what tests and the demo need; it says nothing about real dog-breed accuracy.
"""

from __future__ import annotations

import colorsys
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .labels import dog_breed_folders
from .progress import Bar

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "bar", "star")
METADATA_FILE = "kennel-dataset.json"


@dataclass(frozen=True)
class SynthSpec:
    classes: int = 5
    per_class: int = 40  # train images per class; valid and test get a quarter each (at least 2)
    size: int = 96  # typical short side in pixels
    seed: int = 0
    quality: int = 90

    def __post_init__(self) -> None:
        if not 2 <= self.classes <= 1000:
            raise ValueError("classes must be between 2 and 1000")
        if not 1 <= self.per_class <= 10_000:
            raise ValueError("per_class must be between 1 and 10000")
        if not 16 <= self.size <= 1024:
            raise ValueError("size must be between 16 and 1024")

    @property
    def split_counts(self) -> dict[str, int]:
        held_out = max(2, self.per_class // 4)
        return {"train": self.per_class, "valid": held_out, "test": held_out}


def class_folders(n: int) -> list[str]:
    breeds = dog_breed_folders()
    folders = []
    for i in range(n):
        name = breeds[i % len(breeds)].split(".", 1)[1]
        folders.append(f"{i + 1:03d}.{name}" if i < len(breeds) else f"{i + 1:03d}.{name}_{i // len(breeds)}")
    return folders


def _class_style(index: int, n: int) -> tuple[str, tuple[int, int, int]]:
    shape = SHAPES[index % len(SHAPES)]
    hue = (index * 0.61803398875) % 1.0  # golden-ratio spacing keeps neighbouring classes apart
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return shape, (int(r * 255), int(g * 255), int(b * 255))


def _polygon(cx: float, cy: float, radius: float, points: int, angle: float, inner: float = 1.0) -> list:
    vertices = []
    steps = points * (2 if inner != 1.0 else 1)
    for k in range(steps):
        r = radius if inner == 1.0 or k % 2 == 0 else radius * inner
        a = angle + 2 * math.pi * k / steps
        vertices.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return vertices


def render(index: int, n_classes: int, size: int, rng: random.Random) -> Image.Image:
    shape, colour = _class_style(index, n_classes)
    aspect = rng.uniform(0.7, 1.45)
    short = int(size * rng.uniform(0.8, 1.25))
    w, h = (int(short * aspect), short) if rng.random() < 0.5 else (short, int(short * aspect))
    base = tuple(rng.randint(40, 215) for _ in range(3))
    # numpy noise from our own RNG: PIL's effect_noise uses the C library's unseeded rand().
    noise = np.random.default_rng(rng.getrandbits(63)).normal(0.0, rng.uniform(20, 60), (h, w, 1))
    pixels = np.clip(np.asarray(base, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    radius = min(w, h) * rng.uniform(0.22, 0.38)
    cx = rng.uniform(radius, w - radius)
    cy = rng.uniform(radius, h - radius)
    angle = rng.uniform(0, 2 * math.pi)
    jitter = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in colour)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=jitter)
    elif shape == "ring":
        draw.ellipse(box, outline=jitter, width=max(2, int(radius * 0.35)))
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, radius, 4, angle), fill=jitter)
    elif shape == "diamond":
        draw.polygon(_polygon(cx, cy, radius, 4, angle, inner=0.45), fill=jitter)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, radius, 3, angle), fill=jitter)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, radius, 5, angle, inner=0.4), fill=jitter)
    elif shape == "cross":
        t = radius * 0.3
        draw.rectangle((cx - radius, cy - t, cx + radius, cy + t), fill=jitter)
        draw.rectangle((cx - t, cy - radius, cx + t, cy + radius), fill=jitter)
    else:  # bar
        draw.line(_polygon(cx, cy, radius, 2, angle), fill=jitter, width=max(2, int(radius * 0.45)))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return image


def generate(dest: Path, spec: SynthSpec, *, progress: bool = False) -> dict:
    """Write ``dest/{train,valid,test}/NNN.Breed/*.jpg`` and ``dest/kennel-dataset.json``."""
    dest.mkdir(parents=True, exist_ok=True)
    folders = class_folders(spec.classes)
    total = sum(spec.split_counts.values()) * spec.classes
    with Bar(progress, "synthesising images", total) as bar:
        for split_no, (split, count) in enumerate(spec.split_counts.items()):
            for index, folder in enumerate(folders):
                out = dest / split / folder
                out.mkdir(parents=True, exist_ok=True)
                # One RNG per (split, class) keeps a dataset identical whatever order it is built in.
                rng = random.Random(f"{spec.seed}:{split_no}:{index}")
                for k in range(count):
                    render(index, spec.classes, spec.size, rng).save(
                        out / f"{folder.split('.', 1)[1]}_{k:05d}.jpg", quality=spec.quality
                    )
                    bar.advance(1)
    metadata = {
        "synthetic": True,
        "generator": "kennel data synth",
        "description": "Synthetic shapes, one (shape, hue) per class; not dog photographs.",
        "seed": spec.seed,
        "classes": folders,
        "per_split": spec.split_counts,
        "size": spec.size,
    }
    (dest / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    return metadata
