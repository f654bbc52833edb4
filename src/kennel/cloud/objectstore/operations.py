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
from itertools import pairwise
from urllib.parse import quote, unquote_to_bytes
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
    # A bucket subresource asked at a key's path (GET /bucket/key?location): S3 serves the bucket's
    # operation and ignores the key, so the proxy forwards it to the bucket's path, as authorised.
    key_ignored: bool = False


# Subresources AWS defines. Those Kennel serves map (method → operation, IAM action); any other
# one gets NotImplemented rather than being mistaken for the plain operation on the same path.
_FORWARDED_BUCKET_SUBRESOURCES: dict[str, dict[str, tuple[str, str]]] = {
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
    # Object Lock: Kennel's buckets never have it, so S3's one answer for these is the refusal a bucket
    # without Object Lock gives (objectstore/bucketconfig.py), after the caller is authorised.
    "legal-hold": {"GET": ("GetObjectLegalHold", "GetObjectLegalHold"),
                   "PUT": ("PutObjectLegalHold", "PutObjectLegalHold")},
    "retention": {"GET": ("GetObjectRetention", "GetObjectRetention"),
                  "PUT": ("PutObjectRetention", "PutObjectRetention")},
}  # fmt: skip
OBJECT_LOCK_OPERATIONS = frozenset(
    ["GetObjectLegalHold", "PutObjectLegalHold", "GetObjectRetention", "PutObjectRetention"]
)
# Bucket configuration Kennel never holds: S3's GET of it is answered by Kennel itself, truthfully ("not
# configured", objectstore/bucketconfig.py); the other methods AWS defines for it stay NotImplemented,
# since Kennel cannot configure it. subresource → (GET operation, IAM action, AWS's other methods).
# The action names are the S3 authorization reference's (GetBucketEncryption → s3:GetEncryptionConfiguration).
_NEVER_CONFIGURED: dict[str, tuple[str, str, str]] = {
    "website": ("GetBucketWebsite", "GetBucketWebsite", "PUT DELETE"),
    "encryption": ("GetBucketEncryption", "GetEncryptionConfiguration", "PUT DELETE"),
    "replication": ("GetBucketReplication", "GetReplicationConfiguration", "PUT DELETE"),
    "object-lock": ("GetObjectLockConfiguration", "GetBucketObjectLockConfiguration", "PUT"),
    "publicAccessBlock": ("GetPublicAccessBlock", "GetBucketPublicAccessBlock", "PUT DELETE"),
    "ownershipControls": ("GetBucketOwnershipControls", "GetBucketOwnershipControls", "PUT DELETE"),
    "logging": ("GetBucketLogging", "GetBucketLogging", "PUT"),
    "notification": ("GetBucketNotificationConfiguration", "GetBucketNotification", "PUT"),
    "accelerate": ("GetBucketAccelerateConfiguration", "GetAccelerateConfiguration", "PUT"),
    "requestPayment": ("GetBucketRequestPayment", "GetBucketRequestPayment", "PUT"),
    "analytics": ("ListBucketAnalyticsConfigurations", "GetAnalyticsConfiguration", "PUT DELETE"),
    "metrics": ("ListBucketMetricsConfigurations", "GetMetricsConfiguration", "PUT DELETE"),
    "inventory": ("ListBucketInventoryConfigurations", "GetInventoryConfiguration", "PUT DELETE"),
    "intelligent-tiering": (
        "ListBucketIntelligentTieringConfigurations", "GetIntelligentTieringConfiguration", "PUT DELETE"
    ),
}  # fmt: skip
# A list operation given ``id=`` reads one configuration instead (same IAM action).
_BY_ID = {
    "ListBucketAnalyticsConfigurations": "GetBucketAnalyticsConfiguration",
    "ListBucketMetricsConfigurations": "GetBucketMetricsConfiguration",
    "ListBucketInventoryConfigurations": "GetBucketInventoryConfiguration",
    "ListBucketIntelligentTieringConfigurations": "GetBucketIntelligentTieringConfiguration",
}
# Answered by Kennel, not the store (objectstore/local.py): bucket policies and the configuration reads.
BUCKET_POLICY_OPERATIONS = frozenset(
    ["GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy", "GetBucketPolicyStatus"]
)
LOCAL_OPERATIONS = (
    BUCKET_POLICY_OPERATIONS
    | {op for op, _, _ in _NEVER_CONFIGURED.values()}
    | set(_BY_ID.values())
    | OBJECT_LOCK_OPERATIONS
)


def _bucket_table() -> dict[str, dict[str, tuple[str, str]]]:
    """The served bucket subresources: the forwarded ones, bucket policies, and the configuration reads.
    A HEAD of a locally answered read is that GET without its body, as HTTP defines HEAD."""
    table = dict(_FORWARDED_BUCKET_SUBRESOURCES)
    reads = {name: (op, action) for name, (op, action, _) in _NEVER_CONFIGURED.items()}
    reads["policy"] = ("GetBucketPolicy", "GetBucketPolicy")
    reads["policyStatus"] = ("GetBucketPolicyStatus", "GetBucketPolicyStatus")
    for name, read in reads.items():
        table[name] = {"GET": read, "HEAD": read}
    table["policy"]["PUT"] = ("PutBucketPolicy", "PutBucketPolicy")
    table["policy"]["DELETE"] = ("DeleteBucketPolicy", "DeleteBucketPolicy")
    return table


_BUCKET_SUBRESOURCES = _bucket_table()
_OTHER_SUBRESOURCES = frozenset(["attributes", "restore", "select", "torrent"])
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
RESERVED_BUCKET_PREFIX = "sthree-"
_MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
_MAX_PARTS = 10_000
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.(?:localhost|s3\.[^:]+)$")
_MAX_DELETE_KEYS = 1000


def parse_query(query_string: str) -> dict[str, str]:
    """The query's parameters, each named once. S3 takes no parameter twice, and a repeated one is
    refused rather than resolved: if Kennel authorised one ``prefix`` and the store listed another, a
    condition on ``s3:prefix`` would be bypassed (issue 12, item 3)."""
    params: dict[str, str] = {}
    for part in query_string.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = _decoded(raw_name, plus=True)
        if name in params:
            raise S3RequestError(
                "InvalidArgument", 400,
                f"The query parameter '{name[:64]}' is given more than once; each may appear only once.",
            )  # fmt: skip
        params[name] = _decoded(raw_value, plus=True)
    return params


def _decoded(text: str, *, plus: bool = False) -> str:
    """Wire text (bytes as latin-1, as the ASGI server hands them over) percent-decoded as UTF-8, strictly.
    Leniency would authorise one name and let the store act on another: "%ff" and "%fe" would both read
    as U+FFFD, and raw UTF-8 bytes in a path as latin-1 mojibake, while the store decodes the bytes."""
    try:
        raw = text.encode("latin-1")
        return unquote_to_bytes(raw.replace(b"+", b" ") if plus else raw).decode("utf-8")
    except UnicodeError:
        raise S3RequestError("InvalidURI", 400, "Couldn't parse the specified URI.") from None


def encode_query(params: Mapping[str, str], *, drop: frozenset[str] = frozenset()) -> str:
    """The query string the proxy forwards, rebuilt from exactly the parameters it authorised
    (``drop``: lower-case names left out, e.g. the request's own signature)."""
    parts = []
    for name, value in params.items():
        if name.lower() in drop:
            continue
        encoded = quote(name, safe="-_.~")
        parts.append(f"{encoded}={quote(value, safe='-_.~')}" if value else encoded)
    return "&".join(parts)


def check_key(key: str, what: str = "key") -> None:
    """Refuse what the store could not keep as the very key that was authorised.

    S3 itself keeps keys verbatim (``public/../secret.txt`` is one literal key there), but SeaweedFS is
    a file system underneath: it resolves ``.``/``..`` segments and collapses empty ones (``a//b`` is
    ``a/b``), so the object read or written would not be the one authorised. Kennel refuses such keys
    before authorising anything (``InvalidArgument``) rather than authorise one name and serve another.
    """
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES:
        raise S3RequestError("KeyTooLongError", 400, "Your key is too long")
    segments = key.split("/")
    if segments[-1] == "":  # "dir/": a trailing slash names a folder object, which S3 allows
        segments.pop()
    if any(segment in ("", ".", "..") for segment in segments):
        raise S3RequestError(
            "InvalidArgument", 400,
            f"The {what} {key[:200]!r} has an empty, '.' or '..' path segment, which Kennel's object "
            "store cannot keep verbatim; such keys are refused.",
        )  # fmt: skip


def check_prefix(prefix: str) -> None:
    """A listing prefix may end in a partial segment, but may not climb out of the one it names."""
    segments = prefix.split("/")
    if any(segment in (".", "..") for segment in segments) or "//" in prefix or prefix.startswith("/"):
        raise S3RequestError(
            "InvalidArgument", 400,
            "A listing prefix with an empty, '.' or '..' path segment is refused by Kennel's object store.",
        )  # fmt: skip


def completed_parts(body: bytes) -> list[int]:
    """The part numbers of a CompleteMultipartUpload body, which S3 requires in ascending order."""
    root = _xml(body)
    numbers = []
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "PartNumber":
            text = (element.text or "").strip()
            if not (text.isdigit() and len(text) <= 5 and 1 <= int(text) <= _MAX_PARTS):
                raise S3RequestError(
                    "InvalidArgument", 400, "Part number must be an integer between 1 and 10000, inclusive"
                )
            numbers.append(int(text))
    if not numbers:
        raise S3RequestError(
            "MalformedXML", 400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )  # fmt: skip
    if any(later <= earlier for earlier, later in pairwise(numbers)):
        raise S3RequestError(
            "InvalidPartOrder", 400,
            "The list of parts was not in ascending order. The parts list must be specified in order by "
            "part number.",
        )  # fmt: skip
    return numbers


def bucket_from_host(host: str) -> str | None:
    """Virtual-hosted style (``bucket.localhost:4566``): the bucket the Host header names, if any."""
    found = _VIRTUAL_HOST.match(host.rsplit(":", 1)[0].lower()) if host else None
    return found.group("bucket") if found else None


def split_path(raw_path: str, host_bucket: str | None) -> tuple[str | None, str | None]:
    """(bucket, key) from the raw path; the key is percent-decoded and may contain slashes."""
    path = raw_path.split("?", 1)[0]
    if host_bucket is not None:
        key = _decoded(path[1:]) if len(path) > 1 else None
        return host_bucket, key
    trimmed = path.lstrip("/")
    if not trimmed:
        return None, None
    raw_bucket, _, key = trimmed.partition("/")
    bucket = _decoded(raw_bucket)
    if "/" in bucket:  # "bkt%2Fpublic": authorised as a bucket, split by the store into bucket and key
        raise S3RequestError("InvalidBucketName", 400, "The specified bucket is not valid.")
    return bucket, (_decoded(key) if key else None)


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
            raise _not_allowed()
        return S3Call("ListBuckets", None, None, (Check("s3:ListAllMyBuckets", "arn:aws:s3:::*"),))
    if bucket.startswith(RESERVED_BUCKET_PREFIX):
        # AWS reserves the prefix, so no client's bucket has it; Kennel keeps its own side bucket there
        # (sidekeys.py), which no client may name.
        if method == "PUT" and key is None:
            raise S3RequestError("InvalidBucketName", 400, "The specified bucket is not valid.")
        raise S3RequestError("NoSuchBucket", 404, "The specified bucket does not exist")
    if key is not None:
        check_key(key)
    for name in ("prefix", "marker", "start-after", "key-marker"):
        if query.get(name):
            check_prefix(query[name])
    table = _OBJECT_SUBRESOURCES if key else _BUCKET_SUBRESOURCES
    for name in query:
        if name in table:
            if method not in table[name]:
                if not key and method in _NEVER_CONFIGURED.get(name, ("", "", ""))[2].split():
                    raise _not_implemented(name, method)  # AWS's own method: Kennel cannot configure it
                raise _not_allowed()
            operation, action = table[name][method]
            if operation in _BY_ID and "id" in query:
                operation = _BY_ID[operation]
            return _with_checks(operation, action, bucket, key, query, headers, body)
        if key and name in _BUCKET_SUBRESOURCES:
            return _bucket_subresource_at_key(name, method, bucket, query, headers)
        if name in _OTHER_SUBRESOURCES or (name in _OBJECT_SUBRESOURCES and not key):
            raise _not_implemented(name, method)
    plain = _PLAIN.get((method, bool(key)))
    if plain is None:
        raise _not_allowed()
    operation, action = plain
    if operation == "ListObjects" and query.get("list-type") == "2":
        operation = "ListObjectsV2"
    if "x-amz-copy-source" in headers and operation == "PutObject":
        operation = "CopyObject"
    return _with_checks(operation, action, bucket, key, query, headers, body)


def _bucket_subresource_at_key(
    name: str, method: str, bucket: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> S3Call:
    """S3 dispatches a bucket subresource asked at a key's path as the bucket's own operation, the key
    ignored (``GET /bucket/key?location`` is GetBucketLocation), and answers MethodNotAllowed for a
    method that subresource does not take. POST on an object is only ever a multipart (or restore or
    select) request: AWS refuses the rest with MethodNotAllowed (ResourceType OBJECT), e.g. a
    DeleteObjects aimed at a key."""
    methods = _BUCKET_SUBRESOURCES[name]
    if method == "POST" or method not in methods:
        if method in _NEVER_CONFIGURED.get(name, ("", "", ""))[2].split():
            raise _not_implemented(name, method)
        raise _not_allowed()
    operation, action = methods[method]
    if operation in _BY_ID and "id" in query:
        operation = _BY_ID[operation]
    call = _with_checks(operation, action, bucket, None, query, headers, b"")
    return S3Call(call.operation, call.bucket, None, call.checks, key_ignored=True)


def _not_allowed() -> S3RequestError:
    return S3RequestError(
        "MethodNotAllowed", 405, "The specified method is not allowed against this resource."
    )


def _not_implemented(name: str, method: str) -> S3RequestError:
    return S3RequestError(
        "NotImplemented",
        501,
        f"Kennel's S3 does not implement the '{name}' subresource for {method} requests.",
    )


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
        for deleted in keys:
            check_key(deleted)
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
        check_key(source_key, "copy source key")
        checks.append(Check("s3:GetObject", object_arn(source_bucket, source_key)))
    return S3Call(operation, bucket, key, tuple(checks))


def copy_source_of(header: str) -> tuple[str, str]:
    """``x-amz-copy-source: /bucket/key?versionId=…`` (URL-encoded) → (bucket, key)."""
    path = _decoded(header.split("?versionId=", 1)[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3RequestError(
            "InvalidArgument",
            400,
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    if bucket.startswith(RESERVED_BUCKET_PREFIX):  # Kennel's side bucket: read only through its keys
        raise S3RequestError("NoSuchBucket", 404, "The specified bucket does not exist")
    return bucket, key


def deleted_keys(body: bytes) -> list[str]:
    """The keys of a DeleteObjects request body (``<Delete><Object><Key>…``)."""
    root = _xml(body)
    keys = [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
    if not keys or len(keys) > _MAX_DELETE_KEYS:
        raise S3RequestError(
            "MalformedXML", 400,
            f"A DeleteObjects request names 1 to {_MAX_DELETE_KEYS} keys; this one names {len(keys)}.",
        )  # fmt: skip
    return keys


def _xml(body: bytes) -> ElementTree.Element:
    # ElementTree expands no external entities; DTDs are refused outright so that no entity-expansion
    # bomb is ever expanded, and the callers bound the body's size first.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3RequestError("MalformedXML", 400, "The XML you provided may not declare a DTD or entities.")
    try:
        return ElementTree.fromstring(body)
    except (ElementTree.ParseError, RecursionError):
        raise S3RequestError(
            "MalformedXML", 400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ) from None  # fmt: skip
