"""Multi-step flows the CLI offers (demo, evaluate, predict), built from ``kennel.ml`` pieces."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from kennel.ml.artifact import unpack_artifact
from kennel.ml.data import load_image_file, scan_dataset
from kennel.ml.evaluate import classification_report, plot_confusion_matrix, write_report
from kennel.ml.handler import input_fn, model_fn, output_fn, predict_fn
from kennel.ml.transforms import eval_tensor


class _TopK:
    """The SageMaker context shape the handler reads CustomAttributes from."""

    def __init__(self, k: int) -> None:
        self.custom_attributes = f"top_k={k}"


def _model_dir(model: Path, scratch: Path) -> Path:
    """A model directory, unpacking (and verifying) a model.tar.gz first when given one."""
    if model.is_dir():
        return model
    return unpack_artifact(model, scratch / "model")


def predict_image(model: Path, image: Path, *, top_k: int = 3, runtime: str = "torch") -> list[dict]:
    import os

    with tempfile.TemporaryDirectory() as scratch:
        previous = os.environ.get("KENNEL_RUNTIME")
        os.environ["KENNEL_RUNTIME"] = runtime
        try:
            serving = model_fn(str(_model_dir(model, Path(scratch))))
        finally:
            if previous is None:
                os.environ.pop("KENNEL_RUNTIME", None)
            else:
                os.environ["KENNEL_RUNTIME"] = previous
        context = _TopK(top_k)
        request = input_fn(image.read_bytes(), "application/x-image", context)
        body, _ = output_fn(predict_fn(request, serving, context), "application/json", context)
    return json.loads(body)


def evaluate_model(model: Path, data_dir: Path, *, split: str, output_dir: Path, runtime: str) -> dict:
    from kennel.ml.runtimes import load_predictor

    info = scan_dataset(data_dir)
    if split not in info.splits:
        raise SystemExit(f"{data_dir} has no {split}/ split")
    with tempfile.TemporaryDirectory() as scratch:
        predictor = load_predictor(_model_dir(model, Path(scratch)), runtime)
        if predictor.meta.classes != info.classes:
            raise SystemExit("the model's classes differ from the dataset's class folders")
        pp = predictor.meta.preprocess
        logits, targets = [], []
        samples = info.splits[split].samples
        for start in range(0, len(samples), 32):
            chunk = samples[start : start + 32]
            batch = torch.stack([eval_tensor(load_image_file(p), pp) for p, _ in chunk])
            logits.append(torch.from_numpy(np.asarray(predictor.predict(batch))))
            targets += [t for _, t in chunk]
    report = classification_report(torch.cat(logits), torch.tensor(targets), info.labels)
    write_report(
        {"split": split, "runtime": runtime, "dataset": info.describe(), **report}, output_dir / "report.json"
    )
    plot_confusion_matrix(report["confusion_matrix"], info.labels, output_dir / "confusion_matrix.png")
    return report


def run_demo(workdir: Path, *, epochs: int, console: Console) -> None:
    from kennel.ml.synth import SynthSpec, generate

    started = time.perf_counter()
    data = workdir / "data"
    console.rule("1. synthetic dataset (offline stand-in for dogImages)")
    if not (data / "train").is_dir():
        generate(data, SynthSpec(classes=8, per_class=40, size=112, seed=7), progress=True)
    info = scan_dataset(data)
    console.print(f"{len(info.classes)} classes, {info.counts()} images, hash {info.content_hash[:12]}")

    image = info.splits["test"].samples[0][0]
    from kennel.cloud_demo import run_cloud_demo

    hyperparameters = {
        "backbone": "resnet18", "freeze": "none", "image-size": "96", "epochs": str(epochs),
        "batch-size": "32", "learning-rate": "0.002", "patience": "3", "num-workers": "0",
    }  # fmt: skip
    run_cloud_demo(workdir, data, hyperparameters, image, info.labels, console)
    out = workdir / "output"
    console.rule("done")
    console.print(
        f"plots: {out / 'training_curves.png'}, {out / 'confusion_matrix.png'}, "
        f"{out / 'scaling_timeline.png'}; "
        f"report: {out / 'report.json'}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
