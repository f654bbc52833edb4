"""Every SageMaker endpoint operation through the aws CLI (v1), configured only by environment."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.integration.support.endpoints import jpeg, kennel_artifact
from tests.integration.support.roles import service_role

AWS = str(Path(sys.executable).with_name("aws"))


@pytest.fixture(scope="module", autouse=True)
def _sagemaker_role(cloud) -> None:
    service_role(cloud)  # SageMaker refuses a role that is missing or does not trust it


def aws(cloud, *args: str) -> dict:
    done = subprocess.run(
        [AWS, *args, "--output", "json"], env=cloud.cli_env(), capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else {}


def wait_in_service(cloud, name: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described = aws(cloud, "sagemaker", "describe-endpoint", "--endpoint-name", name)
        if described["EndpointStatus"] == "InService":
            return described
        assert described["EndpointStatus"] in ("Creating", "Updating", "SystemUpdating"), described
        time.sleep(0.5)
    raise AssertionError(f"{name} did not become InService")


def test_every_endpoint_operation_with_the_cli(cloud, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    artifact = kennel_artifact(tmp_path)
    role = "arn:aws:iam::000000000000:role/SageMakerRole"
    aws(
        cloud,
        "sagemaker",
        "create-model",
        "--model-name",
        name,
        "--execution-role-arn",
        role,
        "--primary-container",
        f"Image=pytorch-inference:2.0-cpu,ModelDataUrl={artifact}",
    )
    assert aws(cloud, "sagemaker", "describe-model", "--model-name", name)["ModelName"] == name
    assert name in [
        m["ModelName"] for m in aws(cloud, "sagemaker", "list-models", "--name-contains", name)["Models"]
    ]
    for config in (name, f"{name}-b"):
        aws(
            cloud,
            "sagemaker",
            "create-endpoint-config",
            "--endpoint-config-name",
            config,
            "--production-variants",
            f"VariantName=AllTraffic,ModelName={name},InitialInstanceCount=1,InstanceType=ml.m5.large",
        )
    described = aws(cloud, "sagemaker", "describe-endpoint-config", "--endpoint-config-name", name)
    assert described["ProductionVariants"][0]["InitialInstanceCount"] == 1
    configs = aws(cloud, "sagemaker", "list-endpoint-configs", "--name-contains", name)["EndpointConfigs"]
    assert len(configs) == 2
    aws(cloud, "sagemaker", "create-endpoint", "--endpoint-name", name, "--endpoint-config-name", name)
    wait_in_service(cloud, name)
    assert [
        e["EndpointName"]
        for e in aws(cloud, "sagemaker", "list-endpoints", "--name-contains", name)["Endpoints"]
    ]

    image, out = tmp_path / "dog.jpg", tmp_path / "answer.json"
    image.write_bytes(jpeg())
    invoked = aws(
        cloud,
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        name,
        "--content-type",
        "image/jpeg",
        "--custom-attributes",
        "top_k=2",
        "--body",
        f"fileb://{image}",
        str(out),
    )
    assert invoked["InvokedProductionVariant"] == "AllTraffic"
    assert len(json.loads(out.read_text())) == 2

    aws(
        cloud,
        "sagemaker",
        "update-endpoint-weights-and-capacities",
        "--endpoint-name",
        name,
        "--desired-weights-and-capacities",
        "VariantName=AllTraffic,DesiredWeight=0.5",
    )
    assert wait_in_service(cloud, name)["ProductionVariants"][0]["CurrentWeight"] == 0.5
    aws(cloud, "sagemaker", "update-endpoint", "--endpoint-name", name, "--endpoint-config-name", f"{name}-b")
    assert wait_in_service(cloud, name)["EndpointConfigName"] == f"{name}-b"

    aws(cloud, "sagemaker", "delete-endpoint", "--endpoint-name", name)
    for config in (name, f"{name}-b"):
        aws(cloud, "sagemaker", "delete-endpoint-config", "--endpoint-config-name", config)
    aws(cloud, "sagemaker", "delete-model", "--model-name", name)
    assert not aws(cloud, "sagemaker", "list-models", "--name-contains", name)["Models"]
