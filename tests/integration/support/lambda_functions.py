"""Helpers for the Lambda integration tests (this module has no tests): a handler, packages, clients.

One handler module drives most tests (``event["op"]`` picks the behaviour); every function runs in its
own sandboxed execution-environment process as its execution role. A sandbox cannot write where the
test can read, so what a function did is told by its payload or its log stream (``logged``).
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
import zipfile

import boto3
from botocore.config import Config

HANDLER = """
import json, os, sys, tempfile, time

COUNT = 0
ATTEMPTS = {}
if os.environ.get("CRASH_IN_INIT"):
    sys.exit(3)

ENV_KEYS = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "LAMBDA_TASK_ROOT", "_HANDLER", "TZ", "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_LAMBDA_LOG_GROUP_NAME", "GREETING", "TMPDIR"]


def handler(event, context):
    global COUNT
    COUNT += 1
    op = event.get("op")
    if op == "count":
        return {"count": COUNT}
    if op == "tmp":
        path = os.path.join(tempfile.gettempdir(), "marker")
        existed = os.path.exists(path)
        open(path, "a").close()
        return {"existed": existed, "dir": tempfile.gettempdir()}
    if op == "context":
        return {"request_id": context.aws_request_id, "name": context.function_name,
                "version": context.function_version, "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb, "group": context.log_group_name,
                "stream": context.log_stream_name, "remaining": context.get_remaining_time_in_millis(),
                "env": {key: os.environ.get(key) for key in ENV_KEYS}}
    if op == "slot":  # hold a slot for a while; the caller works out the overlap from the times
        started = time.time()
        time.sleep(event.get("seconds", 1))
        return {"id": context.aws_request_id, "start": started, "end": time.time()}
    if op == "flaky":  # fail the first event["fail"] attempts (counted in this warm environment)
        attempt = ATTEMPTS[event["tag"]] = ATTEMPTS.get(event["tag"], 0) + 1
        print("attempt", event["tag"], attempt)
        if attempt <= event.get("fail", 1):
            raise RuntimeError(f"attempt {attempt} fails")
        return attempt
    if op == "print":
        print("hello from", context.aws_request_id)
        return None
    if op == "raise":
        raise ValueError("bad input: " + str(event.get("detail")))
    if op == "sleep":
        time.sleep(event["seconds"])
        return "slept"
    if op == "memory":
        hog = bytearray(event["mb"] << 20)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(0.5)
        return len(hog)
    if op == "whoami":
        import boto3
        from botocore.exceptions import ClientError
        arn = boto3.client("sts").get_caller_identity()["Arn"]
        try:
            boto3.client("iam").list_users()
            denied = None
        except ClientError as exc:
            denied = exc.response["Error"]["Code"]
        return {"arn": arn, "denied": denied}
    return {"version": "v1", "event": event}
"""

REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: (?P<size>\d+) MB\tMax Memory Used: \d+ MB\t(?:Init Duration: (?P<init>\d+\.\d\d) ms\t)?"
    r"(?:Status: (?P<status>\w+)\t)?(?:Error Type: [\w.]+\t)?$"
)
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def package(source: str = HANDLER, module: str = "app.py") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(module, source)
    return buffer.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_role(cloud) -> str:
    """A role Lambda may assume, with no permissions of its own."""
    return cloud.client("iam").create_role(
        RoleName=unique("fn-role"), AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]


def lambda_client(cloud, key: str | None = None, secret: str | None = None):
    """No client-side retries: a throttle must reach the test as the 429 the gateway sent."""
    return boto3.session.Session().client(
        "lambda",
        endpoint_url=cloud.endpoint,
        region_name="us-east-1",
        aws_access_key_id=key or cloud.access_key_id,
        aws_secret_access_key=secret or cloud.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=32, read_timeout=120),
    )


def create(lam, role: str, name: str | None = None, **extra) -> str:
    """A function running HANDLER (``zip=`` another package); ``extra`` overrides CreateFunction's params."""
    name = name or unique("fn")
    code = {"ZipFile": extra.pop("zip", None) or package()}
    params = {"Runtime": "python3.11", "Handler": "app.handler", "Code": code, **extra}
    lam.create_function(FunctionName=name, Role=role, **params)
    return name


def call(lam, name: str, event: dict | None = None, **extra) -> tuple[dict, object]:
    """(response, decoded payload) of a synchronous invocation."""
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **extra)
    return response, json.loads(response["Payload"].read() or b"null")


def tail(response: dict) -> list[str]:
    return base64.b64decode(response["LogResult"]).decode().splitlines()


def logged(cloud, function: str, text: str) -> list[float]:
    """Times (s) of the function's log events that contain ``text``, oldest first."""
    logs = cloud.client("logs")
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{function}", filterPattern=f'"{text}"')
    except logs.exceptions.ResourceNotFoundException:
        return []
    return sorted(event["timestamp"] / 1000 for event in events["events"])


def overlap(slots: list[dict]) -> int:
    """The most ``slot`` invocations that were running at one moment."""
    return max(sum(1 for o in slots if o["start"] <= s["start"] < o["end"]) for s in slots)
