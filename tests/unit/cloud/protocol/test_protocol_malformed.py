"""Malformed requests and a seeded fuzz loop: whatever arrives, only a 4xx ``AwsError`` comes out."""

from __future__ import annotations

import random

import pytest
from test_protocol_harness import Harness

from kennel.cloud.errors import (
    AwsError,
    MalformedQueryString,
    SerializationException,
    UnknownOperationException,
    ValidationError,
    ValidationException,
)
from kennel.cloud.protocol import HttpRequest, parse_request, route, serialize_error

ARN = "arn:aws:iam::123456789012:role/r"


# --- malformed requests -----------------------------------------------------------------------------


def _json(
    target: str | None, body: bytes, signing: str | None = "sagemaker"
) -> tuple[str | None, type[AwsError]]:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    request = HttpRequest("POST", "/", "", headers, body)
    try:
        service, operation = route(request, signing)[:2]
        parse_request(service, operation, request)
    except AwsError as exc:
        assert 400 <= exc.status < 500
        return exc.message, type(exc)
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("target", "body", "signing", "expected"),
    [
        ("SageMaker.DescribeEndpoint", b'{"EndpointName": ', "sagemaker", SerializationException),
        ("SageMaker.DescribeEndpoint", b'["EndpointName"]', "sagemaker", SerializationException),
        ("SageMaker.DescribeEndpoint", b'{"EndpointName": "\xff"}', "sagemaker", SerializationException),
        ("SageMaker.DescribeEndpoint", b"", "sagemaker", ValidationException),
        ("SageMaker.DescribeEndpoint", b"[" * 100_000 + b"]" * 100_000, "sagemaker", SerializationException),
        ("Logs_20140328.DescribeEndpoint", b"{}", "sagemaker", UnknownOperationException),
        ("SageMaker.StealCredentials", b"{}", "sagemaker", UnknownOperationException),
        (None, b"{}", "logs", UnknownOperationException),
        (
            "Logs_20140328.PutLogEvents",
            b'{"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":"x"}]}',
            "logs",
            SerializationException,
        ),
    ],
)
def test_malformed_json_requests(target: str | None, body: bytes, signing: str, expected: type) -> None:
    _, kind = _json(target, body, signing)
    assert issubclass(kind, expected)


def test_bad_base64_blob_in_json() -> None:
    request = HttpRequest(
        "POST", "/2015-03-31/functions", "", {}, b'{"FunctionName":"f","Role":"r","Code":{"ZipFile":"!!"}}'
    )
    with pytest.raises(SerializationException, match="Base64"):
        parse_request("lambda", "CreateFunction", request)


def test_malformed_query_requests() -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with pytest.raises(AwsError) as caught:
        route(HttpRequest("POST", "/", "", form, b"Action=StealRole&Version=2010-05-08"), "iam")
    assert caught.value.code == "InvalidAction" and "StealRole" in caught.value.message
    with pytest.raises(AwsError, match="no Action") as caught:
        route(HttpRequest("POST", "/", "", form, b""), "sts")
    with pytest.raises(MalformedQueryString):
        route(HttpRequest("POST", "/", "", form, b"Action=GetRole&RoleName=%FF%FE"), "iam")
    with pytest.raises(MalformedQueryString):
        route(HttpRequest("POST", "/", "", form, b"Action=GetRole\xff"), "iam")
    odd_index = b"Action=TagRole&Version=2010-05-08&RoleName=r&Tags.member.%C2%B2.Key=k&Tags.member.1.Value=v"
    with pytest.raises(
        ValidationError, match=r"tags\.1\.member\.key"
    ):  # "²" is no index; member 1 lacks a Key
        parse_request("iam", "TagRole", HttpRequest("POST", "/", "", form, odd_index))
    with pytest.raises(ValidationError, match="roleName"):
        parse_request(
            "iam", "GetRole", HttpRequest("POST", "/", "", form, b"Action=GetRole&Version=2010-05-08")
        )


def test_bad_percent_encoding_in_rest_path() -> None:
    request = HttpRequest("GET", "/2015-03-31/functions/%FF%FE", "", {}, b"")
    assert route(request, "lambda")[:2] == ("lambda", "GetFunction")
    with pytest.raises(SerializationException):
        parse_request("lambda", "GetFunction", request)


# --- fuzz ---------------------------------------------------------------------------------------------


def _captured() -> list[tuple[HttpRequest, str | None]]:
    seeds = [
        (
            "sagemaker",
            "create_endpoint_config",
            {
                "EndpointConfigName": "c",
                "ProductionVariants": [
                    {
                        "VariantName": "v",
                        "ModelName": "m",
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.large",
                    }
                ],
            },
        ),
        (
            "iam",
            "create_role",
            {"RoleName": "r", "AssumeRolePolicyDocument": "{}", "Tags": [{"Key": "k", "Value": "v"}]},
        ),
        (
            "sts",
            "assume_role",
            {"RoleArn": ARN, "RoleSessionName": "ss", "Tags": [{"Key": "k", "Value": "v"}]},
        ),
        (
            "lambda",
            "create_function",
            {
                "FunctionName": "f",
                "Role": ARN,
                "Code": {"ZipFile": b"zip"},
                "Environment": {"Variables": {"AB": "1"}},
            },
        ),
        ("lambda", "invoke", {"FunctionName": "f", "Payload": b"{}", "Qualifier": "1", "LogType": "Tail"}),
        ("sagemaker-runtime", "invoke_endpoint", {"EndpointName": "e", "Body": b"x", "ContentType": "a/b"}),
        ("logs", "filter_log_events", {"logGroupName": "g", "startTime": 1, "interleaved": True}),
    ]
    out = []
    for service, method, params in seeds:
        harness = Harness(service)
        harness.call(method, params, result={})
        assert harness.request is not None
        out.append((harness.request, "sagemaker" if service == "sagemaker-runtime" else service))
    return out


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(len(buffer) + 1)
        if choice < 0.3 and buffer:
            buffer[min(position, len(buffer) - 1)] = rng.randrange(256)
        elif choice < 0.5:
            buffer[position:position] = rng.choice(
                [b"{", b"[", b'"', b"\\", b"%", b".member.", b"=", b"&", b"\x00", b"99"]
            )
        elif choice < 0.7:
            del buffer[position : position + rng.randint(1, 8)]
        elif choice < 0.85:
            buffer = buffer[:position]
        else:
            buffer[position:position] = rng.randbytes(rng.randint(1, 16))
    return bytes(buffer)


def test_fuzz_only_aws_errors_escape() -> None:
    rng = random.Random(20261122)
    seeds = _captured()
    outcomes = {"ok": 0, "error": 0}
    for iteration in range(600):
        request, signing = rng.choice(seeds)
        path, query, body = request.path, request.query_string, request.body
        roll = rng.random()
        if roll < 0.6:
            body = _mutate(rng, body)
        elif roll < 0.75:
            path = _mutate(rng, path.encode()).decode("latin-1")
        elif roll < 0.85:
            query = _mutate(rng, query.encode()).decode("latin-1")
        else:
            body = rng.randbytes(rng.randint(0, 64))
        headers = dict(request.headers)
        if rng.random() < 0.1 and "x-amz-target" in headers:
            headers["x-amz-target"] = _mutate(rng, headers["x-amz-target"].encode()).decode("latin-1")
        mutated = HttpRequest(request.method, path, query, headers, body)
        try:
            service, operation = route(mutated, signing if rng.random() < 0.9 else None)[:2]
            parse_request(service, operation, mutated)
            outcomes["ok"] += 1
        except AwsError as exc:
            assert 400 <= exc.status < 600, (iteration, exc)
            assert serialize_error(signing or "sts", None, exc, "r").status == exc.status or exc.status
            outcomes["error"] += 1
    assert outcomes["ok"] > 20 and outcomes["error"] > 200
