"""Training behaviour on a tiny synthetic dataset (CPU, weights=None)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from kennel.ml.artifact import load_model_dir
from kennel.ml.config import parse_train_args
from kennel.ml.models import ModelConfig, PretrainedWeightsUnavailable, build_model
from kennel.ml.train import lr_factor, run


def _cfg(data: Path, out: Path, *extra: str):
    args = [
        "--data-dir",
        str(data),
        "--model-dir",
        str(out / "model"),
        "--output-dir",
        str(out / "output"),
        "--backbone",
        "resnet18",
        "--image-size",
        "48",
        "--batch-size",
        "16",
        "--num-workers",
        "0",
        "--quiet",
        "--head-hidden",
        "32",
        *extra,
    ]
    return parse_train_args(args, env={})


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pth", weights_only=True)


def test_full_finetune_learns(synth_data: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        synth_data,
        tmp_path,
        "--freeze",
        "none",
        "--epochs",
        "5",
        "--learning-rate",
        "0.003",
        "--patience",
        "0",
    )
    result = run(cfg)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.7, losses
    assert result.test["accuracy"] > 0.6  # chance is 0.2
    assert result.test["count"] == 30 and result.ranks_in_agreement
    out = tmp_path / "output"
    for name in ("metrics.json", "report.json", "training_curves.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report["test"]["per_class"]) == {
        "Affenpinscher",
        "Afghan hound",
        "Airedale terrier",
        "Akita",
        "Alaskan malamute",
    }
    _, meta = load_model_dir(tmp_path / "model")
    assert meta.labels[0] == "Affenpinscher" and meta.dataset["synthetic"] is True
    assert meta.metrics["test_accuracy"] == pytest.approx(result.test["accuracy"])


def test_resume_continues_where_it_stopped(synth_data: Path, tmp_path: Path) -> None:
    common = ("--freeze", "last-stage", "--learning-rate", "0.002", "--patience", "0", "--scheduler", "none")
    straight = run(_cfg(synth_data, tmp_path / "a", "--epochs", "2", *common))
    run(_cfg(synth_data, tmp_path / "b", "--epochs", "1", *common))
    resumed = run(_cfg(synth_data, tmp_path / "b", "--epochs", "2", "--resume", *common))
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["train_loss"] == pytest.approx(straight.history[1]["train_loss"], rel=1e-4)
    a, b = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_cached_features_match_plain_path(synth_data: Path, tmp_path: Path) -> None:
    common = ("--freeze", "backbone", "--epochs", "3", "--augment", "false", "--learning-rate", "0.01")
    cached = run(_cfg(synth_data, tmp_path / "cached", "--cache-features", "on", *common))
    plain = run(_cfg(synth_data, tmp_path / "plain", "--cache-features", "off", *common))
    for c, p in zip(cached.history, plain.history, strict=True):
        assert c["train_loss"] == pytest.approx(p["train_loss"], rel=1e-3, abs=1e-4)
        assert c["valid_loss"] == pytest.approx(p["valid_loss"], rel=1e-3, abs=1e-4)
    assert cached.test["accuracy"] == pytest.approx(plain.test["accuracy"], abs=0.04)
    # The second run with the same backbone reuses the features from disk.
    assert any((tmp_path / "cached" / "output" / "cache").glob("features-*-train-*.pt"))


def test_early_stopping_restores_best(synth_data: Path, tmp_path: Path) -> None:
    # min_delta this large makes every epoch after the first count as "no improvement".
    result = run(_cfg(synth_data, tmp_path, "--epochs", "6", "--patience", "2", "--min-delta", "100"))
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_files_pipeline_skips_corrupt_images(synth_data: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    (data / "train" / "002.Afghan_hound" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cfg = _cfg(data, tmp_path, "--pipeline", "files", "--freeze", "none", "--epochs", "1")
    result = run(cfg)
    assert result.skipped_images >= 1 and result.history[0]["train_loss"] > 0


def test_sagemaker_script_mode(synth_data: Path, tmp_path: Path) -> None:
    env = {
        "SM_CHANNEL_TRAINING": str(synth_data),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        "SM_HPS": json.dumps({"backbone": "resnet18", "image-size": 40}),
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_HOST": "algo-1",
        "PATH": "/usr/bin:/bin",
    }
    # The seeds' hyperparameter spellings, plus one SageMaker adds during tuning.
    argv = [
        "--learning_rate",
        "0.01",
        "--batch_size",
        "16",
        "--epochs",
        "1",
        "--num-workers",
        "0",
        "--_tuning_objective_metric",
        "Validation Loss",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "kennel.ml.train", *argv], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for regex in (r"Validation Accuracy: ([0-9\.]+)", r"Testing Loss: ([0-9\.]+)", r"Train Loss: ([0-9\.]+)"):
        assert re.search(regex, proc.stdout), regex
    assert "ignoring unknown arguments" in proc.stderr
    meta = json.loads((tmp_path / "model" / "kennel-model.json").read_text())
    assert meta["preprocess"]["image_size"] == 40 and meta["model"]["backbone"] == "resnet18"
    assert json.loads((tmp_path / "output" / "metrics.json").read_text())["history"]


def test_only_first_sagemaker_host_saves_model(synth_data: Path, tmp_path: Path) -> None:
    cfg = parse_train_args(
        ["--epochs", "1", "--backbone", "resnet18", "--image-size", "32", "--num-workers", "0", "--quiet"],
        env={
            "SM_CHANNEL_TRAINING": str(synth_data),
            "SM_MODEL_DIR": str(tmp_path / "m"),
            "SM_OUTPUT_DATA_DIR": str(tmp_path / "o"),
            "SM_HOSTS": '["algo-1","algo-2"]',
            "SM_CURRENT_HOST": "algo-2",
        },
    )
    assert cfg.hosts == ("algo-1", "algo-2")
    assert run(cfg).model_dir is None and not (tmp_path / "m" / "model.pth").exists()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="cache_features=on needs freeze=backbone"):
        parse_train_args(["--cache-features", "on", "--freeze", "none"], env={})
    with pytest.raises(ValueError, match="epochs must be"):
        parse_train_args(["--epochs", "0"], env={})
    cfg = parse_train_args(["--epochs", "10", "--warmup-epochs", "2"], env={})
    factors = [lr_factor(e, cfg) for e in range(10)]
    assert factors[0] < factors[1] < factors[2] == 1.0 and factors[-1] < 0.1


def test_pretrained_offline_error_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsUnavailable, match="train without --pretrained"):
        build_model(ModelConfig(backbone="resnet18", num_classes=3), pretrained=True)


def test_freeze_policies() -> None:
    def trainable(freeze: str) -> set[str]:
        model = build_model(ModelConfig(backbone="resnet18", num_classes=3, freeze=freeze))
        return {
            n.split(".")[1]
            for n, p in model.named_parameters()
            if p.requires_grad and n.startswith("backbone")
        }

    assert trainable("backbone") == set()
    assert trainable("last-stage") == {"layer4"}
    assert {"conv1", "layer1", "layer4"} <= trainable("none")
