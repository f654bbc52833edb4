"""What S3 unlocks: Lambda code from S3, SageMaker model data from s3://, and the SageMaker SDK's
own flow (default bucket, upload, Model.deploy) — each read with the permissions AWS would use."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.endpoints import jpeg, kennel_artifact
from tests.integration.support.sdk import sdk_session

pytestmark = pytest.mark.timeout(600)

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
SAGEMAKER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", source)
    return buffer.getvalue()


def test_lambda_code_from_s3(cloud) -> None:
    s3, lam, iam = cloud.client("s3"), cloud.client("lambda"), cloud.client("iam")
    bucket, suffix = f"code-{uuid.uuid4().hex[:10]}", uuid.uuid4().hex[:6]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket, Key="v1.zip", Body=package("def handler(event, context):\n    return 'v1'\n")
    )
    s3.put_object(
        Bucket=bucket, Key="v2.zip", Body=package("def handler(event, context):\n    return 'v2'\n")
    )
    role = iam.create_role(RoleName=f"fn-{suffix}", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]
    name = f"from-s3-{suffix}"
    created = lam.create_function(
        FunctionName=name, Runtime="python3.11", Role=role["Arn"], Handler="handler.handler",
        Code={"S3Bucket": bucket, "S3Key": "v1.zip"},
    )  # fmt: skip
    assert created["CodeSize"] == len(package("def handler(event, context):\n    return 'v1'\n"))
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v1"
    lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="v2.zip")
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v2"

    with pytest.raises(ClientError) as missing:
        lam.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="absent.zip")
    assert missing.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert missing.value.response["Error"]["Message"] == (
        "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does "
        "not exist."
    )
    with pytest.raises(ClientError) as no_bucket:
        lam.update_function_code(FunctionName=name, S3Bucket=f"{bucket}-absent", S3Key="v1.zip")
    assert "S3 Error Code: NoSuchBucket" in no_bucket.value.response["Error"]["Message"]

    # A caller who may manage functions but not read the bucket cannot deploy code from it.
    deployer = f"deployer-{suffix}"
    iam.create_user(UserName=deployer)
    iam.put_user_policy(
        UserName=deployer, PolicyName="lambda-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["lambda:*", "iam:PassRole"], "Resource": "*"}]}),
    )  # fmt: skip
    key = iam.create_access_key(UserName=deployer)["AccessKey"]
    limited = cloud.client("lambda", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError) as denied:
        limited.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key="v1.zip")
    assert denied.value.response["Error"]["Message"].startswith(
        f"Your access has been denied by S3, please make sure your request credentials have permission to "
        f"GetObject for {bucket}/v1.zip."
    )
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "v2"  # unchanged
    lam.delete_function(FunctionName=name)


def test_model_data_from_s3_with_the_sagemaker_sdk(
    cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3 shows CreateModel's checks; then the SDK creates its default bucket, uploads the artifact
    and deploys it, as in the seeds' notebook."""
    sm, iam = cloud.client("sagemaker"), cloud.client("iam")
    suffix = uuid.uuid4().hex[:6]
    role = iam.create_role(RoleName=f"sm-{suffix}", AssumeRolePolicyDocument=json.dumps(SAGEMAKER_TRUST))[
        "Role"
    ]
    artifact = kennel_artifact(tmp_path)

    sagemaker, session = sdk_session(cloud, tmp_path, monkeypatch)
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import IdentitySerializer

    bucket = session.default_bucket()
    assert bucket == "sagemaker-us-east-1-000000000000"
    model_data = session.upload_data(str(artifact), bucket=bucket, key_prefix=f"models/{suffix}")
    assert model_data == f"s3://{bucket}/models/{suffix}/{artifact.name}"

    container = {"Image": "pytorch-inference:2.0-cpu", "ModelDataUrl": model_data}
    with pytest.raises(ClientError) as no_s3_access:
        sm.create_model(ModelName=f"m-{suffix}", PrimaryContainer=container, ExecutionRoleArn=role["Arn"])
    assert no_s3_access.value.response["Error"]["Message"].startswith(
        f'Could not access model data at {model_data}. Please ensure that the role "{role["Arn"]}" exists'
    )
    iam.attach_role_policy(
        RoleName=role["RoleName"], PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    absent = {**container, "ModelDataUrl": f"s3://{bucket}/models/{suffix}/absent.tar.gz"}
    with pytest.raises(ClientError) as not_found:
        sm.create_model(ModelName=f"m-{suffix}", PrimaryContainer=absent, ExecutionRoleArn=role["Arn"])
    assert (
        not_found.value.response["Error"]["Message"]
        == f"Could not find model data at {absent['ModelDataUrl']}."
    )

    model = sagemaker.model.Model(
        image_uri="pytorch-inference:2.0-cpu",
        model_data=model_data,
        role=role["Arn"],
        sagemaker_session=session,
        predictor_cls=sagemaker.predictor.Predictor,
    )
    endpoint = f"s3-model-{suffix}"
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=endpoint)
    try:
        predictor.serializer, predictor.deserializer = IdentitySerializer("image/jpeg"), JSONDeserializer()
        assert len(predictor.predict(jpeg())) == 5
    finally:
        predictor.delete_endpoint()
