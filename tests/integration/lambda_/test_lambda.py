"""The Lambda API through boto3 and the aws CLI: functions, versions, aliases, concurrency, policies."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.lambda_functions import (
    HANDLER,
    TRUST,
    call,
    create,
    lambda_client,
    package,
    unique,
)

# ----- the API --------------------------------------------------------------------------------------


def test_function_lifecycle(lam, role) -> None:
    code = package()
    name = unique("life")
    created = lam.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler="app.handler",
                                  Code={"ZipFile": code}, Description="first")  # fmt: skip
    assert created["State"] == "Pending" and created["StateReasonCode"] == "Creating"
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert (created["Timeout"], created["MemorySize"], created["Version"]) == (3, 128, "$LATEST")
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    got = lam.get_function(FunctionName=name)
    config = got["Configuration"]
    assert config["State"] == "Active" and config["LastUpdateStatus"] == "Successful"
    assert got["Code"]["RepositoryType"] == "S3" and got["Code"]["Location"].endswith(".zip")
    assert lam.get_function_configuration(FunctionName=name)["RevisionId"] == config["RevisionId"]

    updated = lam.update_function_configuration(FunctionName=name, Timeout=5, Description="second",
                                                Environment={"Variables": {"GREETING": "hi"}})  # fmt: skip
    assert updated["LastUpdateStatus"] == "InProgress" and updated["RevisionId"] != config["RevisionId"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    now = lam.get_function_configuration(FunctionName=name)
    assert (now["Timeout"], now["Description"], now["Environment"]["Variables"]) == (
        5,
        "second",
        {"GREETING": "hi"},
    )
    with pytest.raises(ClientError) as stale:
        lam.update_function_code(FunctionName=name, ZipFile=code, RevisionId=config["RevisionId"])
    assert stale.value.response["Error"]["Code"] == "PreconditionFailedException"

    new_code = package(HANDLER.replace('"v1"', '"v2"'))
    changed = lam.update_function_code(FunctionName=name, ZipFile=new_code)
    assert changed["CodeSha256"] != created["CodeSha256"]
    assert call(lam, name, {"op": "other"})[1]["version"] == "v2"

    assert lam.delete_function(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as gone:
        lam.get_function(FunctionName=name)
    assert gone.value.response["Error"]["Message"] == f"Function not found: {created['FunctionArn']}"


def test_list_functions_pages(lam, role) -> None:
    names = {create(lam, role, unique("page")) for _ in range(3)}
    seen, marker = [], None
    while True:
        page = lam.list_functions(MaxItems=1, **({"Marker": marker} if marker else {}))
        assert len(page["Functions"]) <= 1
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert names <= set(seen) and len(seen) == len(set(seen))
    everything = lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    assert names <= {f["FunctionName"] for f in everything}


def test_versions_and_aliases(lam, role) -> None:
    name = create(lam, role, unique("ver"))
    first = lam.publish_version(FunctionName=name, Description="one")
    assert first["Version"] == "1" and first["FunctionArn"].endswith(f"{name}:1")
    assert lam.publish_version(FunctionName=name)["Version"] == "1"  # nothing changed: same version
    lam.update_function_code(FunctionName=name, ZipFile=package(HANDLER.replace('"v1"', '"v2"')))
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    assert versions[0]["FunctionArn"].endswith(":$LATEST")

    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="prod")
    assert alias["AliasArn"].endswith(f"{name}:live")
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    response, body = call(lam, name, {"op": "x"}, Qualifier="live")
    assert (response["ExecutedVersion"], body["version"]) == ("1", "v1")
    response, body = call(lam, f"{name}:2", {"op": "x"})
    assert (response["ExecutedVersion"], body["version"]) == ("2", "v2")

    routed = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                              RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})  # fmt: skip
    assert routed["RoutingConfig"]["AdditionalVersionWeights"] == {"1": 0.5}
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    executed = {call(lam, name, {"op": "x"}, Qualifier="live")[0]["ExecutedVersion"] for _ in range(12)}
    assert executed <= {"1", "2"} and "2" in executed
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    with pytest.raises(lam.exceptions.ResourceConflictException) as in_use:
        lam.delete_function(FunctionName=name, Qualifier="1")
    assert "[live]" in in_use.value.response["Error"]["Message"]
    lam.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier="1")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == [
        "$LATEST",
        "2",
    ]
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        ({"Code": {"S3Bucket": "code-bucket", "S3Key": "k"}}, "InvalidParameterValueException",
         "S3 Error Code: NoSuchBucket"),
        ({"Runtime": "nodejs20.x"}, "InvalidParameterValueException", "python3.x"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException",
         "Reserved keys used in this request: AWS_REGION"),
        ({"Code": {"ZipFile": b"not a zip"}}, "InvalidParameterValueException", "Could not unzip"),
        ({"Timeout": 901}, "ValidationException", "less than or equal to 900"),
        ({"MemorySize": 10241}, "ValidationException", "less than or equal to 10240"),
    ],
)  # fmt: skip
def test_create_function_errors(lam, role, change, code, fragment) -> None:
    params = {"FunctionName": unique("bad"), "Runtime": "python3.11", "Role": role, "Handler": "app.handler",
              "Code": {"ZipFile": package()}, **change}  # fmt: skip
    with pytest.raises(ClientError) as failed:
        lam.create_function(**params)
    assert failed.value.response["Error"]["Code"] == code
    assert fragment in failed.value.response["Error"]["Message"]


def test_role_must_trust_lambda(cloud, lam, role) -> None:
    trust = json.loads(json.dumps(TRUST))
    trust["Statement"][0]["Principal"] = {"Service": "sagemaker.amazonaws.com"}
    other = cloud.client("iam").create_role(RoleName=unique("sm"), AssumeRolePolicyDocument=json.dumps(trust))
    for arn in (other["Role"]["Arn"], "arn:aws:iam::000000000000:role/no-such-role"):
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as failed:
            create(lam, arn)
        assert (
            failed.value.response["Error"]["Message"]
            == "The role defined for the function cannot be assumed by Lambda."
        )
    name = create(lam, role)
    with pytest.raises(lam.exceptions.ResourceConflictException) as exists:
        create(lam, role, name)
    assert exists.value.response["Error"]["Message"] == f"Function already exist: {name}"


# ----- concurrency configuration, policies, logs, the CLI --------------------------------------------


def test_reserved_concurrency(lam, role) -> None:
    name = create(lam, role)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as too_much:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=901)
    assert too_much.value.response["Error"]["Message"] == (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    )
    before = lam.get_account_settings()["AccountLimit"]
    assert before["ConcurrentExecutions"] == 1000
    zero = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert zero["ReservedConcurrentExecutions"] == 0
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0
    assert lam.get_function(FunctionName=name)["Concurrency"] == {"ReservedConcurrentExecutions": 0}
    with pytest.raises(lam.exceptions.TooManyRequestsException) as throttled:
        lam.invoke(FunctionName=name, Payload=b"{}")
    error = throttled.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert (error["Reason"], error["Type"], error["message"]) == (
        "ReservedFunctionConcurrentInvocationLimitExceeded", "User", "Rate Exceeded.")  # fmt: skip
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
    after = lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"]
    assert after == before["UnreservedConcurrentExecutions"] - 7
    assert call(lam, name, {"op": "count"})[1] == {"count": 1}
    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)


def test_provisioned_concurrency_api(lam, role) -> None:
    name = create(lam, role)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as latest:
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST",
                                               ProvisionedConcurrentExecutions=1)  # fmt: skip
    assert latest.value.response["Error"]["Message"] == (
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
    )
    lam.create_alias(FunctionName=name, Name="dev", FunctionVersion="$LATEST")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="dev", ProvisionedConcurrentExecutions=1
        )
    version = lam.publish_version(FunctionName=name)["Version"]
    with pytest.raises(lam.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier=version,
                                                 ProvisionedConcurrentExecutions=1)  # fmt: skip
    assert (put["Status"], put["RequestedProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 1)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
        )
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[-1] for c in listed] == [version]
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier=version)
    assert lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"] == []
    lam.delete_function(FunctionName=name)


def test_function_policy_grants_invoke(cloud, lam, echo) -> None:
    iam = cloud.client("iam")
    user = iam.create_user(UserName=unique("caller"))["User"]
    key = iam.create_access_key(UserName=user["UserName"])["AccessKey"]
    other = lambda_client(cloud, key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ClientError) as denied:
        other.invoke(FunctionName=echo, Payload=b"{}")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "lambda:InvokeFunction" in denied.value.response["Error"]["Message"]
    added = lam.add_permission(FunctionName=echo, StatementId="let-in", Action="lambda:InvokeFunction",
                               Principal=user["Arn"])  # fmt: skip
    statement = json.loads(added["Statement"])
    assert statement["Principal"] == {"AWS": user["Arn"]} and statement["Resource"].endswith(
        f"function:{echo}"
    )
    deadline = time.monotonic() + 5
    while True:  # IAM caches refresh on the store generation; a moment at most
        try:
            assert other.invoke(FunctionName=echo, Payload=b'{"op": "x"}')["StatusCode"] == 200
            break
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with pytest.raises(ClientError) as qualified:  # the statement names the unqualified ARN only
        other.invoke(FunctionName=echo, Qualifier="$LATEST", Payload=b"{}")
    assert qualified.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_permission(
            FunctionName=echo, StatementId="let-in", Action="lambda:InvokeFunction", Principal="*"
        )
    policy = json.loads(lam.get_policy(FunctionName=echo)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["let-in"]
    lam.remove_permission(FunctionName=echo, StatementId="let-in")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=echo)
    with pytest.raises(ClientError):
        other.invoke(FunctionName=echo, Payload=b"{}")


def test_cli_invoke_and_list(cloud, echo, tmp_path) -> None:
    aws = [str(Path(sys.executable).with_name("aws"))]
    out = tmp_path / "out.json"
    args = ["lambda", "invoke", "--function-name", echo, "--payload", '{"op": "x", "n": 1}', str(out)]
    done = subprocess.run([*aws, *args], env=cloud.cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text())["event"] == {"op": "x", "n": 1}
    listed = subprocess.run([*aws, "lambda", "list-functions", "--output", "json"], env=cloud.cli_env(),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert echo in {f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]}
