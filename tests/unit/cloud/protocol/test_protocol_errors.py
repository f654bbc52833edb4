"""Errors on the wire: modelled and generic errors read back by real clients, validation messages,
malformed requests, and a seeded fuzz loop that lets nothing but ``AwsError`` out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_protocol_harness import REQUEST_ID, Harness

from kennel.cloud.errors import (
    AccessDenied,
    AwsError,
    UnknownOperationException,
    ValidationException,
    error_class,
)
from kennel.cloud.protocol import serialize_error

ARN = "arn:aws:iam::123456789012:role/r"


def _raise(service: str, method: str, params: dict[str, Any], error: AwsError) -> tuple[ClientError, Harness]:
    harness = Harness(service)
    with pytest.raises(ClientError) as caught:
        harness.call(method, params, error=error)
    return caught.value, harness


@pytest.mark.parametrize(
    ("service", "method", "params", "error", "code", "status"),
    [
        ("sts", "get_caller_identity", {}, AccessDenied("not allowed <here>"), "AccessDenied", 403),
        (
            "sts",
            "assume_role",
            {"RoleArn": ARN, "RoleSessionName": "ss"},
            error_class("ExpiredTokenException")("token expired"),
            "ExpiredTokenException",
            400,
        ),
        (
            "iam",
            "get_role",
            {"RoleName": "r"},
            error_class("NoSuchEntity")("Role r not found"),
            "NoSuchEntity",
            404,
        ),
        (
            "iam",
            "create_role",
            {"RoleName": "r", "AssumeRolePolicyDocument": "{}"},
            error_class("EntityAlreadyExists")("Role with name r already exists."),
            "EntityAlreadyExists",
            409,
        ),
        (
            "sagemaker",
            "describe_endpoint",
            {"EndpointName": "e"},
            ValidationException('Could not find endpoint "e".'),
            "ValidationException",
            400,
        ),
        (
            "sagemaker",
            "describe_training_job",
            {"TrainingJobName": "j"},
            error_class("ResourceNotFound")("Requested resource not found."),
            "ResourceNotFound",
            400,
        ),
        (
            "logs",
            "get_log_events",
            {"logGroupName": "g", "logStreamName": "s"},
            error_class("ResourceNotFoundException")("The specified log group does not exist."),
            "ResourceNotFoundException",
            400,
        ),
        (
            "lambda",
            "get_function",
            {"FunctionName": "f"},
            error_class("ResourceNotFoundException")("Function not found: arn:...:f"),
            "ResourceNotFoundException",
            404,
        ),
        (
            "application-autoscaling",
            "describe_scalable_targets",
            {"ServiceNamespace": "sagemaker"},
            error_class("ObjectNotFoundException")("No scalable target"),
            "ObjectNotFoundException",
            400,
        ),
    ],
)
def test_errors_read_back_by_clients(
    service: str, method: str, params: dict, error: AwsError, code: str, status: int
) -> None:
    caught, _ = _raise(service, method, params, error)
    assert caught.response["Error"]["Code"] == code
    assert caught.response["Error"]["Message"] == error.message
    assert caught.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert caught.response["ResponseMetadata"]["RequestId"] == REQUEST_ID


def test_lambda_throttle_carries_reason_and_retry_after() -> None:
    throttle = error_class("TooManyRequestsException")(
        "Rate Exceeded.",
        Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
        Type="User",
        retryAfterSeconds="1",
        headers={"X-Kennel-Debug": "1"},
    )
    harness = Harness("lambda")
    with pytest.raises(harness.client.exceptions.TooManyRequestsException) as caught:
        harness.call("invoke", {"FunctionName": "f"}, error=throttle)
    response = caught.value.response
    assert (
        response["ResponseMetadata"]["HTTPStatusCode"] == 429
    )  # the model's status wins over the class's 400
    assert (
        response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        and response["Type"] == "User"
    )
    assert response["retryAfterSeconds"] == "1" and response["message"] == "Rate Exceeded."
    assert harness.response is not None
    assert (
        harness.response.headers["Retry-After"] == "1" and harness.response.headers["X-Kennel-Debug"] == "1"
    )
    assert harness.response.headers["x-amzn-ErrorType"] == "TooManyRequestsException"


def test_model_error_carries_original_status() -> None:
    error = error_class("ModelError")(
        "Received server error (500) from model",
        OriginalStatusCode=500,
        OriginalMessage="boom",
        LogStreamArn="arn:aws:logs:x",
    )
    harness = Harness("sagemaker-runtime")
    with pytest.raises(harness.client.exceptions.ModelError) as caught:
        harness.call("invoke_endpoint", {"EndpointName": "e", "Body": b"x"}, error=error)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 500 and response["OriginalMessage"] == "boom"
    assert response["Error"]["Message"] == "Received server error (500) from model"


def test_query_error_document() -> None:
    _, harness = _raise("iam", "get_role", {"RoleName": "r"}, error_class("NoSuchEntity")("gone & <away>"))
    assert harness.response is not None
    text = harness.response.body.decode()
    assert text.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="https://iam.amazonaws.com/'
    )
    assert (
        "<Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone &amp; &lt;away&gt;</Message>"
        in text
    )
    assert text.endswith(f"</Error><RequestId>{REQUEST_ID}</RequestId></ErrorResponse>")


def test_serialize_error_for_unknown_service_still_answers() -> None:
    response = serialize_error("s3-ish", None, UnknownOperationException("no"), "r-1")
    assert response.status == 400 and json.loads(response.body) == {
        "__type": "UnknownOperationException",
        "message": "no",
    }


# --- validation -------------------------------------------------------------------------------------


def _invalid(service: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    harness = Harness(service, validate_client_side=False)
    with pytest.raises(ClientError) as caught:
        harness.call(method, params, result={})
    return caught.value.response


@pytest.mark.parametrize(
    ("service", "method", "params", "code", "message"),
    [
        (
            "sagemaker",
            "create_endpoint",
            {"EndpointName": "bad_name!", "EndpointConfigName": "c"},
            "ValidationException",
            "1 validation error detected: Value 'bad_name!' at 'endpointName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        ),
        (
            "sagemaker",
            "create_endpoint",
            {"EndpointName": "e"},
            "ValidationException",
            "1 validation error detected: Value null at 'endpointConfigName' failed to satisfy constraint: "
            "Member must not be null",
        ),
        (
            "sagemaker",
            "create_endpoint_config",
            {"EndpointConfigName": "c", "ProductionVariants": [{"ModelName": "m"}]},
            "ValidationException",
            "1 validation error detected: Value null at 'productionVariants.1.member.variantName' "
            "failed to satisfy constraint: Member must not be null",
        ),
        (
            "sagemaker",
            "create_endpoint_config",
            {"EndpointConfigName": "c", "ProductionVariants": []},
            "ValidationException",
            "1 validation error detected: Value '[]' at 'productionVariants' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1",
        ),
        (
            "sagemaker",
            "list_training_jobs",
            {"MaxResults": 0, "StatusEquals": "Done"},
            "ValidationException",
            "2 validation errors detected: Value '0' at 'maxResults' failed to satisfy constraint: "
            "Member must have value "
            "greater than or equal to 1; Value 'Done' at 'statusEquals' failed to satisfy constraint: "
            "Member must satisfy "
            "enum value set: [InProgress, Completed, Failed, Stopping, Stopped, Deleting]",
        ),
        (
            "iam",
            "create_role",
            {"RoleName": "r" * 65},
            "ValidationError",
            "2 validation errors detected: Value null at 'assumeRolePolicyDocument' failed to satisfy "
            "constraint: "
            f"Member must not be null; Value '{'r' * 65}' at 'roleName' failed to satisfy constraint: "
            "Member must have "
            "length less than or equal to 64",
        ),
        (
            "iam",
            "list_roles",
            {"MaxItems": 0},
            "ValidationError",
            "1 validation error detected: Value '0' at "
            "'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            "lambda",
            "put_function_concurrency",
            {"FunctionName": "f", "ReservedConcurrentExecutions": -1},
            "ValidationException",
            "1 validation error detected: Value '-1' at 'reservedConcurrentExecutions' failed to "
            "satisfy constraint: Member must have value greater than or equal to 0",
        ),
        (
            "lambda",
            "list_functions",
            {"MaxItems": 10001},
            "ValidationException",
            "1 validation error detected: "
            "Value '10001' at 'maxItems' failed to satisfy constraint: Member must have value less than "
            "or equal to 10000",
        ),
        (
            "application-autoscaling",
            "register_scalable_target",
            {
                "ServiceNamespace": "bogus",
                "ResourceId": "r",
                "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            },
            "ValidationException",
            "1 validation error detected: Value 'bogus' at 'serviceNamespace' failed to satisfy "
            "constraint: Member must satisfy enum value set: [ecs, elasticmapreduce, ec2, appstream, "
            "dynamodb, rds, "
            "sagemaker, custom-resource, comprehend, lambda, cassandra, kafka, elasticache, neptune, "
            "workspaces]",
        ),
        (
            "sagemaker-runtime",
            "invoke_endpoint",
            {"EndpointName": "bad name", "Body": b"x"},
            "ValidationError",
            "1 validation error detected: Value 'bad name' at 'endpointName' failed to satisfy "
            "constraint: Member must "
            "satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
        ),
        (
            "logs",
            "put_log_events",
            {"logGroupName": "g", "logStreamName": "s", "logEvents": [{"timestamp": 1}]},
            "InvalidParameterException",
            None,
        ),
    ],
)
def test_validation_messages(service: str, method: str, params: dict, code: str, message: str | None) -> None:
    if message is None:  # logs models no ValidationException; the generic class still answers 400
        code = "ValidationException"
        message = (
            "1 validation error detected: Value null at 'logEvents.1.member.message' failed to satisfy "
            "constraint: Member must not be null"
        )
    response = _invalid(service, method, params)
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"] == message
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_wrong_json_types_are_serialization_exceptions() -> None:
    response = _invalid("sagemaker", "list_training_jobs", {"MaxResults": "ten"})
    assert response["Error"] == {
        "Code": "SerializationException",
        "Message": "STRING_VALUE can not be converted to an Integer",
    }
    response = _invalid("sagemaker", "describe_endpoint", {"EndpointName": ["a"]})
    assert response["Error"]["Message"] == "Start of list found where not expected"


def test_wrong_text_types_in_query_and_uri_are_validation_errors() -> None:
    response = _invalid("iam", "list_roles", {"MaxItems": "many"})
    assert response["Error"]["Code"] == "ValidationError"
    assert (
        "Value 'many' at 'maxItems' failed to satisfy constraint: Member must be an integer"
        in response["Error"]["Message"]
    )
    response = _invalid("lambda", "list_functions", {"MaxItems": "many"})
    assert (
        response["Error"]["Code"] == "ValidationException"
        and "'many' is not an integer" in response["Error"]["Message"]
    )
