"""Every Lambda operation through the aws CLI (v1), configured only by environment variables."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.integration.support.cli import aws
from tests.integration.support.lambda_functions import make_role, package, unique


def test_every_lambda_operation_with_the_cli(cloud, tmp_path: Path) -> None:
    name, role = unique("cli-fn"), make_role(cloud)
    code = tmp_path / "code.zip"
    code.write_bytes(package())
    created = aws(
        cloud,
        "lambda",
        "create-function",
        "--function-name",
        name,
        "--runtime",
        "python3.11",
        "--role",
        role,
        "--handler",
        "app.handler",
        "--zip-file",
        f"fileb://{code}",
    )
    assert created["FunctionName"] == name and created["Timeout"] == 3 and created["MemorySize"] == 128
    assert (
        aws(cloud, "lambda", "get-function", "--function-name", name)["Configuration"]["Handler"]
        == "app.handler"
    )
    assert (
        aws(cloud, "lambda", "get-function-configuration", "--function-name", name)["Runtime"] == "python3.11"
    )
    assert name in [f["FunctionName"] for f in aws(cloud, "lambda", "list-functions")["Functions"]]
    aws(
        cloud,
        "lambda",
        "update-function-configuration",
        "--function-name",
        name,
        "--timeout",
        "10",
        "--environment",
        "Variables={STAGE=cli}",
    )
    aws(cloud, "lambda", "update-function-code", "--function-name", name, "--zip-file", f"fileb://{code}")
    version = aws(cloud, "lambda", "publish-version", "--function-name", name)["Version"]
    versions = aws(cloud, "lambda", "list-versions-by-function", "--function-name", name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", version]
    aws(
        cloud,
        "lambda",
        "create-alias",
        "--function-name",
        name,
        "--name",
        "live",
        "--function-version",
        version,
    )
    aws(cloud, "lambda", "update-alias", "--function-name", name, "--name", "live", "--description", "prod")
    assert (
        aws(cloud, "lambda", "get-alias", "--function-name", name, "--name", "live")["Description"] == "prod"
    )
    assert len(aws(cloud, "lambda", "list-aliases", "--function-name", name)["Aliases"]) == 1

    out = tmp_path / "out.json"
    invoked = aws(
        cloud,
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--qualifier",
        "live",
        "--log-type",
        "Tail",
        "--payload",
        '{"x": 1}',
        str(out),
    )
    assert invoked["StatusCode"] == 200 and invoked["ExecutedVersion"] == version
    assert "REPORT RequestId:" in base64.b64decode(invoked["LogResult"]).decode()
    assert json.loads(out.read_text())
    assert (
        aws(cloud, "lambda", "invoke", "--function-name", name, "--invocation-type", "Event", str(out))[
            "StatusCode"
        ]
        == 202
    )

    assert "AccountLimit" in aws(cloud, "lambda", "get-account-settings")
    aws(
        cloud,
        "lambda",
        "put-function-concurrency",
        "--function-name",
        name,
        "--reserved-concurrent-executions",
        "3",
    )
    assert (
        aws(cloud, "lambda", "get-function-concurrency", "--function-name", name)[
            "ReservedConcurrentExecutions"
        ]
        == 3
    )
    aws(cloud, "lambda", "delete-function-concurrency", "--function-name", name)
    aws(
        cloud,
        "lambda",
        "put-provisioned-concurrency-config",
        "--function-name",
        name,
        "--qualifier",
        "live",
        "--provisioned-concurrent-executions",
        "1",
    )
    got = aws(
        cloud, "lambda", "get-provisioned-concurrency-config", "--function-name", name, "--qualifier", "live"
    )
    assert got["RequestedProvisionedConcurrentExecutions"] == 1
    listed = aws(cloud, "lambda", "list-provisioned-concurrency-configs", "--function-name", name)
    assert len(listed["ProvisionedConcurrencyConfigs"]) == 1
    aws(
        cloud,
        "lambda",
        "delete-provisioned-concurrency-config",
        "--function-name",
        name,
        "--qualifier",
        "live",
    )
    refused = aws(
        cloud,
        "lambda",
        "put-provisioned-concurrency-config",
        "--function-name",
        name,
        "--qualifier",
        "$LATEST",
        "--provisioned-concurrent-executions",
        "1",
        ok=False,
    )
    assert "unpublished function versions" in refused["stderr"]

    aws(
        cloud,
        "lambda",
        "add-permission",
        "--function-name",
        name,
        "--statement-id",
        "s3",
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "s3.amazonaws.com",
    )
    policy = json.loads(aws(cloud, "lambda", "get-policy", "--function-name", name)["Policy"])
    assert policy["Statement"][0]["Sid"] == "s3"
    aws(cloud, "lambda", "remove-permission", "--function-name", name, "--statement-id", "s3")
    aws(cloud, "lambda", "delete-alias", "--function-name", name, "--name", "live")
    aws(cloud, "lambda", "delete-function", "--function-name", name)
    missing = aws(cloud, "lambda", "get-function", "--function-name", name, ok=False)
    assert "ResourceNotFoundException" in missing["stderr"]
