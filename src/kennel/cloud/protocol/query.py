"""The AWS query protocol (IAM, STS; CloudWatch's fallback): form fields in, XML out.

Request fields flatten the input shape into dotted names: ``Tags.member.1.Key``, maps as
``Attributes.entry.1.key``/``.value``, flattened lists as ``Name.1``, an empty list as ``Name=``.
Responses are ``<OpResponse><OpResult>…</OpResult><ResponseMetadata>…`` documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from kennel.cloud.errors import AwsError
from kennel.cloud.protocol.codec import WireTypeError, b64encode, from_text, iso8601, text_value
from kennel.cloud.protocol.models import Member, Operation, ServiceSpec, Shape

_LEAF = ""  # key of a node's own text: no form field name segment is empty after splitting on "."


def _tree(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for name, value in pairs:
        node = root
        for segment in name.split("."):
            if not segment:
                break
            node = node.setdefault(segment, {})
        else:
            node[_LEAF] = value
    return root


def parse_form(shape: Shape | None, pairs: Iterable[tuple[str, str]], problems: list[str]) -> dict[str, Any]:
    """Typed params from query-protocol fields; values of the wrong type are appended to ``problems``."""
    if shape is None:
        return {}
    return _struct(shape, _tree(pairs), "", problems)


def _struct(shape: Shape, node: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for member in shape.members.values():
        name = member.wire
        if member.shape.type == "list" and member.flattened and member.shape.member.location_name:  # type: ignore[union-attr]
            name = member.shape.member.location_name  # type: ignore[union-attr]
        child = node.get(name)
        if child is not None:
            label = f"{path}.{member.label}" if path else member.label
            value = _value(member, child, label, problems)
            if value is not None:
                out[member.name] = value
    return out


# A form holds at most 10,000 fields (router._MAX_FORM_FIELDS), so no real list index has more digits
# than this; checking the length first keeps int() away from 4,300-digit numbers (a ValueError, a 500).
_MAX_INDEX_DIGITS = 6


def _indexed(node: dict[str, Any], path: str, problems: list[str]) -> list[dict[str, Any]]:
    items = []
    for key, child in node.items():
        if not (key.isascii() and key.isdigit()):
            continue
        if len(key) > _MAX_INDEX_DIGITS:
            shown = key if len(key) <= 32 else f"{key[:32]}..."
            problems.append(
                f"Value '{shown}' at '{path}' failed to satisfy constraint: "
                f"Member must be a list index of at most {_MAX_INDEX_DIGITS} digits"
            )
            continue
        items.append((int(key), child))
    return [child for _, child in sorted(items, key=lambda item: item[0])]


def _value(member: Member, node: dict[str, Any], path: str, problems: list[str]) -> Any:
    shape = member.shape
    kind = shape.type
    if kind == "structure":
        return _struct(shape, node, path, problems)
    if kind == "list":
        element: Member = shape.member  # type: ignore[assignment]
        holder = node if member.flattened else node.get(element.location_name or "member")
        if holder is None:
            return [] if node.get(_LEAF) == "" else None
        values = (
            _value(element, child, f"{path}.{i}.member", problems)
            for i, child in enumerate(_indexed(holder, path, problems), 1)
        )
        return [value for value in values if value is not None]
    if kind == "map":
        holder = node if member.flattened else node.get("entry")
        if holder is None:
            return {} if node.get(_LEAF) == "" else None
        key_name = shape.key.location_name or "key"  # type: ignore[union-attr]
        value_name = shape.value.location_name or "value"  # type: ignore[union-attr]
        out: dict[str, Any] = {}
        for entry in _indexed(holder, path, problems):
            key = entry.get(key_name, {}).get(_LEAF)
            raw = entry.get(value_name)
            if key is not None and raw is not None:
                value = _value(shape.value, raw, f"{path}.{key}", problems)  # type: ignore[arg-type]
                if value is not None:
                    out[key] = value
        return out
    text = node.get(_LEAF)
    if text is None:
        return None
    try:
        return from_text(member, text)
    except WireTypeError:
        problems.append(
            f"Value '{text[:256]}' at '{path}' failed to satisfy constraint: Member must be {_KIND[kind]}"
        )
        return None


_KIND = {
    "integer": "an integer", "long": "an integer", "float": "a number", "double": "a number",
    "boolean": "a boolean (true or false)", "timestamp": "an ISO 8601 timestamp", "blob": "base64-encoded",
    "string": "a string",
}  # fmt: skip

# --- XML responses ----------------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all become U+FFFD; CR is kept as a reference so parsers keep it.
_TAG = re.compile(r"[A-Za-z_][\w.-]*")
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#xD;")
    if _INVALID_XML.search(text):
        text = _INVALID_XML.sub("\ufffd", text)
    return text


def _xml_value(member: Member, value: Any, out: list[str]) -> None:
    shape = member.shape
    kind = shape.type
    if kind == "structure":
        for child in shape.members.values():
            item = value.get(child.name)
            if item is not None:
                _element(child, item, out)
    elif kind == "list":
        element: Member = shape.member  # type: ignore[assignment]
        tag = element.location_name or "member"
        for item in value:
            out.append(f"<{tag}>")
            _xml_value(element, item, out)
            out.append(f"</{tag}>")
    elif kind == "map":
        _map_entries(shape, value, out, "entry")
    elif kind == "timestamp":
        out.append(iso8601(value) if not member.timestamp_format else escape(text_value(member, value)))
    elif kind == "blob":
        out.append(b64encode(value))
    elif kind in ("float", "double") and isinstance(value, float):
        out.append(text_value(member, value))
    elif shape.url_encoded:
        # IAM's wire form of a policy (which botocore unquotes) is URL-encoded JSON. A policy is a JSON
        # object, so text starting "{" is still raw; already-encoded text ("%7B...") passes unchanged.
        text = str(value)
        out.append(quote(text, safe="") if text.lstrip().startswith("{") else escape(text))
    else:
        out.append(escape(text_value(member, value)))


def _map_entries(shape: Shape, value: dict[str, Any], out: list[str], wrapper: str | None) -> None:
    key_tag = shape.key.location_name or "key"  # type: ignore[union-attr]
    value_tag = shape.value.location_name or "value"  # type: ignore[union-attr]
    for key, item in value.items():
        if wrapper:
            out.append(f"<{wrapper}>")
        out.append(f"<{key_tag}>{escape(str(key))}</{key_tag}><{value_tag}>")
        _xml_value(shape.value, item, out)  # type: ignore[arg-type]
        out.append(f"</{value_tag}>")
        if wrapper:
            out.append(f"</{wrapper}>")


def _element(member: Member, value: Any, out: list[str]) -> None:
    shape = member.shape
    tag = member.wire
    if member.flattened and shape.type == "list":
        element: Member = shape.member  # type: ignore[assignment]
        tag = element.location_name or tag
        for item in value:
            out.append(f"<{tag}>")
            _xml_value(element, item, out)
            out.append(f"</{tag}>")
        return
    if member.flattened and shape.type == "map":
        for key, item in value.items():
            out.append(f"<{tag}>")
            _map_entries(shape, {key: item}, out, None)
            out.append(f"</{tag}>")
        return
    out.append(f"<{tag}>")
    _xml_value(member, value, out)
    out.append(f"</{tag}>")


def xml_members(shape: Shape, value: dict[str, Any], out: list[str]) -> None:
    for member in shape.members.values():
        item = value.get(member.name)
        if item is not None:
            _element(member, item, out)


def xml_response(spec: ServiceSpec, op: Operation, result: dict[str, Any], request_id: str) -> bytes:
    name = op.name
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<{name}Response xmlns="{spec.xml_namespace}">']
    if op.output is not None:
        wrapper = op.result_wrapper or f"{name}Result"
        out.append(f"<{wrapper}>")
        xml_members(op.output, result, out)
        out.append(f"</{wrapper}>")
    out.append(
        f"<ResponseMetadata><RequestId>{escape(request_id)}</RequestId></ResponseMetadata></{name}Response>"
    )
    return "".join(out).encode("utf-8", "replace")  # never fail an answer over a stray surrogate


def xml_error(
    spec: ServiceSpec, error: AwsError, sender: bool, shape: Shape | None, request_id: str
) -> bytes:
    out = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{spec.xml_namespace}"><Error>'
        f"<Type>{'Sender' if sender else 'Receiver'}</Type><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message>"
    ]
    for name, value in error.fields.items():
        member = shape.members.get(name) if shape is not None else None
        if value is None or name in ("message", "Message"):
            continue
        if member is not None:
            _element(member, value, out)
        elif _TAG.fullmatch(name):
            out.append(f"<{name}>{escape(str(value))}</{name}>")
    out.append(f"</Error><RequestId>{escape(request_id)}</RequestId></ErrorResponse>")
    return "".join(out).encode("utf-8", "replace")  # never fail an answer over a stray surrogate
