"""Multi-step flows the CLI offers (demo, evaluate, predict), built from ``kennel.ml`` pieces."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from kennel.ml.artifact import unpack_artifact
from kennel.ml.data import load_image_file, scan_dataset
from kennel.ml.evaluate import classification_report, plot_confusion_matrix, write_report
from kennel.ml.handler import ServingModel, input_fn, output_fn, predict_fn
from kennel.ml.runtimes import load_predictor
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
    with tempfile.TemporaryDirectory() as scratch:
        # The runtime is a parameter here, not an environment variable (the handler reads that only
        # inside a model server, where the model's Environment sets it).
        serving = ServingModel.from_env(load_predictor(_model_dir(model, Path(scratch)), runtime))
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
