"""Listings (and other answers) that speak of keys the store cannot hold under their own names (pure).

Keys with a path segment over 255 bytes live only as side objects (sidekeys.py), so the store's own
listing cannot show them. A listing of a bucket that has such keys is the store's page merged with the
bucket's side keys in S3's order (UTF-8 byte order), with prefix, delimiter and page size applied to
both, and Kennel's own continuation point: the last name it returned. The proxy asks the store to
start after that name (``start-after``, ``marker``, ``key-marker``), which every listing form takes.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
_MAX_KEYS = 1000


class BadToken(ValueError):
    """A continuation token Kennel did not issue."""


@dataclass(frozen=True)
class SideEntry:
    key: str
    size: int
    etag: str
    last_modified: str


@dataclass(frozen=True)
class Page:
    """What was asked: the listing form ("v1", "v2", "versions") and its parameters."""

    form: str
    prefix: str
    delimiter: str
    max_keys: int
    after: str  # the listing starts after this name ("" from the start)
    url_encoded: bool
    token: str | None = None  # the client's continuation token, echoed back (V2)


def token_for(name: str) -> str:
    return base64.urlsafe_b64encode(b"kennel:" + name.encode("utf-8", "surrogatepass")).decode()


def name_of(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, UnicodeError, ValueError):
        raise BadToken(token) from None
    if not raw.startswith(b"kennel:"):
        raise BadToken(token)
    try:
        return raw[len(b"kennel:") :].decode("utf-8")
    except UnicodeDecodeError:
        raise BadToken(token) from None


def page_of(form: str, query: Mapping[str, str]) -> tuple[Page, dict[str, str]]:
    """The page a listing asks for, and the query to send the store for it: Kennel's continuation
    token becomes the name to start after. BadToken for a token Kennel did not issue."""
    forwarded = dict(query)
    raw_max = query.get("max-keys", "")
    max_keys = min(int(raw_max), _MAX_KEYS) if raw_max.isdigit() and len(raw_max) < 8 else _MAX_KEYS
    if form == "v2":
        after = query.get("start-after", "")
        token = forwarded.pop("continuation-token", None)
        if token is not None:
            after = max(after, name_of(token))
        if after:
            forwarded["start-after"] = after
    elif form == "v1":
        after = query.get("marker", "")
    else:
        after = query.get("key-marker", "")
    page = Page(
        form, query.get("prefix", ""), query.get("delimiter", ""), max_keys, after,
        query.get("encoding-type") == "url", query.get("continuation-token") if form == "v2" else None,
    )  # fmt: skip
    return page, forwarded


def merge(xml: bytes, page: Page, side: Iterable[SideEntry]) -> bytes:
    """The store's listing page with the side keys merged in, cut to the page size."""
    ElementTree.register_namespace("", XMLNS)
    root = ElementTree.fromstring(xml)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    entry_tags = {f"{ns}Contents", f"{ns}Version", f"{ns}DeleteMarker"}
    owner = root.find(f".//{ns}Owner")
    items: list[tuple[str, int, ElementTree.Element]] = []  # (name, 0 entry | 1 common prefix, element)
    store_last = ""
    for child in list(root):
        if child.tag in entry_tags or child.tag == f"{ns}CommonPrefixes":
            root.remove(child)
            name_tag = "Key" if child.tag in entry_tags else "Prefix"
            name = _decoded(child.findtext(f"{ns}{name_tag}", ""), page.url_encoded)
            is_prefix = child.tag == f"{ns}CommonPrefixes"
            store_last = max(store_last, name)
            # Resuming after a common prefix, the store groups the keys under it into it once more.
            if name > page.after and not (is_prefix and page.after.startswith(name)):
                items.append((name, int(is_prefix), child))
    store_truncated = root.findtext(f"{ns}IsTruncated", "false") == "true"
    prefixes_seen = {name for name, is_prefix, _ in items if is_prefix}
    for entry in side:
        if not entry.key.startswith(page.prefix) or entry.key <= page.after:
            continue
        rest = entry.key[len(page.prefix) :]
        if page.delimiter and page.delimiter in rest:
            common = page.prefix + rest[: rest.index(page.delimiter) + len(page.delimiter)]
            if common not in prefixes_seen and not page.after.startswith(common):
                prefixes_seen.add(common)
                items.append((common, 1, _element(ns, "CommonPrefixes", Prefix=_encoded(common, page))))
            continue
        items.append((entry.key, 0, _side_element(ns, page, entry, owner)))
    items.sort(key=lambda item: item[0].encode("utf-8", "surrogatepass"))
    if store_truncated:  # past the store's page lie keys it has not shown yet: stop where it stopped
        items = [item for item in items if item[0] <= store_last]
    shown = items[: page.max_keys]
    # max-keys=0 asks for no keys and gets an untruncated empty page, not an endless one.
    more = page.max_keys > 0 and (len(items) > page.max_keys or store_truncated)
    for _, _, element in shown:
        root.append(element)
    _set(root, ns, "IsTruncated", "true" if more else "false")
    last = shown[-1][0] if shown else page.after
    for tag in ("NextContinuationToken", "NextMarker", "NextKeyMarker", "NextVersionIdMarker"):
        _remove(root, ns, tag)
    if page.form == "v2":
        _set(root, ns, "KeyCount", str(len(shown)))
        if page.token is not None:
            _set(root, ns, "ContinuationToken", page.token)
        if more:
            root.append(_element(ns, "NextContinuationToken", token_for(last)))
    elif more and page.form == "v1":
        root.append(_element(ns, "NextMarker", _encoded(last, page)))
    elif more:
        root.append(_element(ns, "NextKeyMarker", _encoded(last, page)))
        root.append(_element(ns, "NextVersionIdMarker", "null"))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8")


def _side_element(
    ns: str, page: Page, entry: SideEntry, owner: ElementTree.Element | None
) -> ElementTree.Element:
    fields = {"Key": _encoded(entry.key, page)}
    if page.form == "versions":
        fields |= {"VersionId": "null", "IsLatest": "true"}
    fields |= {"LastModified": entry.last_modified, "ETag": entry.etag, "Size": str(entry.size),
               "StorageClass": "STANDARD"}  # fmt: skip
    element = _element(ns, "Version" if page.form == "versions" else "Contents", **fields)
    if owner is not None:
        element.append(owner)
    return element


def _element(ns: str, tag: str, text: str | None = None, **children: str) -> ElementTree.Element:
    element = ElementTree.Element(f"{ns}{tag}")
    element.text = text
    for name, value in children.items():
        ElementTree.SubElement(element, f"{ns}{name}").text = value
    return element


def _set(root: ElementTree.Element, ns: str, tag: str, value: str) -> None:
    found = root.find(f"{ns}{tag}")
    if found is None:
        found = ElementTree.SubElement(root, f"{ns}{tag}")
    found.text = value


def _remove(root: ElementTree.Element, ns: str, tag: str) -> None:
    for found in root.findall(f"{ns}{tag}"):
        root.remove(found)


def _decoded(text: str, url_encoded: bool) -> str:
    return unquote(text) if url_encoded else text


def _encoded(name: str, page: Page) -> str:
    return quote(name, safe="/") if page.url_encoded else name


_CONTENTS = re.compile(rb"<(Contents|Version)>(.*?)</\1>", re.S)
_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)


def fill(xml: bytes, side: Mapping[str, SideEntry]) -> bytes:
    """A listing whose folder keys (the store's empty markers) carry their side objects' size, ETag and
    Last-Modified. The store already placed every key, so nothing is added, moved or removed."""
    if not side:
        return xml
    url_encoded = b"<EncodingType>url</EncodingType>" in xml

    def filled(found: re.Match) -> bytes:
        entry = found.group(2)
        named = _KEY.search(entry)
        if named is None:
            return found.group(0)
        text = named.group(1).decode("utf-8")
        kept = side.get(unquote(text) if url_encoded else html.unescape(text))
        if kept is None:
            return found.group(0)
        for tag, value in (("Size", str(kept.size)), ("ETag", escape(kept.etag)),
                           ("LastModified", kept.last_modified)):  # fmt: skip
            element = re.compile(f"<{tag}>.*?</{tag}>".encode(), re.S)
            entry = element.sub(lambda _, t=tag, v=value: f"<{t}>{v}</{t}>".encode(), entry, count=1)
        tag = found.group(1)
        return b"<" + tag + b">" + entry + b"</" + tag + b">"

    return _CONTENTS.sub(filled, xml)


def without_bucket(xml: bytes, name: str) -> bytes:
    """A ListBuckets answer without the named bucket."""
    entry = re.compile(rb"<Bucket>\s*<Name>" + re.escape(name.encode()) + rb"</Name>.*?</Bucket>", re.S)
    return entry.sub(b"", xml)


def own_names(xml: bytes, side_bucket: str, side_key: str, bucket: str, key: str) -> bytes:
    """An answer about a side object that speaks of the client's bucket and key instead (multipart
    results and errors name both; a client never sees the side bucket)."""
    named = f"<Bucket>{escape(bucket)}</Bucket>".encode()
    xml = xml.replace(f"<Bucket>{side_bucket}</Bucket>".encode(), named)
    xml = xml.replace(f"<Key>{side_key}</Key>".encode(), f"<Key>{escape(key)}</Key>".encode())
    return xml.replace(f"/{side_bucket}/{side_key}".encode(), f"/{bucket}/{quote(key)}".encode())
