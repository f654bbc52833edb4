"""Resumable, verified HTTP download of the dog-breed dataset.

The dataset is about a gigabyte served from S3, so an interrupted transfer must not mean starting
over: bytes accumulate in `<dest>.part`, a rerun continues it with a Range request, and `dest` only
appears (by atomic rename) once size and optional SHA-256 have both been checked.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from kennel.ml.archive import CorruptArchiveError, safe_extract_zip, verify_zip

__all__ = [
    "DOG_IMAGES_URL",
    "DownloadError",
    "download",
    "fetch_dog_images",
]

DOG_IMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
DOG_IMAGES_SPLITS = ("train", "valid", "test")

_USER_AGENT = "kennel-download/0.1"
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Each pass either finishes, raises, or discards the .part and restarts from zero; a restart can
# only be triggered once by a sane server, so a small bound stops a misbehaving one from looping.
_MAX_PASSES = 3


class DownloadError(Exception):
    """A download failed; the message says what happened and whether rerunning will resume."""


@dataclass(frozen=True)
class _ContentRange:
    start: int | None
    end: int | None
    total: int | None


def _parse_content_range(value: str | None) -> _ContentRange | None:
    if not value:
        return None
    m = _CONTENT_RANGE_RE.match(value)
    if m is None:
        return None
    start, end, total = m.groups()
    return _ContentRange(
        start=int(start) if start is not None else None,
        end=int(end) if end is not None else None,
        total=int(total) if total not in (None, "*") else None,
    )


def _parse_content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n >= 0 else None


def _normalise_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    digest = value.strip().lower()
    if not _SHA256_RE.match(digest):
        raise ValueError(f"expected_sha256 must be 64 hex characters, got {value!r}")
    return digest


def _sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    # urllib would happily open file:// or ftp:// URLs; a dataset URL taken from config must not
    # become a way to read local files.
    if scheme not in ("http", "https"):
        raise DownloadError(f"refusing to download {url!r}: only http:// and https:// URLs are supported")


def _new_progress() -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        # stderr keeps stdout clean for commands whose output is piped.
        console=Console(stderr=True),
    )


class _Restart(Exception):
    """Internal: the .part is unusable; discard it and fetch from byte zero."""


def _finish(part: Path, dest: Path, *, expected_sha256: str | None, actual_sha256: str | None) -> Path:
    if expected_sha256 is not None:
        digest = actual_sha256 if actual_sha256 is not None else _sha256_file(part)
        if digest != expected_sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"SHA-256 mismatch for {dest.name}: expected {expected_sha256}, got {digest}. "
                "The partial file was deleted; rerun to download again, and check the expected hash "
                "if this repeats."
            )
    os.replace(part, dest)
    return dest


def _handle_416(err: urllib.error.HTTPError, part: Path, offset: int, expected_sha256: str | None) -> bool:
    """Decide what a 416 to `Range: bytes=offset-` means: True if the .part is already complete."""
    cr = _parse_content_range(err.headers.get("Content-Range") if err.headers else None)
    total = cr.total if cr is not None else None
    if total is not None:
        # The server told us the real size: equal means we already have every byte.
        if offset != total:
            raise _Restart
        return True
    # No size to compare with: only a hash can vouch for the part, otherwise start over.
    if expected_sha256 is not None and _sha256_file(part) == expected_sha256:
        return True
    raise _Restart


def download(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    progress: bool = True,
    timeout_s: float = 30.0,
    chunk_bytes: int = 1 << 20,
) -> Path:
    """Download `url` to `dest`, resuming a previous partial download, and return `dest`.

    Data goes to `dest` + ".part" and is renamed onto `dest` only after the byte count matches the
    server's Content-Length / Content-Range and, if given, the SHA-256 matches. An existing `dest`
    that passes the hash check (or any existing `dest` when no hash is given) is returned without
    touching the network. A transfer cut short raises DownloadError and keeps the .part, so calling
    again resumes; a hash mismatch deletes the .part.
    """
    _check_scheme(url)
    dest = Path(dest)
    expected = _normalise_sha256(expected_sha256)
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")

    if dest.is_file() and (expected is None or _sha256_file(dest) == expected):
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")

    for _ in range(_MAX_PASSES):
        try:
            return _attempt(
                url,
                dest,
                part,
                expected_sha256=expected,
                progress=progress,
                timeout_s=timeout_s,
                chunk_bytes=chunk_bytes,
            )
        except _Restart:
            part.unlink(missing_ok=True)
    raise DownloadError(
        f"giving up on {url}: the server kept answering range requests inconsistently "
        f"({_MAX_PASSES} attempts)"
    )


def _open(url: str, offset: int, timeout_s: float) -> Any:
    headers = {
        "User-Agent": _USER_AGENT,
        # A content-encoded body has different byte offsets from the file, which breaks resuming.
        "Accept-Encoding": "identity",
    }
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)


def _attempt(
    url: str,
    dest: Path,
    part: Path,
    *,
    expected_sha256: str | None,
    progress: bool,
    timeout_s: float,
    chunk_bytes: int,
) -> Path:
    """One request/response cycle. Raises _Restart when the .part must be discarded."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        resp = _open(url, offset, timeout_s)
    except urllib.error.HTTPError as err:
        try:
            if err.code == 416 and offset > 0 and _handle_416(err, part, offset, expected_sha256):
                return _finish(part, dest, expected_sha256=expected_sha256, actual_sha256=None)
            raise DownloadError(f"download of {url} failed: HTTP {err.code} {err.reason}") from err
        finally:
            # The error body is unread; closing releases the socket instead of waiting for GC.
            err.close()
    except urllib.error.URLError as err:
        raise DownloadError(
            f"could not connect to {url}: {err.reason}. Check the network and rerun; "
            "any partial download is kept and will be resumed."
        ) from err
    except (TimeoutError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"could not connect to {url}: {err}") from err

    with resp:
        status = resp.status
        length = _parse_content_length(resp.headers.get("Content-Length"))
        if status == 206:
            cr = _parse_content_range(resp.headers.get("Content-Range"))
            if cr is None or cr.start is None:
                raise DownloadError(
                    f"server for {url} sent a partial response without a usable Content-Range"
                )
            if cr.start != offset:
                # Appending bytes from the wrong place would silently corrupt the file.
                raise _Restart
            if length is None and cr.end is not None:
                length = cr.end - cr.start + 1
            total = cr.total
            if total is None and length is not None:
                total = offset + length
            mode = "ab"
        elif status == 200:
            # Either no Range was sent, or the server ignored it and is sending the whole file.
            offset = 0
            total = length
            mode = "wb"
        else:
            raise DownloadError(f"download of {url} failed: unexpected HTTP status {status}")

        if length is not None and total is not None and offset + length != total:
            raise DownloadError(
                f"server for {url} sent inconsistent sizes (Content-Length {length}, Content-Range "
                f"total {total}, resuming at {offset}); rerun to retry"
            )

        hasher = hashlib.sha256()
        if mode == "ab" and expected_sha256 is not None:
            # Hash what we already have so the final check needs no extra full read of the file.
            with open(part, "rb") as f:
                while chunk := f.read(chunk_bytes):
                    hasher.update(chunk)

        received = 0
        progress_cm: Any = _new_progress() if progress else nullcontext()
        with progress_cm as bar, open(part, mode) as out:
            task = bar.add_task(dest.name, total=total, completed=offset) if bar is not None else None
            try:
                while True:
                    chunk = resp.read(chunk_bytes)
                    if not chunk:
                        break
                    out.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                    if bar is not None and task is not None:
                        bar.update(task, advance=len(chunk))
            except (TimeoutError, OSError, http.client.HTTPException) as err:
                out.flush()
                raise DownloadError(
                    f"download of {url} was interrupted after {offset + received} bytes ({err}); "
                    f"rerun to resume from {part}"
                ) from err

    got = offset + received
    if total is not None and got != total:
        if got > total:
            # More bytes than announced: the part cannot be trusted for a resume.
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"server for {url} sent {got} bytes but announced {total}; the partial file was deleted"
            )
        raise DownloadError(
            f"download of {url} ended early: got {got} of {total} bytes. Rerun to resume from {part}."
        )
    digest = hasher.hexdigest() if expected_sha256 is not None else None
    return _finish(part, dest, expected_sha256=expected_sha256, actual_sha256=digest)


def _splits_present(dest_dir: Path) -> bool:
    return all((dest_dir / s).is_dir() and any((dest_dir / s).iterdir()) for s in DOG_IMAGES_SPLITS)


def fetch_dog_images(
    dest_dir: Path,
    *,
    url: str = DOG_IMAGES_URL,
    expected_sha256: str | None = None,
    progress: bool = True,
    keep_archive: bool = True,
) -> Path:
    """Download and unpack the dog-breed dataset so that dest_dir/{train,valid,test}/NNN.Breed/ exist.

    The archive is kept as dest_dir/dogImages.zip unless `keep_archive` is False. Returns dest_dir.
    """
    dest_dir = Path(dest_dir)
    archive = dest_dir / "dogImages.zip"
    # With the archive deleted after a previous successful run, the extracted splits are all that
    # is left; the archive is only removed after extraction completed, so their presence is proof.
    if not archive.exists() and _splits_present(dest_dir):
        return dest_dir

    dest_dir.mkdir(parents=True, exist_ok=True)
    download(url, archive, expected_sha256=expected_sha256, progress=progress)
    try:
        verify_zip(archive)
    except CorruptArchiveError as err:
        # Without this, the next run would find the archive, skip the download, and fail again.
        archive.unlink(missing_ok=True)
        raise CorruptArchiveError(f"{err}. The archive was deleted; rerun to download it again.") from err

    safe_extract_zip(archive, dest_dir, strip_prefix="dogImages")
    missing = [s for s in DOG_IMAGES_SPLITS if not (dest_dir / s).is_dir()]
    if missing:
        raise DownloadError(
            f"{archive} does not look like the dog-breed dataset: after extraction, "
            f"{', '.join(missing)} folder(s) are missing under {dest_dir} (expected train/, valid/, test/)"
        )
    if not keep_archive:
        archive.unlink()
    return dest_dir
