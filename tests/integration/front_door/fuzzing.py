"""Mutations for the fuzz campaign (``test_fuzz.py``): structured ones on parameters, byte-level ones on
the encoded request. Every generator takes a seeded ``random.Random``, so a failure replays exactly.

Deep nesting cannot be built as Python objects (``json.dumps`` would recurse into it), so generators
leave a ``Raw`` placeholder that is spliced into the encoded text instead.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

ODD_TEXT = [
    "", " ", "\x00", "\x7f", "\ud800", "\udfff", "\ud83d", "é", "😀", "\u202e", "\ufeff", "\uffff",
    "../../etc/passwd", "%00", "%zz", "${aws:username}", "*", "?", "<x>", "'\"", "\r\n", "null", "true",
    "-1", "1e400", "NaN", "arn:aws:iam::000000000000:role/x", "arn:", "a" * 300, "🐕" * 200, "\\", "/",
    "a/../b", "./", "//", "\t", "ß" * 600,
]  # fmt: skip
ODD_NUMBERS: list[Any] = [0, -1, 1, 2**31, 2**31 - 1, -(2**31) - 1, 2**63, 2**64 - 1, -(10**30), 10**400,
                          1.5, -0.0, 1e308, 5e-324, True, False, None]  # fmt: skip


@dataclass(frozen=True)
class Raw:
    """Text spliced verbatim into an encoded JSON body (deep nesting, huge literals, bad escapes)."""

    text: str


RAW_JSON = [
    Raw("[" * 120 + "]" * 120),
    Raw("[" * 3000 + "]" * 3000),
    Raw('{"a":' * 2000 + "1" + "}" * 2000),
    Raw("1" + "0" * 5000),
    Raw("-" + "9" * 4400),
    Raw("1e999999"),
    Raw('"\\ud800"'),
    Raw('"\\udc00\\ud800"'),
    Raw('"\\u0000"'),
    Raw('"\\x41"'),
    Raw("NaN"),
    Raw("-Infinity"),
    Raw('"' + "\\u00e9" * 3000 + '"'),
]


def odd_value(rng: random.Random, like: Any = None) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(ODD_TEXT)
    if roll < 0.6:
        return rng.choice(ODD_NUMBERS)
    if roll < 0.7:
        return rng.choice(RAW_JSON)
    if roll < 0.8:
        return [like, like] if like is not None else []
    if roll < 0.9:
        return {"x": like, "": None}
    return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40)))


def mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """One structural mutation somewhere in ``value`` (a decoded JSON-like tree)."""
    if isinstance(value, dict) and value and depth < 6:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del out[key]  # drop a (possibly required) field
        elif roll < 0.25:
            out[key + rng.choice(["", "X", "\u00e9", "."])] = out[key]  # unknown or near-miss field
        elif roll < 0.35:
            out[key] = [out[key]]  # retype: wrap
        elif roll < 0.5:
            out[key] = odd_value(rng, out[key])
        else:
            out[key] = mutate(rng, out[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 6:
        out = list(value)
        roll = rng.random()
        if roll < 0.3:
            out = out * rng.choice([2, 101])  # duplicates, or more than a limit allows
        elif roll < 0.45:
            out.append(odd_value(rng, out[0]))
        else:
            index = rng.randrange(len(out))
            out[index] = mutate(rng, out[index], depth + 1)
        return out
    if isinstance(value, str) and rng.random() < 0.3:
        return value + rng.choice(ODD_TEXT) if rng.random() < 0.5 else value * rng.choice([50, 3000])
    return odd_value(rng, value)


def mutate_many(rng: random.Random, value: Any) -> Any:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        value = mutate(rng, value)
    return value


def to_json(value: Any) -> bytes:
    """JSON text with ``Raw`` placeholders spliced in; lone surrogates become ``\\udXXX`` escapes."""
    raws: list[str] = []

    def placeholder(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(item, dict):
            return {str(k): placeholder(v) for k, v in item.items()}
        if isinstance(item, list):
            return [placeholder(v) for v in item]
        return item

    text = json.dumps(placeholder(value))
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{index}@@"', raw, 1)
    return text.encode("utf-8", "surrogatepass")


def mangle_bytes(rng: random.Random, data: bytes) -> bytes:
    """Byte-level damage: truncation, a flipped byte, an inserted one, or a junk suffix."""
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    roll = rng.random()
    if roll < 0.4:
        return data[: rng.randrange(len(data))]
    buffer = bytearray(data)
    if roll < 0.6:
        buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    elif roll < 0.8:
        buffer.insert(rng.randrange(len(buffer) + 1), rng.randrange(256))
    else:
        buffer += rng.choice([b"\xff\xfe", b"%ED%A0%80", b"}", b"&", b"=", b"\x00", b"%", b"&&a=b"])
    return bytes(buffer)


def flatten(value: Any, prefix: str, out: list[tuple[str, str]], rng: random.Random) -> None:
    """The query protocol's dotted field names (``Tags.member.1.Key``), with odd indexes now and then."""
    if isinstance(value, Raw):
        out.append((prefix, value.text))
    elif isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out, rng)
    elif isinstance(value, list):
        if not value:
            out.append((prefix, ""))
        for index, item in enumerate(value, 1):
            shown = str(index)
            if rng.random() < 0.05:
                shown = rng.choice(["0", "-1", "x", "", "9" * 4300, "99999999999", "1.5", "01", "١"])
            flatten(item, f"{prefix}.member.{shown}", out, rng)
    elif value is None:
        out.append((prefix, ""))
    else:
        out.append((prefix, json.dumps(value) if isinstance(value, bool) else str(value)))


def form_body(rng: random.Random, pairs: list[tuple[str, str]]) -> bytes:
    if pairs and rng.random() < 0.15:
        pairs = [*pairs, rng.choice(pairs)]  # a repeated field
    parts = []
    for name, value in pairs:
        name_bytes = name.encode("utf-8", "surrogatepass")
        value_bytes = value.encode("utf-8", "surrogatepass")
        parts.append(f"{quote(name_bytes, safe='.')}={quote(value_bytes, safe='')}")
    return "&".join(parts).encode()


def path_text(rng: random.Random, text: str) -> str:
    """A URI label: usually percent-encoded as SDKs do, sometimes raw or double-encoded."""
    encoded = quote(text.encode("utf-8", "surrogatepass"), safe="")
    roll = rng.random()
    if roll < 0.1:
        return quote(encoded, safe="")
    if roll < 0.15:
        return encoded.replace("%2F", "/")
    return encoded


S3_KEYS = ["k.txt", "dir/", "a/b/c", "é/ü.txt", "sp ace", "plus+sign", "k" * 1024, "k" * 1025, "a//b",
           "a/../b", "%2e%2e/x", "tab\tkey", "q?x", "hash#x", "\u202ertl", "😀"]  # fmt: skip
S3_QUERIES = [
    "list-type=2", "list-type=2&prefix=a%2F", "list-type=2&max-keys=-1", "list-type=2&max-keys=9999999999999",
    "list-type=2&continuation-token=%ff", "list-type=2&delimiter=%2F&start-after=zz", "uploads", "versions",
    "location", "tagging", "acl", "list-type=2&prefix=a&prefix=b", "marker=%00", "max-keys=abc",
    "list-type=3", "encoding-type=url", "encoding-type=bogus", "list-type=2&fetch-owner=maybe",
    "uploads&max-uploads=-5", "list-type=2&prefix=%ED%A0%80", "versions&key-marker=%ff", "policy",
]  # fmt: skip
_PART = b"<Part><PartNumber>1</PartNumber><ETag>x</ETag></Part>"
S3_XML = [
    b"<Delete><Object><Key>k.txt</Key></Object></Delete>", b"<Delete></Delete>", b"<Delete><Object><Key>",
    b"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaa'>]><Delete><Object><Key>&a;</Key></Object></Delete>",
    b"<a>" * 5000 + b"</a>" * 5000, b"\xff\xfe<x/>", b"",
    b"<CompleteMultipartUpload>" + _PART + _PART + b"</CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Part><PartNumber>99999999999999999999</PartNumber></Part></CompleteMultipartUpload>",
    b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
]  # fmt: skip


def s3_request(rng: random.Random, bucket: str) -> tuple[str, str, str, dict, bytes]:
    key = (
        quote(rng.choice(S3_KEYS).encode(), safe="/")
        if rng.random() < 0.8
        else path_text(rng, rng.choice(ODD_TEXT))
    )
    method = rng.choice(["GET", "GET", "PUT", "PUT", "HEAD", "DELETE", "POST"])
    headers: dict[str, str] = {}
    body = b""
    on_bucket = rng.random() < 0.35
    path = f"/{bucket}" if on_bucket else f"/{bucket}/{key}"
    query = rng.choice(S3_QUERIES) if on_bucket or rng.random() < 0.2 else ""
    if method == "PUT":
        body = rng.randbytes(rng.choice([0, 1, 100, 70000]))
        if rng.random() < 0.2:
            headers["x-amz-copy-source"] = rng.choice(
                [f"/{bucket}/k.txt", f"{bucket}/../x", "nobucket", "/", "%ff"]
            )
        if rng.random() < 0.2:
            headers["Content-MD5"] = rng.choice(["xx", "", "1B2M2Y8AsgTpgAmY7PhCfg=="])
        if rng.random() < 0.2:
            headers["x-amz-tagging"] = rng.choice(["a=b", "&&", "=" * 100, "a=%ff"])
        if rng.random() < 0.2:
            headers["x-amz-meta-odd"] = rng.choice(["é".encode().decode("latin-1"), "x" * 3000, " "])
    if method == "POST":
        query = rng.choice(["delete", "delete", "uploads", "uploadId=nope", "uploadId="])
        body = rng.choice(S3_XML)
        if rng.random() < 0.3:
            body = mangle_bytes(rng, body)
    if method == "GET" and rng.random() < 0.15:
        headers["Range"] = rng.choice(
            ["bytes=0-0", "bytes=-1", "bytes=9999999999999999999999-", "bytes=a-b", "x"]
        )
    if rng.random() < 0.05:
        path = rng.choice([f"/{bucket.upper()}", "/-bad-", "/" + "b" * 70, "/xn--bad/k"])
    return method, path, query, headers, body
