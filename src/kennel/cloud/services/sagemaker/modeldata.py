"""Where a model's ``ModelDataUrl`` may point, as on AWS: ``s3://`` (read as the execution role) or
``https://``. Local paths and ``file://`` URLs are a development convenience that only a gateway
started with ``KENNEL_ALLOW_LOCAL_MODEL_DATA=<dir>:<dir>`` accepts, and only inside those directories:
the path is resolved (symlinks followed) before the check, and ``..`` is refused outright, so neither
``/allowed/../etc/hostname`` nor a link planted in an allowed directory reaches anything else.

The same check runs at CreateModel and again when an endpoint fetches the data (a model created
before the setting changed is judged by the setting in force when it is deployed).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from kennel.ml.errors import UrlFetchError, UrlNotAllowedError
from kennel.ml.urlfetch import fetch_url

# An https:// model.tar.gz is fetched whole into memory by the SSRF-safe fetcher, so it is capped.
MAX_HTTPS_MODEL_BYTES = 512 << 20
HTTPS_TIMEOUT_S = 300.0

ErrorFactory = Callable[[str], Exception]


def is_local(url: str) -> bool:
    return url.startswith("file://") or "://" not in url


def local_model_path(url: str, allowed: Sequence[Path], error: ErrorFactory) -> Path:
    """The real path behind a local ``ModelDataUrl``, if the settings allow reading it."""
    if not allowed:
        raise error(
            f"ModelDataUrl {url} is a local path: model data must be an s3:// or https:// URL. (A Kennel "
            "gateway for development can allow local directories with KENNEL_ALLOW_LOCAL_MODEL_DATA.)"
        )
    raw = url[len("file://") :] if url.startswith("file://") else url
    if not raw.startswith("/"):
        raise error(f"ModelDataUrl {url} must be an absolute path (or a file:/// URL).")
    path = Path(raw)
    if ".." in path.parts:
        raise error(f"ModelDataUrl {url} must not contain '..'.")
    real = path.resolve()  # follows every symlink on the way, so the check is on what would be read
    roots = [Path(directory).resolve() for directory in allowed]
    if not any(real == root or real.is_relative_to(root) for root in roots):
        names = ":".join(str(directory) for directory in allowed)
        raise error(
            f"ModelDataUrl {url} is outside the directories this gateway reads model data from "
            f"(KENNEL_ALLOW_LOCAL_MODEL_DATA={names})."
        )
    if not real.exists():
        raise error(f"Could not find model data at {url}.")
    return real


def check_https_url(url: str, error: ErrorFactory) -> None:
    host = url[len("https://") :].split("/", 1)[0]
    if not host or "@" in host:
        raise error(f"ModelDataUrl {url} must name a host: https://host/path.")


def fetch_https(url: str, cache_dir: Path, error: ErrorFactory) -> Path:
    """Download an https:// model.tar.gz (public addresses only) to a file under ``cache_dir``.

    The file is rewritten only when the bytes change, so an unchanged model keeps its extraction."""
    try:
        data = fetch_url(url, max_bytes=MAX_HTTPS_MODEL_BYTES, timeout_s=HTTPS_TIMEOUT_S)
    except (UrlNotAllowedError, UrlFetchError) as exc:
        raise error(f"Could not access model data at {url}: {exc}") from None
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".tar.gz")
    digest = hashlib.sha256(data).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
        return target
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.replace(temporary, target)
    return target
