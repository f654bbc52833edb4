from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from kennel.ml.archive import (
    CorruptArchiveError,
    UnsafeArchiveError,
    safe_extract_tar,
    safe_extract_zip,
    verify_zip,
)

PAYLOAD = b"KENNEL-STORED-PAYLOAD-0123456789" * 4


ZipMember = tuple[str | zipfile.ZipInfo, bytes]


def _make_zip(path: Path, members: list[ZipMember], *, stored: bool = False) -> Path:
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so the mode bits in external_attr are meaningful
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                name, data = m
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*"))


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A destination nested two levels deep, so `..` escapes land somewhere we can inspect."""
    outer = tmp_path / "outer"
    dest = outer / "inner" / "dest"
    outer.mkdir()
    return outer, dest


# ------------------------------------------------------------------------------------------ zip


def test_safe_extract_zip_strips_prefix_and_skips_mac_litter(tmp_path: Path) -> None:
    archive = _make_zip(
        tmp_path / "d.zip",
        [
            ("dogImages/", b""),
            ("dogImages/train/001.Affenpinscher/a.jpg", b"train-a"),
            ("dogImages/valid/001.Affenpinscher/b.jpg", b"valid-b"),
            ("dogImages/test/001.Affenpinscher/c.jpg", b"test-c"),
            ("dogImages/.DS_Store", b"junk"),
            ("__MACOSX/dogImages/._a.jpg", b"junk"),
            ("other/keep.txt", b"keep"),
        ],
    )
    dest = tmp_path / "out"
    written = safe_extract_zip(archive, dest, strip_prefix="dogImages")

    assert (dest / "train/001.Affenpinscher/a.jpg").read_bytes() == b"train-a"
    assert (dest / "valid/001.Affenpinscher/b.jpg").read_bytes() == b"valid-b"
    assert (dest / "test/001.Affenpinscher/c.jpg").read_bytes() == b"test-c"
    # A member without the prefix is kept as is.
    assert (dest / "other/keep.txt").read_bytes() == b"keep"
    assert not (dest / "dogImages").exists()
    assert not (dest / "__MACOSX").exists()
    assert not (dest / ".DS_Store").exists()
    assert sorted(written) == sorted(
        (dest / p).resolve()
        for p in (
            "train/001.Affenpinscher/a.jpg",
            "valid/001.Affenpinscher/b.jpg",
            "test/001.Affenpinscher/c.jpg",
            "other/keep.txt",
        )
    )


@pytest.mark.parametrize(
    "bad_name",
    ["../evil.txt", "a/../../evil.txt", "..\\evil.txt", "C:/evil.txt", "c:evil.txt"],
)
def test_safe_extract_zip_refuses_traversal_names(sandbox: tuple[Path, Path], bad_name: str) -> None:
    outer, dest = sandbox
    archive = _make_zip(outer / "bad.zip", [("good.txt", b"fine"), (bad_name, b"evil")])

    with pytest.raises(UnsafeArchiveError, match="evil"):
        safe_extract_zip(archive, dest)

    # Nothing at all was written: the good member came first but checks precede extraction.
    assert not dest.exists()
    assert _all_files(outer) == [outer / "bad.zip"]


def test_safe_extract_zip_refuses_absolute_member(sandbox: tuple[Path, Path]) -> None:
    outer, dest = sandbox
    target = outer / "abs-escape.txt"
    archive = _make_zip(outer / "bad.zip", [("good.txt", b"fine"), (str(target), b"evil")])
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist()[1].startswith("/")  # make sure the test really built an absolute name

    with pytest.raises(UnsafeArchiveError, match="absolute"):
        safe_extract_zip(archive, dest)

    assert not target.exists()
    assert not dest.exists()


def test_safe_extract_zip_refuses_symlink_member(sandbox: tuple[Path, Path]) -> None:
    outer, dest = sandbox
    archive = _make_zip(outer / "bad.zip", [("good.txt", b"fine"), (_symlink_info("link"), b"/etc/passwd")])

    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(archive, dest)

    assert not dest.exists()


def test_safe_extract_zip_refuses_path_through_existing_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    archive = _make_zip(tmp_path / "bad.zip", [("link/planted.txt", b"evil")])

    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract_zip(archive, dest)

    assert list(outside.iterdir()) == []


def test_safe_extract_zip_refuses_bomb_and_too_many_members(tmp_path: Path) -> None:
    archive = _make_zip(tmp_path / "big.zip", [("a.bin", b"\0" * 1000), ("b.bin", b"\0" * 1000)])
    dest = tmp_path / "dest"

    with pytest.raises(UnsafeArchiveError, match="bomb"):
        safe_extract_zip(archive, dest, max_total_bytes=1500)
    with pytest.raises(UnsafeArchiveError, match="members"):
        safe_extract_zip(archive, dest, max_members=1)
    assert not dest.exists()

    assert len(safe_extract_zip(archive, dest, max_total_bytes=2000, max_members=2)) == 2


def test_safe_extract_zip_stops_member_larger_than_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _make_zip(tmp_path / "liar.zip", [("small.bin", b"x" * 10)])
    dest = tmp_path / "dest"
    # zipfile itself truncates to the declared size, so simulate a decoder that does not.
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: io.BytesIO(b"x" * 10_000))

    with pytest.raises(UnsafeArchiveError, match="declared size"):
        safe_extract_zip(archive, dest)
    assert not (dest / "small.bin").exists()


def _corrupt_stored_zip(path: Path) -> Path:
    _make_zip(path, [("ok.txt", b"fine"), ("broken.bin", PAYLOAD)], stored=True)
    raw = bytearray(path.read_bytes())
    at = raw.index(PAYLOAD)
    # Flip bytes in the stored data only; headers stay valid, so only the CRC check can notice.
    for i in range(at + 5, at + 9):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def test_verify_zip_counts_members_and_detects_bad_crc(tmp_path: Path) -> None:
    good = _make_zip(tmp_path / "good.zip", [("a", b"1"), ("b/", b""), ("b/c", b"2" * 5000)])
    assert verify_zip(good) == 3

    bad = _corrupt_stored_zip(tmp_path / "bad.zip")
    with pytest.raises(CorruptArchiveError, match=r"broken\.bin"):
        verify_zip(bad)


def test_safe_extract_zip_bad_crc_leaves_no_partial_file(tmp_path: Path) -> None:
    bad = _corrupt_stored_zip(tmp_path / "bad.zip")
    dest = tmp_path / "dest"

    with pytest.raises(CorruptArchiveError, match=r"broken\.bin"):
        safe_extract_zip(bad, dest)
    assert not (dest / "broken.bin").exists()


def test_non_zip_is_corrupt(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>Access Denied</html>")
    with pytest.raises(CorruptArchiveError, match="not a readable zip"):
        verify_zip(junk)
    with pytest.raises(CorruptArchiveError):
        safe_extract_zip(junk, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# ------------------------------------------------------------------------------------------ tar


def test_safe_extract_tar_extracts_files_and_dirs(tmp_path: Path) -> None:
    archive = _make_tar(
        tmp_path / "model.tar.gz",
        [
            _special(".", tarfile.DIRTYPE),
            _special("model", tarfile.DIRTYPE),
            ("model/weights.pt", b"w" * 3000),
            ("./code/inference.py", b"print('hi')\n"),
            _special("empty", tarfile.DIRTYPE),
        ],
    )
    dest = tmp_path / "dest"

    written = safe_extract_tar(archive, dest)

    assert (dest / "model/weights.pt").read_bytes() == b"w" * 3000
    assert (dest / "code/inference.py").read_bytes() == b"print('hi')\n"
    assert (dest / "empty").is_dir()
    assert sorted(written) == sorted(
        [(dest / "model/weights.pt").resolve(), (dest / "code/inference.py").resolve()]
    )


def test_safe_extract_plain_tar(tmp_path: Path) -> None:
    archive = _make_tar(tmp_path / "a.tar", [("x.txt", b"x")], mode="w")
    assert [p.name for p in safe_extract_tar(archive, tmp_path / "dest")] == ["x.txt"]


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (_link("evil-link", "/etc/passwd", tarfile.SYMTYPE), "link"),
        (_link("evil-hard", "/etc/passwd", tarfile.LNKTYPE), "link"),
        (_special("evil-fifo", tarfile.FIFOTYPE), "not a regular file"),
        (_special("evil-dev", tarfile.CHRTYPE), "not a regular file"),
        (("../evil.txt", b"evil"), r"'\.\.'"),
        (("a/../../evil.txt", b"evil"), r"'\.\.'"),
        (("/abs/evil.txt", b"evil"), "absolute"),
    ],
)
def test_safe_extract_tar_refuses_unsafe_members(
    sandbox: tuple[Path, Path], member: tarfile.TarInfo | tuple[str, bytes], match: str
) -> None:
    outer, dest = sandbox
    archive = _make_tar(outer / "bad.tar.gz", [("good.txt", b"fine"), member])

    with pytest.raises(UnsafeArchiveError, match=match):
        safe_extract_tar(archive, dest)

    assert not dest.exists()
    assert _all_files(outer) == [outer / "bad.tar.gz"]


def test_safe_extract_tar_limits(tmp_path: Path) -> None:
    archive = _make_tar(tmp_path / "a.tar.gz", [("a", b"1" * 100), ("b", b"2" * 100), ("c", b"3")])
    with pytest.raises(UnsafeArchiveError, match="bomb"):
        safe_extract_tar(archive, tmp_path / "dest", max_total_bytes=150)
    with pytest.raises(UnsafeArchiveError, match="members"):
        safe_extract_tar(archive, tmp_path / "dest", max_members=2)
    assert not (tmp_path / "dest").exists()


def test_non_tar_is_corrupt(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"definitely not a tarball" * 20)
    with pytest.raises(CorruptArchiveError):
        safe_extract_tar(junk, tmp_path / "dest")

    truncated = tmp_path / "trunc.tar.gz"
    _make_tar(truncated, [("big.bin", bytes(range(256)) * 400)])
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CorruptArchiveError):
        safe_extract_tar(truncated, tmp_path / "dest2")
    assert not (tmp_path / "dest2" / "big.bin").exists()
