"""Routing (service and operation from the wire), URI templates, CloudWatch's extra protocols, and the
Java-regex translation the validator relies on."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from botocore.model import ServiceModel
from test_protocol_harness import Harness

from kennel.cloud.errors import (
    AwsError,
    InvalidAction,
    NotImplementedOperation,
    UnknownOperationException,
    error_class,
)
from kennel.cloud.protocol import (
    SERVICES,
    Headers,
    HttpRequest,
    iam_action_prefix,
    load_service,
    parse_request,
    preload,
    route,
    serialize_error,
    serialize_response,
    service_spec,
    wire_protocol,
)
from kennel.cloud.protocol.patterns import compile_java, translate
from kennel.cloud.protocol.router import compile_template
from kennel.cloud.protocol.validate import has_checks

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _get(path: str, query: str = "", method: str = "GET", **headers: str) -> HttpRequest:
    return HttpRequest(method, path, query, headers, b"")


def test_sagemaker_and_runtime_share_a_signing_name() -> None:
    control = HttpRequest("POST", "/", "", {"X-Amz-Target": "SageMaker.ListEndpoints"}, b"{}")
    assert route(control, "sagemaker")[:2] == ("sagemaker", "ListEndpoints")
    runtime = _get("/endpoints/dogs/invocations", method="POST")
    assert route(runtime, "sagemaker")[:2] == ("sagemaker-runtime", "InvokeEndpoint")
    assert (
        route(_get("/endpoints/dogs/async-invocations", method="POST"), "sagemaker")[1]
        == "InvokeEndpointAsync"
    )
    with pytest.raises(UnknownOperationException, match="sagemaker-runtime"):
        route(_get("/endpoints/dogs/invocations"), "sagemaker")  # GET is no runtime operation


@pytest.mark.parametrize(
    ("method", "path", "query", "operation"),
    [
        ("GET", "/2015-03-31/functions/", "", "ListFunctions"),
        ("GET", "/2015-03-31/functions", "MaxItems=5", "ListFunctions"),
        ("GET", "/2015-03-31/functions/dogs", "Qualifier=live", "GetFunction"),
        (
            "GET",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Adogs%3Alive",
            "",
            "GetFunction",
        ),
        ("GET", "/2015-03-31/functions/dogs/configuration", "", "GetFunctionConfiguration"),
        ("POST", "/2015-03-31/functions/dogs/invocations", "Qualifier=3", "Invoke"),
        ("GET", "/2015-03-31/functions/dogs/aliases/live", "", "GetAlias"),
        ("PUT", "/2015-03-31/functions/dogs/aliases/live", "", "UpdateAlias"),
        ("GET", "/2015-03-31/functions/dogs/aliases", "", "ListAliases"),
        ("PUT", "/2017-10-31/functions/dogs/concurrency", "", "PutFunctionConcurrency"),
        (
            "GET",
            "/2019-09-30/functions/dogs/provisioned-concurrency",
            "Qualifier=live",
            "GetProvisionedConcurrencyConfig",
        ),
        (
            "GET",
            "/2019-09-30/functions/dogs/provisioned-concurrency",
            "List=ALL",
            "ListProvisionedConcurrencyConfigs",
        ),
        (
            "GET",
            "/2019-09-30/functions/dogs/provisioned-concurrency",
            "List=ALL&Marker=m",
            "ListProvisionedConcurrencyConfigs",
        ),
        ("GET", "/2018-10-31/layers", "find=LayerVersion&Arn=arn", "GetLayerVersionByArn"),
        ("GET", "/2018-10-31/layers", "", "ListLayers"),
    ],
)
def test_lambda_uri_templates(method: str, path: str, query: str, operation: str) -> None:
    assert route(_get(path, query, method), "lambda")[:2] == ("lambda", operation)
    assert route(_get(path, query, method), None)[:2] == ("lambda", operation)


def test_a_route_carries_its_protocol_and_labels_to_parsing() -> None:
    request = _get("/2015-03-31/functions/fn/aliases/live")
    found = route(request, "lambda")
    assert found.protocol == "rest-json" and found.labels == {"FunctionName": "fn", "Name": "live"}
    # Parsing uses the labels routing matched; a route whose labels differ shows they are not re-matched.
    moved = found._replace(labels={"FunctionName": "other", "Name": "live"})
    params = parse_request("lambda", "GetAlias", request, protocol=moved.protocol, labels=moved.labels)
    assert params == {"FunctionName": "other", "Name": "live"}
    query = HttpRequest("POST", "/", "", FORM, b"Action=ListRoles&Version=2010-05-08")
    assert route(query, "iam") == ("iam", "ListRoles", "query", None)


def test_rest_labels_are_percent_decoded() -> None:
    request = _get("/2015-03-31/functions/my%20fn%3A%24LATEST/aliases/a%2Fb")
    assert route(request, "lambda")[:2] == ("lambda", "GetAlias")
    with pytest.raises(AwsError) as caught:
        parse_request("lambda", "GetAlias", request)
    assert "Value 'my fn:$LATEST' at 'functionName'" in caught.value.message  # decoded before validation


def test_greedy_labels_and_specificity() -> None:
    greedy, _ = compile_template("GetObject", "GET", "/{Bucket}/{Key+}")
    assert greedy.match("/b/dir/sub/file.txt", {}) == {"Bucket": "b", "Key": "dir/sub/file.txt"}
    assert greedy.match("/b", {}) is None
    uploads, uploads_rank = compile_template("ListParts", "GET", "/{Bucket}/{Key+}?uploadId")
    assert uploads.match("/b/k", {}) is None and uploads.match("/b/k", {"uploadId": "1"}) is not None
    _, literal_rank = compile_template("Special", "GET", "/things/special")
    _, label_rank = compile_template("Named", "GET", "/things/{Name}")
    assert literal_rank < label_rank and uploads_rank < compile_template("G", "GET", "/{Bucket}/{Key+}")[1]
    fixed, _ = compile_template("X", "POST", "/x?x-id=Thing")
    assert fixed.match("/x", {"x-id": "Thing"}) == {} and fixed.match("/x", {"x-id": "Other"}) is None


def test_inferring_the_service_without_a_signature() -> None:
    assert route(HttpRequest("POST", "/", "", {"x-amz-target": "Logs_20140328.GetLogEvents"}, b"{}"), None)[
        :2
    ] == ("logs", "GetLogEvents")
    target = {"X-Amz-Target": "AnyScaleFrontendService.DescribeScalingPolicies"}
    assert route(HttpRequest("POST", "/", "", target, b"{}"), None)[0] == "application-autoscaling"
    sts = HttpRequest("POST", "/", "", FORM, b"Action=GetCallerIdentity&Version=2011-06-15")
    assert route(sts, None)[:2] == ("sts", "GetCallerIdentity")
    assert route(HttpRequest("GET", "/", "Action=ListRoles&Version=2010-05-08", {}, b""), None)[:2] == (
        "iam",
        "ListRoles",
    )
    with pytest.raises(InvalidAction):
        route(HttpRequest("POST", "/", "", FORM, b"Action=ListRoles&Version=1999-01-01"), None)
    with pytest.raises(UnknownOperationException, match=r"Nope\.Op"):
        route(HttpRequest("POST", "/", "", {"X-Amz-Target": "Nope.Op"}, b"{}"), None)
    with pytest.raises(UnknownOperationException, match=r"GET /favicon\.ico"):
        route(_get("/favicon.ico"), None)


def test_unknown_signing_service() -> None:
    with pytest.raises(AwsError, match="'dynamodb'") as caught:
        route(
            HttpRequest("POST", "/", "", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, b"{}"), "dynamodb"
        )
    assert caught.value.status == 400
    with pytest.raises(AwsError, match="does not serve"):
        load_service("dynamodb")


def test_iam_action_prefixes_and_models() -> None:
    expected = {
        "sagemaker-runtime": "sagemaker",
        "sagemaker": "sagemaker",
        "cloudwatch": "cloudwatch",
        "logs": "logs",
        "lambda": "lambda",
        "iam": "iam",
        "sts": "sts",
        "application-autoscaling": "application-autoscaling",
    }
    assert {service: iam_action_prefix(service) for service in expected} == expected
    model = load_service("sagemaker")
    assert (
        isinstance(model, ServiceModel)
        and model is load_service("sagemaker")
        and "CreateEndpoint" in model.operation_names
    )


def test_cloudwatch_json_and_query_fallbacks() -> None:
    json_request = HttpRequest(
        "POST",
        "/",
        "",
        {
            "X-Amz-Target": "GraniteServiceVersion20100801.PutMetricData",
            "Content-Type": "application/x-amz-json-1.0",
        },
        json.dumps(
            {
                "Namespace": "Kennel",
                "MetricData": [
                    {
                        "MetricName": "Invocations",
                        "Value": 3.0,
                        "Timestamp": 1763800000,
                        "Unit": "Count",
                        "Dimensions": [{"Name": "EndpointName", "Value": "dogs"}],
                    }
                ],
            }
        ).encode(),
    )
    assert route(json_request, "monitoring")[:2] == ("cloudwatch", "PutMetricData")
    assert wire_protocol("cloudwatch", json_request) == "json"
    params = parse_request("cloudwatch", "PutMetricData", json_request)
    assert params["MetricData"][0]["Timestamp"].timestamp() == 1763800000
    query_body = (
        b"Action=GetMetricStatistics&Version=2010-08-01&Namespace=AWS%2FSageMaker&MetricName=Invocations"
        b"&StartTime=2026-11-22T10%3A00%3A00Z&EndTime=2026-11-22T11%3A00%3A00Z&Period=60"
        b"&Statistics.member.1=Sum&Statistics.member.2=Average"
        b"&Dimensions.member.1.Name=EndpointName&Dimensions.member.1.Value=dogs"
    )
    query_request = HttpRequest("POST", "/", "", FORM, query_body)
    assert route(query_request, "monitoring")[:2] == ("cloudwatch", "GetMetricStatistics")
    protocol = wire_protocol("cloudwatch", query_request)
    params = parse_request("cloudwatch", "GetMetricStatistics", query_request, protocol=protocol)
    assert params["Statistics"] == ["Sum", "Average"] and params["Period"] == 60
    assert params["Dimensions"] == [{"Name": "EndpointName", "Value": "dogs"}]
    result = {
        "Label": "Invocations",
        "Datapoints": [{"Sum": 3.0, "Unit": "Count", "Timestamp": params["StartTime"]}],
    }
    body = serialize_response("cloudwatch", "GetMetricStatistics", result, "r-1", protocol=protocol).body
    root = ET.fromstring(body)
    assert root.tag == "{http://monitoring.amazonaws.com/doc/2010-08-01/}GetMetricStatisticsResponse"
    assert b"<Datapoints><member><Timestamp>2026-11-22T10:00:00Z</Timestamp><Sum>3.0</Sum>" in body
    error = serialize_error(
        "cloudwatch", "PutMetricData", error_class("InvalidParameterValue")("bad"), "r", protocol="json"
    )
    assert error.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"
    assert error.headers["Content-Type"] == "application/x-amz-json-1.0"
    cbor = HttpRequest(
        "POST",
        "/service/GraniteServiceVersion20100801/operation/PutMetricData",
        "",
        {"Smithy-Protocol": "rpc-v2-cbor"},
        b"\xa0",
    )
    assert route(cbor, "monitoring")[:2] == ("cloudwatch", "PutMetricData")
    with pytest.raises(NotImplementedOperation, match="rpc-v2-cbor"):
        parse_request("cloudwatch", "PutMetricData", cbor)


def test_query_maps_and_flattened_shapes_parse() -> None:
    body = b"Action=SetAlarmState&Version=2010-08-01&AlarmName=a&StateValue=ALARM&StateReason=r"
    assert parse_request(
        "cloudwatch", "SetAlarmState", HttpRequest("POST", "/", "", FORM, body), protocol="query"
    ) == {"AlarmName": "a", "StateValue": "ALARM", "StateReason": "r"}
    tags = (
        b"Action=TagRole&Version=2010-05-08&RoleName=r&Tags.member.2.Key=b&Tags.member.2.Value=2"
        b"&Tags.member.1.Key=a&Tags.member.1.Value=1"
    )
    params = parse_request("iam", "TagRole", HttpRequest("POST", "/", "", FORM, tags))
    assert params["Tags"] == [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    empty = b"Action=UntagRole&Version=2010-05-08&RoleName=r&TagKeys="
    # "TagKeys=" is botocore's empty list: present (so no "must not be null"), just empty.
    assert parse_request("iam", "UntagRole", HttpRequest("POST", "/", "", FORM, empty))["TagKeys"] == []


def test_headers_are_case_insensitive() -> None:
    headers = Headers([("X-Amz-Target", "a"), ("x-amz-target", "b"), ("Content-Type", "c")])
    assert (
        headers["X-AMZ-TARGET"] == "a,b" and headers.get("content-type") == "c" and "CONTENT-TYPE" in headers
    )
    request = HttpRequest("POST", "/", "", {"X-AMZ-TARGET": "SageMaker.ListModels"}, b"{}")
    assert route(request, "sagemaker")[:2] == ("sagemaker", "ListModels")


def test_java_patterns_translate() -> None:
    assert translate(r"\A\S[\p{Print}]*\z") == r"\A\S[ -~]*\Z"
    assert compile_java(r"[\w-_]+").fullmatch("a-b_c")  # type: ignore[union-attr]
    assert compile_java(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*").fullmatch("Ünïcode 12 _.:/=+-@")  # type: ignore[union-attr]
    assert not compile_java(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*").fullmatch("semi;colon")  # type: ignore[union-attr]
    pairs = compile_java(r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*")
    assert pairs is not None and pairs.fullmatch("emoji 🐕\t") and not pairs.fullmatch("bell\x07")
    named = compile_java(r"(?<word>[a-z]+)-(?<!x)\d")
    assert named is not None and named.fullmatch("dog-1")
    assert compile_java(r"([\p{L}]*)${1,128}") is not None
    assert compile_java(r"\p{Nonsense}") is None  # unknown: skipped rather than rejecting every value


def test_clients_see_cloudwatch_query_errors_as_xml() -> None:
    response = serialize_error(
        "cloudwatch", None, error_class("InvalidParameterValue")("bad <x>"), "r", protocol="query"
    )
    assert b"<Code>InvalidParameterValue</Code><Message>bad &lt;x&gt;</Message>" in response.body


def test_harness_client_sees_sagemaker_route() -> None:
    harness = Harness("sagemaker")
    harness.call("list_endpoints", {"MaxResults": 5}, {"Endpoints": []})
    assert harness.routed == ("sagemaker", "ListEndpoints") and harness.params == {"MaxResults": 5}


def test_every_served_model_compiles_and_every_pattern_translates() -> None:
    preload(operations=True)
    for name in SERVICES:
        spec = service_spec(name)
        for operation in spec.operation_names:
            op = spec.operation(operation)
            if op.input is not None:
                has_checks(op.input)
        untranslated = [
            (shape_name, raw["pattern"])
            for shape_name, raw in spec.raw["shapes"].items()
            if "pattern" in raw and compile_java(raw["pattern"]) is None
        ]
        assert untranslated == [], name
