"""Wildcard patterns, policy variables and Condition operators of the IAM policy language.

Everything here is compiled once when a policy is parsed; per request only the parts that hold
policy variables (``${aws:username}``) are resolved, and those compilations are memoised.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

ContextValue = str | list[str] | bool | int | float | datetime | bytes


class MalformedPolicyDocument(ValueError):
    """A policy document that IAM would refuse with ``MalformedPolicyDocument``."""


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_text(value: Any) -> str:
    """The string form IAM compares against: JSON booleans are lower-case, times are ISO 8601."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


class Lookup(Protocol):
    """What condition and variable matching needs from a request's context (see evaluate.Lookup)."""

    def values(self, key: str) -> list[Any] | None:
        """All values of a key, or None when the request lacks it."""

    def variable(self, key: str) -> str | None:
        """A key's value as a policy-variable substitution, or None when it cannot be substituted."""


# ---------------------------------------------------------------------------------------------- patterns


class Wild(enum.Enum):
    STAR = "*"
    ONE = "?"


@dataclass(frozen=True, slots=True)
class Variable:
    key: str  # lower-cased: context keys are case-insensitive
    default: str | None


Token = str | Wild | Variable

_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY_RE = re.compile(r"^\s*([^\s,']+)\s*(?:,\s*'([^']*)'\s*)?$")
_GLOB_SPLIT_RE = re.compile(r"([*?])")


def _glob_tokens(text: str, globs: bool) -> list[Token]:
    if not globs:
        return [text] if text else []
    tokens: list[Token] = []
    for piece in _GLOB_SPLIT_RE.split(text):
        if piece == "*":
            tokens.append(Wild.STAR)
        elif piece == "?":
            tokens.append(Wild.ONE)
        elif piece:
            tokens.append(piece)
    return tokens


def tokenize(text: str, *, globs: bool, variables: bool) -> tuple[Token, ...]:
    """Split a policy string into literals, wildcards and variables.

    Variables only exist in policies of Version 2012-10-17; in older documents ``${...}`` is literal text.
    ``${*}``, ``${?}`` and ``${$}`` are escapes for the literal characters.
    """
    tokens: list[Token] = []
    pos = 0
    if variables:
        for match in _VARIABLE_RE.finditer(text):
            tokens.extend(_glob_tokens(text[pos : match.start()], globs))
            body = match.group(1).strip()
            if body in ("*", "?", "$"):
                tokens.append(body)
            else:
                parsed = _VARIABLE_BODY_RE.match(body)
                if parsed is None:
                    raise MalformedPolicyDocument(f"Invalid policy variable ${{{match.group(1)}}}")
                tokens.append(Variable(parsed.group(1).lower(), parsed.group(2)))
            pos = match.end()
    tokens.extend(_glob_tokens(text[pos:], globs))
    return tuple(tokens)


def _resolve(tokens: tuple[Token, ...], ctx: Lookup) -> tuple[str | Wild, ...] | None:
    """Substitute variables; None when one has no value and no default (the element then never matches)."""
    out: list[str | Wild] = []
    for token in tokens:
        if isinstance(token, Variable):
            value = ctx.variable(token.key)
            if value is None:
                value = token.default
            if value is None:
                return None
            token = value
        if isinstance(token, str) and out and isinstance(out[-1], str):
            out[-1] += token
        elif token != "":
            out.append(token)
    return tuple(out)


class Mode(enum.Enum):
    ACTION = "action"  # case-insensitive, wildcards anywhere
    GLOB = "glob"  # StringLike: wildcards anywhere, case-sensitive
    RESOURCE = "resource"  # Resource element: see _resource_source
    ARN = "arn"  # ArnLike/ArnEquals: the six ARN segments matched separately


def _glob_source(tokens: tuple[str | Wild, ...]) -> str:
    return "".join(
        ".*" if t is Wild.STAR else "." if t is Wild.ONE else re.escape(t)  # type: ignore[arg-type]
        for t in tokens
    )


def _resource_source(tokens: tuple[str | Wild, ...]) -> str:
    # IAM user guide, reference_policies_elements_resource: wildcards work within a colon-separated
    # segment, and a `*` that is the last character of a segment may expand beyond the colon boundary.
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if token is Wild.STAR:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            at_segment_end = nxt is None or (isinstance(nxt, str) and nxt.startswith(":"))
            parts.append(".*" if at_segment_end else "[^:]*")
        elif token is Wild.ONE:
            parts.append("[^:]")
        else:
            parts.append(re.escape(token))  # type: ignore[arg-type]
    return "".join(parts)


def _arn_source(tokens: tuple[str | Wild, ...]) -> str | None:
    # IAM user guide, condition operators: "Each of the six colon-delimited components of the ARN is
    # checked separately". The sixth component (the resource) may itself contain colons.
    if tokens == (Wild.STAR,):
        return ".*"
    colons = sum(t.count(":") for t in tokens if isinstance(t, str))
    if colons < 5:
        return None
    segment = 0
    parts: list[str] = []
    for token in tokens:
        if token is Wild.STAR:
            parts.append("[^:]*" if segment < 5 else ".*")
        elif token is Wild.ONE:
            parts.append("[^:]" if segment < 5 else ".")
        else:
            for char in token:  # type: ignore[union-attr]
                if char == ":" and segment < 5:
                    segment += 1
                parts.append(re.escape(char))
    return "".join(parts)


def regex_source(tokens: tuple[str | Wild, ...], mode: Mode) -> str | None:
    if mode is Mode.RESOURCE:
        return _resource_source(tokens)
    if mode is Mode.ARN:
        return _arn_source(tokens)
    return _glob_source(tokens)


@lru_cache(maxsize=4096)
def _compile(tokens: tuple[str | Wild, ...], mode: Mode) -> re.Pattern[str] | None:
    source = regex_source(tokens, mode)
    if source is None:
        return None
    return re.compile(source, re.IGNORECASE | re.DOTALL if mode is Mode.ACTION else re.DOTALL)


class PatternSet:
    """Several wildcard patterns matched as one: static ones share a single compiled alternation."""

    __slots__ = ("_dynamic", "_mode", "_static")

    def __init__(self, texts: tuple[str, ...], mode: Mode, *, variables: bool) -> None:
        self._mode = mode
        sources: list[str] = []
        dynamic: list[tuple[Token, ...]] = []
        for text in texts:
            tokens = tokenize(text, globs=True, variables=variables)
            if any(isinstance(t, Variable) for t in tokens):
                dynamic.append(tokens)
                continue
            source = regex_source(tokens, mode)  # type: ignore[arg-type]
            if source is not None:
                sources.append(source)
        flags = re.IGNORECASE | re.DOTALL if mode is Mode.ACTION else re.DOTALL
        self._static = re.compile("|".join(f"(?:{s})" for s in sources), flags) if sources else None
        self._dynamic = tuple(dynamic)

    def matches(self, value: str, ctx: Lookup | None = None) -> bool:
        if self._static is not None and self._static.fullmatch(value) is not None:
            return True
        if ctx is None:
            return False
        for tokens in self._dynamic:
            resolved = _resolve(tokens, ctx)
            if resolved is None:
                continue
            compiled = _compile(resolved, self._mode)
            if compiled is not None and compiled.fullmatch(value) is not None:
                return True
        return False


class Template:
    """A literal policy value that may contain variables (StringEquals and friends)."""

    __slots__ = ("_tokens", "static")

    def __init__(self, text: str, *, variables: bool) -> None:
        self._tokens = tokenize(text, globs=False, variables=variables)
        # The value itself when it holds no variables.
        self.static = None if any(isinstance(t, Variable) for t in self._tokens) else "".join(self._tokens)  # type: ignore[arg-type]

    def resolve(self, ctx: Lookup) -> str | None:
        if self.static is not None:
            return self.static
        resolved = _resolve(self._tokens, ctx)
        return None if resolved is None else "".join(resolved)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- operators


class Family(enum.Enum):
    STRING = "string"
    STRING_IGNORE_CASE = "string-ignore-case"
    STRING_LIKE = "string-like"
    NUMERIC = "numeric"
    DATE = "date"
    BOOL = "bool"
    BINARY = "binary"
    IP = "ip"
    ARN = "arn"
    NULL = "null"


_Compare = Callable[[float, float], bool]
_ORDERINGS: dict[str, _Compare] = {
    "Equals": operator.eq,
    "NotEquals": operator.eq,  # negated below, so NotEquals is "equals none"
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}

# base operator -> (family, negated, ordering for numeric/date families)
OPERATORS: dict[str, tuple[Family, bool, _Compare | None]] = {
    "StringEquals": (Family.STRING, False, None),
    "StringNotEquals": (Family.STRING, True, None),
    "StringEqualsIgnoreCase": (Family.STRING_IGNORE_CASE, False, None),
    "StringNotEqualsIgnoreCase": (Family.STRING_IGNORE_CASE, True, None),
    "StringLike": (Family.STRING_LIKE, False, None),
    "StringNotLike": (Family.STRING_LIKE, True, None),
    **{f"Numeric{k}": (Family.NUMERIC, k == "NotEquals", cmp) for k, cmp in _ORDERINGS.items()},
    **{f"Date{k}": (Family.DATE, k == "NotEquals", cmp) for k, cmp in _ORDERINGS.items()},
    "Bool": (Family.BOOL, False, None),
    "BinaryEquals": (Family.BINARY, False, None),
    "IpAddress": (Family.IP, False, None),
    "NotIpAddress": (Family.IP, True, None),
    "ArnEquals": (Family.ARN, False, None),
    "ArnLike": (Family.ARN, False, None),
    "ArnNotEquals": (Family.ARN, True, None),
    "ArnNotLike": (Family.ARN, True, None),
    "Null": (Family.NULL, False, None),
}

_SET_PREFIXES = ("ForAllValues", "ForAnyValue")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_operator(name: str) -> tuple[str | None, str, bool]:
    """Split ``ForAnyValue:StringLikeIfExists`` into (set operator, base operator, if-exists)."""
    set_op: str | None = None
    base = name
    prefix, sep, rest = name.partition(":")
    if sep:
        if prefix not in _SET_PREFIXES:
            raise MalformedPolicyDocument(f"Invalid Condition type: {name}")
        set_op, base = prefix, rest
    if_exists = base.endswith("IfExists")
    if if_exists:
        base = base[: -len("IfExists")]
    if base not in OPERATORS or (base == "Null" and (if_exists or set_op is not None)):
        raise MalformedPolicyDocument(f"Invalid Condition type: {name}")
    return set_op, base, if_exists


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        return float(value)
    return None


def _epoch(value: Any) -> float | None:
    """ISO 8601 text, epoch seconds (number or digits) or a datetime, as UTC epoch seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    number = _number(value)
    if number is not None or not isinstance(value, str):
        return number
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


_Test = Callable[[Any, Lookup], bool | None]


def _text_test(values: list[str], variables: bool, fold: bool) -> _Test:
    norm: Callable[[str], str] = str.casefold if fold else str
    templates = [Template(v, variables=variables) for v in values]
    statics = [t.static for t in templates]
    if all(s is not None for s in statics):
        allowed = frozenset(norm(s) for s in statics if s is not None)
        return lambda item, _ctx: norm(to_text(item)) in allowed

    def test(item: Any, ctx: Lookup) -> bool:
        text = norm(to_text(item))
        for template in templates:
            resolved = template.resolve(ctx)
            if resolved is not None and norm(resolved) == text:
                return True
        return False

    return test


def _build_test(
    family: Family, ordering: _Compare | None, raw: list[Any], key: str, variables: bool
) -> _Test:
    texts = [to_text(v) for v in raw]
    if family in (Family.STRING, Family.STRING_IGNORE_CASE):
        return _text_test(texts, variables, fold=family is Family.STRING_IGNORE_CASE)
    if family in (Family.STRING_LIKE, Family.ARN):
        patterns = PatternSet(
            tuple(texts), Mode.GLOB if family is Family.STRING_LIKE else Mode.ARN, variables=variables
        )
        if family is Family.ARN:
            return lambda item, ctx: patterns.matches(item, ctx) if isinstance(item, str) else None
        return lambda item, ctx: patterns.matches(to_text(item), ctx)
    if family in (Family.NUMERIC, Family.DATE):
        convert = _number if family is Family.NUMERIC else _epoch
        bounds = [convert(v) for v in raw]
        if any(b is None for b in bounds):
            kind = "number" if family is Family.NUMERIC else "date"
            raise MalformedPolicyDocument(f"Condition value for {key} must be a {kind}: {raw}")
        assert ordering is not None

        def compare(item: Any, _ctx: Lookup) -> bool | None:
            actual = convert(item)
            return None if actual is None else any(ordering(actual, b) for b in bounds)  # type: ignore[arg-type]

        return compare
    if family is Family.BOOL:
        for text in texts:
            if "${" not in text and text.lower() not in ("true", "false"):
                raise MalformedPolicyDocument(f"Condition value for {key} must be true or false: {text}")
        return _text_test([t.lower() for t in texts], variables, fold=True)
    if family is Family.BINARY:
        for text in texts:
            try:
                base64.b64decode(text, validate=True)
            except binascii.Error as exc:
                raise MalformedPolicyDocument(f"Condition value for {key} must be base64: {text}") from exc
        encoded = frozenset(texts)
        return lambda item, _ctx: to_text(item) in encoded
    if family is Family.IP:
        try:
            networks = [ipaddress.ip_network(t.strip(), strict=False) for t in texts]
        except ValueError as exc:
            raise MalformedPolicyDocument(f"Condition value for {key} must be an IP address or CIDR") from exc

        def in_network(item: Any, _ctx: Lookup) -> bool | None:
            address = _ip(item)
            return None if address is None else any(address in net for net in networks)

        return in_network
    raise AssertionError(family)  # Null is handled by Clause itself


@dataclass(frozen=True, slots=True)
class Clause:
    """One (operator, key) pair of a Condition block with its policy values compiled."""

    operator: str
    key: str
    set_op: str | None
    if_exists: bool
    family: Family
    negated: bool
    test: _Test | None
    null_expectations: tuple[bool, ...] = ()

    def holds(self, ctx: Lookup) -> bool:
        items = ctx.values(self.key)
        if self.family is Family.NULL:
            return any(expect_absent == (items is None) for expect_absent in self.null_expectations)
        if items is None:
            # IAM user guide, condition operators: a missing key fails a test unless the operator is
            # negated (StringNotLike with no key is true); IfExists makes it true; ForAllValues is true
            # over no values, ForAnyValue false.
            if self.if_exists or self.set_op == "ForAllValues":
                return True
            if self.set_op == "ForAnyValue":
                return False
            return self.negated
        assert self.test is not None
        test, negated = self.test, self.negated

        def ok(item: Any) -> bool:
            result = test(item, ctx)
            if result is None:  # a value of the wrong type never satisfies the operator, either polarity
                return False
            return not result if negated else result

        if self.set_op == "ForAnyValue":
            return any(ok(item) for item in items)
        if self.set_op == "ForAllValues" or negated:
            # A negated operator over several request values means "matches none of the policy values".
            return all(ok(item) for item in items)
        return any(ok(item) for item in items)


_SCALARS = (str, int, float, bool)


def compile_condition(raw: Any, *, variables: bool) -> tuple[Clause, ...]:
    """Validate and compile a statement's Condition element."""
    if not isinstance(raw, dict):
        raise MalformedPolicyDocument("Syntax errors in policy: Condition must be an object")
    clauses: list[Clause] = []
    for op_name, block in raw.items():
        set_op, base, if_exists = parse_operator(op_name)
        if not isinstance(block, dict) or not block:
            raise MalformedPolicyDocument(
                f"Syntax errors in policy: {op_name} must map condition keys to values"
            )
        family, negated, ordering = OPERATORS[base]
        for key, value in block.items():
            if not isinstance(key, str) or ":" not in key.strip(":"):
                raise MalformedPolicyDocument(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                )
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, _SCALARS) for v in values):
                raise MalformedPolicyDocument(
                    f"Syntax errors in policy: values of {key} must be strings, numbers or booleans"
                )
            if family is Family.NULL:
                flags = [to_text(v).lower() for v in values]
                if not flags or any(f not in ("true", "false") for f in flags):
                    raise MalformedPolicyDocument(f"Null condition on {key} takes true or false")
                clauses.append(
                    Clause(op_name, key, None, False, family, False, None, tuple(f == "true" for f in flags))
                )
                continue
            test = _build_test(family, ordering, values, key, variables)
            clauses.append(Clause(op_name, key, set_op, if_exists, family, negated, test))
    return tuple(clauses)
