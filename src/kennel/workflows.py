"""Multi-step flows the CLI offers (`kennel evaluate`, `kennel predict`), built from ``kennel.ml`` pieces."""

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


def evaluate_model(model: Path, data_dir: Path, *, split: str, output_dir: Path, runtime: str,
                   precision: str = "fp32") -> dict:  # fmt: skip
    """Accuracy of ``runtime`` on a whole split; with ``precision`` bf16/int8 also of that precision,
    its top-1 agreement with the exact runtime over the split, and the gate's verdict on the sample."""
    from kennel.ml.runtimes import load_predictor

    info = scan_dataset(data_dir)
    if split not in info.splits:
        raise SystemExit(f"{data_dir} has no {split}/ split")
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = _model_dir(model, Path(scratch))
        predictor = load_predictor(model_dir, runtime)
        if predictor.meta.classes != info.classes:
            raise SystemExit("the model's classes differ from the dataset's class folders")
        predictors = {"exact": predictor}
        if precision != "fp32":
            from kennel.ml.precision import gated_predictor, reduced_predictor

            predictors["reduced"] = reduced_predictor(model_dir, precision)
            # The gate judges the very predictor measured here instead of building a second one.
            gate = gated_predictor(model_dir, precision, predictor, candidate=predictors["reduced"])
        pp = predictor.meta.preprocess
        logits: dict[str, list[torch.Tensor]] = {name: [] for name in predictors}
        targets: list[int] = []
        samples = info.splits[split].samples
        for start in range(0, len(samples), 32):
            chunk = samples[start : start + 32]
            batch = torch.stack([eval_tensor(load_image_file(p), pp) for p, _ in chunk])
            for name, each in predictors.items():
                logits[name].append(torch.from_numpy(np.asarray(each.predict(batch))))
            targets += [t for _, t in chunk]
    chosen = "reduced" if "reduced" in logits else "exact"
    report = classification_report(torch.cat(logits[chosen]), torch.tensor(targets), info.labels)
    summary: dict = {"split": split, "runtime": runtime, "precision": precision, "dataset": info.describe()}
    if chosen == "reduced":
        exact = torch.cat(logits["exact"])
        reduced = torch.cat(logits["reduced"])
        exact_report = classification_report(exact, torch.tensor(targets), info.labels)
        summary["exact_accuracy"] = exact_report["accuracy"]
        summary["agreement"] = float((exact.argmax(1) == reduced.argmax(1)).float().mean())
        summary["gate_passed"] = gate is predictors["reduced"]
    report.update({k: v for k, v in summary.items() if k not in ("dataset",)})
    write_report({**summary, **report}, output_dir / "report.json")
    plot_confusion_matrix(report["confusion_matrix"], info.labels, output_dir / "confusion_matrix.png")
    return report
