"""IAM and STS through the live gateway with boto3: real SigV4, real policies, real denials."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user_with_key(iam, name: str) -> tuple[str, str]:
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_admin_identity_and_health(cloud) -> None:
    identity = cloud.client("sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert identity["UserId"].startswith("AIDA")


def test_managed_policies_exist_under_real_arns(cloud) -> None:
    iam = cloud.client("iam")
    arns = {p["Arn"] for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert {
        "arn:aws:iam::aws:policy/AdministratorAccess",
        "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess",
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    } <= arns
    version = iam.get_policy_version(
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole", VersionId="v1"
    )["PolicyVersion"]
    assert "logs:PutLogEvents" in version["Document"]["Statement"][0]["Action"]


def test_new_user_is_denied_until_a_policy_allows(cloud) -> None:
    iam = cloud.client("iam")
    name = _name("alice")
    key, secret = _user_with_key(iam, name)
    alice = cloud.client("iam", key=key, secret=secret)
    assert cloud.client("sts", key=key, secret=secret).get_caller_identity()["Arn"].endswith(f":user/{name}")
    with pytest.raises(ClientError) as denied:
        alice.list_users()
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/{name} is not authorized to perform: iam:ListUsers "
        "on resource: * because no identity-based policy allows the iam:ListUsers action"
    )
    iam.put_user_policy(
        UserName=name,
        PolicyName="list",
        PolicyDocument=_doc({"Effect": "Allow", "Action": "iam:List*", "Resource": "*"}),
    )
    assert any(u["UserName"] == name for u in alice.list_users()["Users"])
    # An explicit deny anywhere beats the allow.
    iam.put_user_policy(
        UserName=name,
        PolicyName="deny",
        PolicyDocument=_doc({"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"}),
    )
    with pytest.raises(ClientError, match="explicit deny in an identity-based policy"):
        alice.list_users()
    alice.list_roles()  # still allowed by iam:List*


def test_assume_role_with_trust_policy(cloud) -> None:
    iam = cloud.client("iam")
    user = _name("bob")
    key, secret = _user_with_key(iam, user)
    role = _name("reader")
    trust = _doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
            "Action": "sts:AssumeRole",
        }
    )
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    assert iam.get_role(RoleName=role)["Role"]["RoleLastUsed"] == {}
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    bob_sts = cloud.client("sts", key=key, secret=secret)
    creds = bob_sts.assume_role(RoleArn=role_arn, RoleSessionName="s1", DurationSeconds=900)
    assert creds["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s1"
    c = creds["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and c["SessionToken"]
    session_iam = cloud.client(
        "iam", key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"]
    )
    who = cloud.client("sts", key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
    assert who.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s1"
    session_iam.list_roles()
    with pytest.raises(ClientError) as denied:
        session_iam.create_user(UserName=_name("nope"))
    assert f"assumed-role/{role}/s1 is not authorized to perform: iam:CreateUser" in str(denied.value)
    last_used = iam.get_role(RoleName=role)["Role"]["RoleLastUsed"]
    assert last_used["Region"] == "us-east-1" and "LastUsedDate" in last_used
    # Without the session token the temporary key is refused.
    bare = cloud.client("sts", key=c["AccessKeyId"], secret=c["SecretAccessKey"])
    with pytest.raises(ClientError, match="InvalidClientTokenId"):
        bare.get_caller_identity()


def test_assume_role_refused_when_trust_policy_does_not_name_caller(cloud) -> None:
    iam = cloud.client("iam")
    key, secret = _user_with_key(iam, _name("eve"))
    role = _name("private")
    trust = _doc(
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    )
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    with pytest.raises(ClientError) as denied:
        cloud.client("sts", key=key, secret=secret).assume_role(RoleArn=role_arn, RoleSessionName="intruder")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_managed_policy_versions_and_attachments(cloud) -> None:
    iam = cloud.client("iam")
    name = _name("pol")
    arn = iam.create_policy(
        PolicyName=name, PolicyDocument=_doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    )["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/{name}"
    for i in range(4):
        iam.create_policy_version(
            PolicyArn=arn,
            PolicyDocument=_doc({"Effect": "Allow", "Action": f"s3:Get{i}", "Resource": "*"}),
            SetAsDefault=i == 3,
        )
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert len(versions) == 5 and [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == ["v5"]
    with pytest.raises(ClientError, match="LimitExceeded"):
        iam.create_policy_version(
            PolicyArn=arn, PolicyDocument=_doc({"Effect": "Allow", "Action": "s3:X", "Resource": "*"})
        )
    with pytest.raises(ClientError, match="DeleteConflict"):
        iam.delete_policy_version(PolicyArn=arn, VersionId="v5")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    user = _name("carol")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == [
        {"PolicyName": name, "PolicyArn": arn}
    ]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    with pytest.raises(ClientError, match="DeleteConflict"):
        iam.delete_policy(PolicyArn=arn)
    with pytest.raises(ClientError, match="DeleteConflict"):
        iam.delete_user(UserName=user)
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    iam.delete_user(UserName=user)
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(ClientError) as missing:
        iam.get_policy(PolicyArn=arn)
    assert missing.value.response["Error"]["Code"] == "NoSuchEntity"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_malformed_policy_is_refused(cloud) -> None:
    iam = cloud.client("iam")
    with pytest.raises(ClientError) as bad:
        iam.create_policy(
            PolicyName=_name("bad"), PolicyDocument=json.dumps({"Statement": [{"Action": "s3:*"}]})
        )
    assert bad.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def test_pagination_with_paginator(cloud) -> None:
    iam = cloud.client("iam")
    prefix = f"/pages{uuid.uuid4().hex[:6]}/"
    names = sorted(_name("page") for _ in range(5))
    for n in names:
        iam.create_user(UserName=n, Path=prefix)
    first = iam.list_users(PathPrefix=prefix, MaxItems=2)
    assert first["IsTruncated"] and len(first["Users"]) == 2
    pages = list(
        iam.get_paginator("list_users").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 2})
    )
    assert len(pages) == 3
    assert [u["UserName"] for p in pages for u in p["Users"]] == names


def test_simulate_principal_policy(cloud) -> None:
    iam = cloud.client("iam")
    user = _name("sim")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    results = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/{user}",
        ActionNames=["sagemaker:InvokeEndpoint", "iam:CreateUser"],
        ResourceArns=[f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/dogs"],
    )["EvaluationResults"]
    decisions = {r["EvalActionName"]: r["EvalDecision"] for r in results}
    assert decisions == {"sagemaker:InvokeEndpoint": "allowed", "iam:CreateUser": "implicitDeny"}


def test_service_last_accessed(cloud) -> None:
    iam = cloud.client("iam")
    user = _name("used")
    key, secret = _user_with_key(iam, user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    cloud.client("iam", key=key, secret=secret).list_roles()
    job = iam.generate_service_last_accessed_details(
        Arn=f"arn:aws:iam::{ACCOUNT}:user/{user}", Granularity="ACTION_LEVEL"
    )
    report = iam.get_service_last_accessed_details(JobId=job["JobId"])
    assert report["JobStatus"] == "COMPLETED"
    used = {s["ServiceNamespace"]: s for s in report["ServicesLastAccessed"]}
    assert "LastAuthenticated" in used["iam"]
    assert [a["ActionName"] for a in used["iam"]["TrackedActionsLastAccessed"]] == ["ListRoles"]


def test_bad_credentials_are_refused(cloud) -> None:
    with pytest.raises(ClientError) as unknown:
        cloud.client("sts", key="AKIAUNKNOWNKEY000000", secret="x" * 40).get_caller_identity()
    assert unknown.value.response["Error"]["Code"] == "InvalidClientTokenId"
    with pytest.raises(ClientError) as wrong:
        cloud.client("iam", secret="y" * 40).list_users()
    assert wrong.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsupported_operation_names_service_and_operation(cloud) -> None:
    with pytest.raises(ClientError) as err:
        cloud.client("iam").create_group(GroupName="g")
    assert (
        "iam" in err.value.response["Error"]["Message"]
        and "CreateGroup" in err.value.response["Error"]["Message"]
    )


def test_validation_errors_are_aws_shaped(cloud) -> None:
    raw = cloud.client("iam", validate=False)
    with pytest.raises(ClientError) as err:
        raw.create_user(UserName="x" * 80)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert (
        "userName" in err.value.response["Error"]["Message"]
        or "UserName" in err.value.response["Error"]["Message"]
    )


def test_session_hook_redirects_hard_coded_aws_endpoints(cloud) -> None:
    from kennel.sdk import kennel_session

    session = kennel_session(
        cloud.endpoint,
        aws_access_key_id=cloud.access_key_id,
        aws_secret_access_key=cloud.secret_access_key,
        region_name="us-east-1",
    )
    # What the SageMaker SDK does: an STS client with AWS's own endpoint, ignoring AWS_ENDPOINT_URL.
    sts = session.client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com")
    assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::000000000000:user/admin"


def test_concurrent_writes_are_safe(cloud) -> None:
    from concurrent.futures import ThreadPoolExecutor

    prefix = f"/conc{uuid.uuid4().hex[:6]}/"

    def work(i: int) -> str:
        iam = cloud.client("iam")
        name = f"conc-{i}-{uuid.uuid4().hex[:6]}"
        iam.create_user(UserName=name, Path=prefix)
        iam.put_user_policy(
            UserName=name,
            PolicyName="p",
            PolicyDocument=_doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
        )
        iam.create_access_key(UserName=name)
        return name

    with ThreadPoolExecutor(max_workers=16) as pool:
        names = list(pool.map(work, range(32)))
    listed = [
        u["UserName"]
        for p in cloud.client("iam").get_paginator("list_users").paginate(PathPrefix=prefix)
        for u in p["Users"]
    ]
    assert sorted(listed) == sorted(names)
