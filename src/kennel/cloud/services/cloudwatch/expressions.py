"""Metric math for GetMetricData: a small parser and evaluator for the common subset of AWS's language.

Supported: numbers, query ids (``m1``), ``+ - * /``, unary minus, parentheses, arrays ``[m1, m2]``,
``METRICS()`` / ``METRICS("label text")``, and ``SUM``, ``AVG``, ``MIN``, ``MAX``. As in AWS, those
functions combine an array of time series point by point, and reduce a single time series to a scalar
(its sum, average, … over the whole range). Series combine on the timestamps they share; a division
by zero leaves that timestamp out. Anything else is refused with the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

Series = dict[int, float]  # timestamp → value
Value = float | Series | list  # a scalar, a time series, or an array of time series

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|(?P<func>[A-Z][A-Z_0-9]*)(?=\s*\()"
    r"|(?P<id>[a-z][a-zA-Z0-9_]*)|(?P<str>\"[^\"]*\")|(?P<op>[-+*/()\[\],]))"
)
_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "SUM": sum,
    "AVG": lambda values: sum(values) / len(values),
    "MIN": min,
    "MAX": max,
}


class ExpressionError(ValueError):
    pass


def identifiers(expression: str) -> set[str]:
    """The query ids an expression refers to (for ordering and cycle checks)."""
    return {text for kind, text in _tokenize(expression) if kind == "id"}


def evaluate(
    expression: str,
    resolve: Callable[[str], Value],
    metrics: Callable[[str | None], list[Series]],
) -> Value:
    """The value of ``expression``; ``resolve`` gives another query's value, ``metrics`` the series of
    the request's metric queries (whose label contains the filter text, when one is given)."""
    parser = _Parser(_tokenize(expression), resolve, metrics)
    value = parser.expression()
    if parser.pos != len(parser.tokens):
        raise ExpressionError(f"Unexpected '{parser.tokens[parser.pos][1]}' at the end of the expression.")
    return value


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(f"Unrecognized token at '{text[pos:].strip()[:20]}'.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    if not tokens:
        raise ExpressionError("The expression is empty.")
    return tokens


class _Parser:
    def __init__(self, tokens, resolve, metrics) -> None:
        self.tokens: list[tuple[str, str]] = tokens
        self.pos = 0
        self.resolve = resolve
        self.metrics = metrics

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExpressionError("The expression ends too early.")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _expect(self, text: str) -> None:
        found = self._take()[1]
        if found != text:
            raise ExpressionError(f"Expected '{text}' but found '{found}'.")

    def expression(self) -> Value:
        value = self._term()
        while self._peek() in ("+", "-"):
            operator = self._take()[1]
            value = combine(operator, value, self._term())
        return value

    def _term(self) -> Value:
        value = self._unary()
        while self._peek() in ("*", "/"):
            operator = self._take()[1]
            value = combine(operator, value, self._unary())
        return value

    def _unary(self) -> Value:
        if self._peek() == "-":
            self._take()
            return combine("*", -1.0, self._unary())
        return self._primary()

    def _primary(self) -> Value:
        kind, text = self._take()
        if kind == "num":
            return float(text)
        if kind == "id":
            return self.resolve(text)
        if text == "(":
            value = self.expression()
            self._expect(")")
            return value
        if text == "[":
            items = [self.expression()]
            while self._peek() == ",":
                self._take()
                items.append(self.expression())
            self._expect("]")
            return [_series_of(item) for item in items]
        if kind == "func":
            return self._call(text)
        raise ExpressionError(f"Unexpected '{text}'.")

    def _call(self, name: str) -> Value:
        self._expect("(")
        if name == "METRICS":
            label = None
            if self._peek() != ")":
                kind, text = self._take()
                if kind != "str":
                    raise ExpressionError("METRICS() takes an optional quoted label filter.")
                label = text[1:-1]
            self._expect(")")
            return self.metrics(label)
        reducer = _REDUCERS.get(name)
        if reducer is None:
            raise ExpressionError(f"Kennel does not support the metric math function {name}.")
        argument = self.expression()
        self._expect(")")
        return reduce(reducer, argument)


def _series_of(value: Value) -> Series:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        raise ExpressionError("Arrays cannot be nested.")
    raise ExpressionError("An array may only contain time series.")


def reduce(reducer: Callable[[list[float]], float], value: Value) -> Value:
    """An aggregate function: across an array per timestamp, or over time for one series."""
    if isinstance(value, list):
        stamps = sorted({ts for series in value for ts in series})
        out: Series = {}
        for ts in stamps:
            present = [series[ts] for series in value if ts in series]
            if present:
                out[ts] = reducer(present)
        return out
    if isinstance(value, dict):
        return reducer(list(value.values())) if value else math.nan
    return value


def combine(operator: str, left: Value, right: Value) -> Value:
    if isinstance(left, list) or isinstance(right, list):
        if isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                raise ExpressionError("Arrays combined with an operator must have the same length.")
            return [combine(operator, a, b) for a, b in zip(left, right, strict=True)]
        if isinstance(left, list):
            return [combine(operator, item, right) for item in left]
        return [combine(operator, left, item) for item in right]  # type: ignore[union-attr]
    if isinstance(left, dict) and isinstance(right, dict):
        return _drop_missing(
            {ts: _apply(operator, value, right[ts]) for ts, value in left.items() if ts in right}
        )
    if isinstance(left, dict):
        return _drop_missing({ts: _apply(operator, value, right) for ts, value in left.items()})  # type: ignore[arg-type]
    if isinstance(right, dict):
        return _drop_missing({ts: _apply(operator, left, value) for ts, value in right.items()})
    return _apply(operator, left, right)


def _apply(operator: str, a: float, b: float) -> float:
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    return a / b if b != 0 else math.nan


def _drop_missing(series: dict[int, Any]) -> Series:
    return {ts: value for ts, value in series.items() if not math.isnan(value)}
