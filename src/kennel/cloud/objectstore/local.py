"""The S3 operations Kennel answers itself instead of forwarding them to the store.

Bucket policies (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus) live in Kennel's state store,
because Kennel is what evaluates them; the reads of bucket configuration Kennel never holds get S3's
"not configured" answers (``bucketconfig``). The proxy has verified the signature and authorised the
request before any of this runs; what is left is the bucket's existence, the body, and the answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from kennel.cloud.objectstore import bucketconfig
from kennel.cloud.objectstore.bucketpolicies import BucketPolicies
from kennel.cloud.objectstore.operations import LOCAL_OPERATIONS, S3Call, S3RequestError
from kennel.cloud.objectstore.policyrules import MAX_POLICY_BYTES, check_bucket_policy, is_public
from kennel.cloud.objectstore.store import ObjectStore

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/xml"


def serves(call: S3Call) -> bool:
    return call.operation in LOCAL_OPERATIONS


def check_digests(headers: Mapping[str, str], body: bytes) -> None:
    """Content-MD5 and the x-amz-checksum-* headers Python can compute, checked against the body as S3
    does (the signature covers the body only when the payload was signed)."""
    expected = headers.get("content-md5")
    if expected is not None and expected.strip() != base64.b64encode(hashlib.md5(body).digest()).decode():
        raise S3RequestError(
            "BadDigest", 400, "The Content-MD5 you specified did not match what we received."
        )
    computed = {
        "crc32": lambda: zlib.crc32(body).to_bytes(4, "big"),
        "sha1": lambda: hashlib.sha1(body).digest(),
        "sha256": lambda: hashlib.sha256(body).digest(),
    }
    for name, digest in computed.items():
        claimed = headers.get(f"x-amz-checksum-{name}")
        if claimed is not None and claimed.strip() != base64.b64encode(digest()).decode():
            raise S3RequestError(
                "BadDigest", 400, f"The {name.upper()} you specified did not match the calculated checksum."
            )


class LocalOperations:
    def __init__(self, policies: BucketPolicies, objects: ObjectStore) -> None:
        self.policies = policies
        self.objects = objects

    def answer(self, call: S3Call, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """Blocking (the store and SQLite): run on a worker thread. Refusals raise S3RequestError."""
        bucket = call.bucket or ""
        if not (_BUCKET_NAME.match(bucket) and self.objects.bucket_exists(bucket)):
            raise S3RequestError("NoSuchBucket", 404, "The specified bucket does not exist")
        operation = call.operation
        if operation in bucketconfig.OPERATIONS:
            found = bucketconfig.unconfigured(operation)
            if isinstance(found, bucketconfig.NotConfigured):
                raise S3RequestError(found.code, found.status, found.message)
            return Answer(200, found)
        if operation == "PutBucketPolicy":
            document = body if body is not None else b"x" * (MAX_POLICY_BYTES + 1)  # spooled to disk: too big
            check_bucket_policy(document, bucket)
            check_digests(headers, document)
            self.policies.put(bucket, document.decode("utf-8"))  # UTF-8: the check parsed it as such
            return Answer(204)
        if operation == "DeleteBucketPolicy":
            self.policies.delete(bucket)  # 204 whether or not there was one, as S3 answers
            return Answer(204)
        no_policy = S3RequestError("NoSuchBucketPolicy", 404, "The bucket policy does not exist")
        if operation == "GetBucketPolicy":
            text = self.policies.document(bucket)
            if text is None:
                raise no_policy
            return Answer(200, text.encode("utf-8"), "application/json")
        kept = self.policies.policies(bucket)  # GetBucketPolicyStatus
        if not kept:
            raise no_policy
        public = "true" if is_public(kept[0]) else "false"
        status = f'<PolicyStatus xmlns="{bucketconfig.XMLNS}"><IsPublic>{public}</IsPublic></PolicyStatus>'
        return Answer(200, (_XML_HEAD + status).encode())

    def bucket_deleted(self, bucket: str) -> None:
        """The store deleted the bucket: its policy goes with it (a new bucket of that name starts bare)."""
        self.policies.delete(bucket)
