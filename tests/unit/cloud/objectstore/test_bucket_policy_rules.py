"""What PutBucketPolicy accepts, IsPublic, and the "never configured" answers (pure functions)."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib

import pytest

from kennel.cloud.objectstore.bucketconfig import OPERATIONS, NotConfigured, unconfigured
from kennel.cloud.objectstore.local import check_digests
from kennel.cloud.objectstore.operations import S3RequestError
from kennel.cloud.objectstore.policyrules import MAX_POLICY_BYTES, check_bucket_policy, is_public

BKT = "arn:aws:s3:::bkt"
USER = "arn:aws:iam::000000000000:user/dev"


def _doc(*statements: dict, version: str = "2012-10-17") -> bytes:
    return json.dumps({"Version": version, "Statement": list(statements)}).encode()


def _stmt(**fields: object) -> dict:
    """A statement granting USER GetObject, changed by ``fields`` (None leaves a field out)."""
    base = {"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "s3:GetObject", "Resource": f"{BKT}/*"}
    return {name: value for name, value in (base | fields).items() if value is not None}


@pytest.mark.parametrize(
    "document",
    [
        _doc(_stmt()),
        _doc(_stmt(Resource=[BKT, f"{BKT}/*", f"{BKT}/data/a.txt"], Action=["s3:ListBucket", "s3:Get*"])),
        _doc(_stmt(Effect="Deny", Principal="*", Action="s3:*")),
        _doc(_stmt(Principal={"AWS": "*"}, Action=None, NotAction="s3:DeleteObject", Sid="a")),
        _doc(_stmt(Principal=None, NotPrincipal={"AWS": USER})),
        _doc(_stmt(Action="*", Resource=None, NotResource=f"{BKT}/private/*")),
        _doc(_stmt(), version="2008-10-17"),
        _doc(_stmt(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    ],
)
def test_accepted_policies(document: bytes) -> None:
    policy = check_bucket_policy(document, "bkt")
    assert len(policy.statements) == 1


@pytest.mark.parametrize(
    ("document", "code", "message"),
    [
        (b"", "MissingRequestBodyError", "Request Body is empty"),
        (b"{not json", "MalformedPolicy", "This policy contains invalid Json"),
        (b"[1, 2]", "MalformedPolicy", "This policy contains invalid Json"),
        ('{"Statement": []}'.encode("utf-16"), "MalformedPolicy", "This policy contains invalid Json"),
        (b"\xff\xfe{}", "MalformedPolicy", "This policy contains invalid Json"),
        (b"[" * 5000 + b"]" * 5000, "MalformedPolicy", None),  # bounded before it is decoded
        (_doc(_stmt(Resource=f"{BKT}-other/*")), "MalformedPolicy", "Policy has invalid resource"),
        (_doc(_stmt(Resource="arn:aws:s3:::other/*")), "MalformedPolicy", "Policy has invalid resource"),
        (_doc(_stmt(Resource="*")), "MalformedPolicy", "Policy has invalid resource"),
        (_doc(_stmt(Resource="arn:aws:s3:::*")), "MalformedPolicy", "Policy has invalid resource"),
        (_doc(_stmt(Resource=[BKT, "arn:aws:iam::000000000000:user/x"])), "MalformedPolicy",
         "Policy has invalid resource"),
        (_doc(_stmt(Action="iam:CreateUser")), "MalformedPolicy", "Policy has invalid action"),
        (_doc(_stmt(Action=["s3:GetObject", "sqs:*"])), "MalformedPolicy", "Policy has invalid action"),
        (_doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{BKT}/*"}), "MalformedPolicy",
         "Missing required field Principal"),
        (_doc(_stmt(Effect="Maybe")), "MalformedPolicy", "Invalid effect: Maybe"),
        (_doc(_stmt(Principal={"AWS": "someone"})), "MalformedPolicy",
         'Invalid principal in policy: "AWS":"someone"'),
        (_doc(_stmt(Sid="x"), _stmt(Sid="x")), "MalformedPolicy",
         "Statement IDs (SID) in a single policy must be unique."),
    ],
)  # fmt: skip
def test_refused_policies(document: bytes, code: str, message: str | None) -> None:
    with pytest.raises(S3RequestError) as refused:
        check_bucket_policy(document, "bkt")
    assert (refused.value.code, refused.value.status) == (code, 400)
    if message is not None:
        assert refused.value.message == message


def test_size_is_bounded_before_parsing() -> None:
    padding = " " * (MAX_POLICY_BYTES - len(_doc(_stmt())))
    check_bucket_policy(_doc(_stmt()) + padding.encode(), "bkt")  # exactly 20 KB: kept
    with pytest.raises(S3RequestError) as refused:
        check_bucket_policy(_doc(_stmt()) + padding.encode() + b" ", "bkt")
    assert refused.value.code == "MalformedPolicy" and "20 KB" in refused.value.message


_EVERYONE = {"Principal": "*"}


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        (_stmt(**_EVERYONE), True),
        (_stmt(Principal={"AWS": "*"}), True),
        (_stmt(Principal={"AWS": ["*", USER]}), True),
        (_stmt(), False),  # a fixed principal
        (_stmt(Principal={"AWS": "000000000000"}), False),
        (_stmt(Effect="Deny", **_EVERYONE), False),
        (_stmt(**_EVERYONE, Condition={"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), False),
        (_stmt(**_EVERYONE, Condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}), True),
        (_stmt(**_EVERYONE, Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), True),
        (_stmt(**_EVERYONE, Condition={"StringEquals": {"aws:SourceAccount": "000000000000"}}), False),
        (_stmt(**_EVERYONE, Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}), False),
        (_stmt(**_EVERYONE, Condition={"ArnLike": {"aws:SourceArn": "arn:aws:sns:*"}}), True),  # wildcard
        (_stmt(**_EVERYONE, Condition={"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}}), False),
        (_stmt(**_EVERYONE, Condition={"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}), True),
        (_stmt(**_EVERYONE, Condition={"ForAllValues:StringEquals": {"aws:SourceVpce": "v"}}), True),
        (_stmt(**_EVERYONE, Condition={"StringLike": {"s3:prefix": "home/"}}), True),  # not about who
        (_stmt(**_EVERYONE, Condition={"Bool": {"aws:SecureTransport": "true"}}), True),
    ],
)  # fmt: skip
def test_is_public(statement: dict, public: bool) -> None:
    assert is_public(check_bucket_policy(_doc(statement), "bkt")) is public


def test_not_principal_allow_is_public() -> None:
    assert is_public(check_bucket_policy(_doc(_stmt(Principal=None, NotPrincipal={"AWS": USER})), "bkt"))
    assert not is_public(check_bucket_policy(_doc(_stmt(), _stmt(Effect="Deny", Principal="*")), "bkt"))


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("GetBucketWebsite", "NoSuchWebsiteConfiguration"),
        ("GetBucketEncryption", "ServerSideEncryptionConfigurationNotFoundError"),
        ("GetBucketReplication", "ReplicationConfigurationNotFoundError"),
        ("GetObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"),
        ("GetPublicAccessBlock", "NoSuchPublicAccessBlockConfiguration"),
        ("GetBucketOwnershipControls", "OwnershipControlsNotFoundError"),
        ("GetBucketMetricsConfiguration", "NoSuchConfiguration"),
        ("GetBucketAnalyticsConfiguration", "NoSuchConfiguration"),
        ("GetBucketInventoryConfiguration", "NoSuchConfiguration"),
        ("GetBucketIntelligentTieringConfiguration", "NoSuchConfiguration"),
    ],
)
def test_never_configured_errors(operation: str, code: str) -> None:
    answer = unconfigured(operation)
    assert isinstance(answer, NotConfigured) and (answer.code, answer.status) == (code, 404)


@pytest.mark.parametrize(
    "operation", ["GetObjectLegalHold", "PutObjectLegalHold", "GetObjectRetention", "PutObjectRetention"]
)
def test_object_lock_on_a_bucket_without_it(operation: str) -> None:
    answer = unconfigured(operation)
    assert isinstance(answer, NotConfigured)
    assert (answer.code, answer.status, answer.message) == (
        "InvalidRequest", 400, "Bucket is missing Object Lock Configuration"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "root", "inner"),
    [
        ("GetBucketLogging", "BucketLoggingStatus", ""),
        ("GetBucketNotificationConfiguration", "NotificationConfiguration", ""),
        ("GetBucketAccelerateConfiguration", "AccelerateConfiguration", ""),
        ("GetBucketRequestPayment", "RequestPaymentConfiguration", "<Payer>BucketOwner</Payer>"),
        ("ListBucketMetricsConfigurations", "ListMetricsConfigurationsResult",
         "<IsTruncated>false</IsTruncated>"),
    ],
)  # fmt: skip
def test_never_configured_documents(operation: str, root: str, inner: str) -> None:
    answer = unconfigured(operation)
    assert isinstance(answer, bytes)
    assert answer.endswith(
        f'<{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</{root}>'.encode()
    )


def test_every_operation_has_an_answer() -> None:
    assert len(OPERATIONS) == 22  # 18 configuration reads and the 4 Object Lock operations on objects
    for operation in OPERATIONS:
        assert unconfigured(operation)


def test_body_digests() -> None:
    body = b'{"Version": "2012-10-17"}'
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    check_digests({"content-md5": md5, "x-amz-checksum-crc32": crc, "x-amz-checksum-sha256": sha}, body)
    check_digests({"x-amz-checksum-crc32c": "not checked"}, body)
    for headers in ({"content-md5": crc}, {"x-amz-checksum-crc32": md5}, {"x-amz-checksum-sha256": crc}):
        with pytest.raises(S3RequestError) as refused:
            check_digests(headers, body)
        assert refused.value.code == "BadDigest"
