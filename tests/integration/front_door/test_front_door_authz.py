"""Authorisation holes found at the front door, as regression tests through boto3 (issue 12, items 1-2):
iam:PassRole wherever a role is handed to a service, and session policies that limit AssumeRole sessions."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.lambda_functions import create, package, unique
from tests.integration.support.roles import service_role

ACCOUNT = "000000000000"
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
S3_READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user(cloud, *statements: dict) -> tuple[str, str, str]:
    """A user whose only permissions are ``statements``: (name, key, secret)."""
    iam = cloud.client("iam")
    name = unique("door")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=_doc(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def _error(failed: pytest.ExceptionInfo) -> tuple[str, str]:
    error = failed.value.response["Error"]
    return error["Code"], error["Message"]


@pytest.fixture(scope="module")
def admin_lambda_role(cloud) -> str:
    """What the campaign abused: a role Lambda may assume that holds AdministratorAccess."""
    arn = service_role(cloud, unique("admin-fn"), "lambda.amazonaws.com")
    cloud.client("iam").attach_role_policy(RoleName=arn.rsplit("/", 1)[1], PolicyArn=ADMIN_POLICY)
    return arn


# ----- iam:PassRole ---------------------------------------------------------------------------------


def test_create_function_needs_pass_role_on_the_role(cloud, admin_lambda_role: str) -> None:
    manage = {"Effect": "Allow", "Action": ["lambda:CreateFunction", "lambda:GetFunction"], "Resource": "*"}
    name, key, secret = _user(cloud, manage)
    lam = cloud.client("lambda", key=key, secret=secret)
    params = {"Runtime": "python3.11", "Role": admin_lambda_role, "Handler": "app.handler",
              "Code": {"ZipFile": package()}}  # fmt: skip
    with pytest.raises(ClientError) as denied:
        lam.create_function(FunctionName=unique("esc"), **params)
    assert _error(denied) == (
        "AccessDeniedException",
        f"User: arn:aws:iam::{ACCOUNT}:user/{name} is not authorized to perform: iam:PassRole on resource: "
        f"{admin_lambda_role} because no identity-based policy allows the iam:PassRole action",
    )
    iam = cloud.client("iam")

    def grant(condition: dict) -> None:
        statement = {"Effect": "Allow", "Action": "iam:PassRole", "Resource": admin_lambda_role,
                     "Condition": condition}  # fmt: skip
        iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=_doc(manage, statement))

    # PassRole granted for another service only: still refused (iam:PassedToService is lambda's).
    grant({"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
    with pytest.raises(ClientError, match="iam:PassRole"):
        lam.create_function(FunctionName=unique("esc"), **params)
    # ... or for another function (iam:AssociatedResourceArn is the function being created).
    fn = unique("fn")
    functions = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function"
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    grant({"StringEquals": {**to_lambda, "iam:AssociatedResourceArn": f"{functions}:not-{fn}"}})
    with pytest.raises(ClientError, match="iam:PassRole"):
        lam.create_function(FunctionName=fn, **params)
    grant({"StringEquals": to_lambda, "ArnLike": {"iam:AssociatedResourceArn": f"{functions}:{fn}"}})
    created = lam.create_function(FunctionName=fn, **params)
    assert created["Role"] == admin_lambda_role


def test_update_function_configuration_checks_a_new_role(cloud, admin_lambda_role: str) -> None:
    plain_role = service_role(cloud, unique("plain-fn"), "lambda.amazonaws.com")
    name, key, secret = _user(
        cloud,
        {"Effect": "Allow", "Action": ["lambda:CreateFunction", "lambda:UpdateFunctionConfiguration",
                                       "lambda:GetFunction*"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": plain_role},
    )  # fmt: skip
    lam = cloud.client("lambda", key=key, secret=secret)
    fn = unique("upd")
    create(lam, plain_role, fn)
    # The same role again needs nothing new; another settings change is not a pass.
    lam.update_function_configuration(FunctionName=fn, Role=plain_role, Timeout=5)
    with pytest.raises(ClientError) as denied:
        lam.update_function_configuration(FunctionName=fn, Role=admin_lambda_role)
    code, message = _error(denied)
    assert code == "AccessDeniedException"
    assert (
        f"user/{name} is not authorized to perform: iam:PassRole on resource: {admin_lambda_role}" in message
    )
    assert lam.get_function_configuration(FunctionName=fn)["Role"] == plain_role


def test_lambda_role_must_trust_lambda_even_for_the_admin(cloud) -> None:
    sagemaker_only = service_role(cloud, unique("sm-only"), "sagemaker.amazonaws.com")
    with pytest.raises(ClientError) as refused:
        create(cloud.client("lambda"), sagemaker_only, unique("t"))
    assert _error(refused) == (
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.",
    )


def test_create_model_needs_pass_role_and_a_role_that_trusts_sagemaker(cloud, tmp_path) -> None:
    model_data = tmp_path / "model.tar.gz"
    model_data.write_bytes(b"not read by CreateModel")
    container = {"Image": "pytorch-inference:2.0-cpu", "ModelDataUrl": str(model_data)}
    lambda_only = service_role(cloud, unique("fn-only"), "lambda.amazonaws.com")
    sm = cloud.client("sagemaker")
    with pytest.raises(ClientError) as refused:
        sm.create_model(ModelName=unique("m"), PrimaryContainer=container, ExecutionRoleArn=lambda_only)
    assert _error(refused) == (
        "ValidationException",
        f"Could not assume role {lambda_only}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role.",
    )
    missing = f"arn:aws:iam::{ACCOUNT}:role/no-such-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ClientError, match="Could not assume role"):
        sm.create_model(ModelName=unique("m"), PrimaryContainer=container, ExecutionRoleArn=missing)

    good = service_role(cloud, unique("sm-exec"), "sagemaker.amazonaws.com")
    name, key, secret = _user(cloud, {"Effect": "Allow", "Action": "sagemaker:CreateModel", "Resource": "*"})
    user_sm = cloud.client("sagemaker", key=key, secret=secret)
    model = unique("m")
    with pytest.raises(ClientError) as denied:
        user_sm.create_model(ModelName=model, PrimaryContainer=container, ExecutionRoleArn=good)
    code, message = _error(denied)
    assert code == "AccessDeniedException"
    assert message.startswith(
        f"User: arn:aws:iam::{ACCOUNT}:user/{name} is not authorized to perform: iam:PassRole "
        f"on resource: {good}"
    )
    cloud.client("iam").put_user_policy(
        UserName=name,
        PolicyName="pass",
        PolicyDocument=_doc({
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": good,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com",
                                           "iam:AssociatedResourceArn":
                                               f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/{model}"}},
        }),
    )  # fmt: skip
    arn = user_sm.create_model(ModelName=model, PrimaryContainer=container, ExecutionRoleArn=good)["ModelArn"]
    assert arn.endswith(f":model/{model}")


# ----- session policies -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_role(cloud) -> str:
    """A role with AdministratorAccess that the account's principals may assume."""
    iam = cloud.client("iam")
    name = unique("admin")
    anyone_here = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                   "Action": "sts:AssumeRole"}  # fmt: skip
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_doc(anyone_here))["Role"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=ADMIN_POLICY)
    return arn


def _session(cloud, role_arn: str, **limits) -> tuple[dict, dict]:
    """(clients by service, the AssumeRole answer) for a session of ``role_arn``."""
    answer = cloud.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=unique("s"), **limits)
    creds = answer["Credentials"]
    key, secret, token = creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    clients = {svc: cloud.client(svc, key=key, secret=secret, token=token) for svc in ("iam", "s3", "sts")}
    return clients, answer


def _assert_read_only_s3(clients: dict, bucket: str, kind: str) -> None:
    with pytest.raises(ClientError) as denied:
        clients["iam"].list_users()
    code, message = _error(denied)
    assert code == "AccessDenied"
    assert message.endswith(f"because no {kind} allows the iam:ListUsers action")
    with pytest.raises(ClientError) as no_bucket:
        clients["s3"].create_bucket(Bucket=bucket)
    assert no_bucket.value.response["Error"]["Code"] == "AccessDenied"
    assert isinstance(clients["s3"].list_buckets()["Buckets"], list)


def test_inline_session_policy_limits_an_admin_role(cloud, admin_role: str) -> None:
    full, plain = _session(cloud, admin_role)
    assert plain["PackedPolicySize"] == 0
    full["iam"].list_users()  # the role alone is an admin
    only_list = _doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
    limited, answer = _session(cloud, admin_role, Policy=only_list)
    assert 0 < answer["PackedPolicySize"] <= 100
    assert limited["sts"].get_caller_identity()["Arn"] == answer["AssumedRoleUser"]["Arn"]
    _assert_read_only_s3(limited, f"door-{uuid.uuid4().hex[:8]}", "session policy")
    full["iam"].list_users()  # the unlimited session of the same role is unaffected


def test_managed_session_policy_limits_an_admin_role(cloud, admin_role: str) -> None:
    limited, answer = _session(cloud, admin_role, PolicyArns=[{"arn": S3_READ_ONLY}])
    assert answer["PackedPolicySize"] > 0
    _assert_read_only_s3(limited, f"door-{uuid.uuid4().hex[:8]}", "session policy")


def test_session_policy_cannot_grant_more_than_the_role(cloud) -> None:
    iam = cloud.client("iam")
    name = unique("narrow")
    anyone_here = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_doc(anyone_here))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="list", PolicyDocument=_doc(
        {"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}))  # fmt: skip
    everything = _doc({"Effect": "Allow", "Action": "*", "Resource": "*"},
                      {"Effect": "Deny", "Action": "iam:ListRoles", "Resource": "*",
                       "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}})  # fmt: skip
    limited, _ = _session(cloud, arn, Policy=everything)
    limited["iam"].list_roles()  # both allow
    with pytest.raises(ClientError) as denied:
        limited["iam"].list_users()  # the session policy allows it, the role does not
    assert _error(denied)[1].endswith("because no identity-based policy allows the iam:ListUsers action")
    deny_roles = _doc({"Effect": "Allow", "Action": "*", "Resource": "*"},
                      {"Effect": "Deny", "Action": "iam:ListRoles", "Resource": "*"})  # fmt: skip
    denying, _ = _session(cloud, arn, Policy=deny_roles)
    with pytest.raises(ClientError) as explicit:
        denying["iam"].list_roles()
    assert _error(explicit)[1].endswith("with an explicit deny in a session policy")


def test_session_policies_are_validated_like_sts(cloud, admin_role: str) -> None:
    sts = cloud.client("sts")

    def refused(**limits) -> tuple[str, str]:
        with pytest.raises(ClientError) as failed:
            sts.assume_role(RoleArn=admin_role, RoleSessionName="validate", **limits)
        return _error(failed)

    assert refused(Policy="{not json")[0] == "MalformedPolicyDocument"
    with_principal = _doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": "*"})
    assert refused(Policy=with_principal) == (
        "MalformedPolicyDocument",
        "Policy document should not specify a principal.",
    )
    eleven = [{"arn": S3_READ_ONLY}] * 11
    code, message = refused(PolicyArns=eleven)
    assert code == "ValidationError" and "less than or equal to 10" in message
    assert refused(PolicyArns=[{"arn": f"arn:aws:iam::{ACCOUNT}:policy/nope-{uuid.uuid4().hex[:6]}"}])[0] == (
        "MalformedPolicyDocument"
    )
    # Long random resource names compress badly: over the packed limit though within 2,048 characters.
    noisy = _doc({"Effect": "Allow", "Action": "s3:GetObject",
                  "Resource": [f"arn:aws:s3:::{secrets.token_urlsafe(60)}" for _ in range(19)]})  # fmt: skip
    assert len(noisy) < 2048
    code, message = refused(Policy=noisy)
    assert code == "PackedPolicyTooLarge"
    assert message.startswith("Packed policy consumes ") and "% of allotted space" in message
    too_long = _doc(*[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b{i}/*"}
                      for i in range(60)])  # fmt: skip
    assert refused(Policy=too_long)[0] == "PackedPolicyTooLarge"


# ----- permissions boundaries -----------------------------------------------------------------------


def test_a_boundary_caps_an_admin_user_and_an_admin_role_through_the_gateway(cloud, admin_role: str) -> None:
    """Identity policy AdministratorAccess, boundary S3 read-only: only what both allow is allowed."""
    iam = cloud.client("iam")
    name, key, secret = _user(cloud, {"Effect": "Allow", "Action": "*", "Resource": "*"})
    user = {svc: cloud.client(svc, key=key, secret=secret) for svc in ("iam", "s3", "sts")}
    user["iam"].list_users()  # an admin before the boundary
    iam.put_user_permissions_boundary(UserName=name, PermissionsBoundary=S3_READ_ONLY)
    assert (
        iam.get_user(UserName=name)["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == S3_READ_ONLY
    )
    _assert_read_only_s3(user, f"door-{uuid.uuid4().hex[:8]}", "permissions boundary")
    iam.delete_user_permissions_boundary(UserName=name)
    user["iam"].list_users()  # the boundary gone, the admin is back

    role_name = admin_role.rsplit("/", 1)[1]
    iam.put_role_permissions_boundary(RoleName=role_name, PermissionsBoundary=S3_READ_ONLY)
    try:
        session, _ = _session(cloud, admin_role)
        _assert_read_only_s3(session, f"door-{uuid.uuid4().hex[:8]}", "permissions boundary")
    finally:
        iam.delete_role_permissions_boundary(RoleName=role_name)
    session, _ = _session(cloud, admin_role)
    session["iam"].list_users()
