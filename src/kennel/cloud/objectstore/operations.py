"""Which S3 operation a request is, and which IAM actions on which ARNs it needs (pure).

S3 tells operations apart by method, by whether the path names a key, by "subresource" query
parameters (``?uploads``, ``?tagging`` …) and by headers (``x-amz-copy-source``). The action names
follow the S3 authorization reference: HeadObject needs s3:GetObject, HeadBucket and ListObjects(V2)
s3:ListBucket, the multipart calls s3:PutObject, CopyObject s3:PutObject on the target and
s3:GetObject on the source, DeleteObjects s3:DeleteObject on every key it names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote
from xml.etree import ElementTree

from kennel.cloud.objectstore.store import object_arn


class S3RequestError(Exception):
    """The request cannot be an S3 operation Kennel serves; rendered as S3's error XML."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    context: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class S3Call:
    operation: str
    bucket: str | None
    key: str | None
    checks: tuple[Check, ...]


# Subresources AWS defines. Those Kennel serves map (method → operation, IAM action); any other
# one gets NotImplemented rather than being mistaken for the plain operation on the same path.
_BUCKET_SUBRESOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "acl": {"GET": ("GetBucketAcl", "GetBucketAcl"), "PUT": ("PutBucketAcl", "PutBucketAcl")},
    "cors": {"GET": ("GetBucketCors", "GetBucketCORS"), "PUT": ("PutBucketCors", "PutBucketCORS"),
             "DELETE": ("DeleteBucketCors", "PutBucketCORS")},
    "lifecycle": {"GET": ("GetBucketLifecycleConfiguration", "GetLifecycleConfiguration"),
                  "PUT": ("PutBucketLifecycleConfiguration", "PutLifecycleConfiguration"),
                  "DELETE": ("DeleteBucketLifecycle", "PutLifecycleConfiguration")},
    "location": {"GET": ("GetBucketLocation", "GetBucketLocation")},
    "tagging": {"GET": ("GetBucketTagging", "GetBucketTagging"),
                "PUT": ("PutBucketTagging", "PutBucketTagging"),
                "DELETE": ("DeleteBucketTagging", "PutBucketTagging")},
    "versioning": {"GET": ("GetBucketVersioning", "GetBucketVersioning"),
                   "PUT": ("PutBucketVersioning", "PutBucketVersioning")},
    "uploads": {"GET": ("ListMultipartUploads", "ListBucketMultipartUploads")},
    "versions": {"GET": ("ListObjectVersions", "ListBucketVersions")},
    "delete": {"POST": ("DeleteObjects", "DeleteObject")},
}  # fmt: skip
_OBJECT_SUBRESOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "acl": {"GET": ("GetObjectAcl", "GetObjectAcl"), "PUT": ("PutObjectAcl", "PutObjectAcl")},
    "tagging": {"GET": ("GetObjectTagging", "GetObjectTagging"),
                "PUT": ("PutObjectTagging", "PutObjectTagging"),
                "DELETE": ("DeleteObjectTagging", "DeleteObjectTagging")},
    "uploads": {"POST": ("CreateMultipartUpload", "PutObject")},
    "uploadId": {"GET": ("ListParts", "ListMultipartUploadParts"), "PUT": ("UploadPart", "PutObject"),
                 "POST": ("CompleteMultipartUpload", "PutObject"),
                 "DELETE": ("AbortMultipartUpload", "AbortMultipartUpload")},
}  # fmt: skip
_OTHER_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "analytics",
        "attributes",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "torrent",
        "website",
    ]
)
_PLAIN = {  # no subresource: (method, names a key) → (operation, action)
    ("GET", True): ("GetObject", "GetObject"),
    ("HEAD", True): ("HeadObject", "GetObject"),
    ("PUT", True): ("PutObject", "PutObject"),
    ("DELETE", True): ("DeleteObject", "DeleteObject"),
    ("GET", False): ("ListObjects", "ListBucket"),
    ("HEAD", False): ("HeadBucket", "ListBucket"),
    ("PUT", False): ("CreateBucket", "CreateBucket"),
    ("DELETE", False): ("DeleteBucket", "DeleteBucket"),
}
_LIST_CONDITION_KEYS = {"prefix": "s3:prefix", "delimiter": "s3:delimiter", "max-keys": "s3:max-keys"}
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.(?:localhost|s3\.[^:]+)$")
_MAX_DELETE_KEYS = 1000


def bucket_from_host(host: str) -> str | None:
    """Virtual-hosted style (``bucket.localhost:4566``): the bucket the Host header names, if any."""
    found = _VIRTUAL_HOST.match(host.rsplit(":", 1)[0].lower()) if host else None
    return found.group("bucket") if found else None


def split_path(raw_path: str, host_bucket: str | None) -> tuple[str | None, str | None]:
    """(bucket, key) from the raw path; the key is percent-decoded and may contain slashes."""
    path = raw_path.split("?", 1)[0]
    if host_bucket is not None:
        key = unquote(path[1:]) if len(path) > 1 else None
        return host_bucket, key
    trimmed = path.lstrip("/")
    if not trimmed:
        return None, None
    bucket, _, key = trimmed.partition("/")
    return unquote(bucket), (unquote(key) if key else None)


def classify(
    method: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    body: bytes = b"",
    host_bucket: str | None = None,
) -> S3Call:
    """The operation and its authorisation checks. ``headers`` keys are lower-case; ``body`` is read
    only for DeleteObjects (the keys it deletes are what gets authorised)."""
    method = method.upper()
    bucket, key = split_path(raw_path, host_bucket)
    if bucket is None:
        if method != "GET":
            raise S3RequestError(
                "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
            )
        return S3Call("ListBuckets", None, None, (Check("s3:ListAllMyBuckets", "arn:aws:s3:::*"),))
    table = _OBJECT_SUBRESOURCES if key else _BUCKET_SUBRESOURCES
    for name in query:
        if name in table:
            if method not in table[name]:
                raise S3RequestError(
                    "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
                )
            operation, action = table[name][method]
            return _with_checks(operation, action, bucket, key, query, headers, body)
        if (
            name in _OTHER_SUBRESOURCES
            or (name in _BUCKET_SUBRESOURCES and key)
            or (name in _OBJECT_SUBRESOURCES and not key)
        ):
            raise S3RequestError(
                "NotImplemented", 501,
                f"Kennel's S3 does not implement the '{name}' subresource for {method} requests.",
            )  # fmt: skip
    plain = _PLAIN.get((method, bool(key)))
    if plain is None:
        raise S3RequestError(
            "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
        )
    operation, action = plain
    if operation == "ListObjects" and query.get("list-type") == "2":
        operation = "ListObjectsV2"
    if "x-amz-copy-source" in headers and operation == "PutObject":
        operation = "CopyObject"
    return _with_checks(operation, action, bucket, key, query, headers, body)


def _with_checks(
    operation: str,
    action: str,
    bucket: str,
    key: str | None,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
) -> S3Call:
    if operation == "DeleteObjects":
        keys = deleted_keys(body)
        checks = tuple(Check("s3:DeleteObject", object_arn(bucket, k)) for k in keys)
        return S3Call(operation, bucket, None, checks)
    context = {}
    if operation in ("ListObjects", "ListObjectsV2"):
        context = {name: query[param] for param, name in _LIST_CONDITION_KEYS.items() if param in query}
    checks = [Check(f"s3:{action}", object_arn(bucket, key or ""), context)]
    copy_source = headers.get("x-amz-copy-source")
    if copy_source and operation in ("CopyObject", "UploadPart"):
        if operation == "UploadPart":
            operation = "UploadPartCopy"
        source_bucket, source_key = copy_source_of(copy_source)
        checks.append(Check("s3:GetObject", object_arn(source_bucket, source_key)))
    return S3Call(operation, bucket, key, tuple(checks))


def copy_source_of(header: str) -> tuple[str, str]:
    """``x-amz-copy-source: /bucket/key?versionId=…`` (URL-encoded) → (bucket, key)."""
    path = unquote(header.split("?versionId=", 1)[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3RequestError(
            "InvalidArgument",
            400,
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    return bucket, key


def deleted_keys(body: bytes) -> list[str]:
    """The keys of a DeleteObjects request body (``<Delete><Object><Key>…``)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise S3RequestError(
            "MalformedXML", 400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ) from None  # fmt: skip
    keys = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
    if not keys or len(keys) > _MAX_DELETE_KEYS:
        raise S3RequestError(
            "MalformedXML", 400,
            f"A DeleteObjects request names 1 to {_MAX_DELETE_KEYS} keys; this one names {len(keys)}.",
        )  # fmt: skip
    return keys
