"""Provider results and AWS errors to HTTP responses, per the operation's output or error shape."""

from __future__ import annotations

import json
from typing import Any

from kennel.cloud.errors import AwsError, NotImplementedOperation
from kennel.cloud.protocol.codec import dumps, text_value, to_json
from kennel.cloud.protocol.messages import HttpResponse
from kennel.cloud.protocol.models import ServiceSpec, Shape, service_spec
from kennel.cloud.protocol.query import xml_error, xml_response

_EMPTY_BODY_STATUSES = frozenset({204, 304})


def serialize_response(
    service: str,
    operation: str,
    result: dict[str, Any] | None,
    request_id: str,
    *,
    protocol: str | None = None,
) -> HttpResponse:
    """The HTTP response for a provider's ``result`` (a dict shaped like the operation's output)."""
    spec = service_spec(service)
    op = spec.operation(operation)
    protocol = protocol or spec.protocol
    result = result or {}
    if protocol == "json":
        body = dumps(to_json(op.output, result)) if op.output is not None else b"{}"
        headers = {
            "x-amzn-RequestId": request_id,
            "Content-Type": f"application/x-amz-json-{spec.json_version}",
        }
        return HttpResponse(200, headers, body)
    if protocol == "query":
        headers = {"x-amzn-RequestId": request_id, "Content-Type": "text/xml"}
        return HttpResponse(200, headers, xml_response(spec, op, result, request_id))
    if protocol == "rest-json":
        return _rest_response(op.output, op.response_code, result, request_id)
    raise NotImplementedOperation(f"The {protocol} protocol of service {service} is not supported by Kennel.")


def _has_header(headers: dict[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def _raw_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    read = getattr(value, "read", None)
    if read is not None:
        return _raw_bytes(read())
    raise TypeError(f"a payload must be bytes, str or a readable object, not {type(value).__name__}")


def _rest_response(shape: Shape | None, status: int, result: dict[str, Any], request_id: str) -> HttpResponse:
    headers = {"x-amzn-RequestId": request_id}
    body = b""
    if shape is None:
        return HttpResponse(status, headers, body)
    for member in shape.located:
        value = result.get(member.name)
        if value is None:
            continue
        if member.location == "header":
            headers[member.wire] = text_value(member, value)
        elif member.location == "headers":
            headers.update({f"{member.wire}{key}": str(item) for key, item in value.items()})
        elif member.location == "statusCode":
            status = int(value)
    if shape.payload:
        member = shape.members[shape.payload]
        value = result.get(member.name)
        if member.shape.eventstream:
            raise NotImplementedOperation(
                f"Event-stream responses ({shape.name}) are not supported by Kennel."
            )
        if member.shape.type in ("blob", "string"):
            body = _raw_bytes(value) if value is not None else b""
            if not _has_header(headers, "content-type"):
                headers["Content-Type"] = "application/octet-stream"
        elif value is not None:
            body = dumps(to_json(member.shape, value))
            headers.setdefault("Content-Type", "application/json")
    elif shape.body_members and status not in _EMPTY_BODY_STATUSES:
        body = dumps(to_json(shape, result, shape.body_members))
        headers.setdefault("Content-Type", "application/json")
    return HttpResponse(status, headers, body)


def _spec_or_none(service: str) -> ServiceSpec | None:
    try:
        return service_spec(service)
    except AwsError:
        return None


def serialize_error(
    service: str, operation: str | None, error: AwsError, request_id: str, *, protocol: str | None = None
) -> HttpResponse:
    """The HTTP response for ``error``; where the service models its code, the model's status wins."""
    spec = _spec_or_none(service)
    protocol = protocol or (spec.protocol if spec is not None else "json")
    shape = spec.error_shape(error.code) if spec is not None else None
    status = shape.error_status if shape is not None and shape.error_status else error.status
    sender = (
        shape.sender_fault if shape is not None and shape.sender_fault is not None else error.sender_fault
    )
    headers = {"x-amzn-RequestId": request_id}
    if protocol == "query" and spec is not None:
        headers["Content-Type"] = "text/xml"
        body = xml_error(spec, error, bool(sender), shape, request_id)
    else:
        body = _json_error(error, shape, headers)
        json_version = spec.json_version if spec is not None else "1.1"
        headers["Content-Type"] = (
            "application/json" if protocol == "rest-json" else f"application/x-amz-json-{json_version}"
        )
        headers["x-amzn-ErrorType"] = error.code
        if spec is not None and spec.query_compatible:
            headers["x-amzn-query-error"] = f"{error.code};{'Sender' if sender else 'Receiver'}"
    headers.update(error.headers)
    return HttpResponse(status, headers, body)


def _json_error(error: AwsError, shape: Shape | None, headers: dict[str, str]) -> bytes:
    members = shape.members if shape is not None else {}
    message_key = "Message" if "Message" in members and "message" not in members else "message"
    tree: dict[str, Any] = {"__type": error.code, message_key: error.message}
    for name, value in error.fields.items():
        if value is None or name in ("message", "Message"):
            continue
        member = members.get(name)
        if member is None:
            tree[name] = value
        elif member.location == "header":
            headers[member.wire] = text_value(member, value)
        elif member.location is None:
            tree[member.wire] = to_json(member.shape, value)
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
