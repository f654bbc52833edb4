"""Typed values to and from the wire: timestamps, blobs, text scalars and JSON trees, per shape.

Shared by every protocol: JSON bodies (json and rest-json), text values (URI labels, query strings,
headers, query-protocol forms) and the formatting of response values.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from itertools import accumulate, repeat
from typing import Any

from kennel.cloud.errors import SerializationException
from kennel.cloud.protocol.models import Member, Shape

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INTEGER = re.compile(r"[-+]?[0-9]{1,40}")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


class WireTypeError(ValueError):
    """A text or JSON value that cannot be the shape's type; each protocol reports it its own way."""


# --- timestamps ------------------------------------------------------------------------------------


def to_datetime(value: Any) -> datetime:
    """A provider's timestamp (aware or naive-UTC datetime, date, epoch number, ISO text) as aware UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return parse_timestamp(value)
    raise WireTypeError(f"{type(value).__name__} is not a timestamp")


def parse_timestamp(text: str, fmt: str | None = None) -> datetime:
    """Any timestamp a client may send: epoch seconds, ISO 8601 or RFC 822 (``fmt`` only breaks ties)."""
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    if fmt != "rfc822":
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError) as exc:
        raise WireTypeError(f"'{text}' is not a timestamp") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def epoch_seconds(value: Any) -> float | int:
    moment = to_datetime(value)
    seconds = (moment - _EPOCH).total_seconds()
    return int(seconds) if seconds.is_integer() else round(seconds, 6)


def iso8601(value: Any) -> str:
    moment = to_datetime(value)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_timestamp(value: Any, fmt: str) -> str | float | int:
    if fmt == "unixtimestamp":
        return epoch_seconds(value)
    if fmt == "rfc822":
        return format_datetime(to_datetime(value).replace(microsecond=0), usegmt=True)
    return iso8601(value)


# --- blobs and text scalars --------------------------------------------------------------------------


def b64decode(text: str | bytes) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireTypeError("Base64 encoded value is invalid") from exc


def b64encode(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode("ascii")


def from_text(member: Member | Shape, text: str, default_ts: str = "iso8601") -> Any:
    """A scalar given as text in a URI label, query string, header or form field."""
    shape = member if isinstance(member, Shape) else member.shape
    kind = shape.type
    if kind == "string":
        if isinstance(member, Member) and member.jsonvalue:
            try:
                return loads_json(b64decode(text), "A JSON value")
            except SerializationException as exc:
                raise WireTypeError(f"'{text[:256]}' is not base64-encoded JSON: {exc.message}") from None
        return text
    if kind in ("integer", "long"):
        # int() alone would also take "1_000", " 7" and 5000-digit numbers.
        if not _INTEGER.fullmatch(text):
            raise WireTypeError(f"'{text}' is not an integer")
        number = int(text)
        bits = _INT_BITS.get(kind, 63)
        if not -(2**bits) <= number < 2**bits:
            raise WireTypeError(f"'{text}' is out of range for {'an integer' if bits == 31 else 'a long'}")
        return number
    if kind in ("float", "double"):
        special = _SPECIAL_FLOATS.get(text)
        if special is not None:
            return special
        if not _DECIMAL.fullmatch(text):
            raise WireTypeError(f"'{text}' is not a number")
        return float(text)
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise WireTypeError(f"'{text}' is not a boolean")
        return lowered == "true"
    if kind == "timestamp":
        fmt = member.timestamp_format if isinstance(member, Member) else shape.timestamp_format
        return parse_timestamp(text, fmt or default_ts)
    if kind == "blob":
        return b64decode(text)
    raise WireTypeError(f"a {kind} cannot be given as text")


def split_header_list(text: str) -> list[str]:
    """A comma-separated header list; items with commas or quotes arrive double-quoted (RFC 7230)."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def text_value(member: Member, value: Any) -> str:
    """A scalar response value as header text."""
    shape = member.shape
    if shape.type == "timestamp":
        return str(format_timestamp(value, member.timestamp_format or "rfc822"))
    if shape.type == "boolean":
        return "true" if value else "false"
    if shape.type == "string" and member.jsonvalue:
        return b64encode(json.dumps(value, separators=(",", ":")))
    if shape.type == "blob":
        return b64encode(value)
    if shape.type == "list" and shape.member is not None:
        parts = (text_value(shape.member, item) for item in value)
        return ",".join(_quote_header_item(p) for p in parts)
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float):
        return str(_float_out(value))
    return str(value)


def _quote_header_item(item: str) -> str:
    if "," in item or '"' in item:
        return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return item


def _float_out(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# --- JSON trees ---------------------------------------------------------------------------------------

_JSON_KIND = {bool: "TRUE_VALUE", int: "NUMBER_VALUE", float: "NUMBER_VALUE", str: "STRING_VALUE"}
_TARGET = {
    "string": "a String", "integer": "an Integer", "long": "a Long", "float": "a Float", "double": "a Double",
    "boolean": "a Boolean", "timestamp": "a Timestamp", "blob": "a Blob", "list": "a List", "map": "a Map",
    "structure": "a Structure",
}  # fmt: skip


def _mismatch(shape: Shape, value: Any) -> SerializationException:
    # The wording of AWS's (Coral's) JSON deserializer, which clients and tests match on.
    if isinstance(value, list):
        return SerializationException("Start of list found where not expected")
    if isinstance(value, dict):
        return SerializationException("Start of structure or map found where not expected.")
    kind = "FALSE_VALUE" if value is False else _JSON_KIND.get(type(value), "VALUE")
    return SerializationException(f"{kind} can not be converted to {_TARGET.get(shape.type, shape.type)}")


# No AWS input shape nests anywhere near this deep; the bound keeps every recursive walk (validation,
# providers, json.dumps) far from Python's recursion limit, and it is checked before json.loads allocates.
MAX_JSON_DEPTH = 100
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")
# A \uD800-\uDFFF escape: json.loads turns a lone one into a str that cannot be encoded as UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def json_depth(text: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, strings skipped; linear, no recursion."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS).translate(_DEPTH_STEP)
    # Each opening bracket is +1 and each closing one -1: the running sum's maximum is the depth.
    return max(accumulate(map(int.__sub__, brackets, repeat(1))), default=0)


def check_json_text(text: bytes, what: str = "Request body") -> None:
    """Refuse JSON text nested deeper than ``MAX_JSON_DEPTH`` before it is parsed."""
    if (text.count(b"[") + text.count(b"{") > MAX_JSON_DEPTH) and json_depth(text) > MAX_JSON_DEPTH:
        raise SerializationException(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string (or key) in a decoded JSON tree holds a lone UTF-16 surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads_json(text: bytes, what: str = "Request body") -> Any:
    """``json.loads`` for untrusted bytes: UTF-8 only, bounded depth, no lone surrogates (all 400s)."""
    check_json_text(text, what)
    try:
        value = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise SerializationException(f"{what} is not valid UTF-8") from None
    except RecursionError:
        raise SerializationException(f"{what} is nested too deeply") from None
    except ValueError as exc:
        raise SerializationException(f"{what} is not valid JSON: {exc.args[0]}") from None
    if _SURROGATE_ESCAPE.search(text) and has_lone_surrogate(value):
        raise SerializationException(f"{what} contains an unpaired UTF-16 surrogate (invalid Unicode)")
    return value


def decode_json_body(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object; empty means ``{}``."""
    if not body or body.isspace():
        return {}
    value = loads_json(body)
    if not isinstance(value, dict):
        raise SerializationException("Request body must be a JSON object")
    return value


def from_json(shape: Shape, value: Any, members: dict[str, Member] | None = None) -> Any:
    """Typed value of ``value`` (already ``json.loads``-ed); ``members`` restricts a structure's keys."""
    return _FROM_JSON[shape.type](shape, value, members)


def _struct_in(shape: Shape, value: Any, members: dict[str, Member] | None) -> Any:
    if not isinstance(value, dict):
        raise _mismatch(shape, value)
    if shape.document:
        return value
    index = shape.body_index if members is None else members
    out: dict[str, Any] = {}
    for key, item in value.items():
        member = index.get(key)
        if member is not None and item is not None:
            out[member.name] = _FROM_JSON[member.shape.type](member.shape, item, None)
    return out


def _list_in(shape: Shape, value: Any, _: Any) -> Any:
    if not isinstance(value, list):
        raise _mismatch(shape, value)
    element = shape.member.shape  # type: ignore[union-attr]
    convert = _FROM_JSON[element.type]
    return [None if item is None else convert(element, item, None) for item in value]


def _map_in(shape: Shape, value: Any, _: Any) -> Any:
    if not isinstance(value, dict):
        raise _mismatch(shape, value)
    inner = shape.value.shape  # type: ignore[union-attr]
    convert = _FROM_JSON[inner.type]
    return {key: None if item is None else convert(inner, item, None) for key, item in value.items()}


def _string_in(shape: Shape, value: Any, _: Any) -> Any:
    if not isinstance(value, str):
        raise _mismatch(shape, value)
    return value


_INT_BITS = {"integer": 31, "long": 63}  # Java's int and long, which Coral deserializes into


def _int_in(shape: Shape, value: Any, _: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(shape, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _mismatch(shape, value)
        value = int(value)  # Coral truncates fractional numbers given for integers
    bits = _INT_BITS.get(shape.type, 63)
    if not -(2**bits) <= value < 2**bits:  # out of range: never handed to a provider, SQLite or a float
        raise SerializationException(
            f"NUMBER_VALUE is out of range for {_TARGET.get(shape.type, shape.type)}"
        )
    return value


def _float_in(shape: Shape, value: Any, _: Any) -> Any:
    if isinstance(value, str) and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(shape, value)
    try:
        return float(value)
    except OverflowError:  # an integer literal past a double's range
        raise SerializationException(
            f"NUMBER_VALUE is out of range for {_TARGET.get(shape.type, shape.type)}"
        ) from None


def _bool_in(shape: Shape, value: Any, _: Any) -> Any:
    if not isinstance(value, bool):
        raise _mismatch(shape, value)
    return value


def _timestamp_in(shape: Shape, value: Any, _: Any) -> Any:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            return parse_timestamp(value, shape.timestamp_format)
    except (WireTypeError, ValueError, OverflowError, OSError):
        raise SerializationException(f"Invalid timestamp value: {str(value)[:64]}") from None
    raise _mismatch(shape, value)


def _blob_in(shape: Shape, value: Any, _: Any) -> Any:
    if not isinstance(value, str):
        raise _mismatch(shape, value)
    try:
        return b64decode(value)
    except WireTypeError as exc:
        raise SerializationException(str(exc)) from None


class _ByType(dict[str, Callable[[Shape, Any, Any], Any]]):
    """Converters by shape type; a type this module does not know passes its value through unchanged."""

    def __missing__(self, kind: str) -> Callable[[Shape, Any, Any], Any]:
        return lambda shape, value, _: value


_FROM_JSON = _ByType({
    "structure": _struct_in, "list": _list_in, "map": _map_in, "string": _string_in, "integer": _int_in,
    "long": _int_in, "float": _float_in, "double": _float_in, "boolean": _bool_in,
    "timestamp": _timestamp_in, "blob": _blob_in,
})  # fmt: skip


def to_json(shape: Shape, value: Any, members: tuple[Member, ...] | None = None) -> Any:
    """A provider's value as a JSON-ready tree; ``members`` restricts a structure to those members."""
    return _TO_JSON[shape.type](shape, value, members)


def _struct_out(shape: Shape, value: Any, members: tuple[Member, ...] | None) -> Any:
    if shape.document:
        return value
    out: dict[str, Any] = {}
    for member in shape.members.values() if members is None else members:
        item = value.get(member.name)
        if item is not None:
            inner = member.shape
            if inner.type == "timestamp" and member.timestamp_format:
                out[member.wire] = format_timestamp(item, member.timestamp_format)
            else:
                out[member.wire] = _TO_JSON[inner.type](inner, item, None)
    return out


def _list_out(shape: Shape, value: Any, _: Any) -> Any:
    element = shape.member.shape  # type: ignore[union-attr]
    convert = _TO_JSON[element.type]
    return [None if item is None else convert(element, item, None) for item in value]


def _map_out(shape: Shape, value: Any, _: Any) -> Any:
    inner = shape.value.shape  # type: ignore[union-attr]
    convert = _TO_JSON[inner.type]
    return {str(key): None if item is None else convert(inner, item, None) for key, item in value.items()}


def _string_out(shape: Shape, value: Any, _: Any) -> Any:
    if isinstance(value, str):
        return value
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _timestamp_out(shape: Shape, value: Any, _: Any) -> Any:
    return format_timestamp(value, shape.timestamp_format or "unixtimestamp")


_TO_JSON = _ByType({
    "structure": _struct_out, "list": _list_out, "map": _map_out, "string": _string_out,
    "integer": lambda s, v, _: int(v), "long": lambda s, v, _: int(v),
    "float": lambda s, v, _: _float_out(float(v)), "double": lambda s, v, _: _float_out(float(v)),
    "boolean": lambda s, v, _: bool(v), "timestamp": _timestamp_out,
    "blob": lambda s, v, _: b64encode(v),
})  # fmt: skip


def dumps(tree: Any) -> bytes:
    # "replace": a lone surrogate that slipped through (input refuses them) must not cost a whole answer.
    return json.dumps(tree, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
