"""Constraint checks on typed input, worded the way AWS services word them.

AWS reports every failure at once: ``"2 validation errors detected: Value null at 'roleName' failed to
satisfy constraint: Member must not be null; Value 'x' at 'maxItems' ..."``. Paths use lower camel case,
list elements read ``items.1.member.name``; sensitive values and blobs are left out of the text.
"""

from __future__ import annotations

from typing import Any

from kennel.cloud.errors import AwsError
from kennel.cloud.protocol.models import Shape
from kennel.cloud.protocol.patterns import compile_java

_NO_REGEX = object()


def validate(shape: Shape | None, params: dict[str, Any], error_cls: type[AwsError]) -> None:
    """Raise ``error_cls`` listing every constraint ``params`` breaks; return quietly when none."""
    if shape is None or not has_checks(shape):
        return
    report(problems(shape, params), error_cls)


def report(found: list[str], error_cls: type[AwsError]) -> None:
    """Raise ``error_cls`` with AWS's summary of ``found``, if there is anything in it."""
    if found:
        count = len(found)
        raise error_cls(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(found))


def problems(shape: Shape, value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    _check(shape, value, path, found, sensitive=False)
    return found


def has_checks(shape: Shape, _stack: set[int] | None = None) -> bool:
    """Whether anything at or below ``shape`` can fail validation (cached on the shape)."""
    if shape.checks is not None:
        return shape.checks
    stack = _stack if _stack is not None else set()
    if id(shape) in stack:
        return True  # a cycle: assume there is something to check rather than cache a guess
    stack.add(id(shape))
    own = bool(
        shape.required or shape.min is not None or shape.max is not None or shape.pattern or shape.enum
    )
    children = list(shape.members.values()) + [m for m in (shape.member, shape.key, shape.value) if m]
    result = own or any(has_checks(child.shape, stack) for child in children)
    stack.discard(id(shape))
    shape.checks = result
    return result


def _join(path: str, label: str) -> str:
    return f"{path}.{label}" if path else label


def _check(shape: Shape, value: Any, path: str, out: list[str], sensitive: bool) -> None:
    kind = shape.type
    if kind == "structure":
        if shape.document or not isinstance(value, dict):
            return
        for name in shape.required:
            if value.get(name) is None:
                label = shape.members[name].label if name in shape.members else name
                where = _join(path, label)
                out.append(f"Value null at '{where}' failed to satisfy constraint: Member must not be null")
        for name, item in value.items():
            member = shape.members.get(name)
            if member is not None and item is not None and has_checks(member.shape):
                _check(
                    member.shape, item, _join(path, member.label), out, sensitive or member.shape.sensitive
                )
        return
    if kind == "list":
        if not isinstance(value, list):
            return
        for failure in _length(shape, len(value)):
            out.append(
                f"Value {_show(shape, value, sensitive)}at '{path}' failed to satisfy constraint: {failure}"
            )
        element = shape.member.shape  # type: ignore[union-attr]
        if has_checks(element):
            for index, item in enumerate(value, 1):
                if item is not None:
                    _check(element, item, f"{path}.{index}.member", out, sensitive or element.sensitive)
        return
    if kind == "map":
        if not isinstance(value, dict):
            return
        shown = _show(shape, value, sensitive)
        for failure in _length(shape, len(value)):
            out.append(f"Value {shown}at '{path}' failed to satisfy constraint: {failure}")
        key_shape = shape.key.shape  # type: ignore[union-attr]
        value_shape = shape.value.shape  # type: ignore[union-attr]
        for key, item in value.items():
            key_failures = _scalar_failures(key_shape, key)
            if key_failures:
                out.append(
                    f"Value {shown}at '{path}' failed to satisfy constraint: "
                    f"Map keys must satisfy constraint: [{', '.join(key_failures)}]"
                )
            if item is None or not has_checks(value_shape):
                continue
            if value_shape.is_scalar:
                value_failures = _scalar_failures(value_shape, item)
                if value_failures:
                    out.append(
                        f"Value {shown}at '{path}' failed to satisfy constraint: "
                        f"Map value must satisfy constraint: [{', '.join(value_failures)}]"
                    )
            else:
                _check(value_shape, item, f"{path}.{key}", out, sensitive or value_shape.sensitive)
        return
    failures = _scalar_failures(shape, value)
    if failures:
        shown = _show(shape, value, sensitive)
        for failure in failures:
            out.append(f"Value {shown}at '{path}' failed to satisfy constraint: {failure}")


def _length(shape: Shape, size: int) -> list[str]:
    failures = []
    if shape.min is not None and size < shape.min:
        failures.append(f"Member must have length greater than or equal to {shape.min}")
    if shape.max is not None and size > shape.max:
        failures.append(f"Member must have length less than or equal to {shape.max}")
    return failures


def _scalar_failures(shape: Shape, value: Any) -> list[str]:
    kind = shape.type
    if kind == "string":
        if not isinstance(value, str):
            return []
        failures = _length(shape, len(value))
        if shape.enum and value not in shape.enum:
            failures.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        # A pattern is only tried on values within the length limit: a model regex with heavy
        # backtracking must not meet an arbitrarily long input.
        if shape.pattern and not failures:
            regex = shape.regex
            if regex is None:
                regex = shape.regex = compile_java(shape.pattern) or _NO_REGEX
            if regex is not _NO_REGEX and regex.fullmatch(value) is None:
                failures.append(f"Member must satisfy regular expression pattern: {shape.pattern}")
        return failures
    if kind == "blob":
        return _length(shape, len(value)) if isinstance(value, bytes | bytearray | str) else []
    if kind in ("integer", "long", "float", "double"):
        if (
            isinstance(value, bool) or not isinstance(value, int | float) or value != value
        ):  # NaN compares False
            return []
        failures = []
        if shape.min is not None and value < shape.min:
            failures.append(f"Member must have value greater than or equal to {shape.min}")
        if shape.max is not None and value > shape.max:
            failures.append(f"Member must have value less than or equal to {shape.max}")
        return failures
    return []


def _show(shape: Shape, value: Any, sensitive: bool) -> str:
    """``'value' `` for the message, or nothing for values AWS keeps out of error text."""
    if sensitive or shape.sensitive or shape.type == "blob":
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "[" + ", ".join(_plain(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}={_plain(v)}" for k, v in value.items()) + "}"
    else:
        text = _plain(value)
    if len(text) > 256:
        text = text[:253] + "..."
    return f"'{text}' "


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "..."
    return str(value)
