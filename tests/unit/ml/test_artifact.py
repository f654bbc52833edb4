from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from kennel.ml.artifact import (
    ArtifactError,
    ArtifactMeta,
    load_model_dir,
    package_model,
    unpack_artifact,
    write_model_dir,
)
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(8,))
    torch.manual_seed(0)
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=48),
        classes=["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"],
        labels=["Affenpinscher", "Afghan hound", "Airedale terrier"],
        metrics={"test_accuracy": 0.5},
        dataset={"content_hash": "abc", "synthetic": True},
    )
    return write_model_dir(tmp_path / "model", build_model(cfg), meta)


def test_roundtrip_through_model_tar_gz(model_dir: Path, tmp_path: Path) -> None:
    archive = package_model(model_dir, tmp_path / "model.tar.gz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"model.pth", "kennel-model.json", "code/inference.py", "code/kennel/ml/handler.py"} <= names
    restored = unpack_artifact(archive, tmp_path / "restored")
    original, _ = load_model_dir(model_dir)
    loaded, meta = load_model_dir(restored)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(original(x), loaded(x))
    assert meta.labels[1] == "Afghan hound" and meta.preprocess.image_size == 48
    assert meta.dataset["content_hash"] == "abc" and meta.metrics["test_accuracy"] == 0.5


def test_tampered_weights_are_refused(model_dir: Path) -> None:
    with (model_dir / "model.pth").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00" * 16)
    with pytest.raises(ArtifactError, match="does not match the checksum"):
        load_model_dir(model_dir)


def test_foreign_archive_is_explained(tmp_path: Path) -> None:
    archive = tmp_path / "foreign.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"not ours"
        info = tarfile.TarInfo("model.pt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ArtifactError, match="not produced by Kennel"):
        unpack_artifact(archive, tmp_path / "out")


def test_corrupt_and_unsafe_archives(model_dir: Path, tmp_path: Path) -> None:
    archive = package_model(model_dir, tmp_path / "model.tar.gz")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(ArtifactError, match=r"not a readable tar\.gz"):
        unpack_artifact(truncated, tmp_path / "t")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArtifactError, match="unsafe"):
        unpack_artifact(evil, tmp_path / "e")
    assert not (tmp_path / "escape.txt").exists()


def test_newer_format_and_garbage_metadata(model_dir: Path) -> None:
    meta_path = model_dir / "kennel-model.json"
    data = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ArtifactError, match="newer than this Kennel"):
        load_model_dir(model_dir)
    meta_path.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_model_dir(model_dir)


def test_cli_package_and_predict(model_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "dog.png"
    Image.new("RGB", (70, 50), (200, 30, 30)).save(image)
    kennel = [sys.executable, "-m", "kennel.cli"]
    archive = tmp_path / "m.tar.gz"
    done = subprocess.run(
        [*kennel, "package", str(model_dir), "--out", str(archive)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [*kennel, "predict", str(archive), str(image), "--top-k", "2"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert sum(label in shown.stdout for label in ("Affenpinscher", "Afghan hound", "Airedale terrier")) == 2
