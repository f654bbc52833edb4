"""CloudWatch Logs filter patterns: compiled once per request, then applied to every event message.

Two syntaxes are understood:

* term patterns: ``ERROR timeout`` (every term must appear), ``"exact phrase"``, ``?ERROR ?WARN``
  (at least one of the ``?`` terms), ``-DEBUG`` (must not appear), ``%regex%``; matching is
  case-sensitive, as in AWS.
* JSON patterns: ``{ $.level = "ERROR" && ($.latency > 200 || $.user.id != 7) }`` with ``=``, ``!=``,
  ``<``, ``<=``, ``>``, ``>=``, ``IS TRUE|FALSE|NULL``, ``NOT EXISTS``; ``*`` in a string value
  matches any text. Messages that are not JSON objects never match.

Space-delimited patterns (``[ip, user, ...]``) are refused with a clear error rather than guessed at.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Matcher = Callable[[str], bool]
_MISSING = object()


class FilterPatternError(ValueError):
    """The pattern is malformed or uses syntax Kennel does not support."""


def compile_pattern(pattern: str | None) -> Matcher:
    """A predicate over event messages for ``pattern`` (empty or blank: every event matches)."""
    text = (pattern or "").strip()
    if not text:
        return _always
    if text.startswith("{"):
        return _JsonPattern(text)
    if text.startswith("["):
        raise FilterPatternError(
            "Space-delimited filter patterns ([field, ...]) are not supported by Kennel; "
            "use terms or a JSON pattern."
        )
    return _terms(text)


def _always(_message: str) -> bool:
    return True


# ----- term patterns ------------------------------------------------------------------------------------


@dataclass
class _TermPattern:
    required: list[Matcher] = field(default_factory=list)
    optional: list[Matcher] = field(default_factory=list)
    excluded: list[Matcher] = field(default_factory=list)

    def __call__(self, message: str) -> bool:
        if any(not term(message) for term in self.required):
            return False
        if self.optional and not any(term(message) for term in self.optional):
            return False
        return not any(term(message) for term in self.excluded)


def _terms(text: str) -> _TermPattern:
    compiled = _TermPattern()
    pos, end = 0, len(text)
    while pos < end:
        if text[pos].isspace():
            pos += 1
            continue
        bucket = compiled.required
        if text[pos] in "?-" and pos + 1 < end and not text[pos + 1].isspace():
            bucket = compiled.optional if text[pos] == "?" else compiled.excluded
            pos += 1
        if text[pos] == '"':
            value, pos = _quoted(text, pos)
            bucket.append(_substring(value))
            continue
        stop = pos
        while stop < end and not text[stop].isspace():
            stop += 1
        word = text[pos:stop]
        pos = stop
        if len(word) >= 2 and word.startswith("%") and word.endswith("%"):
            try:
                bucket.append(re.compile(word[1:-1]).search)  # type: ignore[arg-type]
            except re.error as exc:
                raise FilterPatternError(f"Invalid regular expression {word}: {exc}") from None
        else:
            bucket.append(_substring(word))
    return compiled


def _substring(value: str) -> Matcher:
    return lambda message: value in message


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """The string starting at the quote at ``pos`` (backslash escapes a quote) and where it ends."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise FilterPatternError(f"Unterminated quoted string in filter pattern: {text[pos:]}")


# ----- JSON patterns ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||!=|>=|<=|=|>|<|\(|\))
      | (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<sel>\$(?:\.[A-Za-z0-9_@\-]+|\[\d+\])*)
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![^\s()=!<>&|])
      | (?P<word>[^\s()=!<>&|"]+)
    )""",
    re.VERBOSE,
)


@dataclass
class _Token:
    kind: str
    text: str


def _tokenize(body: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None or match.end() == pos:
            raise FilterPatternError(f"Invalid JSON filter pattern near: {body[pos:].strip()[:40]}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


class _JsonPattern:
    def __init__(self, text: str) -> None:
        if not text.endswith("}"):
            raise FilterPatternError("A JSON filter pattern must end with '}'.")
        self._tokens = _tokenize(text[1:-1])
        self._pos = 0
        if not self._tokens:
            raise FilterPatternError("A JSON filter pattern needs at least one condition.")
        self._test = self._or()
        if self._pos != len(self._tokens):
            raise FilterPatternError(f"Unexpected '{self._tokens[self._pos].text}' in JSON filter pattern.")

    def __call__(self, message: str) -> bool:
        if not message.lstrip().startswith("{"):
            return False  # skips json.loads for plain-text lines, which are most lines
        try:
            document = json.loads(message)
        except ValueError:
            return False
        return isinstance(document, dict) and self._test(document)

    # recursive descent: or := and ('||' and)*; and := unary ('&&' unary)*
    def _peek(self) -> _Token | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _next(self, what: str) -> _Token:
        token = self._peek()
        if token is None:
            raise FilterPatternError(f"JSON filter pattern ends where {what} was expected.")
        self._pos += 1
        return token

    def _or(self) -> Callable[[Any], bool]:
        parts = [self._and()]
        while (token := self._peek()) is not None and token.text == "||":
            self._pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda doc: any(part(doc) for part in parts))

    def _and(self) -> Callable[[Any], bool]:
        parts = [self._unary()]
        while (token := self._peek()) is not None and token.text == "&&":
            self._pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda doc: all(part(doc) for part in parts))

    def _unary(self) -> Callable[[Any], bool]:
        token = self._next("a condition")
        if token.text == "(":
            inner = self._or()
            if self._next("')'").text != ")":
                raise FilterPatternError("Missing ')' in JSON filter pattern.")
            return inner
        if token.kind != "sel":
            raise FilterPatternError(f"Expected a selector like $.field, found '{token.text}'.")
        path = _selector_path(token.text)
        operator = self._next("an operator")
        if operator.kind == "word" and operator.text.upper() in ("IS", "NOT"):
            return self._keyword_test(path, operator.text.upper())
        if operator.kind != "op" or operator.text in ("(", ")", "&&", "||"):
            raise FilterPatternError(f"Expected a comparison operator after {token.text}.")
        value = self._next("a value")
        if value.kind not in ("str", "num", "word"):
            raise FilterPatternError(f"Expected a value after {token.text} {operator.text}.")
        return _comparison(path, operator.text, value)

    def _keyword_test(self, path: list[str | int], keyword: str) -> Callable[[Any], bool]:
        word = self._next("a keyword").text.upper()
        if keyword == "NOT" and word == "EXISTS":
            return lambda doc: _lookup(doc, path) is _MISSING
        expected = {"TRUE": True, "FALSE": False, "NULL": None}
        if keyword == "IS" and word in expected:
            wanted = expected[word]
            return lambda doc: _lookup(doc, path) is wanted
        raise FilterPatternError(f"Unknown test '{keyword} {word}' in JSON filter pattern.")


def _selector_path(text: str) -> list[str | int]:
    return [
        int(part[1:-1]) if part.startswith("[") else part[1:]
        for part in re.findall(r"\.[^.\[]+|\[\d+\]", text)
    ]


def _lookup(document: Any, path: list[str | int]) -> Any:
    current = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return _MISSING
            current = current[step]
        elif isinstance(current, dict) and step in current:
            current = current[step]
        else:
            return _MISSING
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparison(path: list[str | int], operator: str, token: _Token) -> Callable[[Any], bool]:
    if token.kind == "num":
        number = float(token.text)
        compare = _NUMERIC[operator]
        return lambda doc: _is_number(found := _lookup(doc, path)) and compare(float(found), number)
    if operator not in ("=", "!="):
        raise FilterPatternError(f"Operator {operator} needs a numeric value, not {token.text}.")
    text = json.loads(token.text) if token.kind == "str" else token.text
    if "*" in text:
        regex = re.compile(".*".join(re.escape(part) for part in text.split("*")), re.DOTALL)

        def equal(found: Any) -> bool:
            return isinstance(found, str) and regex.fullmatch(found) is not None
    else:

        def equal(found: Any) -> bool:
            return isinstance(found, str) and found == text

    if operator == "=":
        return lambda doc: equal(_lookup(doc, path))
    return lambda doc: (found := _lookup(doc, path)) is not _MISSING and not equal(found)


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b,
    "!=": lambda a, b: not (math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b),
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
