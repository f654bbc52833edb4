"""Model data for instances: a ``model.tar.gz`` (or a model directory) unpacked once into the state dir.

SageMaker downloads and extracts ``ModelDataUrl`` to ``/opt/ml/model`` before the container starts;
here every instance of a model shares one extracted copy, keyed by the source's path, size and
modification time so a rebuilt tarball is extracted afresh and an unchanged one is reused (also
across gateway restarts).

Extraction limits (a ``model.tar.gz`` is user input): the extracted model may hold at most
``MAX_MODEL_BYTES`` (10 GiB, Kennel's stand-in for an instance's ML storage volume), at most
``MAX_MODEL_MEMBERS`` files and directories, and may expand at most ``MAX_MODEL_RATIO`` times the
archive's size once past 64 MiB (model weights barely compress; a bomb expands a thousandfold). Each
limit is checked from the tar headers as they are read, so a bomb fails before its data is inflated or
written, and the endpoint fails with the reason in ``FailureReason``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

from kennel.ml.archive import CorruptArchiveError, UnsafeArchiveError, safe_extract_tar

MAX_MODEL_BYTES = 10 << 30
MAX_MODEL_MEMBERS = 10_000
MAX_MODEL_RATIO = 100.0

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_SAFE = re.compile(r"[^A-Za-z0-9-]+")
EXPORTS_SUFFIX = ".exports"


class ModelDataError(Exception):
    """The model data cannot be used; the message is what an endpoint's FailureReason says."""


Fetcher = Callable[[str], Path]  # a ModelDataUrl → a local file or directory (or ModelDataError)


def source_path(url: str | None, fetch: Fetcher | None = None) -> Path | None:
    """The local file behind ``url``; None for "no model data" (code-only containers).

    With ``fetch`` (the gateway's: it downloads s3:// and https:// data and decides which local paths
    may be read at all), every URL goes through it. Without one, only local paths are understood."""
    if not url:
        return None
    if fetch is not None:
        return fetch(url)
    if url.startswith("file://"):
        return Path(url[len("file://") :])
    if "://" in url:
        raise ModelDataError(f"{url} is not a local path; Kennel reads model data from the local filesystem")
    return Path(url)


def cache_key(source: Path) -> str:
    stat = source.stat()
    identity = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def export_dir_for(model_dir: Path) -> Path | None:
    """A directory beside ``model_dir`` that every instance of this artifact version shares, writable, for
    what they derive from it once (the ONNX export), so a second instance, a warm standby or a scale-out
    finds the export instead of making it again. The model directory itself stays read-only in their
    sandboxes. None for model data that Kennel's handler does not serve (no ``kennel-model.json``)."""
    if not (model_dir / "kennel-model.json").is_file():
        return None
    path = model_dir.with_name(model_dir.name + EXPORTS_SUFFIX)
    path.mkdir(exist_ok=True)
    return path


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def prepare_model_dir(
    url: str | None, cache_root: Path, model_name: str, fetch: Fetcher | None = None
) -> Path:
    """The extracted model directory for ``url`` (extracting it if this is the first use)."""
    source = source_path(url, fetch)
    cache_root.mkdir(parents=True, exist_ok=True)
    if source is None:
        empty = cache_root / f"{_SAFE.sub('-', model_name)}-empty"
        empty.mkdir(exist_ok=True)
        return empty
    if not source.exists():
        raise ModelDataError(f"Could not find model data at {url}.")
    dest = cache_root / f"{_SAFE.sub('-', model_name)[:40]}-{cache_key(source)}"
    with _lock_for(dest):
        if dest.is_dir():
            return dest
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            if source.is_dir():
                shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                safe_extract_tar(
                    source,
                    staging,
                    max_total_bytes=MAX_MODEL_BYTES,
                    max_members=MAX_MODEL_MEMBERS,
                    max_ratio=MAX_MODEL_RATIO,
                )
        except UnsafeArchiveError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelDataError(
                f"The model data at {url} exceeds Kennel's extraction limits or is unsafe to extract: {exc}"
            ) from exc
        except (CorruptArchiveError, tarfile.TarError, EOFError, OSError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelDataError(f"The model data at {url} is not a readable tar.gz archive: {exc}") from exc
        staging.rename(dest)
    return dest
