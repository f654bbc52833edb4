"""The aws CLI (v1, from PyPI) against the live gateway, configured only through environment variables."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

AWS = (
    [str(Path(sys.executable).with_name("aws"))]
    if Path(sys.executable).with_name("aws").exists()
    else ["aws"]
)


def aws(cloud, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AWS, *args, "--output", "json"], env=cloud.cli_env(), capture_output=True, text=True, timeout=60
    )


def test_cli_is_installed() -> None:
    assert Path(AWS[0]).exists() or shutil.which("aws")


def test_get_caller_identity(cloud) -> None:
    done = aws(cloud, "sts", "get-caller-identity")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == "arn:aws:iam::000000000000:user/admin"


def test_role_lifecycle_and_errors(cloud, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    trust = tmp_path / "trust.json"
    trust.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        )
    )
    created = aws(
        cloud, "iam", "create-role", "--role-name", name, "--assume-role-policy-document", f"file://{trust}"
    )
    assert created.returncode == 0, created.stderr
    role = json.loads(created.stdout)["Role"]
    assert role["Arn"] == f"arn:aws:iam::000000000000:role/{name}"
    attached = aws(
        cloud,
        "iam",
        "attach-role-policy",
        "--role-name",
        name,
        "--policy-arn",
        "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess",
    )
    assert attached.returncode == 0, attached.stderr
    listed = json.loads(aws(cloud, "iam", "list-attached-role-policies", "--role-name", name).stdout)
    assert listed["AttachedPolicies"][0]["PolicyName"] == "AmazonSageMakerFullAccess"
    got = json.loads(aws(cloud, "iam", "get-role", "--role-name", name).stdout)["Role"]
    assert (
        got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"] == "sagemaker.amazonaws.com"
    )
    missing = aws(cloud, "iam", "get-role", "--role-name", f"{name}-missing")
    assert missing.returncode != 0 and "NoSuchEntity" in missing.stderr
    invalid = aws(
        cloud,
        "iam",
        "create-role",
        "--role-name",
        "bad name!",
        "--assume-role-policy-document",
        f"file://{trust}",
    )
    assert invalid.returncode != 0 and "ValidationError" in invalid.stderr


def test_cli_pagination(cloud) -> None:
    done = aws(cloud, "iam", "list-policies", "--scope", "AWS", "--max-items", "2")
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    assert len(page["Policies"]) == 2 and page.get("NextToken")
