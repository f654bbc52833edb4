"""Bucket policies: kept in the state store (SeaweedFS has none), and handed to every S3 authorisation.

One row per bucket holds the document as the client sent it (GetBucketPolicy returns it). The
``Authorizer`` asks :meth:`BucketPolicies.for_request` for the resource policies of every check it makes,
so a check on ``arn:aws:s3:::bucket`` or ``arn:aws:s3:::bucket/key`` is evaluated with that bucket's
policy wherever it is made: the S3 proxy, and the providers that read S3 as a caller or a role.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sqlalchemy import Column, Float, String, Table, Text, delete, select

from kennel.cloud.auth.identity import Principal
from kennel.cloud.objectstore.store import object_arn
from kennel.cloud.policy.policy import Policy, PolicyKind, parse_policy
from kennel.cloud.statestore import StateStore, metadata

bucket_policies = Table(
    "s3_bucket_policies",
    metadata,
    Column("bucket", String, primary_key=True),
    Column("document", Text, nullable=False),  # the JSON as PutBucketPolicy received it
    Column("modified", Float, nullable=False),
)

_S3_ARN = "arn:aws:s3:::"
# AWS lets the account's root user manage a bucket's policy even when the policy denies it, so that a
# policy cannot lock its own account out. Kennel has no root user; the admin user `kennel up` creates
# stands in for it, for these three actions only.
_ROOT_ONLY_EXEMPT = frozenset(["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"])
_MAX_CACHED = 10_000  # buckets remembered (with or without a policy); requests may name any bucket


def bucket_of(resource: str) -> str | None:
    """The bucket an S3 ARN names (``arn:aws:s3:::b`` or ``arn:aws:s3:::b/key``); None for anything else,
    including ListAllMyBuckets' ``arn:aws:s3:::*``."""
    if not resource.startswith(_S3_ARN):
        return None
    bucket = resource[len(_S3_ARN) :].split("/", 1)[0]
    return bucket if bucket and "*" not in bucket and "?" not in bucket else None


class BucketPolicies:
    """The stored bucket policies, parsed once and cached per bucket.

    This is the only writer of its table, so the cache is dropped entry by entry on write rather than on
    every store generation (which moves with any write anywhere)."""

    def __init__(self, store: StateStore, admin_arn: str) -> None:
        self.store = store
        self.admin_arn = admin_arn
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Policy, ...]] = {}

    def document(self, bucket: str) -> str | None:
        with self.store.read() as conn:
            return conn.execute(
                select(bucket_policies.c.document).where(bucket_policies.c.bucket == bucket)
            ).scalar()

    def put(self, bucket: str, document: str) -> None:
        with self.store.write() as conn:
            conn.execute(delete(bucket_policies).where(bucket_policies.c.bucket == bucket))
            conn.execute(
                bucket_policies.insert().values(bucket=bucket, document=document, modified=time.time())
            )
        self._forget(bucket)

    def delete(self, bucket: str) -> bool:
        """Remove the bucket's policy; whether there was one."""
        with self.store.write() as conn:
            removed = conn.execute(delete(bucket_policies).where(bucket_policies.c.bucket == bucket)).rowcount
        self._forget(bucket)
        return bool(removed)

    def policies(self, bucket: str) -> tuple[Policy, ...]:
        """The bucket's policy as a resource policy (empty when it has none)."""
        with self._lock:
            cached = self._cache.get(bucket)
            if cached is None:
                # Loaded under the lock, so a write that lands meanwhile cannot be overwritten by the
                # older value it replaced (the writer forgets the entry only after this returns).
                document = self.document(bucket)
                cached = () if document is None else (self._parse(bucket, document),)
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[bucket] = cached
            return cached

    def for_request(self, principal: Principal, action: str, resource: str) -> Sequence[Policy]:
        """The resource policies of one authorisation check (the Authorizer's hook)."""
        bucket = bucket_of(resource)
        if bucket is None:
            return ()
        if (
            action in _ROOT_ONLY_EXEMPT
            and principal.kind == "user"
            and principal.identity_arn == self.admin_arn
        ):
            return ()
        return self.policies(bucket)

    def _forget(self, bucket: str) -> None:
        with self._lock:
            self._cache.pop(bucket, None)

    @staticmethod
    def _parse(bucket: str, document: str) -> Policy:
        # Stored documents passed check_bucket_policy when they were put.
        return parse_policy(document, name=f"{object_arn(bucket)} bucket policy", kind=PolicyKind.RESOURCE)
