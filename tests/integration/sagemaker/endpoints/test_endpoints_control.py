"""The SageMaker control plane's bookkeeping and errors with boto3 (no instance is started here)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

ARN = "arn:aws:sagemaker:us-east-1:000000000000"


def _error(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as failed:
        call(**kwargs)
    return failed.value.response["Error"]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"not opened until an endpoint uses it")
    return path


def test_models_configs_and_their_errors(cloud, model_file: Path) -> None:
    sm = cloud.client("sagemaker")
    name = f"Model-{uuid.uuid4().hex[:6]}"
    container = {"Image": "img", "ModelDataUrl": f"file://{model_file}", "Environment": {"A": "1"}}
    assert (
        sm.create_model(ModelName=name, PrimaryContainer=container)["ModelArn"]
        == f"{ARN}:model/{name.lower()}"
    )
    assert _error(sm.create_model, ModelName=name, PrimaryContainer=container) == {
        "Code": "ValidationException",
        "Message": f'Cannot create already existing model "{ARN}:model/{name.lower()}".',
    }
    described = sm.describe_model(ModelName=name)
    assert described["PrimaryContainer"] == container and described["EnableNetworkIsolation"] is False
    s3 = _error(
        sm.create_model, ModelName=f"{name}-s3", PrimaryContainer={"ModelDataUrl": "s3://bucket/model.tar.gz"}
    )
    # No execution role to read it with (tests/integration/s3/test_s3_workflows.py covers the rest).
    assert s3["Code"] == "ValidationException"
    assert s3["Message"].startswith("Could not access model data at s3://bucket/model.tar.gz.")
    missing = _error(
        sm.create_model, ModelName=f"{name}-x", PrimaryContainer={"ModelDataUrl": "/nope/model.tar.gz"}
    )
    # Local model data only inside KENNEL_ALLOW_LOCAL_MODEL_DATA (the tests' temporary directory).
    assert missing["Message"].startswith("ModelDataUrl /nope/model.tar.gz is outside the directories")
    absent = str(model_file.parent / "absent.tar.gz")
    gone = _error(sm.create_model, ModelName=f"{name}-y", PrimaryContainer={"ModelDataUrl": absent})
    assert gone["Message"] == f"Could not find model data at {absent}."
    assert _error(sm.describe_model, ModelName="absent") == {
        "Code": "ValidationException",
        "Message": f'Could not find model "{ARN}:model/absent".',
    }
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "absent",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    assert (
        "Could not find model"
        in _error(sm.create_endpoint_config, EndpointConfigName=name, ProductionVariants=[variant])["Message"]
    )
    config_arn = sm.create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[{**variant, "ModelName": name}]
    )
    assert config_arn["EndpointConfigArn"] == f"{ARN}:endpoint-config/{name.lower()}"
    assert (
        sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]["InitialVariantWeight"]
        == 1
    )
    assert (
        "Could not find endpoint configuration"
        in _error(sm.create_endpoint, EndpointName=name, EndpointConfigName="absent")["Message"]
    )
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)
    assert (
        "Could not find endpoint configuration"
        in _error(sm.describe_endpoint_config, EndpointConfigName=name)["Message"]
    )
    assert "Could not find model" in _error(sm.delete_model, ModelName=name)["Message"]
    assert (
        _error(sm.delete_endpoint, EndpointName="absent")["Message"]
        == f'Could not find endpoint "{ARN}:endpoint/absent".'
    )


def test_lists_filter_sort_and_page(cloud, model_file: Path) -> None:
    sm = cloud.client("sagemaker")
    prefix = f"page{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{letter}" for letter in "cab"]
    for name in names:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(model_file)})
    pages = list(
        sm.get_paginator("list_models").paginate(
            NameContains=prefix, SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 1}
        )
    )
    assert [m["ModelName"] for page in pages for m in page["Models"]] == sorted(names)
    assert len(pages) == 3
    newest_first = sm.list_models(NameContains=prefix)["Models"]
    assert [m["ModelName"] for m in newest_first] == names[::-1]  # AWS's default: CreationTime, Descending
    bad = _error(sm.list_models, NextToken="garbage")
    assert bad["Code"] == "ValidationException" and "pagination token" in bad["Message"]
    empty = sm.list_endpoints(NameContains=prefix, StatusEquals="InService")
    assert empty["Endpoints"] == [] and "NextToken" not in empty
    for name in names:
        sm.delete_model(ModelName=name)


def test_unsupported_shapes_are_refused_clearly(cloud, model_file: Path) -> None:
    sm = cloud.client("sagemaker")
    name = f"odd-{uuid.uuid4().hex[:6]}"
    sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(model_file)})
    serverless = _error(
        sm.create_endpoint_config,
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    assert "serverless variants are not supported" in serverless["Message"]
    multi = _error(
        sm.create_model,
        ModelName=f"{name}-mm",
        PrimaryContainer={"ModelDataUrl": str(model_file), "Mode": "MultiModel"},
    )
    assert "Multi-model endpoints" in multi["Message"]
    sm.delete_model(ModelName=name)
