"""Malformed requests: always a 4xx with an AWS-shaped body, never a 5xx, and the gateway stays up."""

from __future__ import annotations

import contextlib
import http.client
import random
from urllib.parse import urlsplit

import botocore.awsrequest

from kennel.cloud import server


def _raw(
    cloud, method: str, path: str, headers: dict[str, str] | list[tuple[str, str]], body: bytes
) -> tuple[int, bytes]:
    url = urlsplit(cloud.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        items = headers.items() if isinstance(headers, dict) else headers
        for name, value in items:
            conn.putheader(name, value)
        if not any(n.lower() == "content-length" for n, _ in items):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _signed(cloud, service: str, method: str, **kwargs) -> botocore.awsrequest.AWSPreparedRequest:
    captured = {}

    def grab(request, **_):
        captured["request"] = request
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, None)

    client = cloud.client(service)
    client.meta.events.register("before-send", grab)
    with contextlib.suppress(Exception):  # the fake response does not parse; only the request matters
        getattr(client, method)(**kwargs)
    return captured["request"]


def test_malformed_requests_get_4xx(cloud) -> None:
    cases = [
        (
            "POST",
            "/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=ListUsers&Version=2010-05-08",
        ),
        ("POST", "/", {"Authorization": "AWS4-HMAC-SHA256 Credential=garbage"}, b"Action=ListUsers"),
        ("POST", "/", {"Authorization": "Bearer abc", "X-Amz-Date": "20260101T000000Z"}, b""),
        (
            "POST",
            "/",
            {"X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"},
            b"{not json",
        ),
        ("GET", "/no/such/thing", {}, b""),
        (
            "PUT",
            "/2015-03-31/functions/x/invocations",
            {"Authorization": "AWS4-HMAC-SHA256 Credential=A/2026/x"},
            b"\xff\xfe",
        ),
        (
            "POST",
            "/",
            [("Authorization", "AWS4-HMAC-SHA256 a=b"), ("Authorization", "AWS4-HMAC-SHA256 c=d")],
            b"",
        ),
    ]
    for method, path, headers, body in cases:
        status, payload = _raw(cloud, method, path, headers, body)
        assert 400 <= status < 500, (path, headers, status, payload[:200])
    assert server.healthy(int(urlsplit(cloud.endpoint).port))


def test_tampered_and_truncated_signatures(cloud) -> None:
    request = _signed(cloud, "iam", "list_users")
    path = urlsplit(request.url).path or "/"
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
    body = request.body if isinstance(request.body, bytes) else request.body.encode()
    assert _raw(cloud, "POST", path, headers, body)[0] == 200
    auth = headers["Authorization"]
    for broken in (
        auth[:-10],
        auth.replace("Signature=", "Signature=0"),
        auth.replace("SignedHeaders=", "SignedHeaders=x;"),
    ):
        status, payload = _raw(cloud, "POST", path, {**headers, "Authorization": broken}, body)
        assert status in (400, 403), (broken, status)
        assert b"<Code>" in payload
    unsized = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    status, _ = _raw(cloud, "POST", path, unsized, body + b"&Path=%2Fx%2F")
    assert status == 403


def test_oversized_body_is_refused_early(cloud) -> None:
    status, payload = _raw(cloud, "POST", "/", {"Content-Length": str(10**10)}, b"")
    assert status == 413 and b"RequestEntityTooLarge" in payload


def _sign(cloud, service: str, headers: dict[str, str], body: bytes, path: str = "/") -> dict[str, str]:
    """Sign an arbitrary body with botocore's own SigV4 signer, so the garbage reaches the parser."""
    from botocore.auth import SigV4Auth
    from botocore.credentials import Credentials

    request = botocore.awsrequest.AWSRequest("POST", cloud.endpoint + path, data=body, headers=headers)
    SigV4Auth(Credentials(cloud.access_key_id, cloud.secret_access_key), service, "us-east-1").add_auth(
        request
    )
    return dict(request.headers.items())


def test_fuzzed_bodies_never_5xx(cloud) -> None:
    rng = random.Random(7)
    seeds = [
        (
            "sagemaker",
            {"X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"},
            b'{"MaxResults": 5, "NameContains": "dogs"}',
        ),
        (
            "iam",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=CreateUser&UserName=fuzz&Path=%2F&Version=2010-05-08",
        ),
        (
            "sts",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A000000000000%3Arole%2Fx&RoleSessionName=s&Version=2011-06-15",
        ),
    ]
    for i in range(200):
        service, headers, seed = rng.choice(seeds)
        body = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            if op < 0.4 and body:
                body[rng.randrange(len(body))] = rng.randrange(256)
            elif op < 0.7:
                body.insert(rng.randrange(len(body) + 1), rng.randrange(256))
            elif body:
                del body[rng.randrange(len(body))]
        status, payload = _raw(cloud, "POST", "/", _sign(cloud, service, headers, bytes(body)), bytes(body))
        assert status < 500, (i, service, bytes(body), status, payload[:300])
    assert cloud.client("sts").get_caller_identity()["Account"] == "000000000000"
