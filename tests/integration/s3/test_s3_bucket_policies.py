"""Bucket policies (kept and enforced by Kennel) and the bucket configuration reads Kennel answers
itself, through boto3 against the live gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.conftest import start_gateway, stop_gateway

pytestmark = pytest.mark.timeout(300)

ACCOUNT = "000000000000"


def _code(failed: pytest.ExceptionInfo) -> str:
    return failed.value.response["Error"]["Code"]


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user(cloud, statements: list[dict] | None = None) -> tuple[str, object]:
    """A user with ``statements`` as its only permissions (none at all when None): (ARN, its S3 client)."""
    iam = cloud.client("iam")
    name = f"bp-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=_policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, cloud.client("s3", key=key["AccessKeyId"], secret=key["SecretAccessKey"])


def test_put_get_status_delete_round_trip(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as none_yet:
        s3.get_bucket_policy(Bucket=bucket)
    assert _code(none_yet) == "NoSuchBucketPolicy"
    assert none_yet.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    private = _policy(
        {
            "Sid": "Admins",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
    )
    put = s3.put_bucket_policy(Bucket=bucket, Policy=private)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == private
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"] == {"IsPublic": False}

    public = _policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=public)  # replaces the first
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == public
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"] == {"IsPublic": True}

    deleted = s3.delete_bucket_policy(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    for read in (s3.get_bucket_policy, s3.get_bucket_policy_status):
        with pytest.raises(ClientError) as gone:
            read(Bucket=bucket)
        assert _code(gone) == "NoSuchBucketPolicy"
    assert s3.delete_bucket_policy(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_bad_policies_are_refused_with_s3s_codes(s3, bucket: str) -> None:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    cases = {
        "not JSON": ("{nope", "MalformedPolicy", "This policy contains invalid Json"),
        "another bucket": (
            _policy(statement | {"Resource": "arn:aws:s3:::someone-else/*"}),
            "MalformedPolicy",
            "Policy has invalid resource",
        ),
        "everything": (
            _policy(statement | {"Resource": "*"}),
            "MalformedPolicy",
            "Policy has invalid resource",
        ),
        "not an s3 action": (
            _policy(statement | {"Action": "iam:CreateUser"}),
            "MalformedPolicy",
            "Policy has invalid action",
        ),
        "no principal": (
            _policy({k: v for k, v in statement.items() if k != "Principal"}),
            "MalformedPolicy",
            "Missing required field Principal",
        ),
        "over 20 KB": (_policy(*[statement | {"Sid": f"s{i}"} for i in range(200)]), "MalformedPolicy", None),
    }
    for what, (document, code, message) in cases.items():
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_policy(Bucket=bucket, Policy=document)
        error = refused.value.response["Error"]
        assert error["Code"] == code, what
        assert message is None or error["Message"] == message, what
    with pytest.raises(ClientError) as kept_none:
        s3.get_bucket_policy(Bucket=bucket)
    assert _code(kept_none) == "NoSuchBucketPolicy"
    missing = f"kennel-missing-{uuid.uuid4().hex[:8]}"
    for call in (
        lambda: s3.put_bucket_policy(Bucket=missing, Policy=_policy(statement)),
        lambda: s3.get_bucket_policy(Bucket=missing),
        lambda: s3.delete_bucket_policy(Bucket=missing),
    ):
        with pytest.raises(ClientError) as no_bucket:
            call()
        assert _code(no_bucket) == "NoSuchBucket"


def test_an_explicit_deny_in_the_bucket_policy_denies_the_admin(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="secret/a.txt", Body=b"secret")
    s3.put_object(Bucket=bucket, Key="open/b.txt", Body=b"open")
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=_policy(
            {
                "Sid": "NoSecrets",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/secret/*",
            }
        ),
    )
    with pytest.raises(ClientError) as denied:
        s3.get_object(Bucket=bucket, Key="secret/a.txt")
    assert _code(denied) == "AccessDenied"
    assert denied.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/admin is not authorized to perform: s3:GetObject on resource: "
        f"arn:aws:s3:::{bucket}/secret/a.txt with an explicit deny in a resource-based policy"
    )
    assert s3.get_object(Bucket=bucket, Key="open/b.txt")["Body"].read() == b"open"
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="secret/a.txt")["Body"].read() == b"secret"


def test_a_policy_denying_everything_cannot_lock_the_admin_out_of_it(s3, bucket: str) -> None:
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=_policy({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources}),
    )
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket=bucket)
    assert _code(listing) == "AccessDenied"
    # As AWS lets the account's root user, Kennel's admin still reads and removes the policy.
    assert "Deny" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_bucket_policy_grants_a_same_account_user_without_an_identity_policy(
    cloud, s3, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="shared/a.txt", Body=b"shared")
    reader_arn, reader = _user(cloud)
    _, bystander = _user(cloud)
    with pytest.raises(ClientError) as before:
        reader.get_object(Bucket=bucket, Key="shared/a.txt")
    assert _code(before) == "AccessDenied"

    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=_policy(
            {
                "Sid": "Reader",
                "Effect": "Allow",
                "Principal": {"AWS": reader_arn},
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/shared/*"],
            }
        ),
    )
    assert reader.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=bucket)["Contents"]] == ["shared/a.txt"]
    refused: dict[str, Callable[[], object]] = {
        "write": lambda: reader.put_object(Bucket=bucket, Key="shared/b.txt", Body=b"x"),
        "read the policy": lambda: reader.get_bucket_policy(Bucket=bucket),
        "delete the policy": lambda: reader.delete_bucket_policy(Bucket=bucket),
        "someone else reads": lambda: bystander.get_object(Bucket=bucket, Key="shared/a.txt"),
        "someone else lists": lambda: bystander.list_objects_v2(Bucket=bucket),
    }
    for what, call in refused.items():
        with pytest.raises(ClientError) as denied:
            call()
        assert _code(denied) == "AccessDenied", what


def test_a_public_policy_still_needs_a_signed_request(cloud, s3, bucket: str) -> None:
    """Kennel authenticates every request: Principal "*" opens the bucket to every principal of the
    account, never to an unsigned caller."""
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=_policy(
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ),
    )
    _, nobody = _user(cloud)  # a user of the account with no identity policy
    assert nobody.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"a"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(f"{cloud.endpoint}/{bucket}/a.txt", timeout=10)
    assert anonymous.value.code == 403


def test_deleting_the_bucket_deletes_its_policy(s3) -> None:
    name = f"kennel-bp-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(
        Bucket=name,
        Policy=_policy(
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{name}/*",
            }
        ),
    )
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as fresh:
        s3.get_bucket_policy(Bucket=name)
    assert _code(fresh) == "NoSuchBucketPolicy"
    s3.put_object(Bucket=name, Key="k", Body=b"allowed again")  # the old Deny is gone with the old bucket


NOT_CONFIGURED = [
    ("get_bucket_website", "NoSuchWebsiteConfiguration"),
    ("get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError"),
    ("get_bucket_replication", "ReplicationConfigurationNotFoundError"),
    ("get_object_lock_configuration", "ObjectLockConfigurationNotFoundError"),
    ("get_public_access_block", "NoSuchPublicAccessBlockConfiguration"),
    ("get_bucket_ownership_controls", "OwnershipControlsNotFoundError"),
]


@pytest.mark.parametrize(("method", "code"), NOT_CONFIGURED, ids=[m for m, _ in NOT_CONFIGURED])
def test_configuration_kennel_never_holds_reads_as_not_configured(
    s3, bucket: str, method: str, code: str
) -> None:
    with pytest.raises(ClientError) as absent:
        getattr(s3, method)(Bucket=bucket)
    assert (_code(absent), absent.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 404)
    with pytest.raises(ClientError) as no_bucket:
        getattr(s3, method)(Bucket=f"kennel-missing-{uuid.uuid4().hex[:8]}")
    assert _code(no_bucket) == "NoSuchBucket"


def test_empty_configuration_documents_parse(s3, bucket: str) -> None:
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert not {"TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations"} & set(
        notification
    )
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    kinds = [
        ("analytics", "Analytics"),
        ("metrics", "Metrics"),
        ("inventory", "Inventory"),
        ("intelligent_tiering", "IntelligentTiering"),
    ]
    lists = {
        f"list_bucket_{kind}_configurations": (f"get_bucket_{kind}_configuration", f"{name}ConfigurationList")
        for kind, name in kinds
    }
    for list_method, (get_method, member) in lists.items():
        listed = getattr(s3, list_method)(Bucket=bucket)
        assert listed["IsTruncated"] is False and member not in listed, list_method
        with pytest.raises(ClientError) as one:
            getattr(s3, get_method)(Bucket=bucket, Id="none")
        assert (_code(one), one.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "NoSuchConfiguration",
            404,
        )


def test_configuration_kennel_cannot_hold_is_not_implemented(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as website:
        s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    assert _code(website) == "NotImplemented"
    with pytest.raises(ClientError) as encryption:
        s3.delete_bucket_encryption(Bucket=bucket)
    assert _code(encryption) == "NotImplemented"


def test_configuration_reads_need_their_iam_action(cloud, bucket: str) -> None:
    _, reader = _user(
        cloud, [{"Effect": "Allow", "Action": "s3:GetBucketLogging", "Resource": f"arn:aws:s3:::{bucket}"}]
    )
    assert "LoggingEnabled" not in reader.get_bucket_logging(Bucket=bucket)
    with pytest.raises(ClientError) as denied:
        reader.get_bucket_encryption(Bucket=bucket)
    assert _code(denied) == "AccessDenied"
    assert "s3:GetEncryptionConfiguration" in denied.value.response["Error"]["Message"]


def test_the_policy_survives_a_restart_and_is_still_enforced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    document = _policy(
        {
            "Sid": "NoReads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::kept/*",
        }
    )
    cloud = start_gateway(state)
    try:
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="a.txt", Body=b"a")
        s3.put_bucket_policy(Bucket="kept", Policy=document)
    finally:
        stop_gateway(cloud)
    cloud = start_gateway(state)
    try:
        s3 = cloud.client("s3")
        assert s3.get_bucket_policy(Bucket="kept")["Policy"] == document
        with pytest.raises(ClientError) as denied:
            s3.get_object(Bucket="kept", Key="a.txt")
        assert _code(denied) == "AccessDenied"
    finally:
        stop_gateway(cloud)
