"""BucketPolicies against a real state store, and the Authorizer deciding S3 checks with them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kennel.cloud.audit import AuditLog
from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import IdentityDirectory, Principal, user_arn
from kennel.cloud.authz import Authorizer
from kennel.cloud.objectstore.bucketpolicies import BucketPolicies, bucket_of
from kennel.cloud.statestore import StateStore

ACCT = "000000000000"
ADMIN, DEV, OTHER = (user_arn(ACCT, name) for name in ("admin", "dev", "other"))


def _user(name: str) -> Principal:
    arn = user_arn(ACCT, name)
    return Principal(arn, arn, "user", name, f"AIDA{name.upper()}", ACCT)


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore(tmp_path / "kennel.db")
    yield store
    store.close()


@pytest.fixture
def authorizer(store: StateStore) -> Iterator[tuple[Authorizer, BucketPolicies]]:
    now = time.time()
    everything = _policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    with store.write() as conn:
        for name in ("admin", "dev", "other"):
            conn.execute(
                t.users.insert().values(name=name, user_id=f"AIDA{name.upper()}", path="/", created=now)
            )
        conn.execute(
            t.inline_policies.insert().values(
                principal_type="user", principal_name="admin", policy_name="all", document=everything
            )
        )
    identities = IdentityDirectory(store, ACCT, time.time)
    audit = AuditLog(store)
    policies = BucketPolicies(store, ADMIN)
    yield Authorizer(identities, audit, policies.for_request), policies
    audit.close()


@pytest.mark.parametrize(
    ("resource", "bucket"),
    [
        ("arn:aws:s3:::bkt", "bkt"),
        ("arn:aws:s3:::bkt/a/b.txt", "bkt"),
        ("arn:aws:s3:::*", None),
        ("arn:aws:s3:::bk*/x", None),
        ("arn:aws:s3:::", None),
        ("arn:aws:lambda:us-east-1:000000000000:function:f", None),
        ("*", None),
    ],
)
def test_bucket_of(resource: str, bucket: str | None) -> None:
    assert bucket_of(resource) == bucket


def test_put_get_delete_and_survive_a_reopen(store: StateStore, tmp_path: Path) -> None:
    policies = BucketPolicies(store, ADMIN)
    document = _policy(
        {"Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "s3:*", "Resource": "arn:aws:s3:::bkt"}
    )
    assert policies.document("bkt") is None and policies.policies("bkt") == ()
    policies.put("bkt", document)
    assert policies.document("bkt") == document
    assert len(policies.policies("bkt")) == 1  # the cached "no policy" was forgotten on write
    store.close()
    reopened = StateStore(tmp_path / "kennel.db")  # a gateway restart: a new store on the same file
    try:
        again = BucketPolicies(reopened, ADMIN)
        assert again.document("bkt") == document
        assert again.delete("bkt") is True and again.delete("bkt") is False
        assert again.policies("bkt") == ()
    finally:
        reopened.close()


def test_decisions_use_the_bucket_policy(authorizer: tuple[Authorizer, BucketPolicies]) -> None:
    decide, policies = authorizer
    obj = "arn:aws:s3:::bkt/data/a.txt"
    secret = {"Sid": "Secret", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject"}
    dev = {"Sid": "Dev", "Effect": "Allow", "Principal": {"AWS": DEV}, "Action": "s3:GetObject"}
    policies.put(
        "bkt",
        _policy(
            secret | {"Resource": "arn:aws:s3:::bkt/secret/*"}, dev | {"Resource": "arn:aws:s3:::bkt/data/*"}
        ),
    )
    assert decide.decide(_user("admin"), "s3:GetObject", obj).allowed
    denied = decide.decide(_user("admin"), "s3:GetObject", "arn:aws:s3:::bkt/secret/k")
    assert not denied.allowed
    assert denied.message(ADMIN, "s3:GetObject", "arn:aws:s3:::bkt/secret/k").endswith(
        "with an explicit deny in a resource-based policy"
    )
    # Same account: the bucket policy naming the user is enough, no identity policy needed.
    granted = decide.decide(_user("dev"), "s3:GetObject", obj)
    assert (
        granted.allowed and granted.matched_statement is not None and granted.matched_statement.sid == "Dev"
    )
    assert not decide.decide(_user("dev"), "s3:PutObject", obj).allowed
    assert not decide.decide(_user("other"), "s3:GetObject", obj).allowed
    # Another bucket is untouched by this one's policy.
    assert not decide.decide(_user("dev"), "s3:GetObject", "arn:aws:s3:::other-bkt/data/a.txt").allowed


def test_a_policy_cannot_lock_the_admin_out_of_managing_it(
    authorizer: tuple[Authorizer, BucketPolicies],
) -> None:
    decide, policies = authorizer
    bucket = "arn:aws:s3:::bkt"
    everything = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [bucket, f"{bucket}/*"]}
    policies.put("bkt", _policy(everything))
    for action in ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"):
        assert decide.decide(_user("admin"), action, bucket).allowed  # AWS's root-user exception
    for action in ("s3:ListBucket", "s3:GetBucketPolicyStatus", "s3:DeleteBucket"):
        assert not decide.decide(_user("admin"), action, bucket).allowed
