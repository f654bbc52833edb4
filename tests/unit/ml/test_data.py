from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kennel.ml.data import DatasetError, decode_split, scan_dataset
from kennel.ml.labels import dog_breed_folders, readable_label
from kennel.ml.synth import SynthSpec, generate


def test_readable_labels() -> None:
    assert readable_label("001.Affenpinscher") == "Affenpinscher"
    assert readable_label("003.Airedale_terrier") == "Airedale terrier"
    assert readable_label("050.Chinese_shar-pei") == "Chinese shar-pei"
    assert readable_label("cats") == "cats"
    breeds = dog_breed_folders()
    assert len(breeds) == 133 and breeds[0] == "001.Affenpinscher" and breeds[-1] == "133.Yorkshire_terrier"


def test_synth_is_deterministic_and_labelled_synthetic(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SynthSpec(classes=3, per_class=4, size=32, seed=5))
    generate(tmp_path / "b", SynthSpec(classes=3, per_class=4, size=32, seed=5))
    generate(tmp_path / "c", SynthSpec(classes=3, per_class=4, size=32, seed=6))
    ha, hb, hc = (scan_dataset(tmp_path / n).content_hash for n in "abc")
    assert ha == hb != hc
    info = scan_dataset(tmp_path / "a")
    assert info.synthetic and a["synthetic"] is True
    assert info.classes == ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]
    assert info.counts() == {"train": 12, "valid": 6, "test": 6}
    sizes = {p.stat().st_size for p, _ in info.splits["train"].samples}
    assert len(sizes) > 1  # varied images, not copies
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["counts"]["train"] == 12 and manifest["content_hash"] == ha and manifest["synthetic"]


def test_bad_files_are_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "d"
    generate(root, SynthSpec(classes=2, per_class=4, size=32, seed=1))
    cls = root / "train" / "001.Affenpinscher"
    good = next(cls.glob("*.jpg"))
    (cls / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    (cls / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    (cls / "notes.txt").write_text("not an image")
    info = scan_dataset(root)
    assert info.splits["train"].non_image_files == 1
    assert len(info.splits["train"].samples) == 10
    decoded = decode_split(info.splits["train"], 40)
    assert decoded.skipped == 2
    assert len(decoded) == 8 and decoded.images.shape[1:] == (3, 40, 40)


def test_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="no train/ folder"):
        scan_dataset(tmp_path / "flat")
    root = tmp_path / "e"
    generate(root, SynthSpec(classes=2, per_class=2, size=32))
    shutil.copytree(root / "valid" / "001.Affenpinscher", root / "valid" / "999.Unknown")
    with pytest.raises(DatasetError, match="not a class of the train split"):
        scan_dataset(root)
