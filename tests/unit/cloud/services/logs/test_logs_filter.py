"""CloudWatch Logs filter patterns: terms, phrases, OR and exclusion terms, regexes, JSON conditions."""

from __future__ import annotations

import json

import pytest

from kennel.cloud.services.logs.filter import FilterPatternError, compile_pattern

LINES = [
    "ERROR timeout talking to db",
    "INFO request ok latency=12",
    "WARN slow request",
    'ERROR "quoted" failure in worker',
    "DEBUG tick",
]


def _matching(pattern: str, lines: list[str] = LINES) -> list[str]:
    matches = compile_pattern(pattern)
    return [line for line in lines if matches(line)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("", LINES),
        ("   ", LINES),
        ("ERROR", [LINES[0], LINES[3]]),
        ("error", []),  # case-sensitive, as in AWS
        ("ERROR worker", [LINES[3]]),  # every term must appear
        ("request ok", [LINES[1]]),
        ('"slow request"', [LINES[2]]),
        ('"request slow"', []),
        ("?WARN ?DEBUG", [LINES[2], LINES[4]]),
        ("?WARN ?INFO request", [LINES[1], LINES[2]]),  # required terms and at least one ? term
        ("ERROR -worker", [LINES[0]]),
        ('-"slow request" request', [LINES[1]]),
        ('"\\"quoted\\""', [LINES[3]]),  # a backslash escapes a quote inside a phrase
        ("%latency=[0-9]+%", [LINES[1]]),
        ("%^(WARN|DEBUG)%", [LINES[2], LINES[4]]),
        ("-", []),  # a lone dash is an ordinary term
    ],
)
def test_term_patterns(pattern: str, expected: list[str]) -> None:
    assert _matching(pattern) == expected


EVENTS = [
    {"level": "ERROR", "latency": 250, "user": {"id": 7, "name": "ann"}, "tags": ["a", "b"], "ok": False},
    {"level": "INFO", "latency": 20.5, "user": {"id": 8, "name": "bob"}, "ok": True, "note": None},
    {"level": "WARN", "latency": "slow", "path": "/api/v1/items"},
]
JSON_LINES = [json.dumps(event) for event in EVENTS] + ["ERROR not json", "[1, 2]", "{broken"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ('{ $.level = "ERROR" }', [0]),
        ("{ $.level = ERROR }", [0]),  # an unquoted word is a string too
        ('{ $.level != "ERROR" }', [1, 2]),
        ("{ $.latency = 250 }", [0]),
        ("{ $.latency != 250 }", [1]),  # a number comparison ignores fields that hold strings
        ("{ $.latency > 20 }", [0, 1]),
        ("{ $.latency >= 20.5 && $.latency < 100 }", [1]),
        ("{ $.latency <= 20.5 }", [1]),
        ("{ $.user.id = 7 || $.user.name = bob }", [0, 1]),
        ('{ ($.level = "ERROR" || $.level = "WARN") && $.latency > 100 }', [0]),
        ("{ $.user.id != 7 }", [1]),  # absent fields never match, not even !=
        ('{ $.tags[1] = "b" }', [0]),
        ('{ $.path = "/api/*/items" }', [2]),
        ('{ $.level = "WA*" }', [2]),
        ("{ $.ok IS TRUE }", [1]),
        ("{ $.ok IS FALSE }", [0]),
        ("{ $.note IS NULL }", [1]),
        ("{ $.path NOT EXISTS }", [0, 1]),
    ],
)
def test_json_patterns(pattern: str, expected: list[int]) -> None:
    matches = compile_pattern(pattern)
    assert [i for i, line in enumerate(JSON_LINES) if matches(line)] == expected


@pytest.mark.parametrize(
    "pattern",
    [
        "[ip, user, status]",  # space-delimited patterns are refused, not guessed at
        '"unterminated',
        "%(%",
        "{ $.level = ",
        "{ level = 1 }",
        "{ $.a > x }",
        "{ $.a = 1",
        "{ ($.a = 1 }",
        "{ $.a = 1 $.b = 2 }",
        "{ $.a IS MAYBE }",
        "{ }",
    ],
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        compile_pattern(pattern)
