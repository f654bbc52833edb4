"""Requests to typed params: one entry point for every protocol, validation included.

json and json 1.0/1.1 read the whole input from the body; rest-json spreads it over the URI, the query
string, headers and a body or payload; query reads form fields (see ``query.py``). Whatever arrives,
the caller gets a dict shaped like the operation's input shape, or an :class:`AwsError` with a 4xx status.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

from kennel.cloud.errors import NotImplementedOperation, SerializationException
from kennel.cloud.protocol.codec import (
    WireTypeError,
    decode_json_body,
    from_json,
    from_text,
    split_header_list,
)
from kennel.cloud.protocol.messages import HttpRequest
from kennel.cloud.protocol.models import Member, Operation, Shape, service_spec
from kennel.cloud.protocol.query import parse_form
from kennel.cloud.protocol.router import UriTemplate, compile_template, form_pairs, query_pairs, wire_protocol
from kennel.cloud.protocol.validate import has_checks, problems, report


def parse_request(
    service: str,
    operation: str,
    request: HttpRequest,
    *,
    protocol: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict:
    """Typed, validated params of ``operation``. The gateway passes what routing already found (the
    protocol, a rest operation's URI labels) so nothing is looked up twice; without them (a caller that
    did not route) they are found here."""
    spec = service_spec(service)
    op = spec.operation(operation)
    protocol = protocol or wire_protocol(service, request)
    found: list[str] = []
    try:
        if protocol == "json":
            body = decode_json_body(request.body)
            params = from_json(op.input, body) if op.input is not None else {}
        elif protocol == "rest-json":
            params = _parse_rest(service, op, request, found, labels)
        elif protocol == "query":
            params = parse_form(op.input, form_pairs(request), found)
        else:
            raise NotImplementedOperation(
                f"The {protocol} protocol of service {service} is not supported by Kennel."
            )
        if op.input is not None and has_checks(op.input):
            found.extend(problems(op.input, params))
    except RecursionError:
        raise SerializationException("Request is nested too deeply") from None
    report(found, spec.validation_error(protocol))
    return params


@lru_cache(maxsize=1024)
def _template(service: str, operation: str) -> UriTemplate:
    op = service_spec(service).operation(operation)
    return compile_template(op.name, op.method, op.request_uri)[0]


def _decode_label(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise SerializationException("A URI path segment is not valid UTF-8 after percent-decoding") from None


def _text(member: Member | Shape, text: str, path: str, found: list[str], default_ts: str = "iso8601") -> Any:
    try:
        return from_text(member, text, default_ts)
    except WireTypeError as exc:
        found.append(f"Value '{text[:256]}' at '{path}' failed to satisfy constraint: {exc}")
        return None


def _parse_rest(
    service: str, op: Operation, request: HttpRequest, found: list[str], labels: dict[str, str] | None
) -> dict[str, Any]:
    shape = op.input
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    query: dict[str, list[str]] | None = None
    for member in shape.located:
        location = member.location
        value: Any = None
        if location == "uri":
            if labels is None:
                matched = _template(service, op.name).regex.fullmatch(request.path)
                names = _template(service, op.name).labels
                labels = dict(zip(names, matched.groups(), strict=True)) if matched else {}
            raw = labels.get(member.wire)
            if raw is not None:
                value = _text(member, _decode_label(raw), member.label, found)
        elif location == "querystring":
            if query is None:
                query = {}
                for key, item in query_pairs(request.query_string):
                    query.setdefault(key, []).append(item)
            value = _query_member(shape, member, query, found)
        elif location == "header":
            text = request.headers.get(member.wire)
            if text is not None:
                if member.shape.type == "list":
                    element = member.shape.member
                    items = [
                        _text(element, part, member.label, found, "rfc822")
                        for part in split_header_list(text)
                    ]  # type: ignore[arg-type]
                    value = [item for item in items if item is not None]
                else:
                    value = _text(member, text, member.label, found, "rfc822")
        elif location == "headers":
            prefix = member.wire.lower()
            value = {
                name[len(prefix) :]: text for name, text in request.headers.items() if name.startswith(prefix)
            }
            value = value or None
        if value is not None:
            params[member.name] = value
    if shape.payload:
        _payload(shape.members[shape.payload], request.body, params)
    elif shape.body_members and request.body:
        params.update(from_json(shape, decode_json_body(request.body)))
    return params


def _query_member(shape: Shape, member: Member, query: dict[str, list[str]], found: list[str]) -> Any:
    kind = member.shape.type
    if kind == "map":
        # A map bound to the query string takes every field no other member claims.
        claimed = {m.wire for m in shape.located if m.location == "querystring" and m is not member}
        inner = member.shape.value.shape  # type: ignore[union-attr]
        out: dict[str, Any] = {}
        for key, items in query.items():
            if key in claimed:
                continue
            if inner.type == "list":
                out[key] = [_text(inner.member, item, member.label, found) for item in items]  # type: ignore[arg-type]
            else:
                out[key] = _text(inner, items[0], member.label, found)
        return out or None
    items = query.get(member.wire)
    if items is None:
        return None
    if kind == "list":
        element = member.shape.member
        converted = (_text(element, item, member.label, found) for item in items)  # type: ignore[arg-type]
        return [item for item in converted if item is not None]
    return _text(member, items[0], member.label, found)


def _payload(member: Member, body: bytes, params: dict[str, Any]) -> None:
    kind = member.shape.type
    if kind == "blob":
        if body:
            params[member.name] = bytes(body)
    elif kind == "string":
        if body:
            try:
                params[member.name] = body.decode("utf-8")
            except UnicodeDecodeError:
                raise SerializationException("Request body is not valid UTF-8") from None
    else:
        # botocore sends "{}" for an absent structure payload, so an empty object counts as absent.
        tree = decode_json_body(body)
        if tree:
            params[member.name] = from_json(member.shape, tree)
