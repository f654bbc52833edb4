"""Subresources S3 dispatches in ways a plain proxy would get wrong: a bucket subresource asked at a
key's path (the bucket's operation, the key ignored), and Object Lock on buckets that never have it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from tests.integration.front_door.signed_http import allow, make_user, send, signed

pytestmark = pytest.mark.timeout(300)


@pytest.fixture()
def bucket(s3, bucket: str) -> str:
    """The conftest's fresh bucket, with one object in it."""
    s3.put_object(Bucket=bucket, Key="dir/object.txt", Body=b"the object's own bytes")
    return bucket


def test_a_bucket_subresource_at_a_key_is_the_buckets_operation(cloud, bucket: str) -> None:
    at_bucket = send(signed(cloud, "s3", "GET", f"/{bucket}?location"))
    at_key = send(signed(cloud, "s3", "GET", f"/{bucket}/dir/object.txt?location"))
    assert at_bucket[0] == at_key[0] == 200
    assert b"<LocationConstraint" in at_key[2] and b"the object's own bytes" not in at_key[2]
    versions = send(signed(cloud, "s3", "GET", f"/{bucket}/dir/object.txt?versions"))
    assert versions[0] == 200 and b"<ListVersionsResult" in versions[2]
    assert b"<Key>dir/object.txt</Key>" in versions[2]
    no_policy = send(signed(cloud, "s3", "GET", f"/{bucket}/dir/object.txt?policy"))
    assert no_policy[0] == 404 and b"<Code>NoSuchBucketPolicy</Code>" in no_policy[2]
    # A method the subresource does not take is refused, as S3 does; never the object's answer.
    head = send(signed(cloud, "s3", "HEAD", f"/{bucket}/dir/object.txt?location"))
    assert head[0] == 405


def test_a_bucket_subresource_at_a_key_is_authorised_on_the_bucket(cloud, bucket: str) -> None:
    """Allowed to read the object but not the bucket's location: the key does not lend its grant."""
    _, key, secret = make_user(cloud, allow(["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"]))
    status, _, payload = send(
        signed(cloud, "s3", "GET", f"/{bucket}/dir/object.txt?location", key=key, secret=secret)
    )
    assert status == 403 and b"s3:GetBucketLocation" in payload
    status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}/dir/object.txt", key=key, secret=secret))
    assert (status, payload) == (200, b"the object's own bytes")


def test_object_lock_is_refused_as_on_a_bucket_without_it(s3, bucket: str) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    calls = [
        lambda: s3.get_object_legal_hold(Bucket=bucket, Key="dir/object.txt"),
        lambda: s3.put_object_legal_hold(Bucket=bucket, Key="dir/object.txt", LegalHold={"Status": "ON"}),
        lambda: s3.get_object_retention(Bucket=bucket, Key="dir/object.txt"),
        lambda: s3.put_object_retention(
            Bucket=bucket, Key="dir/object.txt", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as refused:
            call()
        error = refused.value.response["Error"]
        assert error["Code"] == "InvalidRequest"
        assert error["Message"] == "Bucket is missing Object Lock Configuration"
    with pytest.raises(ClientError) as missing:
        s3.get_object_retention(Bucket=f"missing-{uuid.uuid4().hex[:8]}", Key="k")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_object_lock_needs_its_iam_action(cloud, bucket: str) -> None:
    _, key, secret = make_user(cloud, allow(["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"]))
    status, _, payload = send(
        signed(cloud, "s3", "GET", f"/{bucket}/dir/object.txt?retention", key=key, secret=secret)
    )
    assert status == 403 and b"s3:GetObjectRetention" in payload
