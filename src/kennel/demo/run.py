"""`make demo` from the top: a synthetic dataset, then the seeds' workflow on a local cloud."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from kennel.demo.cloud import run_cloud_demo
from kennel.demo.recipe import DEFAULT_RECIPE, Recipe
from kennel.ml.data import scan_dataset


def run_demo(
    workdir: Path, *, epochs: int | None, examples: Path, console: Console, recipe: Recipe = DEFAULT_RECIPE
) -> None:
    """``epochs``: the training jobs' (None: the recipe's); the tuning trials' are the recipe's."""
    from kennel.ml.synth import SynthSpec, generate

    started = time.perf_counter()
    data = workdir / "data"
    console.rule("1. synthetic dataset (offline stand-in for dogImages)")
    if not (data / "train").is_dir():
        generate(data, SynthSpec(classes=8, per_class=40, size=112, seed=7), progress=True)
    info = scan_dataset(data)
    console.print(f"{len(info.classes)} classes, {info.counts()} images, hash {info.content_hash[:12]}")

    image = info.splits["test"].samples[0][0]

    run_cloud_demo(workdir, data, recipe, epochs, image, info.labels, examples, console)
    out = workdir / "output"
    console.rule("done")
    console.print(
        f"plots: {out / 'tuning.png'}, {out / 'training_curves.png'}, {out / 'confusion_matrix.png'}, "
        f"{out / 'scaling_timeline.png'}; "
        f"report: {out / 'report.json'}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
