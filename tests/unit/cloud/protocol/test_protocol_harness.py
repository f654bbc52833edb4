"""Round trips through REAL botocore clients, shared by the protocol tests (this module has no tests).

A client's ``before-send`` event hands over the exact request botocore serialized; it goes through
``route`` and ``parse_request``, and the response comes from ``serialize_response`` (or
``serialize_error``) and is parsed by the same client. So one call checks both directions against
botocore's own serializer and parser, with nothing hand-made on the client side.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from kennel.cloud.errors import AwsError
from kennel.cloud.protocol import (
    HttpRequest,
    HttpResponse,
    parse_request,
    route,
    serialize_error,
    serialize_response,
)
from kennel.cloud.protocol.models import register_model

ENDPOINT = "http://127.0.0.1:4566"
REQUEST_ID = "b6f1c2d4-0000-4000-8000-kennel000001"
_SESSION = botocore.session.get_session()  # one loader cache for every client keeps the suite fast
_CLIENTS: dict[tuple[str, bool, int], Any] = {}
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")


class _Raw:
    """Just enough of urllib3's response for botocore: ``stream()`` and, for blob payloads, ``read()``."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def stream(self, *_: Any, **__: Any) -> Iterator[bytes]:
        yield self._buffer.read()

    def read(self, amt: int | None = None, *_: Any, **__: Any) -> bytes:
        return self._buffer.read(amt)

    def close(self) -> None:
        pass


def to_http_request(prepared: Any) -> HttpRequest:
    url = urlsplit(prepared.url)
    body = prepared.body
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
    elif hasattr(body, "read"):
        body = body.read()
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    return HttpRequest(prepared.method, url.path, url.query, headers, bytes(body))


def signing_name(request: HttpRequest) -> str | None:
    found = _SCOPE.search(request.headers.get("authorization") or "")
    return found.group(1) if found else None


@dataclass
class Harness:
    """One client of ``service`` whose requests never leave the process."""

    service: str
    validate_client_side: bool = True
    session: Any = None  # a botocore session of its own, e.g. one that knows extra models
    result: dict[str, Any] | None = None
    error: AwsError | None = None
    routed: tuple[str, str] | None = None
    params: dict[str, Any] | None = None
    request: HttpRequest | None = None
    response: HttpResponse | None = None
    seen: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = client(self.service, self.validate_client_side, self.session)

    def call(
        self,
        method: str,
        params: dict[str, Any],
        result: dict[str, Any] | None = None,
        error: AwsError | None = None,
    ) -> dict[str, Any]:
        self.result, self.error = result, error
        handler = self._handle
        self.client.meta.events.register("before-send", handler)
        try:
            return getattr(self.client, method)(**params)
        finally:
            self.client.meta.events.unregister("before-send", handler)

    def _handle(self, request: Any, **_: Any) -> AWSResponse:
        http = self.request = to_http_request(request)
        self.params = None
        service = operation = None
        try:
            found = route(http, signing_name(http))
            service, operation = self.routed = found[:2]
            self.params = parse_request(
                service, operation, http, protocol=found.protocol, labels=found.labels
            )
            if self.error is not None:
                raise self.error
            response = serialize_response(service, operation, self.result, REQUEST_ID)
        except AwsError as exc:
            response = serialize_error(service or self.service, operation, exc, REQUEST_ID)
        self.response = response
        return AWSResponse(request.url, response.status, response.headers, _Raw(response.body))


def client(service: str, validate: bool = True, session: Any = None) -> Any:
    key = (service, validate, id(session))
    if key not in _CLIENTS:
        config = Config(retries={"total_max_attempts": 1}, parameter_validation=validate)
        _CLIENTS[key] = (session or _SESSION).create_client(
            service,
            region_name="us-east-1",
            endpoint_url=ENDPOINT,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
            config=config,
        )
    return _CLIENTS[key]


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    """A client's answer without botocore's ``ResponseMetadata`` (and with streaming bodies read)."""
    out = {}
    for key, value in response.items():
        if key == "ResponseMetadata":
            continue
        out[key] = value.read() if hasattr(value, "read") else value
    return out


# --- shared fixtures --------------------------------------------------------------------------------

T0 = datetime(2026, 11, 22, 10, 30, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 22, 10, 45, 12, 250000, tzinfo=UTC)
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sagemaker:*", "s3:Get*"],
                "Resource": "arn:aws:s3:::b/k+v=1&x",
                "Condition": {"StringLike": {"aws:userid": "AID*é"}},
            }
        ],
    }
)
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
            }
        ],
    }
)
ROLE = {
    "Path": "/service-role/",
    "RoleName": "SageMakerRole",
    "RoleId": "AROAKENNEL0000000001",
    "Arn": "arn:aws:iam::123456789012:role/service-role/SageMakerRole",
    "CreateDate": T0,
    "AssumeRolePolicyDocument": TRUST,
    "MaxSessionDuration": 3600,
    "Tags": [{"Key": "team", "Value": "dogs"}, {"Key": "env", "Value": "dev test@1"}],
}


def as_botocore_returns(value: Any) -> Any:
    """botocore hands IAM policy documents back as dicts (it unquotes and parses them)."""
    if isinstance(value, dict):
        return {
            k: json.loads(v)
            if k.endswith("PolicyDocument") and isinstance(v, str)
            else as_botocore_returns(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [as_botocore_returns(item) for item in value]
    return value


# --- synthetic models -------------------------------------------------------------------------------

API = "2026-01-01"


def meta(name: str, protocol: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "endpointPrefix": name,
        "protocol": protocol,
        "protocols": [protocol],
        "serviceId": name.replace("-", " ").title(),
        "signatureVersion": "v4",
        "signingName": name,
        "uid": f"{name}-{API}",
        **extra,
    }


def shape(kind: str, **traits: Any) -> dict[str, Any]:
    return {"type": kind, **traits}


RULESET = {
    "version": "1.0",
    "parameters": {
        "Endpoint": {"builtIn": "SDK::Endpoint", "required": False, "type": "String"},
        "Region": {"builtIn": "AWS::Region", "required": False, "type": "String"},
    },
    "rules": [
        {
            "conditions": [{"fn": "isSet", "argv": [{"ref": "Endpoint"}]}],
            "endpoint": {"url": {"ref": "Endpoint"}},
            "type": "endpoint",
        },
        {"conditions": [], "error": "Kennel's test services need an endpoint_url", "type": "error"},
    ],
}


def model_session(root: Path, models: Any) -> Any:
    """A botocore session that also knows ``models`` (written under ``root``), registered with Kennel too."""
    for model in models:
        name = model["metadata"]["endpointPrefix"]
        folder = root / name / API
        folder.mkdir(parents=True)
        (folder / "service-2.json").write_text(json.dumps(model))
        (folder / "endpoint-rule-set-1.json").write_text(json.dumps(RULESET))
        register_model(name, model)
    session = botocore.session.Session()
    session.get_component("data_loader").search_paths.insert(0, str(root))
    return session
