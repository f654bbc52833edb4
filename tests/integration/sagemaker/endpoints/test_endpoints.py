"""A Kennel-packaged model as a SageMaker endpoint, through the live gateway with boto3, the aws CLI and
the SageMaker SDK: describe, invoke with top_k, model errors, limits, IAM, metrics and logs.

The model is tiny (resnet18 at 32 px, 5 classes) so the instance starts in seconds on two cores.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError
from tests.integration.support.cli import AWS
from tests.integration.support.endpoints import (
    ACCOUNT,
    LABELS,
    deploy,
    jpeg,
    kennel_artifact,
    wait_in_service,
)
from tests.integration.support.roles import service_role
from tests.integration.support.sdk import sdk_session


@pytest.fixture(scope="module", autouse=True)
def _sagemaker_role(cloud) -> None:
    service_role(cloud)  # SageMaker refuses a role that is missing or does not trust it


def aws(cloud, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AWS, *args], env=cloud.cli_env(), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def deployed(cloud, tmp_path_factory: pytest.TempPathFactory):
    sm = cloud.client("sagemaker")
    name = deploy(
        sm,
        f"Kennel-{uuid.uuid4().hex[:6]}",
        str(kennel_artifact(tmp_path_factory.mktemp("kennel"))),
        env={"KENNEL_MAX_BATCH_SIZE": "4"},
    )
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    wait_in_service(sm, name)
    yield {"kennel": name}
    with contextlib.suppress(ClientError):
        sm.delete_endpoint(EndpointName=name)


def test_describe_shows_variants_and_arns(cloud, deployed) -> None:
    sm = cloud.client("sagemaker")
    described = sm.describe_endpoint(EndpointName=deployed["kennel"])
    assert (
        described["EndpointArn"]
        == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{deployed['kennel'].lower()}"
    )
    assert (
        described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == deployed["kennel"]
    )
    (variant,) = described["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    assert (variant["CurrentWeight"], variant["DesiredWeight"]) == (1.0, 1.0)
    assert variant["DeployedImages"][0]["SpecifiedImage"] == "pytorch-inference:2.0-cpu"
    model = sm.describe_model(ModelName=deployed["kennel"])
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith("kennel.tar.gz")
    assert model["ModelArn"] == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/{deployed['kennel'].lower()}"
    config = sm.describe_endpoint_config(EndpointConfigName=deployed["kennel"])
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"


def test_kennel_model_answers_with_top_k_from_custom_attributes(cloud, deployed) -> None:
    rt = cloud.client("sagemaker-runtime")
    reply = rt.invoke_endpoint(
        EndpointName=deployed["kennel"],
        Body=jpeg(),
        ContentType="image/jpeg",
        Accept="application/json",
        CustomAttributes="top_k=3",
    )
    assert reply["InvokedProductionVariant"] == "AllTraffic" and reply["ContentType"] == "application/json"
    ranked = json.loads(reply["Body"].read())
    assert [row["label"] for row in ranked] and len(ranked) == 3 and ranked[0]["score"] >= ranked[-1]["score"]
    assert {row["label"] for row in ranked} <= set(LABELS)
    raw = rt.invoke_endpoint(EndpointName=deployed["kennel"], Body=jpeg(), ContentType="image/jpeg")
    assert (
        len(json.loads(raw["Body"].read())) == 5
    )  # no top_k: the raw scores, as the seed endpoints returned
    batch = json.dumps({"instances": [{"image": base64.b64encode(jpeg()).decode()}] * 2}).encode()
    npy = rt.invoke_endpoint(
        EndpointName=deployed["kennel"],
        Body=batch,
        ContentType="application/json",
        Accept="application/x-npy",
    )
    assert np.load(io.BytesIO(npy["Body"].read())).shape == (2, 5)


def test_model_errors_keep_the_models_status_and_message(cloud, deployed) -> None:
    rt = cloud.client("sagemaker-runtime")
    with pytest.raises(ClientError) as failed:
        rt.invoke_endpoint(EndpointName=deployed["kennel"], Body=b"hello", ContentType="text/plain")
    error = failed.value.response
    assert error["Error"]["Code"] == "ModelError" and error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 415 and "unsupported content type" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received client error (415) from primary with message")
    assert (
        error["LogStreamArn"]
        == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{deployed['kennel']}"
    )


def test_payload_limit_and_unknown_endpoint(cloud, deployed) -> None:
    rt = cloud.client("sagemaker-runtime")
    with pytest.raises(ClientError) as too_big:
        rt.invoke_endpoint(
            EndpointName=deployed["kennel"], Body=b"x" * (6 * 1024 * 1024 + 1), ContentType="image/jpeg"
        )
    assert too_big.value.response["Error"]["Code"] == "ValidationError"
    assert "6291456" in too_big.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        rt.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"{}", ContentType="application/json")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert (
        missing.value.response["Error"]["Message"]
        == f"Endpoint no-such-endpoint of account {ACCOUNT} not found."
    )


def test_invoke_is_authorised_per_endpoint_arn(cloud, deployed) -> None:
    iam = cloud.client("iam")
    user = f"caller-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{deployed['kennel'].lower()}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": arn}],
    }
    iam.put_user_policy(UserName=user, PolicyName="invoke-one", PolicyDocument=json.dumps(policy))
    caller = cloud.client("sagemaker-runtime", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert caller.invoke_endpoint(EndpointName=deployed["kennel"], Body=jpeg(), ContentType="image/jpeg")
    with pytest.raises(ClientError) as denied:
        caller.invoke_endpoint(
            EndpointName=f"{deployed['kennel']}-other", Body=jpeg(), ContentType="image/jpeg"
        )
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert (
        f"sagemaker:InvokeEndpoint on resource: arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/"
        in error["Message"]
    )
    control = cloud.client("sagemaker", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError, match="AccessDeniedException"):
        control.describe_endpoint(EndpointName=deployed["kennel"])


def test_aws_cli_describes_and_invokes(cloud, deployed, tmp_path: Path) -> None:
    described = aws(cloud, "sagemaker", "describe-endpoint", "--endpoint-name", deployed["kennel"])
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["EndpointStatus"] == "InService"
    listed = aws(cloud, "sagemaker", "list-endpoints", "--name-contains", deployed["kennel"])
    assert [e["EndpointName"] for e in json.loads(listed.stdout)["Endpoints"]] == [deployed["kennel"]]
    (tmp_path / "dog.jpg").write_bytes(jpeg())
    invoked = aws(
        cloud,
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        deployed["kennel"],
        "--body",
        f"fileb://{tmp_path / 'dog.jpg'}",
        "--content-type",
        "image/jpeg",
        "--custom-attributes",
        "top_k=2",
        str(tmp_path / "out.json"),
    )
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["InvokedProductionVariant"] == "AllTraffic"
    assert len(json.loads((tmp_path / "out.json").read_text())) == 2


def test_sagemaker_sdk_predictor(cloud, deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sagemaker, session = sdk_session(cloud, tmp_path, monkeypatch)
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import IdentitySerializer, JSONSerializer

    images = sagemaker.predictor.Predictor(
        deployed["kennel"],
        sagemaker_session=session,
        serializer=IdentitySerializer("image/jpeg"),
        deserializer=JSONDeserializer(),
    )
    assert len(images.predict(jpeg())) == 5
    as_json = sagemaker.predictor.Predictor(
        deployed["kennel"],
        sagemaker_session=session,
        serializer=JSONSerializer(),
        deserializer=JSONDeserializer(),
    )
    ranked = as_json.predict(
        {"image": base64.b64encode(jpeg()).decode()}, initial_args={"CustomAttributes": "top_k=2"}
    )
    assert [set(row) for row in ranked] == [{"label", "index", "score"}] * 2


def test_metrics_and_logs_reach_cloudwatch(cloud, deployed) -> None:
    name = deployed["kennel"]
    rt, cw, logs = cloud.client("sagemaker-runtime"), cloud.client("cloudwatch"), cloud.client("logs")
    for _ in range(3):
        rt.invoke_endpoint(EndpointName=name, Body=jpeg(), ContentType="image/jpeg")
    dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]

    def stat(namespace: str, metric: str, statistic: str) -> float | None:
        now = time.time()
        points = cw.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dims,
            Period=3600,
            StartTime=now - 3600,
            EndTime=now + 60,
            Statistics=[statistic],
        )
        values = [p[statistic] for p in points["Datapoints"]]
        return sum(values) if values else None

    def published() -> bool:
        cpu = stat("/aws/sagemaker/Endpoints", "CPUUtilization", "Maximum")
        return cpu is not None and (stat("AWS/SageMaker", "Invocations", "Sum") or 0) >= 3

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not published():
        time.sleep(0.5)
    assert stat("AWS/SageMaker", "Invocations", "Sum") >= 3
    assert stat("AWS/SageMaker", "ModelLatency", "Average") > 0
    assert stat("AWS/SageMaker", "OverheadLatency", "Average") is not None
    assert stat("AWS/SageMaker", "Invocation5XXErrors", "Sum") == 0
    assert stat("/aws/sagemaker/Endpoints", "CPUUtilization", "Maximum") > 0
    assert stat("/aws/sagemaker/Endpoints", "MemoryUtilization", "Maximum") > 0
    group = f"/aws/sagemaker/Endpoints/{name}"
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert len(streams) == 1 and streams[0].startswith("AllTraffic/i-")
    messages = [
        e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=streams[0])["events"]
    ]
    assert any("kennel-model-server: loaded" in m for m in messages)
    found = logs.filter_log_events(logGroupName=group, filterPattern="healthy")["events"]
    assert found and found[0]["logStreamName"] == streams[0]
