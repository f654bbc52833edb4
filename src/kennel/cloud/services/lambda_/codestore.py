"""Deployment packages on disk, addressed by the SHA-256 of the zip.

Each package is kept as uploaded (``<sha>.zip``, what GetFunction's Code.Location points at) and
extracted once (``<sha>/``, the environments' ``LAMBDA_TASK_ROOT``). Extraction refuses path
traversal, links and zip bombs (``kennel.ml.archive``) and happens in a scratch folder renamed into
place, so a half-extracted package is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from kennel.cloud.services.lambda_.common import MAX_UNZIPPED_BYTES, user
from kennel.ml.archive import CorruptArchiveError, UnsafeArchiveError, safe_extract_zip

_MAX_MEMBERS = 100_000


class CodeStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> tuple[str, int]:
        """Store and extract a package; returns (hex SHA-256, size). Bad zips are the caller's error."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if target.is_dir() and self.zip_path(sha).exists():
            return sha, len(data)
        scratch = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.root))
        try:
            archive = scratch / "package.zip"
            archive.write_bytes(data)
            try:
                safe_extract_zip(
                    archive, scratch / "code", max_total_bytes=MAX_UNZIPPED_BYTES, max_members=_MAX_MEMBERS
                )
            except CorruptArchiveError:
                raise user(
                    "Could not unzip uploaded file. Please check your file, then try to upload again."
                ) from None
            except UnsafeArchiveError as exc:
                if "expands to more than" in str(exc):
                    raise user(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes") from None
                raise user(f"The deployment package is unsafe to extract: {exc}") from None
            os.replace(archive, self.zip_path(sha))
            if not target.is_dir():
                os.replace(scratch / "code", target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return sha, len(data)

    def path(self, sha: str) -> Path:
        return self.root / sha

    def zip_path(self, sha: str) -> Path:
        return self.root / f"{sha}.zip"

    def remove(self, sha: str) -> None:
        shutil.rmtree(self.path(sha), ignore_errors=True)
        self.zip_path(sha).unlink(missing_ok=True)
