"""Raw signed HTTP for the front-door tests: botocore's own signers on an ``AWSRequest``, sent as is.

boto3 would refuse or repair most of what these tests send (a repeated query parameter, a dot segment,
a body left unsigned), so the request is built by hand and signed by botocore's real signer classes.
"""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


def send(request: AWSRequest, *, timeout: float = 15) -> tuple[int, dict[str, str], bytes]:
    """Send exactly the signed request (path and query byte for byte); raises on a client timeout."""
    url = urlsplit(request.url)
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.putrequest(request.method, url.path + (f"?{url.query}" if url.query else ""),
                        skip_accept_encoding=True)  # fmt: skip
        for name, value in request.headers.items():
            conn.putheader(name, value)
        if "content-length" not in {name.lower() for name in request.headers}:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def signed(
    cloud,
    service: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str = REGION,
    signer: type[SigV4Auth] | None = None,
) -> AWSRequest:
    """``path`` may carry a query string; it is sent exactly as given, after signing."""
    request = AWSRequest(method=method, url=cloud.endpoint + path, data=body, headers=dict(headers or {}))
    credentials = Credentials(key or cloud.access_key_id, secret or cloud.secret_access_key)
    chosen = signer or (S3SigV4Auth if service == "s3" else SigV4Auth)
    chosen(credentials, service, region).add_auth(request)
    return request


def form(cloud, service: str, fields: str, **kwargs) -> tuple[int, bytes]:
    """A query-protocol POST (IAM, STS) with ``fields`` as the form body."""
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    status, _, payload = send(
        signed(cloud, service, "POST", "/", body=fields.encode(), headers=headers, **kwargs)
    )
    return status, payload


def json_call(cloud, service: str, target: str, body: bytes, *, version: str = "1.1", **kwargs):
    headers = {"X-Amz-Target": target, "Content-Type": f"application/x-amz-json-{version}"}
    status, _, payload = send(signed(cloud, service, "POST", "/", body=body, headers=headers, **kwargs))
    return status, payload


def make_user(cloud, policy: dict) -> tuple[str, str, str]:
    iam = cloud.client("iam")
    name = f"door-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=name)["AccessKey"]
    return name, created["AccessKeyId"], created["SecretAccessKey"]


def allow(actions: list[str], resources: list[str], condition: dict | None = None) -> dict:
    statement: dict = {"Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}
