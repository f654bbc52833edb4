"""Java regular expressions (as AWS's models carry them) translated to Python's ``re``.

AWS validates with ``java.util.regex``; botocore's models keep those patterns verbatim. Python's ``re``
lacks ``\\p{...}`` classes, spells ``\\z`` as ``\\Z``, treats UTF-16 surrogate pairs as two characters,
rejects ``-`` after a class escape inside ``[...]`` and ``(?<name>...)`` groups. Those are rewritten
here; a pattern that still does not compile is skipped (``None``) rather than rejecting valid input.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

# POSIX classes are ASCII-only in Java unless UNICODE_CHARACTER_CLASS is set, which AWS does not set.
_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7f", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": "!-/:-@\\[-`{-~", "Graph": "!-~", "Print": " -~", "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f", "XDigit": "0-9a-fA-F", "Space": " \\t\\n\\x0b\\f\\r",
}  # fmt: skip
_CLASS_ESCAPES = frozenset("wWdDsS")


@lru_cache(maxsize=1)
def _categories() -> dict[str, str]:
    """Unicode general categories as ``re`` class bodies; one pass over the code points, only on demand."""
    spans: dict[str, list[tuple[int, int]]] = {}
    category = unicodedata.category
    start, current = 0, category("\x00")
    for point in range(1, sys.maxunicode + 1):
        cat = category(chr(point))
        if cat != current:
            spans.setdefault(current, []).append((start, point - 1))
            start, current = point, cat
    spans.setdefault(current, []).append((start, sys.maxunicode))
    bodies = {cat: _ranges(found) for cat, found in spans.items()}
    for major in {cat[0] for cat in spans}:
        bodies[major] = "".join(body for cat, body in bodies.items() if cat[0] == major and len(cat) == 2)
    return bodies


def _ranges(spans: list[tuple[int, int]]) -> str:
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in spans)


def _property(name: str) -> str | None:
    if name in _POSIX:
        return _POSIX[name]
    name = name.removeprefix("Is").removeprefix("general_category=").removeprefix("gc=")
    return _categories().get(name) if len(name) <= 2 else None


def _read_escape(pattern: str, i: int) -> tuple[str, int]:
    """The escape starting at ``pattern[i] == '\\'``: its raw text and the index after it."""
    if i + 1 >= len(pattern):
        return "\\", i + 1
    char = pattern[i + 1]
    if char in "pP" and i + 2 < len(pattern) and pattern[i + 2] == "{":
        end = pattern.find("}", i + 3)
        if end != -1:
            return pattern[i : end + 1], end + 1
    if char == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", pattern[i + 2 : i + 6]):
        return pattern[i : i + 6], i + 6
    if char == "x" and i + 2 < len(pattern) and pattern[i + 2] == "{":
        end = pattern.find("}", i + 3)
        if end != -1:
            return pattern[i : end + 1], end + 1
    return pattern[i : i + 2], i + 2


def translate(pattern: str) -> str:
    out: list[str] = []
    i, in_class, class_start = 0, False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escape, i = _read_escape(pattern, i)
            kind = escape[1:2]
            if kind in "pP" and len(escape) > 3:
                body = _property(escape[3:-1])
                if body is None:
                    raise re.error(f"unknown property {escape}")
                if in_class:
                    if kind == "P":
                        raise re.error("negated property inside a class")
                    out.append(body)
                else:
                    out.append(f"[{'^' if kind == 'P' else ''}{body}]")
            elif kind == "u":
                point = int(escape[2:], 16)
                # A UTF-16 surrogate pair written as two escapes is one code point to Python.
                if 0xD800 <= point <= 0xDBFF:
                    low, after = _read_escape(pattern, i) if pattern.startswith("\\u", i) else ("", i)
                    if low.startswith("\\u") and len(low) == 6 and 0xDC00 <= int(low[2:], 16) <= 0xDFFF:
                        point = 0x10000 + ((point - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00)
                        i = after
                out.append(f"\\U{point:08x}")
            elif kind == "x" and escape.startswith("\\x{"):
                out.append(f"\\U{int(escape[3:-1], 16):08x}")
            elif kind == "z":
                out.append("\\Z")
            elif kind == "Z":
                out.append("(?=\\n?\\Z)")
            else:
                out.append(escape)
            if (
                in_class
                and kind in _CLASS_ESCAPES | {"p"}
                and pattern.startswith("-", i)
                and not pattern.startswith("-]", i)
            ):
                # Java reads "-" after a class escape as a literal; Python calls it a bad range.
                out.append("\\-")
                i += 1
            continue
        if in_class:
            if char == "]" and i > class_start:
                in_class = False
            elif char == "[":
                out.append("\\[")
                i += 1
                continue
            out.append(char)
            i += 1
            continue
        if char == "[":
            in_class = True
            out.append(char)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            class_start = i + (1 if pattern.startswith("]", i) else 0)
            if class_start > i:
                out.append("\\]")
                i += 1
            continue
        if char == "(" and pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
            out.append("(?P<")
            i += 3
            continue
        if char == "$" and pattern.startswith("{", i + 1):
            out.append("(?:$)")  # Java lets an anchor carry a quantifier; Python needs a group
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_java(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(translate(pattern))
    except (re.error, ValueError, OverflowError):
        return None
