"""Kennel's S3 store: SeaweedFS started on first use (or eagerly by ``kennel up``), read by providers.

Clients reach it only through the gateway, which verifies SigV4 and IAM before proxying. Providers
inside Kennel (Lambda code from S3, SageMaker model data) read objects here directly, after
authorising the principal AWS would use (the caller, or the execution role).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from kennel.cloud.objectstore.seaweed import ObjectStoreUnavailable, SeaweedProcess

log = logging.getLogger("kennel.objectstore")

_S3_URL = re.compile(r"s3://([^/]+)/(.+)")


class ObjectNotReadable(Exception):
    """The object does not exist or cannot be read; ``code`` is S3's error code (NoSuchKey, …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key); ValueError for anything else."""
    found = _S3_URL.fullmatch(url)
    if found is None:
        raise ValueError(f"{url} is not an s3://bucket/key URL")
    return found.group(1), found.group(2)


def object_arn(bucket: str, key: str = "") -> str:
    return f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}"


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.process = SeaweedProcess(root)
        self._lock = threading.Lock()
        self._client = None
        self._closed = False

    def start_in_background(self) -> None:
        """``kennel up`` warms the store while the gateway starts, so the first S3 call does not wait."""
        threading.Thread(target=self._warm, name="objectstore-start", daemon=True).start()

    def _warm(self) -> None:
        try:
            self.endpoint()
        except ObjectStoreUnavailable as exc:
            log.error("the S3 store did not start: %s", exc)

    def endpoint(self) -> str:
        """SeaweedFS's S3 URL, starting it (and restarting it after a crash) when needed."""
        with self._lock:
            if self._closed:
                raise ObjectStoreUnavailable("Kennel is shutting down")
            if not self.process.alive():
                if self.process.ports is not None:
                    log.warning("SeaweedFS stopped unexpectedly; restarting it")
                self._client = None
                self.process.start()
            return self.process.s3_endpoint

    @property
    def identity(self):
        return self.process.identity

    def client(self):
        """A boto3 S3 client speaking to SeaweedFS directly (the gateway has already authorised)."""
        self.endpoint()
        with self._lock:
            if self._client is None:
                self._client = self.process.store_client(
                    retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32
                )
            return self._client

    def head(self, bucket: str, key: str, version: str | None = None) -> ObjectInfo:
        extra = {"VersionId": version} if version else {}
        try:
            answer = self.client().head_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            error = _not_readable(exc, bucket, key)
            if error.code == "NoSuchKey" and not self._bucket_exists(bucket):
                error = ObjectNotReadable("NoSuchBucket", "The specified bucket does not exist")
            raise error from None
        except BotoCoreError as exc:
            raise ObjectNotReadable("ServiceUnavailable", str(exc)) from None
        return ObjectInfo(size=int(answer["ContentLength"]), etag=answer.get("ETag", "").strip('"'))

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            return self.bucket_exists(bucket)
        except ObjectStoreUnavailable:
            return False

    def bucket_exists(self, bucket: str) -> bool:
        """Whether the store holds the bucket; ObjectStoreUnavailable when it cannot say."""
        try:
            self.client().head_bucket(Bucket=bucket)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise ObjectStoreUnavailable(
                f"the object store could not say whether {bucket!r} exists: {exc}"
            ) from None
        except BotoCoreError as exc:
            raise ObjectStoreUnavailable(f"the object store did not answer: {exc}") from None

    def read(self, bucket: str, key: str, *, max_bytes: int, version: str | None = None) -> bytes:
        """The object's bytes; ObjectNotReadable when missing or larger than ``max_bytes``."""
        info = self.head(bucket, key, version)
        if info.size > max_bytes:
            raise ObjectNotReadable(
                "EntityTooLarge", f"The object is {info.size} bytes; the limit is {max_bytes} bytes."
            )
        extra = {"VersionId": version} if version else {}
        try:
            return self.client().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except ClientError as exc:
            raise _not_readable(exc, bucket, key) from None
        except BotoCoreError as exc:
            raise ObjectNotReadable("ServiceUnavailable", str(exc)) from None

    def download(self, bucket: str, key: str, cache_dir: Path) -> Path:
        """The object as a local file under ``cache_dir``, named by its ETag so an unchanged object is
        fetched once and a replaced one afresh."""
        info = self.head(bucket, key)
        identity = hashlib.sha256(f"{bucket}/{key}|{info.etag}|{info.size}".encode()).hexdigest()[:20]
        dest = cache_dir / f"{identity}-{Path(key).name or 'object'}"
        if dest.is_file() and dest.stat().st_size == info.size:
            return dest
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        try:
            self.client().download_file(bucket, key, str(partial))
        except ClientError as exc:
            partial.unlink(missing_ok=True)
            raise _not_readable(exc, bucket, key) from None
        except BotoCoreError as exc:
            partial.unlink(missing_ok=True)
            raise ObjectNotReadable("ServiceUnavailable", str(exc)) from None
        partial.rename(dest)
        return dest

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.process.stop()


def _not_readable(exc: ClientError, bucket: str, key: str) -> ObjectNotReadable:
    """S3's code and message; a HEAD has no body, so a 404 is told apart by asking for the bucket."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", "")
    if code in ("404", "NoSuchKey", "NotFound"):
        code, message = "NoSuchKey", "The specified key does not exist."
    elif code in ("403", "AccessDenied", "Forbidden"):
        code, message = "AccessDenied", "Access Denied"
    return ObjectNotReadable(code, message or f"s3://{bucket}/{key} cannot be read ({code})")
