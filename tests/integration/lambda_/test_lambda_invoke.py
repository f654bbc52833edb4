"""Lambda functions really running: warm reuse, context, logs, errors, timeouts, memory, role credentials."""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.lambda_functions import REPORT, call, create, tail

# ----- invocations ----------------------------------------------------------------------------------


def test_warm_reuse_keeps_globals_and_tmp(lam, role) -> None:
    name = create(lam, role)
    first, body = call(lam, name, {"op": "count"}, LogType="Tail")
    assert body == {"count": 1}
    assert REPORT.match(tail(first)[-1]).group("init") is not None  # a cold start pays Init
    second, body = call(lam, name, {"op": "count"}, LogType="Tail")
    assert body == {"count": 2} and REPORT.match(tail(second)[-1]).group("init") is None
    one, two = call(lam, name, {"op": "tmp"})[1], call(lam, name, {"op": "tmp"})[1]
    assert (one["existed"], two["existed"]) == (False, True) and one["dir"] == two["dir"]
    assert one["dir"] == "/tmp"  # as on AWS: the sandbox gives each environment a /tmp of its own


def test_context_and_environment(cloud, lam, echo) -> None:
    response, body = call(lam, echo, {"op": "context"})
    assert body["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert (body["name"], body["version"], body["memory"]) == (echo, "$LATEST", "128")
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{echo}"
    assert body["group"] == f"/aws/lambda/{echo}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["stream"])
    assert 0 < body["remaining"] <= 3000
    env = body["env"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert (env["AWS_LAMBDA_FUNCTION_NAME"], env["AWS_LAMBDA_FUNCTION_VERSION"]) == (echo, "$LATEST")
    assert (env["_HANDLER"], env["TZ"], env["GREETING"]) == ("app.handler", ":UTC", "woof")
    assert env["AWS_ENDPOINT_URL"] == cloud.endpoint and env["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert env["AWS_SESSION_TOKEN"] and env["LAMBDA_TASK_ROOT"] and env["TMPDIR"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"


def test_tail_has_start_end_report(lam, echo) -> None:
    response, body = call(lam, echo, {"op": "print"}, LogType="Tail")
    rid = response["ResponseMetadata"]["RequestId"]
    assert body is None and response["StatusCode"] == 200 and response["ExecutedVersion"] == "$LATEST"
    lines = tail(response)
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert f"hello from {rid}" in lines
    assert lines[-2] == f"END RequestId: {rid}"
    report = REPORT.match(lines[-1])
    assert report is not None and report.group("id") == rid and report.group("size") == "128"


def test_unhandled_exception(lam, echo) -> None:
    response, body = call(lam, echo, {"op": "raise", "detail": 7}, LogType="Tail")
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "bad input: 7")
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert any("app.py" in frame and "in handler" in frame for frame in body["stackTrace"])
    assert any(line.startswith("[ERROR] ValueError: bad input: 7") for line in tail(response))
    assert call(lam, echo, {"op": "other"})[0].get("FunctionError") is None  # the environment survives


def test_init_failures(lam, role) -> None:
    missing = create(lam, role, Handler="nowhere.handler")
    response, body = call(lam, missing)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"] == "Unable to import module 'nowhere': No module named 'nowhere'"
    crashing = create(lam, role, Environment={"Variables": {"CRASH_IN_INIT": "1"}})
    response, body = call(lam, crashing, LogType="Tail")
    rid = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"] == f"RequestId: {rid} Error: Runtime exited with error: exit status 3"
    assert REPORT.match(tail(response)[-1]).group("status") == "error"


def test_timeout_kills_the_environment(lam, role) -> None:
    name = create(lam, role, Timeout=1)
    call(lam, name, {"op": "count"})
    response, body = call(lam, name, {"op": "sleep", "seconds": 5}, LogType="Tail")
    rid = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": f"RequestId: {rid} Error: Task timed out after 1.00 seconds",
                    "errorType": "Sandbox.Timedout"}  # fmt: skip
    lines = tail(response)
    assert any(line.endswith(f"{rid} Task timed out after 1.00 seconds") for line in lines)
    assert REPORT.match(lines[-1]).group("status") == "timeout"
    after, body = call(lam, name, {"op": "count"}, LogType="Tail")
    assert body == {"count": 1} and REPORT.match(tail(after)[-1]).group("init")  # a fresh environment


def test_memory_limit_is_enforced(lam, role) -> None:
    name = create(lam, role, MemorySize=128)
    response, body = call(lam, name, {"op": "memory", "mb": 200})
    assert response["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.OutOfMemory"
    assert call(lam, name, {"op": "memory", "mb": 16})[1] == 16 << 20


def test_runs_as_the_execution_role(cloud, lam, role) -> None:
    name = create(lam, role, Timeout=30, MemorySize=256)
    body = call(lam, name, {"op": "whoami"})[1]
    role_name = role.rsplit("/", 1)[-1]
    assert body["arn"] == f"arn:aws:sts::000000000000:assumed-role/{role_name}/{name}"
    assert body["denied"] == "AccessDenied"  # the role has no IAM permissions


def test_invocation_types_and_payload_limits(lam, echo) -> None:
    dry = lam.invoke(FunctionName=echo, InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    event = lam.invoke(FunctionName=echo, InvocationType="Event", Payload=b'{"op": "count"}')
    assert event["StatusCode"] == 202
    assert lam.invoke_async(FunctionName=echo, InvokeArgs=b'{"op": "count"}')["Status"] == 202
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName=echo, Payload=b"{not json")
    with pytest.raises(lam.exceptions.RequestTooLargeException) as big:
        lam.invoke(FunctionName=echo, Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName=echo, InvocationType="Event", Payload=b'"' + b"x" * (1024 * 1024) + b'"')
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=echo, Qualifier="nope")


def test_logs_reach_cloudwatch(cloud, lam, echo) -> None:
    logs = cloud.client("logs")
    _, body = call(lam, echo, {"op": "context"})
    stream = body["stream"]
    deadline = time.monotonic() + 10
    messages: list[str] = []
    while time.monotonic() < deadline:
        try:
            events = logs.get_log_events(logGroupName=f"/aws/lambda/{echo}", logStreamName=stream)["events"]
        except ClientError:
            events = []
        messages = [e["message"] for e in events]
        if any(m.startswith(f"END RequestId: {body['request_id']}") for m in messages):
            break
        time.sleep(0.2)
    assert f"START RequestId: {body['request_id']} Version: $LATEST" in messages
    assert any(REPORT.match(m) for m in messages)
