"""Model data: which local paths a gateway may read, and the archive limits checked from tar headers."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import pytest

from kennel.cloud.services.sagemaker.modeldata import local_model_path
from kennel.ml.archive import UnsafeArchiveError, safe_extract_tar
from kennel.runtime.endpoints.artifacts import ModelDataError, prepare_model_dir
from kennel.settings import Settings


class Refused(Exception):
    pass


def test_setting_from_env_is_a_list_of_absolute_dirs() -> None:
    settings = Settings.from_env({"KENNEL_ALLOW_LOCAL_MODEL_DATA": "/a:/b/c:"})
    assert settings.allow_local_model_data == (Path("/a"), Path("/b/c"))
    assert Settings.from_env({}).allow_local_model_data == ()
    with pytest.raises(ValueError, match="absolute"):
        Settings.from_env({"KENNEL_ALLOW_LOCAL_MODEL_DATA": "relative/dir"})


def test_local_paths_confined_to_allowed_dirs(tmp_path: Path) -> None:
    allowed = tmp_path / "models"
    (allowed / "sub").mkdir(parents=True)
    model = allowed / "sub" / "model.tar.gz"
    model.write_bytes(b"x")
    (allowed / "escape.tar.gz").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("s")
    (allowed / "inside.tar.gz").symlink_to(model)

    assert local_model_path(str(model), [allowed], Refused) == model.resolve()
    assert local_model_path(f"file://{model}", [allowed], Refused) == model.resolve()
    assert local_model_path(str(allowed / "inside.tar.gz"), [allowed], Refused) == model.resolve()
    for url, message in (
        (str(model), "s3:// or https://"),  # nothing allowed
        ("file:///etc/hostname", "outside"),
        (str(allowed / "escape.tar.gz"), "outside"),
        (f"{allowed}/sub/../sub/model.tar.gz", "'..'"),
        ("file://host/etc/hostname", "absolute"),
        ("relative/model.tar.gz", "absolute"),
        (str(allowed / "absent.tar.gz"), "Could not find"),
        (f"{allowed}-sibling/model.tar.gz", "outside"),  # a prefix of the name is not the directory
    ):
        dirs = [] if message == "s3:// or https://" else [allowed]
        with pytest.raises(Refused, match=message):
            local_model_path(url, dirs, Refused)


def _bomb(path: Path, expanded: int) -> Path:
    header = tarfile.TarInfo("weights.bin")
    header.size = expanded
    chunk = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(expanded >> 20):
            out.write(chunk)
        out.write(gzip.compress(b"\0" * 1024))
    return path


def test_ratio_refused_from_the_header_before_inflating(tmp_path: Path) -> None:
    archive = _bomb(tmp_path / "bomb.tar.gz", 1 << 30)
    started = time.monotonic()
    with pytest.raises(UnsafeArchiveError, match="times its size"):
        safe_extract_tar(archive, tmp_path / "out", max_ratio=100)
    assert time.monotonic() - started < 2  # inflating a gigabyte would take several seconds
    assert not (tmp_path / "out").exists()


def test_total_and_members_limits(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(20):
            data = bytes(range(256)) * 4
            info = tarfile.TarInfo(f"d/{index}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UnsafeArchiveError, match="more than the limit of 10 members"):
        safe_extract_tar(archive, tmp_path / "a", max_members=10)
    with pytest.raises(UnsafeArchiveError, match="more than 5000 bytes"):
        safe_extract_tar(archive, tmp_path / "b", max_total_bytes=5000)
    assert len(safe_extract_tar(archive, tmp_path / "c", max_ratio=100)) == 20


def test_small_archives_compress_well_without_tripping_the_ratio(tmp_path: Path) -> None:
    archive = tmp_path / "code.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"print('hello')\n" * 100_000  # 1.5 MB of text: a ratio far above 100, but tiny
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert archive.stat().st_size * 100 < len(data)
    assert len(safe_extract_tar(archive, tmp_path / "out", max_ratio=100)) == 1


def test_prepare_model_dir_reports_the_bomb_as_model_data_error(tmp_path: Path) -> None:
    archive = _bomb(tmp_path / "model.tar.gz", 256 << 20)
    with pytest.raises(ModelDataError, match="exceeds Kennel's extraction limits"):
        prepare_model_dir(str(archive), tmp_path / "cache", "m")
    assert not any((tmp_path / "cache").iterdir())
