"""The seeds' story end to end: a Lambda function in front of a SageMaker endpoint, locked down by
least privilege. The function is `examples/dog_breeds/lambda_function.py`, unmodified."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from tests.integration.support.endpoints import serve
from tests.integration.support.lambda_functions import create
from tests.integration.support.roles import service_role

from kennel.ml.artifact import ArtifactMeta, package_model, write_model_dir
from kennel.ml.labels import dog_breed_folders, readable_label
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess

ACCOUNT = "000000000000"


@pytest.fixture(scope="module", autouse=True)
def _sagemaker_role(cloud) -> None:
    service_role(cloud)  # SageMaker refuses a role that is missing or does not trust it


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "dog_breeds" / "lambda_function.py"


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_url(cloud):
    """The picture behind a presigned S3 URL: the sandboxed model reaches only the gateway."""
    s3 = cloud.client("s3")
    bucket = f"seed-scenario-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dog.jpg", Body=_jpeg(), ContentType="image/jpeg")
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dog.jpg"}, ExpiresIn=900)


def _artifact(root: Path) -> Path:
    torch.manual_seed(0)
    classes = list(dog_breed_folders())
    cfg = ModelConfig(backbone="resnet18", num_classes=133, head_hidden=(16,))
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=32),
        classes=classes,
        labels=[readable_label(c) for c in classes],
    )
    return package_model(write_model_dir(root / "model", build_model(cfg), meta), root / "model.tar.gz")


def _endpoint(cloud, name: str, artifact: Path) -> None:
    container = {
        "Image": "pytorch-inference:2.0-cpu",
        "ModelDataUrl": str(artifact),
        # The image URL is on loopback: this endpoint explicitly allows private URLs.
        "Environment": {"KENNEL_ALLOW_PRIVATE_URLS": "true"},
    }
    serve(cloud.client("sagemaker"), name, container, role=f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole")


def _zip(source: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(source, "lambda_function.py")
    return buffer.getvalue()


def _invoke(fn, name: str, url: str) -> tuple[dict, str | None, str]:
    answer = fn.invoke(FunctionName=name, Payload=json.dumps({"url": url}).encode(), LogType="Tail")
    payload = json.loads(answer["Payload"].read())
    return payload, answer.get("FunctionError"), base64.b64decode(answer["LogResult"]).decode()


def test_lambda_in_front_of_endpoint_with_least_privilege(cloud, tmp_path: Path, image_url: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    endpoint = f"dog-breeds-{suffix}"
    _endpoint(cloud, endpoint, _artifact(tmp_path))
    iam, fn = cloud.client("iam"), cloud.client("lambda")
    role = f"dog-lambda-{suffix}"
    lambda_may_assume = {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    trust = {"Version": "2012-10-17", "Statement": [lambda_may_assume]}
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(
        RoleName=role, PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    )
    name = f"dog-fn-{suffix}"
    create(
        fn,
        role_arn,
        name,
        zip=_zip(EXAMPLE),
        Handler="lambda_function.lambda_handler",
        Timeout=60,
        MemorySize=512,
        Environment={"Variables": {"ENDPOINT_NAME": endpoint}},
    )
    fn.get_waiter("function_active_v2").wait(FunctionName=name)

    # 1. Basic execution role only: the endpoint call is denied, as in the seeds.
    payload, error, _ = _invoke(fn, name, image_url)
    assert error == "Unhandled"
    assert "AccessDeniedException" in payload["errorMessage"]
    endpoint_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{endpoint}"
    assert (
        f"assumed-role/{role}/{name} is not authorized to perform: sagemaker:InvokeEndpoint"
        in payload["errorMessage"]
    )
    assert endpoint_arn in payload["errorMessage"]

    # 2. The broad managed policy makes it work, and the advisor flags it.
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    payload, error, log = _invoke(fn, name, image_url)
    assert error is None and payload["statusCode"] == 200, payload
    assert len(json.loads(payload["body"])) == 133
    assert "REPORT RequestId:" in log
    audit = subprocess.run(
        [sys.executable, "-m", "kennel.cli", "iam", "audit", "--json", "--state-dir", str(cloud.state_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    flagged = {(f["principal_arn"], f["kind"]) for f in json.loads(audit.stdout)}
    assert (role_arn, "full-access-policy") in flagged

    # 3. Least privilege: only sagemaker:InvokeEndpoint on this endpoint's ARN.
    iam.detach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    policy = json.loads(EXAMPLE.with_name("least_privilege_policy.json").read_text())
    policy["Statement"][0]["Resource"] = endpoint_arn
    iam.put_role_policy(RoleName=role, PolicyName="invoke-one-endpoint", PolicyDocument=json.dumps(policy))
    payload, error, _ = _invoke(fn, name, image_url)
    assert error is None and payload["statusCode"] == 200
    scores = json.loads(payload["body"])
    assert len(scores) == 133 and all(isinstance(s, float) for s in scores)

    # 4. A policy naming another endpoint is denied again.
    policy["Statement"][0]["Resource"] = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/some-other-endpoint"
    iam.put_role_policy(RoleName=role, PolicyName="invoke-one-endpoint", PolicyDocument=json.dumps(policy))
    payload, error, _ = _invoke(fn, name, image_url)
    assert error == "Unhandled" and "AccessDeniedException" in payload["errorMessage"]
    with contextlib.suppress(Exception):
        cloud.client("sagemaker").delete_endpoint(EndpointName=endpoint)
