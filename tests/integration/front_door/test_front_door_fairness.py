"""Slow clients and fair sharing at the front door, against a live gateway with shortened limits.

Slow clients are raw sockets (nothing, half the headers, headers one byte at a time, half a body):
the gateway must close each within its configured deadline, answering AWS's ``RequestTimeout`` where
AWS does. Fair sharing: while a slow endpoint is hammered by many concurrent InvokeEndpoint calls
(from another process, so the two clients do not share a GIL), GetCallerIdentity and GetUser from
another principal stay fast, and the calls the endpoint cannot take are answered with
``ServiceUnavailable`` at once instead of queueing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.conftest import LiveCloud, start_gateway, stop_gateway
from tests.integration.support.endpoints import serve

HEADER_S, BODY_S, IDLE_S = 1.5, 1.5, 1.0
LIMITS = {
    "KENNEL_HEADER_TIMEOUT": str(HEADER_S),
    "KENNEL_BODY_TIMEOUT": str(BODY_S),
    "KENNEL_KEEP_ALIVE_TIMEOUT": str(IDLE_S),
    "KENNEL_MAX_CONNECTIONS_PER_CLIENT": "96",
    "KENNEL_DATA_PLANE_THREADS": "8",
    "KENNEL_DATA_PLANE_QUEUE": "8",
    "KENNEL_ENDPOINT_MAX_IN_FLIGHT": "4",
}
HAMMER_THREADS, HAMMER_S = 48, 7.0
SLACK_S = 1.5  # a loaded two-core machine may be late to close; never early
# Control-plane p99 while the data plane is saturated. The target is 50 ms; CI machines with two cores
# shared by the gateway, a model server, the hammering process and this one get a looser bound.
P99_BOUND_MS = float(os.environ.get("KENNEL_FAIRNESS_P99_MS", "150"))

SLOW_MODEL = """
import time


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    time.sleep(float(body or b"0.5"))
    return b"{}", "application/json"
"""

# Many concurrent InvokeEndpoint callers, each with its own client and connection, calling back to back
# for a bounded time; prints one JSON line: outcomes by error code, and the slowest call.
HAMMER = """
import json, sys, threading, time
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

endpoint, key, secret, name, threads, seconds = sys.argv[1:7]
config = Config(retries={"max_attempts": 1}, read_timeout=20, connect_timeout=5,
                max_pool_connections=int(threads))
client = boto3.session.Session().client(  # one client, thread-safe: 48 clients would take seconds to build
    "sagemaker-runtime", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id=key, aws_secret_access_key=secret, config=config)
outcomes, slowest, lock = {}, [0.0], threading.Lock()
stop = time.monotonic() + float(seconds)

def call():
    client.invoke_endpoint(EndpointName=name, Body=b"0.5", ContentType="text/plain")["Body"].read()

def worker():
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            try:
                call()
            except ConnectionClosedError:
                # The server closed this pooled connection for idleness just as it was reused: every AWS
                # SDK retries that at once (it is not an answer), so do the same, once, and count it.
                with lock:
                    outcomes["reused-closed"] = outcomes.get("reused-closed", 0) + 1
                call()
            code = "ok"
        except ClientError as exc:
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            code = f"{exc.response['Error']['Code']}:{status}"
        except ReadTimeoutError:
            code = "read-timeout"
        except Exception as exc:
            code = type(exc).__name__
        with lock:
            outcomes[code] = outcomes.get(code, 0) + 1
            slowest[0] = max(slowest[0], time.monotonic() - started)
        if code != "ok":
            time.sleep(0.05)  # a throttled caller comes back at once, without the SDK's backoff

workers = [threading.Thread(target=worker) for _ in range(int(threads))]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps({"outcomes": outcomes, "slowest_s": slowest[0]}))
"""


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    live = start_gateway(tmp_path_factory.mktemp("front-door") / "state", extra_env=LIMITS)
    yield live
    stop_gateway(live)


def _port(cloud: LiveCloud) -> int:
    return int(cloud.endpoint.rsplit(":", 1)[1])


def _held_open(cloud: LiveCloud, payload: bytes, *, drip_s: float = 0.0) -> tuple[float, bytes]:
    """Send ``payload`` (a byte at a time every ``drip_s`` if set), then wait until the server closes:
    (seconds from connecting to the close, everything it answered)."""
    with socket.create_connection(("127.0.0.1", _port(cloud)), timeout=10) as sock:
        started = time.monotonic()
        if drip_s:
            sock.settimeout(drip_s)
            for byte in payload:
                try:
                    sock.sendall(bytes([byte]))
                    if sock.recv(65536) == b"":
                        break  # closed while we were still trickling
                except TimeoutError:
                    continue
                except OSError:
                    break
            sock.settimeout(10)
        else:
            sock.sendall(payload)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        return time.monotonic() - started, answer


def _within(elapsed: float, limit: float) -> bool:
    return limit - 0.2 <= elapsed <= limit + SLACK_S


S3_SCOPE = "Credential=AKIAEXAMPLE/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
STS_SCOPE = "Credential=AKIAEXAMPLE/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00"


def test_a_connection_that_sends_nothing_is_closed_when_idle(door: LiveCloud) -> None:
    elapsed, answer = _held_open(door, b"")
    assert answer == b"" and _within(elapsed, IDLE_S), elapsed


def test_unfinished_headers_are_cut_off_even_when_they_trickle(door: LiveCloud) -> None:
    elapsed, answer = _held_open(door, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ")
    assert answer == b"" and _within(elapsed, HEADER_S), elapsed
    # One byte every 0.3 s does not push the deadline back (it is not an idle timer).
    elapsed, answer = _held_open(door, b"GET /_kennel/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" * 3, drip_s=0.3)
    assert _within(elapsed, HEADER_S), elapsed


def test_an_unfinished_body_gets_request_timeout_then_the_close(door: LiveCloud) -> None:
    json_head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Authorization: AWS4-HMAC-SHA256 {STS_SCOPE}\r\nContent-Length: 100\r\n\r\nAction=Get"
    )
    elapsed, answer = _held_open(door, json_head.encode())
    assert _within(elapsed, BODY_S), elapsed
    assert answer.startswith(b"HTTP/1.1 400 ") and b"connection: close" in answer.lower()
    assert b'"RequestTimeout"' in answer and b"not read from or written to within the timeout" in answer
    s3_head = (
        "PUT /fairness-bucket/key HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: AWS4-HMAC-SHA256 {S3_SCOPE}\r\n"
        "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nContent-Length: 1000\r\n\r\n" + "x" * 300
    )
    elapsed, answer = _held_open(door, s3_head.encode())
    assert _within(elapsed, BODY_S), elapsed
    assert answer.startswith(b"HTTP/1.1 400 ") and b"<Code>RequestTimeout</Code>" in answer


def test_an_idle_keep_alive_connection_is_closed_after_its_answer(door: LiveCloud) -> None:
    elapsed, answer = _held_open(door, b"GET /_kennel/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and _within(elapsed, IDLE_S), elapsed


def test_connections_per_client_address_are_capped(door: LiveCloud) -> None:
    time.sleep(IDLE_S + 0.5)  # earlier tests' pooled client connections have been closed by now
    held: list[socket.socket] = []
    try:
        refused = None
        for _ in range(int(LIMITS["KENNEL_MAX_CONNECTIONS_PER_CLIENT"]) + 1):
            sock = socket.create_connection(("127.0.0.1", _port(door)), timeout=5)
            held.append(sock)
        sock.settimeout(2)
        with contextlib.suppress(TimeoutError):
            refused = sock.recv(4096)
        assert refused is not None and refused.startswith(b"HTTP/1.1 503 "), refused
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert door.client("sts").get_caller_identity()["Account"] == "000000000000"  # room again


# --- fair sharing ------------------------------------------------------------------------------------


def _half_sent(cloud: LiveCloud, path: str, service: str) -> socket.socket:
    """A data-plane request whose body never finishes: it holds its admission until the body timeout."""
    scope = STS_SCOPE.replace("/sts/", f"/{service}/")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 {scope}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    sock = socket.create_connection(("127.0.0.1", _port(cloud)), timeout=5)
    sock.sendall(head.encode())
    return sock


def test_each_data_plane_kind_admits_a_bounded_number_and_throttles_the_rest(door: LiveCloud) -> None:
    limit = int(LIMITS["KENNEL_DATA_PLANE_THREADS"]) + int(LIMITS["KENNEL_DATA_PLANE_QUEUE"])
    # Clients first: building one takes longer than the holders below may hold (the body timeout).
    runtime, functions, sts = door.client("sagemaker-runtime"), door.client("lambda"), door.client("sts")
    held = [_half_sent(door, "/endpoints/held/invocations", "sagemaker") for _ in range(limit)]
    held += [_half_sent(door, "/2015-03-31/functions/held/invocations", "lambda") for _ in range(limit)]
    try:
        time.sleep(0.3)
        health = _health(door)
        assert {"endpoints", "functions"} <= set(health["saturated"]) and health["status"] == "saturated"
        assert health["planes"]["endpoints"]["admitted"] == limit
        with pytest.raises(ClientError) as refused:
            runtime.invoke_endpoint(EndpointName="held", Body=b"{}")
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
            "ServiceUnavailable",
            503,
        )
        with pytest.raises(ClientError) as refused:
            functions.invoke(FunctionName="held", Payload=b"{}")
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
            "TooManyRequestsException",
            429,
        )
        assert error["Reason"] == "ConcurrentInvocationLimitExceeded"
        # The control plane has its own threads and no such limit.
        assert sts.get_caller_identity()["Account"] == "000000000000"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)  # the held requests gave their places back when their clients left
    planes = _health(door)["planes"]
    assert planes["endpoints"]["admitted"] == planes["functions"]["admitted"] == 0
    assert planes["endpoints"]["rejected"] >= 1 and planes["functions"]["rejected"] >= 1


def _slow_endpoint(cloud: LiveCloud, root: Path) -> str:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(SLOW_MODEL)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        tar.add(root / "code", arcname="code")
    sm = cloud.client("sagemaker")
    name = f"slow-{uuid.uuid4().hex[:6]}"
    environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    container = {"ModelDataUrl": str(root / "model.tar.gz"), "Environment": environment}
    return serve(sm, name, container, weight=1.0, attempts=90)


def _prober(cloud: LiveCloud) -> tuple[str, str, str]:
    """Another principal: a user allowed to read itself."""
    iam = cloud.client("iam")
    user = f"prober-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="self", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return user, key["AccessKeyId"], key["SecretAccessKey"]


def _probe(cloud: LiveCloud, key: str, secret: str, seconds: float) -> list[float]:
    """GetCallerIdentity and GetUser in turn, paced, for ``seconds``: client-observed latencies in ms."""
    sts = cloud.client("sts", key=key, secret=secret)
    iam = cloud.client("iam", key=key, secret=secret)
    latencies = []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        for call in (sts.get_caller_identity, iam.get_user):
            started = time.perf_counter()
            call()
            latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _health(cloud: LiveCloud) -> dict:
    with urllib.request.urlopen(cloud.endpoint + "/_kennel/health", timeout=5) as response:
        return json.loads(response.read())


def test_a_saturated_endpoint_does_not_starve_the_control_plane(
    door: LiveCloud, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    name = _slow_endpoint(door, door.state_dir.parent / f"model-{uuid.uuid4().hex[:6]}")  # an allowed dir
    _, key, secret = _prober(door)
    quiet = _probe(door, key, secret, 1.0)
    script = tmp_path / "hammer.py"
    script.write_text(textwrap.dedent(HAMMER))
    hammer = subprocess.Popen(
        [
            sys.executable,
            str(script),
            door.endpoint,
            door.access_key_id,
            door.secret_access_key,
            name,
            str(HAMMER_THREADS),
            str(HAMMER_S),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # the callers are connected and the endpoint is full
        seen: list[dict] = []

        def sample() -> None:
            for _ in range(8):
                seen.append(_health(door))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        loaded = _probe(door, key, secret, 4.0)
        sampler.join(timeout=10)
        out, _ = hammer.communicate(timeout=40)
    finally:
        if hammer.poll() is None:
            hammer.kill()
    report = json.loads(out.strip().splitlines()[-1])
    outcomes = report["outcomes"]
    with capsys.disabled():
        print(
            f"\ncontrol plane p99: {_p99(quiet):.1f} ms quiet, {_p99(loaded):.1f} ms while saturated "
            f"(p50 {sorted(loaded)[len(loaded) // 2]:.1f} ms, {len(loaded)} calls); hammer: {outcomes}, "
            f"slowest {report['slowest_s']:.2f} s"
        )
    # Overload is answered with SageMaker's error, at once, never with a hang or anything else.
    assert set(outcomes) <= {"ok", "ServiceUnavailable:503", "reused-closed"}, outcomes
    assert outcomes.get("reused-closed", 0) <= 0.05 * sum(outcomes.values()), outcomes
    assert outcomes.get("ok", 0) >= 8 and outcomes.get("ServiceUnavailable:503", 0) >= 48, outcomes
    assert report["slowest_s"] < 10, report
    # The endpoint plane said so while it happened; the control plane was never the one saturated.
    endpoints = [sample["planes"]["endpoints"] for sample in seen]
    assert endpoints and max(s["admitted"] for s in endpoints) >= 4
    assert all("control" not in sample["saturated"] for sample in seen)
    assert _p99(loaded) <= P99_BOUND_MS, sorted(loaded)[-5:]
