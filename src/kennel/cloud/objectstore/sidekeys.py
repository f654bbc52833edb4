"""Keys the store cannot hold under their own names, kept as side objects.

On S3 a key is any string up to 1,024 bytes. SeaweedFS stores keys as file paths, which costs two kinds:
a key ending in "/" (``a/``) is a directory there and loses any body written to it, and a path segment
over 255 bytes is refused (KeyTooLongError). Kennel keeps such an object's body, metadata, tags and
checksums in a side object (one flat name per bucket and key) in a bucket no client can name, and a
row in the state store links the two. Its name starts with ``sthree-``, a prefix AWS reserves, so no
client bucket can share it, and operations.py refuses client requests that name it.

* A folder key (``a/``) keeps its marker in the client's bucket, so the store's listings already place
  it where S3 does; they only need its figures (size, ETag, Last-Modified) from the side object.
* A key with a long segment has no place in the store's namespace: listings of a bucket that has one are
  merged with the bucket's rows (listings.py).

The proxy asks :meth:`SideKeys.route` where each request goes and hands the store's answer to
:meth:`SideKeys.finish`. Providers that read objects directly (Lambda code, model data) do not see side
objects: such keys are not where anyone keeps code or models.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from botocore.exceptions import ClientError
from sqlalchemy import Column, Float, Integer, String, Table, delete, select

from kennel.cloud.objectstore import listings
from kennel.cloud.objectstore.operations import S3Call, S3RequestError
from kennel.cloud.objectstore.store import ObjectStore
from kennel.cloud.statestore import StateStore, metadata

SIDE_BUCKET = "sthree-kennel-side-keys"
_MAX_SEGMENT_BYTES = 255  # SeaweedFS's limit on one path segment (a file name)

side_keys = Table(
    "s3_side_keys",
    metadata,
    Column("bucket", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("etag", String, nullable=False),  # as the store quotes it
    Column("last_modified", String, nullable=False),  # ISO 8601 with milliseconds, as listings show it
    Column("modified", Float, nullable=False),
)

# Operations on the object's body, metadata or sub-documents: they go to the side object. Multipart
# uploads to a side key always do (the store never started one under the key's own name).
_ON_THE_BODY = frozenset(
    ["GetObject", "HeadObject", "GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging",
     "GetObjectAcl", "PutObjectAcl"]
)  # fmt: skip
_MULTIPART = frozenset(["CreateMultipartUpload", "UploadPart", "UploadPartCopy", "ListParts",
                        "AbortMultipartUpload", "CompleteMultipartUpload"])  # fmt: skip
_LISTING_FORMS = {"ListObjects": "v1", "ListObjectsV2": "v2", "ListObjectVersions": "versions"}
_NO_SUCH_KEY = S3RequestError("NoSuchKey", 404, "The specified key does not exist.")


def has_long_segment(key: str) -> bool:
    return any(len(part.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES for part in key.split("/"))


def needs_side(key: str | None) -> bool:
    """Whether the store cannot hold ``key`` with a body under its own name."""
    return bool(key) and (key.endswith("/") or has_long_segment(key))  # type: ignore[union-attr]


def keeps_marker(key: str) -> bool:
    """A folder key the store can hold as a marker (it places the key in listings)."""
    return key.endswith("/") and not has_long_segment(key)


def side_key(bucket: str, key: str) -> str:
    return f"{bucket}/{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def side_path(bucket: str, key: str) -> str:
    return f"/{SIDE_BUCKET}/{side_key(bucket, key)}"


@dataclass(frozen=True)
class Route:
    """Where the proxy sends one request, and what it does once the store has answered.

    ``path``: the store path instead of the request's. ``copy_source``: the x-amz-copy-source to send
    instead. ``query``: the query parameters to send instead (a merged listing's). ``after``: "settle"
    (the side object holds the body: record it, and put the marker), "forget" (drop the side object and
    its row), "forget-many" (the same for each key a DeleteObjects named), "listing" (a listing to fill
    in or merge, per ``page``, with the bucket's ``entries``), "buckets" (hide the side bucket); None:
    nothing."""

    path: str | None = None
    copy_source: str | None = None
    after: str | None = None
    query: Mapping[str, str] | None = None
    page: listings.Page | None = None
    entries: tuple[listings.SideEntry, ...] = ()  # a listed bucket's side keys

    @property
    def buffered(self) -> bool:
        """Whether the answer is read whole (to rewrite it, or to act on it before the client sees it)."""
        return self.after is not None or self.path is not None


PLAIN = Route()


class SideKeys:
    """The rows linking keys to their side objects, and the store calls that keep them true."""

    def __init__(self, state: StateStore, objects: ObjectStore) -> None:
        self.state = state
        self.objects = objects
        self._lock = threading.Lock()
        self._side_bucket_ready = False
        self._buckets_with_rows: set[str] | None = None  # loaded on first use, kept up to date by writes

    # --- routing ---------------------------------------------------------------------------------

    def route(
        self, call: S3Call, body_size: int, copy_source: tuple[str, str] | None, query: Mapping[str, str]
    ) -> Route:
        """Where ``call`` goes (blocking: the state store, and the store for a folder key's marker).
        ``copy_source``: the (bucket, key) a copy reads, when it is one."""
        operation, bucket, key = call.operation, call.bucket or "", call.key
        source = None
        if copy_source and needs_side(copy_source[1]):
            if self.has(*copy_source):
                source = quote(side_path(*copy_source), safe="/")
            elif not keeps_marker(copy_source[1]):  # a long key without a row does not exist
                raise _NO_SUCH_KEY
        if operation == "ListBuckets":
            return Route(after="buckets")
        if operation in _LISTING_FORMS:
            return self._listing_route(bucket, _LISTING_FORMS[operation], query)
        if operation == "DeleteBucket" and self._has_long_keys(bucket):
            # The store cannot see long keys, so it would delete a bucket that still holds some.
            raise S3RequestError("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
        if operation == "DeleteObjects":
            return Route(after="forget-many") if self._bucket_has_rows(bucket) else PLAIN
        if not needs_side(key):
            return Route(copy_source=source) if source else PLAIN
        assert key is not None
        path, held = side_path(bucket, key), self.has(bucket, key)
        if operation in ("PutObject", "CopyObject"):
            if operation == "PutObject" and body_size == 0 and keeps_marker(key):
                return Route(after="forget") if held else PLAIN  # a plain folder marker replaces a body
            return Route(path=path, copy_source=source, after="settle")
        if operation in _MULTIPART:
            after = "settle" if operation == "CompleteMultipartUpload" else None
            return Route(path=path, copy_source=source, after=after)
        if operation == "DeleteObject":
            return Route(after="forget") if held else PLAIN
        if held and operation in _ON_THE_BODY:
            return Route(path=path)
        reading = operation in ("GetObject", "HeadObject")
        if not keeps_marker(key) or (reading and not self._marker(bucket, key)):
            # No such key: a long one without a row, or a folder that exists only because keys lie under
            # it ("a/" deleted while "a/x" stayed), for which the store would answer 200.
            raise _NO_SUCH_KEY
        return Route(copy_source=source) if source else PLAIN

    def _listing_route(self, bucket: str, form: str, query: Mapping[str, str]) -> Route:
        """The bucket's side entries are read here, once, and carried to ``finish`` in the route."""
        if not self._bucket_has_rows(bucket):
            return PLAIN
        entries = tuple(self._entries(bucket))
        if not any(has_long_segment(entry.key) for entry in entries):
            return Route(after="listing", entries=entries)  # the store lists every key: figures to fill
        try:
            page, forwarded = listings.page_of(form, query)
        except listings.BadToken:
            raise S3RequestError(
                "InvalidArgument", 400, "The continuation token provided is incorrect"
            ) from None
        return Route(after="listing", query=forwarded, page=page, entries=entries)

    def ensure_side_bucket(self) -> None:
        """Create the side bucket in the store on first use (blocking)."""
        if self._side_bucket_ready:
            return
        try:
            self.objects.client().create_bucket(Bucket=SIDE_BUCKET)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        self._side_bucket_ready = True

    # --- after the store answered ----------------------------------------------------------------

    def finish(self, call: S3Call, route: Route, status: int, payload: bytes) -> bytes:
        """Act on the store's answer to a routed request (blocking); the answer the client gets."""
        bucket, key = call.bucket or "", call.key or ""
        if 200 <= status < 300:
            if route.after == "settle":
                self.settle(bucket, key)
            elif route.after == "forget":
                self.forget(bucket, key)
            elif route.after == "forget-many":  # the keys DeleteObjects named are its checks' resources
                prefix = f"arn:aws:s3:::{bucket}/"
                for check in call.checks:
                    self.forget(bucket, check.resource[len(prefix) :])
            elif route.after == "listing" and route.page is not None:
                payload = listings.merge(payload, route.page, route.entries)
            elif route.after == "listing":
                payload = listings.fill(payload, {e.key: e for e in route.entries})
            elif route.after == "buckets":
                payload = listings.without_bucket(payload, SIDE_BUCKET)
        if route.path is not None:
            payload = listings.own_names(payload, SIDE_BUCKET, side_key(bucket, key), bucket, key)
        return payload

    def settle(self, bucket: str, key: str) -> None:
        """The side object holds the body: record the figures listings show, and put a folder's marker."""
        client = self.objects.client()
        head = client.head_object(Bucket=SIDE_BUCKET, Key=side_key(bucket, key))
        if keeps_marker(key):
            client.put_object(Bucket=bucket, Key=key, Body=b"")
        stamp = head["LastModified"]
        row = {
            "bucket": bucket,
            "key": key,
            "size": int(head["ContentLength"]),
            "etag": head.get("ETag", ""),
            "last_modified": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "modified": time.time(),
        }
        with self.state.write() as conn:
            conn.execute(delete(side_keys).where(_row(bucket, key)))
            conn.execute(side_keys.insert().values(**row))
        with self._lock:
            if self._buckets_with_rows is not None:
                self._buckets_with_rows.add(bucket)

    def forget(self, bucket: str, key: str) -> None:
        """The key was deleted, or a folder key emptied: its side object and row go."""
        if not (needs_side(key) and self.has(bucket, key)):
            return
        try:
            self.objects.client().delete_object(Bucket=SIDE_BUCKET, Key=side_key(bucket, key))
        finally:
            with self.state.write() as conn:
                conn.execute(delete(side_keys).where(_row(bucket, key)))
            with self._lock:
                self._buckets_with_rows = None  # recounted on next use

    def bucket_deleted(self, bucket: str) -> None:
        """The store deleted the bucket: any rows it had go (their side objects with them)."""
        for entry in self._entries(bucket):
            self.forget(bucket, entry.key)

    # --- the rows ----------------------------------------------------------------------------------

    def has(self, bucket: str, key: str) -> bool:
        if not self._bucket_has_rows(bucket):
            return False
        with self.state.read() as conn:
            return conn.execute(select(side_keys.c.key).where(_row(bucket, key))).first() is not None

    def _marker(self, bucket: str, key: str) -> bool:
        """Whether the store lists the folder key itself (not just keys under it)."""
        try:
            listed = self.objects.client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except ClientError:
            return True  # no bucket, say: the store's own answer to the request says so best
        return any(entry["Key"] == key for entry in listed.get("Contents", []))

    def _entries(self, bucket: str) -> list[listings.SideEntry]:
        with self.state.read() as conn:
            rows = conn.execute(select(side_keys).where(side_keys.c.bucket == bucket)).all()
        return [listings.SideEntry(r.key, r.size, r.etag, r.last_modified) for r in rows]

    def _has_long_keys(self, bucket: str) -> bool:
        if not self._bucket_has_rows(bucket):
            return False
        return any(has_long_segment(entry.key) for entry in self._entries(bucket))

    def _bucket_has_rows(self, bucket: str) -> bool:
        with self._lock:
            if self._buckets_with_rows is None:
                with self.state.read() as conn:
                    found = conn.execute(select(side_keys.c.bucket).distinct()).scalars().all()
                self._buckets_with_rows = set(found)
            return bucket in self._buckets_with_rows


def _row(bucket: str, key: str):
    return (side_keys.c.bucket == bucket) & (side_keys.c.key == key)
