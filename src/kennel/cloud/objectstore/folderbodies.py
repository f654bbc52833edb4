"""Bodies of keys ending in "/": S3 keeps them, SeaweedFS keeps such a key only as a folder marker.

On S3 ``a/`` is a key like any other and may hold bytes. SeaweedFS stores it as a directory and drops
whatever was written to it, so Kennel keeps such a body beside the store's own namespace: the bytes (and
the object's metadata, tags and checksums, since they travel with the body) go to a side object in a
bucket no client can name, the marker stays in the user's bucket (so listings, prefixes and delimiters
place ``a/`` exactly where S3 would), and a row in the state store links the two.

The proxy asks :func:`route` where each request on such a key goes. What only the side object knows
(size, ETag, Last-Modified) is written into listings of a bucket that has such keys, and the side
bucket is left out of ListBuckets. The side bucket's name starts with ``sthree-``, a prefix AWS reserves,
so no client bucket can share it; operations refuses client requests that name it.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from botocore.exceptions import ClientError
from sqlalchemy import Column, Float, Integer, String, Table, delete, select

from kennel.cloud.objectstore.operations import S3Call, S3RequestError
from kennel.cloud.objectstore.store import ObjectStore
from kennel.cloud.statestore import StateStore, metadata

SIDE_BUCKET = "sthree-kennel-folder-bodies"

folder_bodies = Table(
    "s3_folder_bodies",
    metadata,
    Column("bucket", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("etag", String, nullable=False),  # as the store quotes it
    Column("last_modified", String, nullable=False),  # ISO 8601 with milliseconds, as listings show it
    Column("modified", Float, nullable=False),
)

# Object operations that act on the body itself, its metadata or its sub-documents: they go to the side
# object once the key has one. Multipart uploads to such a key always go there (the marker never has one).
_ON_THE_BODY = frozenset(
    ["GetObject", "HeadObject", "GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging",
     "GetObjectAcl", "PutObjectAcl"]
)  # fmt: skip
_MULTIPART = frozenset(["CreateMultipartUpload", "UploadPart", "UploadPartCopy", "ListParts",
                        "AbortMultipartUpload", "CompleteMultipartUpload"])  # fmt: skip
_LISTINGS = frozenset(["ListObjects", "ListObjectsV2", "ListObjectVersions"])
_CONTENTS = re.compile(rb"<(Contents|Version)>(.*?)</\1>", re.S)
_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)
_SIDE_ENTRY = re.compile(
    rb"<Bucket>\s*<Name>" + re.escape(SIDE_BUCKET.encode()) + rb"</Name>.*?</Bucket>", re.S
)


def is_folder_key(key: str | None) -> bool:
    return bool(key) and key.endswith("/")  # type: ignore[union-attr]


def side_key(bucket: str, key: str) -> str:
    """The side object's key: one flat name per (bucket, key), whatever the key's length."""
    return f"{bucket}/{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def side_path(bucket: str, key: str) -> str:
    return f"/{SIDE_BUCKET}/{side_key(bucket, key)}"


@dataclass(frozen=True)
class Route:
    """Where the proxy sends one request, and what it does once the store has answered.

    ``path``: the store path instead of the request's (None: the request's own). ``copy_source``: the
    x-amz-copy-source to send instead. ``after``: "settle" (the side object now holds the body: put the
    marker, record it), "forget" (drop the side object and its row), "forget-many" (the same, for the
    keys a DeleteObjects named), "listing" (fill in the folder keys' figures), "buckets" (hide the side
    bucket); None: nothing."""

    path: str | None = None
    copy_source: str | None = None
    after: str | None = None

    @property
    def buffered(self) -> bool:
        """Whether the answer is read whole (to rewrite it, or to act on it before the client sees it)."""
        return self.after is not None or self.path is not None


PLAIN = Route()


class FolderBodies:
    """The rows linking folder keys to their side objects, and the store calls that keep them true."""

    def __init__(self, state: StateStore, objects: ObjectStore) -> None:
        self.state = state
        self.objects = objects
        self._lock = threading.Lock()
        self._side_bucket_ready = False
        self._buckets_with_rows: set[str] | None = None  # loaded on first use; kept up to date by writes

    # --- routing ---------------------------------------------------------------------------------

    def route(self, call: S3Call, body_size: int, copy_source: tuple[str, str] | None) -> Route:
        """Where ``call`` goes. ``copy_source``: the (bucket, key) a copy reads, when it is one."""
        operation, bucket, key = call.operation, call.bucket or "", call.key
        source = None
        if copy_source and is_folder_key(copy_source[1]) and self.has(*copy_source):
            source = quote(side_path(*copy_source), safe="/")
        if operation == "ListBuckets":
            return Route(after="buckets")
        if operation in _LISTINGS:
            return Route(after="listing") if self._bucket_has_rows(bucket) else PLAIN
        if operation == "DeleteObjects":
            return Route(after="forget-many") if self._bucket_has_rows(bucket) else PLAIN
        if not is_folder_key(key):
            return Route(copy_source=source) if source else PLAIN
        assert key is not None
        if operation in ("PutObject", "CopyObject"):
            if operation == "PutObject" and body_size == 0:  # an empty marker replaces any body
                return Route(after="forget") if self.has(bucket, key) else PLAIN
            return Route(path=side_path(bucket, key), copy_source=source, after="settle")
        if operation in _MULTIPART:
            after = "settle" if operation == "CompleteMultipartUpload" else None
            return Route(path=side_path(bucket, key), copy_source=source, after=after)
        if operation == "DeleteObject":
            return Route(after="forget") if self.has(bucket, key) else PLAIN
        if operation in _ON_THE_BODY and self.has(bucket, key):
            return Route(path=side_path(bucket, key))
        if operation in ("GetObject", "HeadObject") and not self._marker_listed(bucket, key):
            # The store answers 200 for a folder that only exists because keys lie under it ("a/" after
            # "a/" was deleted while "a/x" stayed); S3 has no such key, and the store's listing agrees.
            raise S3RequestError("NoSuchKey", 404, "The specified key does not exist.")
        return Route(copy_source=source) if source else PLAIN

    def ensure_side_bucket(self) -> None:
        """Create the side bucket in the store on first use (blocking)."""
        if self._side_bucket_ready:
            return
        client = self.objects.client()
        try:
            client.create_bucket(Bucket=SIDE_BUCKET)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
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
                self.forget_many(bucket, [c.resource[len(prefix) :] for c in call.checks])
            elif route.after == "listing":
                payload = self.fill_listing(bucket, payload)
            elif route.after == "buckets":
                payload = self.hide_side_bucket(payload)
        if route.path is not None:
            payload = self.own_names(payload, bucket, key)
        return payload

    def bucket_deleted(self, bucket: str) -> None:
        """The store deleted the bucket (so no folder marker was left in it): drop any rows it had."""
        with self.state.write() as conn:
            conn.execute(delete(folder_bodies).where(folder_bodies.c.bucket == bucket))
        with self._lock:
            self._buckets_with_rows = None

    def settle(self, bucket: str, key: str) -> None:
        """The side object holds the body: put the folder marker and record the figures listings show."""
        client = self.objects.client()
        head = client.head_object(Bucket=SIDE_BUCKET, Key=side_key(bucket, key))
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
            conn.execute(delete(folder_bodies).where(_row(bucket, key)))
            conn.execute(folder_bodies.insert().values(**row))
        with self._lock:
            if self._buckets_with_rows is not None:
                self._buckets_with_rows.add(bucket)

    def forget(self, bucket: str, key: str) -> None:
        """The folder key was deleted or emptied: its side object and row go."""
        if not self.has(bucket, key):
            return
        try:
            self.objects.client().delete_object(Bucket=SIDE_BUCKET, Key=side_key(bucket, key))
        finally:
            with self.state.write() as conn:
                conn.execute(delete(folder_bodies).where(_row(bucket, key)))
            with self._lock:
                self._buckets_with_rows = None  # recounted on next use

    def forget_many(self, bucket: str, keys: list[str]) -> None:
        for key in keys:
            if is_folder_key(key):
                self.forget(bucket, key)

    def fill_listing(self, bucket: str, xml: bytes) -> bytes:
        """A ListObjects(V2)/ListObjectVersions answer with each folder key's size, ETag and
        Last-Modified taken from its side object (the store reports the empty marker's)."""
        rows = self._rows(bucket)
        if not rows:
            return xml
        url_encoded = b"<EncodingType>url</EncodingType>" in xml

        def fill(found: re.Match) -> bytes:
            entry = found.group(2)
            named = _KEY.search(entry)
            if named is None:
                return found.group(0)
            text = named.group(1).decode("utf-8")
            key = unquote(text) if url_encoded else html.unescape(text)
            row = rows.get(key)
            if row is None:
                return found.group(0)
            entry = _replace(entry, b"Size", str(row.size).encode())
            entry = _replace(entry, b"ETag", escape(row.etag).encode())
            entry = _replace(entry, b"LastModified", row.last_modified.encode())
            tag = found.group(1)
            return b"<" + tag + b">" + entry + b"</" + tag + b">"

        return _CONTENTS.sub(fill, xml)

    @staticmethod
    def hide_side_bucket(xml: bytes) -> bytes:
        return re.sub(
            rb"<Bucket>\s*<Name>" + re.escape(SIDE_BUCKET.encode()) + rb"</Name>.*?</Bucket>",
            b"",
            xml,
            flags=re.S,
        )

    @staticmethod
    def own_names(xml: bytes, bucket: str, key: str) -> bytes:
        """An answer about the side object speaks of the client's bucket and key instead (multipart
        results and errors name both; a client must never see the side bucket)."""
        hidden = side_key(bucket, key)
        xml = xml.replace(
            f"<Bucket>{SIDE_BUCKET}</Bucket>".encode(), f"<Bucket>{escape(bucket)}</Bucket>".encode()
        )
        xml = xml.replace(f"<Key>{hidden}</Key>".encode(), f"<Key>{escape(key)}</Key>".encode())
        return xml.replace(side_path(bucket, key).encode(), f"/{bucket}/{quote(key)}".encode())

    # --- the rows ----------------------------------------------------------------------------------

    def has(self, bucket: str, key: str) -> bool:
        if not self._bucket_has_rows(bucket):
            return False
        with self.state.read() as conn:
            return conn.execute(select(folder_bodies.c.key).where(_row(bucket, key))).first() is not None

    def _marker_listed(self, bucket: str, key: str) -> bool:
        try:
            listed = self.objects.client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        except ClientError:
            return True  # no bucket, say: the store's own answer to the request says so best
        return any(entry["Key"] == key for entry in listed.get("Contents", []))

    def _rows(self, bucket: str) -> dict:
        with self.state.read() as conn:
            found = conn.execute(select(folder_bodies).where(folder_bodies.c.bucket == bucket)).all()
        return {row.key: row for row in found}

    def _bucket_has_rows(self, bucket: str) -> bool:
        with self._lock:
            if self._buckets_with_rows is None:
                with self.state.read() as conn:
                    found = conn.execute(select(folder_bodies.c.bucket).distinct()).scalars().all()
                self._buckets_with_rows = set(found)
            return bucket in self._buckets_with_rows


def _row(bucket: str, key: str):
    return (folder_bodies.c.bucket == bucket) & (folder_bodies.c.key == key)


def _replace(entry: bytes, tag: bytes, value: bytes) -> bytes:
    element = re.compile(b"<" + tag + rb">.*?</" + tag + b">", re.S)
    return element.sub(lambda _: b"<" + tag + b">" + value + b"</" + tag + b">", entry, count=1)
