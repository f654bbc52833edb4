"""`kennel package --data-dir` stores the gate's validation sample; `kennel evaluate --precision` measures
the reduced precision on a whole split against fp32 (the real CLI, in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

from kennel.ml import calibration
from kennel.ml.artifact import ArtifactMeta, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.synth import SynthSpec, class_folders, generate
from kennel.ml.transforms import Preprocess


def kennel(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "kennel.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_package_stores_a_sample_and_evaluate_measures_int8(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data, SynthSpec(classes=3, per_class=8, size=64, seed=3))
    torch.manual_seed(0)
    classes = class_folders(3)
    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(16,))
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.head[-1].weight.mul_(50.0)  # confident logits, as a trained model's
    meta = ArtifactMeta(model=cfg, preprocess=Preprocess(image_size=64), classes=classes, labels=classes)
    model_dir = write_model_dir(tmp_path / "model", model, meta)

    packed = kennel("package", str(model_dir), "--out", str(tmp_path / "m.tar.gz"), "--data-dir", str(data),
                    "--sample-size", "5")  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    with tarfile.open(tmp_path / "m.tar.gz") as tar:
        assert calibration.SAMPLE_FILE in tar.getnames()
    with np.load(model_dir / calibration.SAMPLE_FILE) as sample:
        assert sample["pixels"].shape == (5, 3, 64, 64) and sample["pixels"].dtype == np.uint8
        assert sorted(set(sample["targets"].tolist())) == [0, 1, 2]  # spread over the classes

    out = tmp_path / "eval"
    evaluated = kennel("evaluate", str(tmp_path / "m.tar.gz"), "--data-dir", str(data), "--runtime", "auto",
                       "--precision", "int8", "--output-dir", str(out))  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["precision"] == "int8" and report["count"] == 6  # the test split: 2 per class
    assert 0.0 <= report["agreement"] <= 1.0 and "exact_accuracy" in report
    assert isinstance(report["gate_passed"], bool)


def test_package_refuses_a_dataset_with_other_classes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data, SynthSpec(classes=2, per_class=4, size=48, seed=1))
    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(8,))
    meta = ArtifactMeta(
        model=cfg, preprocess=Preprocess(image_size=32), classes=["a", "b", "c"], labels=["a", "b", "c"]
    )
    model_dir = write_model_dir(tmp_path / "model", build_model(cfg), meta)
    result = kennel("package", str(model_dir), "--out", str(tmp_path / "m.tar.gz"), "--data-dir", str(data))
    assert result.returncode != 0 and "with the model's classes" in result.stderr + result.stdout
    assert not (tmp_path / "m.tar.gz").exists()
