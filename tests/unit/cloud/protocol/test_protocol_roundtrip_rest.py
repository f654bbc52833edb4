"""rest-json (SageMaker Runtime, Lambda) both directions through real botocore clients: URI labels,
query strings, headers, status codes and blob payloads (see ``test_protocol_harness``)."""

from __future__ import annotations

from typing import Any

import pytest
from test_protocol_harness import ROLE, Harness, body_of

REST_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], tuple[str, str]]] = [
    # --- rest-json: sagemaker-runtime, lambda ----------------------------------------------------
    (
        "sagemaker-runtime",
        "invoke_endpoint",
        {
            "EndpointName": "dogs",
            "Body": b"\xff\xd8\xff\xe0jpeg",
            "ContentType": "image/jpeg",
            "Accept": "application/json",
            "CustomAttributes": "trace=1",
            "TargetVariant": "Canary",
        },
        {
            "Body": b'{"breed": "Beagle"}',
            "ContentType": "application/json",
            "InvokedProductionVariant": "Canary",
            "CustomAttributes": "model=v2",
        },
        ("sagemaker-runtime", "InvokeEndpoint"),
    ),
    (
        "sagemaker-runtime",
        "invoke_endpoint_async",
        {
            "EndpointName": "dogs",
            "InputLocation": "s3://b/in.jpg",
            "ContentType": "image/jpeg",
            "InvocationTimeoutSeconds": 600,
        },
        {"InferenceId": "i-1", "OutputLocation": "s3://b/out.json", "FailureLocation": "s3://b/err"},
        ("sagemaker-runtime", "InvokeEndpointAsync"),
    ),
    (
        "lambda",
        "create_function",
        {
            "FunctionName": "dog-router",
            "Runtime": "python3.11",
            "Role": ROLE["Arn"],
            "Handler": "lambda_function.handler",
            "Code": {"ZipFile": b"PK\x03\x04\x00zip-bytes\xff"},
            "Timeout": 30,
            "MemorySize": 256,
            "Environment": {"Variables": {"ENDPOINT": "dogs"}},
            "Tags": {"a": "b"},
            "Publish": True,
        },
        {
            "FunctionName": "dog-router",
            "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:dog-router",
            "Runtime": "python3.11",
            "Handler": "lambda_function.handler",
            "CodeSize": 14,
            "Timeout": 30,
            "MemorySize": 256,
            "State": "Pending",
            "Environment": {"Variables": {"ENDPOINT": "dogs"}},
            "Version": "1",
            "Architectures": ["x86_64"],
            "LastModified": "2026-11-22T10:30:00.000+0000",
        },
        ("lambda", "CreateFunction"),
    ),
    (
        "lambda",
        "invoke",
        {
            "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:dog-router",
            "Qualifier": "live",
            "Payload": b'{"url": "s3://b/dog.jpg"}',
            "LogType": "Tail",
            "InvocationType": "RequestResponse",
        },
        {
            "StatusCode": 200,
            "Payload": b'{"errorMessage": "boom"}',
            "FunctionError": "Unhandled",
            "LogResult": "U1RBUlQgUmVxdWVzdElk",
            "ExecutedVersion": "7",
        },
        ("lambda", "Invoke"),
    ),
    (
        "lambda",
        "invoke",
        {"FunctionName": "f", "InvocationType": "Event"},
        {"StatusCode": 202, "Payload": b""},
        ("lambda", "Invoke"),
    ),
    (
        "lambda",
        "put_function_concurrency",
        {"FunctionName": "dog-router", "ReservedConcurrentExecutions": 5},
        {"ReservedConcurrentExecutions": 5},
        ("lambda", "PutFunctionConcurrency"),
    ),
    (
        "lambda",
        "get_provisioned_concurrency_config",
        {"FunctionName": "dog-router", "Qualifier": "live"},
        {
            "RequestedProvisionedConcurrentExecutions": 3,
            "AvailableProvisionedConcurrentExecutions": 3,
            "AllocatedProvisionedConcurrentExecutions": 3,
            "Status": "READY",
            "LastModified": "2026-11-22T10:30:00+0000",
        },
        ("lambda", "GetProvisionedConcurrencyConfig"),
    ),
    (
        "lambda",
        "list_provisioned_concurrency_configs",
        {"FunctionName": "dog-router", "MaxItems": 5},
        {"ProvisionedConcurrencyConfigs": []},
        ("lambda", "ListProvisionedConcurrencyConfigs"),
    ),
    (
        "lambda",
        "list_functions",
        {"Marker": "m/1+2", "MaxItems": 50, "FunctionVersion": "ALL"},
        {"Functions": [{"FunctionName": "a", "MemorySize": 128}, {"FunctionName": "b"}], "NextMarker": "m2"},
        ("lambda", "ListFunctions"),
    ),
    (
        "lambda",
        "create_alias",
        {
            "FunctionName": "dog-router",
            "Name": "live",
            "FunctionVersion": "3",
            "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.1}},
        },
        {
            "AliasArn": "arn:aws:lambda:us-east-1:123456789012:function:dog-router:live",
            "Name": "live",
            "FunctionVersion": "3",
            "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.1}},
        },
        ("lambda", "CreateAlias"),
    ),
    (
        "lambda",
        "get_alias",
        {"FunctionName": "dog-router", "Name": "live"},
        {"Name": "live"},
        ("lambda", "GetAlias"),
    ),
    (
        "lambda",
        "list_tags",
        {"Resource": "arn:aws:lambda:us-east-1:123456789012:function:dog-router:$LATEST"},
        {"Tags": {"team": "dogs"}},
        ("lambda", "ListTags"),
    ),
    (
        "lambda",
        "tag_resource",
        {"Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "Tags": {"k": "v"}},
        {},
        ("lambda", "TagResource"),
    ),
    (
        "lambda",
        "delete_function",
        {"FunctionName": "dog-router", "Qualifier": "3"},
        {"StatusCode": 200},
        ("lambda", "DeleteFunction"),
    ),
]


@pytest.mark.parametrize(("service", "method", "params", "result", "routed"), REST_CASES)
def test_rest_round_trip(
    service: str, method: str, params: dict, result: dict, routed: tuple[str, str]
) -> None:
    harness = Harness(service)
    answer = harness.call(method, params, result)
    assert harness.routed == routed
    assert harness.params == params
    assert body_of(answer) == result


def test_rest_json_status_headers_and_payload() -> None:
    harness = Harness("lambda")
    answer = harness.call(
        "invoke",
        {"FunctionName": "f", "Payload": b"{}"},
        {"StatusCode": 200, "Payload": b"null", "FunctionError": "Handled", "LogResult": "bG9n"},
    )
    response = harness.response
    assert response is not None and response.status == 200 and response.body == b"null"
    assert (
        response.headers["X-Amz-Function-Error"] == "Handled"
        and response.headers["X-Amz-Log-Result"] == "bG9n"
    )
    assert answer["StatusCode"] == 200 and answer["Payload"].read() == b"null"
    harness.call("invoke", {"FunctionName": "f", "InvocationType": "Event"}, {"StatusCode": 202})
    assert harness.response is not None and harness.response.status == 202
    harness.call(
        "create_function",
        {"FunctionName": "f", "Role": ROLE["Arn"], "Code": {"ZipFile": b"z"}},
        {"FunctionName": "f"},
    )
    assert harness.response is not None and harness.response.status == 201
    harness.call(
        "tag_resource",
        {"Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "Tags": {"k": "v"}},
        {},
    )
    assert harness.response is not None and harness.response.status == 204 and harness.response.body == b""
    runtime = Harness("sagemaker-runtime")
    runtime.call(
        "invoke_endpoint",
        {"EndpointName": "e", "Body": b"x"},
        {"Body": b"\x89PNG", "ContentType": "image/png"},
    )
    assert runtime.response is not None and runtime.response.headers["Content-Type"] == "image/png"
    assert runtime.response.body == b"\x89PNG"
    runtime.call(
        "invoke_endpoint_async", {"EndpointName": "e", "InputLocation": "s3://b/k"}, {"InferenceId": "i"}
    )
    assert runtime.response is not None and runtime.response.status == 202


def test_lambda_paths_keep_qualifiers_and_encoded_arns() -> None:
    harness = Harness("lambda")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:dog-router:live"
    harness.call("get_function", {"FunctionName": arn, "Qualifier": "live"}, {})
    assert harness.request is not None and "arn%3Aaws%3Alambda" in harness.request.path
    assert harness.routed == ("lambda", "GetFunction")
    assert harness.params == {"FunctionName": arn, "Qualifier": "live"}
