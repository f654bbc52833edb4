"""Wildcard patterns, policy variables and Condition operators of the IAM policy language.

Everything here is compiled once when a policy is parsed; per request only the parts holding policy
variables (``${aws:username}``) are resolved, and their compilations are memoised.
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


def to_text(value: Any) -> str:
    """The string form IAM compares: JSON booleans lower-case, times ISO 8601 UTC, binary base64."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


class Lookup(Protocol):
    """What condition and variable matching needs of a request context (see evaluate.RequestContext)."""

    def values(self, key: str) -> list[Any] | None:
        """All values of a key, or None when the request lacks it."""

    def variable(self, key: str) -> str | None:
        """A key's value as a policy-variable substitution, or None when it cannot be substituted."""


# ---------------------------------------------------------------------------------------------- patterns


class Wild:
    """A wildcard token. Plain instances rather than an Enum: they key a hot memo, and identity hashing
    is done in C."""

    __slots__ = ("char",)

    def __init__(self, char: str) -> None:
        self.char = char

    def __repr__(self) -> str:
        return self.char


STAR, ONE = Wild("*"), Wild("?")


@dataclass(frozen=True, slots=True)
class Variable:
    key: str  # lower-cased: context keys are case-insensitive
    default: str | None


Token = str | Wild | Variable
Resolved = tuple[str | Wild, ...]

_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY_RE = re.compile(r"^([^\s,']+)\s*(?:,\s*'([^']*)')?$")
_GLOB_SPLIT_RE = re.compile(r"([*?])")


def _literal_and_globs(text: str, globs: bool) -> list[Token]:
    if not globs:
        return [text] if text else []
    pieces = _GLOB_SPLIT_RE.split(text)
    return [STAR if p == "*" else ONE if p == "?" else p for p in pieces if p]


def tokenize(text: str, *, globs: bool, variables: bool) -> tuple[Token, ...]:
    """Split a policy string into literals, wildcards and variables.

    Variables exist only in Version 2012-10-17 policies; in older ones ``${...}`` is literal text.
    ``${*}``, ``${?}`` and ``${$}`` are the escapes for those literal characters.
    """
    tokens: list[Token] = []
    pos = 0
    for match in _VARIABLE_RE.finditer(text) if variables else ():
        tokens.extend(_literal_and_globs(text[pos : match.start()], globs))
        body = match.group(1).strip()
        if body in ("*", "?", "$"):
            tokens.append(body)
        else:
            parsed = _VARIABLE_BODY_RE.match(body)
            if parsed is None:
                raise MalformedPolicyDocument(f"Invalid policy variable ${{{match.group(1)}}}")
            tokens.append(Variable(parsed.group(1).lower(), parsed.group(2)))
        pos = match.end()
    tokens.extend(_literal_and_globs(text[pos:], globs))
    return tuple(tokens)


def _resolve(tokens: tuple[Token, ...], ctx: Lookup) -> Resolved | None:
    """Substitute variables; None when one has no value and no default (the value then never matches).

    Substituted text is literal: a ``*`` inside a user name is not a wildcard."""
    out: list[str | Wild] = []
    for token in tokens:
        if token.__class__ is Variable:
            value = ctx.variable(token.key)  # type: ignore[union-attr]
            token = token.default if value is None else value  # type: ignore[union-attr]
            if token is None:
                return None
        if token.__class__ is str and out and out[-1].__class__ is str:
            out[-1] += token  # type: ignore[operator]
        elif token != "":
            out.append(token)  # type: ignore[arg-type]
    return tuple(out)


class Mode(enum.Enum):
    ACTION = "action"  # case-insensitive, wildcards anywhere
    GLOB = "glob"  # StringLike: wildcards anywhere, case-sensitive
    RESOURCE = "resource"  # the Resource element: see _resource_source
    ARN = "arn"  # ArnLike/ArnEquals: the six ARN components matched separately


def _glob_source(tokens: Resolved) -> str:
    return "".join(".*" if t is STAR else "." if t is ONE else re.escape(t) for t in tokens)  # type: ignore[arg-type]


def _resource_source(tokens: Resolved) -> str:
    # IAM user guide, reference_policies_elements_resource: wildcards work within the colon-separated
    # segments, and a `*` that is the last character of a segment may expand beyond the colon boundary.
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if token is STAR:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            parts.append(".*" if nxt is None or (isinstance(nxt, str) and nxt[0] == ":") else "[^:]*")
        else:
            parts.append("[^:]" if token is ONE else re.escape(token))  # type: ignore[arg-type]
    return "".join(parts)


def _arn_source(tokens: Resolved) -> str | None:
    # IAM user guide, condition operators: "Each of the six colon-delimited components of the ARN is
    # checked separately". The sixth (the resource) may itself contain colons. Fewer than six
    # components never match, except a lone "*".
    if tokens == (STAR,):
        return ".*"
    if sum(t.count(":") for t in tokens if isinstance(t, str)) < 5:
        return None
    segment = 0
    parts: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            for char in token:
                if char == ":" and segment < 5:
                    segment += 1
                parts.append(re.escape(char))
        elif segment < 5:
            parts.append("[^:]*" if token is STAR else "[^:]")
        else:
            parts.append(".*" if token is STAR else ".")
    return "".join(parts)


def regex_source(tokens: Resolved, mode: Mode) -> str | None:
    if mode is Mode.RESOURCE:
        return _resource_source(tokens)
    if mode is Mode.ARN:
        return _arn_source(tokens)
    return _glob_source(tokens)


def _flags(mode: Mode) -> re.RegexFlag:
    return re.IGNORECASE | re.DOTALL if mode is Mode.ACTION else re.DOTALL


@lru_cache(maxsize=4096)
def _compile(tokens: Resolved, mode: Mode) -> re.Pattern[str] | None:
    source = regex_source(tokens, mode)
    return None if source is None else re.compile(source, _flags(mode))


class PatternSet:
    """Several wildcard patterns matched as one: the static ones share a single compiled alternation."""

    __slots__ = ("_dynamic", "_mode", "_static")

    def __init__(self, texts: tuple[str, ...], mode: Mode, *, variables: bool) -> None:
        self._mode = mode
        sources: list[str] = []
        dynamic: list[tuple[Token, ...]] = []
        for text in texts:
            tokens = tokenize(text, globs=True, variables=variables)
            if any(isinstance(t, Variable) for t in tokens):
                dynamic.append(tokens)
            elif (source := regex_source(tokens, mode)) is not None:  # type: ignore[arg-type]
                sources.append(source)
        self._static = re.compile("|".join(f"(?:{s})" for s in sources), _flags(mode)) if sources else None
        self._dynamic = tuple(dynamic)

    def matches(self, value: str, ctx: Lookup | None = None) -> bool:
        if self._static is not None and self._static.fullmatch(value) is not None:
            return True
        for tokens in self._dynamic if ctx is not None else ():
            resolved = _resolve(tokens, ctx)  # type: ignore[arg-type]
            compiled = None if resolved is None else _compile(resolved, self._mode)
            if compiled is not None and compiled.fullmatch(value) is not None:
                return True
        return False


class Template:
    """A literal policy value that may hold variables (StringEquals and friends)."""

    __slots__ = ("_tokens", "static")

    def __init__(self, text: str, *, variables: bool) -> None:
        self._tokens = tokenize(text, globs=False, variables=variables)
        dynamic = any(isinstance(t, Variable) for t in self._tokens)
        self.static: str | None = None if dynamic else "".join(self._tokens)  # type: ignore[arg-type]

    def resolve(self, ctx: Lookup) -> str | None:
        if self.static is not None:
            return self.static
        resolved = _resolve(self._tokens, ctx)
        return None if resolved is None else "".join(resolved)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- operators

_Compare = Callable[[float, float], bool]
_ORDERINGS: dict[str, _Compare] = {
    "Equals": operator.eq,
    "NotEquals": operator.eq,  # negated, so NotEquals means "equals none of the values"
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}

# base operator -> (family, negated, ordering for the numeric and date families)
OPERATORS: dict[str, tuple[str, bool, _Compare | None]] = {
    "StringEquals": ("string", False, None),
    "StringNotEquals": ("string", True, None),
    "StringEqualsIgnoreCase": ("string-ignore-case", False, None),
    "StringNotEqualsIgnoreCase": ("string-ignore-case", True, None),
    "StringLike": ("string-like", False, None),
    "StringNotLike": ("string-like", True, None),
    **{f"Numeric{name}": ("numeric", name == "NotEquals", cmp) for name, cmp in _ORDERINGS.items()},
    **{f"Date{name}": ("date", name == "NotEquals", cmp) for name, cmp in _ORDERINGS.items()},
    "Bool": ("bool", False, None),
    "BinaryEquals": ("binary", False, None),
    "IpAddress": ("ip", False, None),
    "NotIpAddress": ("ip", True, None),
    "ArnEquals": ("arn", False, None),
    "ArnLike": ("arn", False, None),
    "ArnNotEquals": ("arn", True, None),
    "ArnNotLike": ("arn", True, None),
    "Null": ("null", False, None),
}

_SET_PREFIXES = ("ForAllValues", "ForAnyValue")
_NUMBER_RE = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def parse_operator(name: str) -> tuple[str | None, str, bool]:
    """Split ``ForAnyValue:StringLikeIfExists`` into (set operator, base operator, if-exists)."""
    set_op, sep, base = name.partition(":")
    if not sep:
        set_op, base = None, name  # type: ignore[assignment]
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    valid = set_op in (None, *_SET_PREFIXES) and base in OPERATORS
    if not valid or (base == "Null" and (if_exists or set_op is not None)):
        raise MalformedPolicyDocument(f"Invalid Condition type: {name}")
    return set_op, base, if_exists


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return float(value) if isinstance(value, str) and _NUMBER_RE.match(value) else None


def _epoch(value: Any) -> float | None:
    """ISO 8601 text, epoch seconds (a number or digits) or a datetime, as UTC epoch seconds."""
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


@lru_cache(maxsize=1024)
def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


# A per-value test: True/False, or None when the request value has the wrong type for the operator.
_Test = Callable[[Any, Lookup], bool | None]


def _text_test(values: list[str], variables: bool, fold: bool) -> _Test:
    norm: Callable[[str], str] = str.casefold if fold else str
    templates = [Template(v, variables=variables) for v in values]
    if all(t.static is not None for t in templates):
        allowed = frozenset(norm(t.static) for t in templates if t.static is not None)
        return lambda item, _ctx: norm(to_text(item)) in allowed

    def test(item: Any, ctx: Lookup) -> bool:
        text = norm(to_text(item))
        resolved = (t.resolve(ctx) for t in templates)
        return any(r is not None and norm(r) == text for r in resolved)

    return test


def _ordered_test(family: str, ordering: _Compare, raw: list[Any], key: str) -> _Test:
    convert = _number if family == "numeric" else _epoch
    bounds = [convert(v) for v in raw]
    if any(b is None for b in bounds):
        kind = "number" if family == "numeric" else "date"
        raise MalformedPolicyDocument(f"Condition value for {key} must be a {kind}: {raw}")

    def test(item: Any, _ctx: Lookup) -> bool | None:
        actual = convert(item)
        return None if actual is None else any(ordering(actual, b) for b in bounds)  # type: ignore[arg-type]

    return test


def _build_test(family: str, ordering: _Compare | None, raw: list[Any], key: str, variables: bool) -> _Test:
    texts = [to_text(v) for v in raw]
    if family in ("string", "string-ignore-case"):
        return _text_test(texts, variables, fold=family == "string-ignore-case")
    if family == "string-like":
        likes = PatternSet(tuple(texts), Mode.GLOB, variables=variables)
        return lambda item, ctx: likes.matches(to_text(item), ctx)
    if family == "arn":
        arns = PatternSet(tuple(texts), Mode.ARN, variables=variables)
        return lambda item, ctx: arns.matches(item, ctx) if isinstance(item, str) else None
    if ordering is not None:
        return _ordered_test(family, ordering, raw, key)
    if family == "bool":
        if any("${" not in t and t.lower() not in ("true", "false") for t in texts):
            raise MalformedPolicyDocument(f"Condition value for {key} must be true or false: {raw}")
        return _text_test(texts, variables, fold=True)
    if family == "binary":
        try:
            for text in texts:
                base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise MalformedPolicyDocument(f"Condition value for {key} must be base64: {raw}") from exc
        encoded = frozenset(texts)
        return lambda item, _ctx: to_text(item) in encoded
    try:
        networks = [ipaddress.ip_network(t.strip(), strict=False) for t in texts]
    except ValueError as exc:
        raise MalformedPolicyDocument(
            f"Condition value for {key} must be an IP address or CIDR: {raw}"
        ) from exc

    def in_network(item: Any, _ctx: Lookup) -> bool | None:
        address = _ip(item) if isinstance(item, str) else None
        return None if address is None else any(address in net for net in networks)

    return in_network


@dataclass(frozen=True, slots=True)
class Clause:
    """One (operator, key) pair of a Condition block, its policy values compiled into ``test``."""

    operator: str
    key: str
    set_op: str | None
    if_exists: bool
    negated: bool
    test: _Test | None  # None for Null, which only looks at presence
    null_expectations: tuple[bool, ...] = ()  # Null: for each value, whether it expects the key absent

    def holds(self, ctx: Lookup) -> bool:
        items = ctx.values(self.key)
        if self.test is None:
            return any(expect_absent == (items is None) for expect_absent in self.null_expectations)
        if items is None:
            # IAM user guide, condition operators: a missing key fails the test, except that a negated
            # operator (StringNotLike) then holds; IfExists holds; ForAllValues holds over no values,
            # ForAnyValue does not.
            if self.if_exists or self.set_op == "ForAllValues":
                return True
            return False if self.set_op == "ForAnyValue" else self.negated
        test, negated = self.test, self.negated

        def ok(item: Any) -> bool:
            result = test(item, ctx)
            # A request value of the wrong type satisfies neither the operator nor its negation.
            return False if result is None else result != negated

        if self.set_op == "ForAnyValue":
            return any(ok(item) for item in items)
        if self.set_op == "ForAllValues" or negated:
            # Without a set prefix a negated operator over several values means "matches none".
            return all(ok(item) for item in items)
        return any(ok(item) for item in items)


_SCALARS = (str, int, float, bool)


def compile_condition(raw: Any, *, variables: bool) -> tuple[Clause, ...]:
    """Validate and compile a statement's Condition element."""
    if not isinstance(raw, dict):
        raise MalformedPolicyDocument("Syntax errors in policy. Condition must be an object.")
    clauses: list[Clause] = []
    for op_name, block in raw.items():
        set_op, base, if_exists = parse_operator(op_name)
        if not isinstance(block, dict) or not block:
            raise MalformedPolicyDocument(
                f"Syntax errors in policy. {op_name} must map condition keys to values."
            )
        family, negated, ordering = OPERATORS[base]
        for key, value in block.items():
            if ":" not in key.strip(":"):
                raise MalformedPolicyDocument(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                )
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, _SCALARS) for v in values):
                raise MalformedPolicyDocument(
                    f"Syntax errors in policy. Values of {key} must be strings, numbers or booleans."
                )
            if family == "null":
                flags = [to_text(v).lower() for v in values]
                if not flags or any(f not in ("true", "false") for f in flags):
                    raise MalformedPolicyDocument(f"Null condition on {key} takes true or false: {value}")
                expectations = tuple(f == "true" for f in flags)
                clauses.append(Clause(op_name, key, None, False, False, None, expectations))
                continue
            test = _build_test(family, ordering, values, key, variables)
            clauses.append(Clause(op_name, key, set_op, if_exists, negated, test))
    return tuple(clauses)
