"""S3 as a training job's execution role sees it: data channels in, code in, artifacts out.

SageMaker reads input and writes output with the job's role, so every object access here is first
authorised for that role (the same decision the gateway would make for the role's own request) and
only then performed against the store. A denial fails the job with a reason that names the action
and the object, as AWS's ``ClientError`` reasons do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from kennel.cloud.objectstore.store import object_arn, parse_s3_url

MAX_CHANNEL_OBJECTS = 200_000
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class JobFailure(Exception):
    """A reason to fail the job; ``reason`` becomes its FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Decide = Callable[[str, str, dict], bool]  # (action, resource ARN, extra condition keys) -> allowed


class RoleS3:
    def __init__(
        self, role_arn: str, principal_arn: str, decide: Decide, client_factory: Callable, region: str
    ):
        self.role_arn = role_arn
        self.principal_arn = principal_arn
        self.decide = decide
        self.client_factory = client_factory
        self.region = region

    def _require(self, action: str, resource: str, context: dict | None = None) -> None:
        if not self.decide(action, resource, context or {}):
            raise JobFailure(
                f"ClientError: AccessDenied: User: {self.principal_arn} is not authorized to perform: "
                f"{action} on resource: {resource} (the training job's role {self.role_arn} needs it)"
            )

    def _client(self):
        return self.client_factory()

    # --- reading --------------------------------------------------------------------------------------
    def list_objects(self, uri: str) -> list[tuple[str, int]]:
        """Every (key, size) under an ``s3://bucket/prefix`` URI, as the role."""
        bucket, prefix = parse_s3_url(uri)
        self._require("s3:ListBucket", object_arn(bucket), {"s3:prefix": prefix})
        found: list[tuple[str, int]] = []
        try:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):
                        found.append((item["Key"], int(item["Size"])))
                if len(found) > MAX_CHANNEL_OBJECTS:
                    raise JobFailure(f"ClientError: {uri} holds more than {MAX_CHANNEL_OBJECTS} objects.")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("NoSuchBucket", "404"):
                raise JobFailure(f"ClientError: listing {uri} failed: {code}") from None
        except BotoCoreError as exc:
            raise JobFailure(f"InternalServerError: the object store did not answer: {exc}") from None
        return found

    def no_objects(self, uri: str) -> JobFailure:
        bucket, _ = parse_s3_url(uri)
        return JobFailure(
            f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. '
            f"Please ensure that the bucket exists in the selected region ({self.region}), that objects "
            f'exist under that S3 prefix, and that the role "{self.role_arn}" has "s3:ListBucket" '
            f'permissions on bucket "{bucket}".'
        )

    def download(self, bucket: str, key: str, dest: Path) -> None:
        self._require("s3:GetObject", object_arn(bucket, key))
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        try:
            self._client().download_file(bucket, key, str(partial))
        except ClientError as exc:
            partial.unlink(missing_ok=True)
            code = exc.response.get("Error", {}).get("Code", "Error")
            raise JobFailure(f"ClientError: s3://{bucket}/{key} could not be read: {code}") from None
        except BotoCoreError as exc:
            partial.unlink(missing_ok=True)
            raise JobFailure(f"InternalServerError: the object store did not answer: {exc}") from None
        partial.rename(dest)

    def manifest_keys(self, uri: str, scratch: Path) -> list[tuple[str, str, str]]:
        """A ManifestFile's entries as (bucket, key, relative name)."""
        bucket, key = parse_s3_url(uri)
        path = scratch / "manifest.json"
        self.download(bucket, key, path)
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise JobFailure(f"ClientError: the manifest {uri} is larger than {MAX_MANIFEST_BYTES} bytes.")
        try:
            entries = json.loads(path.read_text())
            base = entries[0]["prefix"]
            relative = [str(item) for item in entries[1:]]
        except (ValueError, KeyError, IndexError, TypeError):
            raise JobFailure(
                f'ClientError: the manifest {uri} is not a JSON list starting with {{"prefix": "s3://..."}}.'
            ) from None
        base_bucket, base_key = parse_s3_url(base)
        return [(base_bucket, base_key + name, name) for name in relative]

    # --- writing --------------------------------------------------------------------------------------
    def upload(self, path: Path, uri: str) -> None:
        bucket, key = parse_s3_url(uri)
        self._require("s3:PutObject", object_arn(bucket, key))
        try:
            self._client().upload_file(str(path), bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise JobFailure(f"ClientError: could not write {uri}: {exc}") from None

    def upload_tree(self, root: Path, uri_prefix: str) -> int:
        count = 0
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            self.upload(path, uri_prefix.rstrip("/") + "/" + path.relative_to(root).as_posix())
            count += 1
        return count

    def download_tree(self, uri_prefix: str, dest: Path) -> int:
        bucket, prefix = parse_s3_url(uri_prefix.rstrip("/") + "/")
        count = 0
        for key, _size in self.list_objects(uri_prefix.rstrip("/") + "/"):
            relative = key[len(prefix) :]
            target = (dest / relative).resolve()
            if not str(target).startswith(str(dest.resolve()) + "/"):
                continue  # a key with ../ in it never lands outside the directory
            self.download(bucket, key, target)
            count += 1
        return count


def clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
