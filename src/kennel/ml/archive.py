"""Safe extraction of zip and tar archives.

Archives here come from the network (the dog-breed dataset) or from users (model tarballs, Lambda
zips), so every member is vetted before a single byte is written: a refused archive leaves the
destination untouched rather than half-extracted next to an attacker's file.
"""

from __future__ import annotations

import gzip
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "CorruptArchiveError",
    "UnsafeArchiveError",
    "safe_extract_tar",
    "safe_extract_zip",
    "verify_zip",
]

_COPY_CHUNK = 1 << 20
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
# Finder litter: harmless, but it would show up as bogus classes in the dataset folders.
_SKIP_DIRS = frozenset({"__MACOSX"})
_SKIP_FILES = frozenset({".DS_Store"})


class UnsafeArchiveError(Exception):
    """The archive contains a member that could write outside the destination or exhaust the disk."""


class CorruptArchiveError(Exception):
    """The archive is damaged (bad CRC, truncated, or not an archive of the expected kind)."""


@dataclass(frozen=True)
class _Planned:
    """One member that passed every check, with where it will land."""

    source: zipfile.ZipInfo | tarfile.TarInfo
    name: str
    target: Path
    is_dir: bool
    size: int


def _member_parts(name: str) -> list[str]:
    """Split an archive member name into safe relative components, or raise UnsafeArchiveError.

    Checks are done on the raw name, before any normalisation, so that a name which only becomes
    harmless after cleaning (or harmful on another OS) is still refused.
    """
    if "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r} contains a NUL byte")
    # Backslashes are path separators on Windows, so `..\\evil` is a traversal there; zip and tar
    # both mandate '/', so a backslash is never legitimate in the archives we handle.
    if "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} contains a backslash")
    if name.startswith("/"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    if _DRIVE_RE.match(name):
        raise UnsafeArchiveError(f"archive member {name!r} has a drive letter")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} contains a '..' component")
    return parts


def _is_skipped(parts: list[str]) -> bool:
    return any(p in _SKIP_DIRS for p in parts) or (bool(parts) and parts[-1] in _SKIP_FILES)


def _resolve_target(dest: Path, parts: list[str], name: str) -> Path:
    # resolve() follows symlinks that already exist under dest, which catches a pre-planted
    # `dest/link -> /elsewhere` that a purely lexical check would miss.
    target = dest.joinpath(*parts).resolve()
    if not target.is_relative_to(dest):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside {dest}")
    return target


def _check_limits(planned: Iterable[_Planned], *, max_total_bytes: int) -> None:
    total = 0
    for p in planned:
        total += p.size
        if total > max_total_bytes:
            raise UnsafeArchiveError(
                f"archive expands to more than {max_total_bytes} bytes (limit reached at member "
                f"{p.name!r}); refusing as a possible decompression bomb"
            )


def _copy_member(
    src: IO[bytes],
    target: Path,
    *,
    declared: int,
    name: str,
    archive: Path,
    read_errors: tuple[type[BaseException], ...],
) -> None:
    """Stream one member to disk, never holding it in memory and never exceeding its declared size.

    Read failures become CorruptArchiveError while write failures (disk full, permissions) propagate
    unchanged, so a full disk is not misreported as a broken download.
    """
    written = 0
    try:
        with open(target, "wb") as out:
            while True:
                try:
                    chunk = src.read(_COPY_CHUNK)
                except read_errors as exc:
                    raise CorruptArchiveError(f"{archive}: member {name!r} is corrupt: {exc}") from exc
                if not chunk:
                    break
                written += len(chunk)
                # The size limits were checked against the declared sizes; a member that produces
                # more than it declared is lying to get past them.
                if written > declared:
                    raise UnsafeArchiveError(
                        f"archive member {name!r} expands beyond its declared size of {declared} bytes"
                    )
                out.write(chunk)
    except BaseException:
        # A truncated file would look like real data to whoever reads the folder next.
        target.unlink(missing_ok=True)
        raise


def _resolve_dest(dest: Path) -> Path:
    # Resolved but not created: a refused archive must leave no trace, not even an empty folder.
    return Path(dest).resolve()


def _write_plan(
    plan: list[_Planned],
    dest: Path,
    open_member: Callable[[_Planned], IO[bytes]],
    *,
    archive: Path,
    read_errors: tuple[type[BaseException], ...],
) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for item in plan:
        if item.is_dir:
            item.target.mkdir(parents=True, exist_ok=True)
            continue
        item.target.parent.mkdir(parents=True, exist_ok=True)
        try:
            src = open_member(item)
        except read_errors as exc:
            raise CorruptArchiveError(f"{archive}: member {item.name!r} is corrupt: {exc}") from exc
        with src:
            _copy_member(
                src, item.target, declared=item.size, name=item.name, archive=archive, read_errors=read_errors
            )
        written.append(item.target)
    return written


# --------------------------------------------------------------------------------------------- zip


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CorruptArchiveError(f"{path} is not a readable zip file: {exc}") from exc


# Everything zipfile can raise while decompressing a damaged member; testzip() only catches
# BadZipFile, so zlib/EOF errors from a truncated deflate stream would otherwise escape raw.
# RuntimeError is an encrypted member, NotImplementedError an unsupported compression method.
_ZIP_READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
)


def verify_zip(path: Path) -> int:
    """Read every member of the zip at `path`, checking its CRC; return the number of members.

    Raises CorruptArchiveError naming the first bad member, or if `path` is not a zip at all.
    """
    path = Path(path)
    with _open_zip(path) as zf:
        infos = zf.infolist()
        for info in infos:
            try:
                with zf.open(info) as member:
                    while member.read(_COPY_CHUNK):
                        pass
            except _ZIP_READ_ERRORS as exc:
                raise CorruptArchiveError(f"{path}: member {info.filename!r} is corrupt: {exc}") from exc
        return len(infos)


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF


def _plan_zip(
    zf: zipfile.ZipFile, dest: Path, *, strip_prefix: str | None, max_total_bytes: int, max_members: int
) -> list[_Planned]:
    infos = zf.infolist()
    if len(infos) > max_members:
        raise UnsafeArchiveError(f"archive has {len(infos)} members, more than the limit of {max_members}")
    planned: list[_Planned] = []
    for info in infos:
        name = info.filename
        parts = _member_parts(name)
        mode = _zip_mode(info)
        file_type = stat.S_IFMT(mode)
        if file_type == stat.S_IFLNK:
            raise UnsafeArchiveError(f"archive member {name!r} is a symbolic link")
        # Zips made on Windows carry no Unix mode (0); anything that declares a type must be a plain
        # file or directory, never a device or fifo.
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"archive member {name!r} is not a regular file or directory")
        if _is_skipped(parts):
            continue
        if strip_prefix and parts and parts[0] == strip_prefix:
            parts = parts[1:]
        if not parts:
            continue
        target = _resolve_target(dest, parts, name)
        is_dir = info.is_dir() or file_type == stat.S_IFDIR
        planned.append(_Planned(info, name, target, is_dir, 0 if is_dir else info.file_size))
    _check_limits(planned, max_total_bytes=max_total_bytes)
    return planned


def safe_extract_zip(
    path: Path,
    dest: Path,
    *,
    strip_prefix: str | None = None,
    max_total_bytes: int = 64 << 30,
    max_members: int = 1_000_000,
) -> list[Path]:
    """Extract the zip at `path` into `dest` after vetting every member; return the files written.

    `strip_prefix` drops one leading folder when a member starts with it (`dogImages/train/x.jpg` ->
    `train/x.jpg`). `__MACOSX/` entries and `.DS_Store` files are skipped. Raises UnsafeArchiveError
    (with nothing extracted) for traversal, absolute paths, symlinks, special files, or archives over
    the size/member limits; CorruptArchiveError for a damaged member.
    """
    path = Path(path)
    if strip_prefix is not None:
        strip_prefix = strip_prefix.strip("/")
    dest = _resolve_dest(dest)
    with _open_zip(path) as zf:
        plan = _plan_zip(
            zf, dest, strip_prefix=strip_prefix, max_total_bytes=max_total_bytes, max_members=max_members
        )

        def open_member(item: _Planned) -> IO[bytes]:
            assert isinstance(item.source, zipfile.ZipInfo)
            return zf.open(item.source)

        return _write_plan(plan, dest, open_member, archive=path, read_errors=_ZIP_READ_ERRORS)


# --------------------------------------------------------------------------------------------- tar


# gzip.BadGzipFile and bz2's "Invalid data stream" are OSError subclasses; no writes happen while
# these are caught (reads only), so OSError cannot be a disk-full error being misreported.
_TAR_READ_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    gzip.BadGzipFile,
    lzma.LZMAError,
    zlib.error,
    EOFError,
    OSError,
)


@dataclass(frozen=True)
class _Budget:
    """Limits checked member by member, from the headers alone, so a bomb is refused before its data
    is decompressed (a tar.gz must be inflated to reach the next header: checking only after the
    whole index was read would inflate the bomb first)."""

    max_total_bytes: int
    max_ratio: float | None  # uncompressed bytes per byte of the archive file
    compressed_bytes: int
    ratio_floor_bytes: int  # below this many uncompressed bytes the ratio is not judged

    def check(self, total: int, name: str) -> None:
        if total > self.max_total_bytes:
            raise UnsafeArchiveError(
                f"archive expands to more than {self.max_total_bytes} bytes (limit reached at member "
                f"{name!r}); refusing as a possible decompression bomb"
            )
        if (
            self.max_ratio is not None
            and total > self.ratio_floor_bytes
            and total > self.max_ratio * max(self.compressed_bytes, 1)
        ):
            raise UnsafeArchiveError(
                f"archive of {self.compressed_bytes} bytes expands to more than {self.max_ratio:g} times "
                f"its size ({total} bytes by member {name!r}); refusing as a possible decompression bomb"
            )


def _plan_tar(
    tf: tarfile.TarFile, dest: Path, *, max_total_bytes: int, max_members: int, budget: _Budget | None = None
) -> list[_Planned]:
    planned: list[_Planned] = []
    data_filter = getattr(tarfile, "data_filter", None)
    count = 0
    total = 0
    # Iterate lazily so a tar with millions of headers is refused at the limit instead of first
    # being indexed in full.
    for member in tf:
        count += 1
        if count > max_members:
            raise UnsafeArchiveError(f"archive has more than the limit of {max_members} members")
        name = member.name
        parts = _member_parts(name)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"archive member {name!r} is a link (to {member.linkname!r})")
        if not (member.isreg() or member.isdir()):
            raise UnsafeArchiveError(f"archive member {name!r} is not a regular file or directory")
        if data_filter is not None:
            # Defence in depth: the stdlib's own policy (3.11.4+) must agree with ours.
            try:
                data_filter(member, str(dest))
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(f"archive member {name!r} refused: {exc}") from exc
        if _is_skipped(parts) or not parts:
            continue
        target = _resolve_target(dest, parts, name)
        is_dir = member.isdir()
        planned.append(_Planned(member, name, target, is_dir, 0 if is_dir else member.size))
        total += 0 if is_dir else member.size
        if budget is not None:
            budget.check(total, name)
    _check_limits(planned, max_total_bytes=max_total_bytes)
    return planned


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except FileNotFoundError:
        raise
    except _TAR_READ_ERRORS as exc:
        raise CorruptArchiveError(f"{path} is not a readable tar file: {exc}") from exc


def safe_extract_tar(
    path: Path,
    dest: Path,
    *,
    max_total_bytes: int = 16 << 30,
    max_members: int = 100_000,
    max_ratio: float | None = None,
    ratio_floor_bytes: int = 64 << 20,
) -> list[Path]:
    """Extract the tar (optionally gz/bz2/xz compressed) at `path` into `dest`; return the files written.

    Only regular files and directories are allowed; links, devices, fifos, absolute or `..` names and
    anything resolving outside `dest` raise UnsafeArchiveError before anything is extracted. With
    `max_ratio`, an archive whose members declare more than that many times the archive's own size
    (once past `ratio_floor_bytes`) is refused as soon as the header that crosses the line is read.
    """
    path = Path(path)
    dest = _resolve_dest(dest)
    budget = _Budget(max_total_bytes, max_ratio, path.stat().st_size, ratio_floor_bytes)
    with _open_tar(path) as tf:
        try:
            plan = _plan_tar(
                tf, dest, max_total_bytes=max_total_bytes, max_members=max_members, budget=budget
            )
        except _TAR_READ_ERRORS as exc:
            raise CorruptArchiveError(f"{path} is truncated or corrupt: {exc}") from exc

        def open_member(item: _Planned) -> IO[bytes]:
            assert isinstance(item.source, tarfile.TarInfo)
            src = tf.extractfile(item.source)
            if src is None:
                raise CorruptArchiveError(f"{path}: member {item.name!r} has no data")
            return src

        return _write_plan(plan, dest, open_member, archive=path, read_errors=_TAR_READ_ERRORS)
