"""Listings that merge the store's page with side keys, and the other rewrites of store answers (pure)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from kennel.cloud.objectstore import listings
from kennel.cloud.objectstore.listings import Page, SideEntry
from kennel.cloud.objectstore.sidekeys import has_long_segment, keeps_marker, needs_side

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
LONG = "l" * 300


def store_v2(keys: list[str], prefixes: list[str] = (), truncated: bool = False) -> bytes:
    contents = "".join(
        f"<Contents><Key>{k}</Key><LastModified>2026-12-07T00:00:00.000Z</LastModified>"
        f'<ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>'
        for k in keys
    )
    common = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>b</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{contents}{common}</ListBucketResult>"
    ).encode()


def side(*keys: str) -> list[SideEntry]:
    return [SideEntry(k, 7, '"s"', "2026-12-07T01:00:00.000Z") for k in keys]


def names(xml: bytes) -> tuple[list[str], list[str], dict[str, str]]:
    root = ElementTree.fromstring(xml)
    keys = [e.findtext(f"{NS}Key") for e in root.findall(f"{NS}Contents")]
    prefixes = [e.findtext(f"{NS}Prefix") for e in root.findall(f"{NS}CommonPrefixes")]
    fields = {
        tag: root.findtext(f"{NS}{tag}") for tag in ("IsTruncated", "KeyCount", "NextContinuationToken")
    }
    return keys, prefixes, fields


def page(max_keys: int = 1000, after: str = "", prefix: str = "", delimiter: str = "") -> Page:
    return Page("v2", prefix, delimiter, max_keys, after, False)


@pytest.mark.parametrize(
    ("store", "kept", "asked", "keys", "prefixes", "truncated"),
    [
        # The side keys fall into the store's keys in byte order.
        (store_v2(["a", "m", "z"]), side("b" + LONG, "n" + LONG), page(),
         ["a", "b" + LONG, "m", "n" + LONG, "z"], [], "false"),
        # The page size counts both; what does not fit makes the page truncated.
        (store_v2(["a", "m", "z"]), side("b" + LONG), page(max_keys=2), ["a", "b" + LONG], [], "true"),
        # Past the store's truncated page lie keys it has not shown: the merge stops where it stopped.
        (store_v2(["a", "c"], truncated=True), side("b" + LONG, "x" + LONG), page(), ["a", "b" + LONG, "c"],
         [], "true"),
        # Resuming: nothing at or before the continuation point.
        (store_v2(["m", "z"]), side("b" + LONG, "n" + LONG), page(after="m"), ["n" + LONG, "z"], [], "false"),
        # Delimiter: a side key under a folder becomes that common prefix, once.
        (store_v2(["a"], ["d/"]), side("d/" + LONG, "e/" + LONG), page(delimiter="/"), ["a"], ["d/", "e/"],
         "false"),
        # Resuming after a common prefix: the store groups the keys under it once more; dropped.
        (store_v2(["z"], ["d/"]), side("d/" + LONG), page(after="d/", delimiter="/"), ["z"], [], "false"),
        # Prefix applies to side keys too.
        (store_v2(["p/a"]), side("p/" + LONG, "q" + LONG), page(prefix="p/"), ["p/a", "p/" + LONG], [],
         "false"),
    ],
)  # fmt: skip
def test_merge(store, kept, asked, keys, prefixes, truncated) -> None:
    merged = listings.merge(store, asked, kept)
    got_keys, got_prefixes, fields = names(merged)
    assert (got_keys, got_prefixes, fields["IsTruncated"]) == (keys, prefixes, truncated)
    assert fields["KeyCount"] == str(len(keys) + len(prefixes))
    if truncated == "true":
        last = max(keys + prefixes)
        assert listings.name_of(fields["NextContinuationToken"]) == last


def test_a_page_of_no_keys_is_not_truncated() -> None:
    merged = listings.merge(store_v2(["a"]), page(max_keys=0), side(LONG))
    assert names(merged)[2]["IsTruncated"] == "false"


def test_side_entries_carry_their_figures() -> None:
    merged = listings.merge(store_v2([]), page(), side(LONG))
    entry = ElementTree.fromstring(merged).find(f"{NS}Contents")
    assert entry is not None
    assert [entry.findtext(f"{NS}{t}") for t in ("Key", "Size", "ETag", "StorageClass")] == [
        LONG, "7", '"s"', "STANDARD"
    ]  # fmt: skip


def test_continuation_tokens_round_trip_and_forgeries_are_refused() -> None:
    asked, forwarded = listings.page_of(
        "v2", {"continuation-token": listings.token_for("m"), "max-keys": "5"}
    )
    assert (asked.after, asked.max_keys, forwarded) == ("m", 5, {"max-keys": "5", "start-after": "m"})
    for forged in ("not-a-token", "a2VubmVs", listings.token_for("x")[:-2] + "!!"):
        with pytest.raises(listings.BadToken):
            listings.page_of("v2", {"continuation-token": forged})
    asked, forwarded = listings.page_of("v1", {"marker": "k", "max-keys": "99999999999"})
    assert (asked.after, asked.max_keys, forwarded) == ("k", 1000, {"marker": "k", "max-keys": "99999999999"})


def test_fill_gives_folder_markers_their_bodies_figures() -> None:
    filled = listings.fill(store_v2(["a/", "a/x"]), {e.key: e for e in side("a/")})
    sizes = {
        e.findtext(f"{NS}Key"): e.findtext(f"{NS}Size")
        for e in ElementTree.fromstring(filled).iter(f"{NS}Contents")
    }
    assert sizes == {"a/": "7", "a/x": "1"}


def test_the_side_bucket_is_hidden_and_renamed() -> None:
    buckets = (b"<ListAllMyBucketsResult><Buckets><Bucket><Name>mine</Name></Bucket>"
               b"<Bucket><Name>sthree-kennel-side-keys</Name><CreationDate>x</CreationDate></Bucket>"
               b"</Buckets></ListAllMyBucketsResult>")  # fmt: skip
    assert listings.without_bucket(buckets, "sthree-kennel-side-keys").count(b"<Bucket>") == 1
    answer = b"<R><Bucket>side</Bucket><Key>b/abc</Key><Location>/side/b/abc</Location></R>"
    assert listings.own_names(answer, "side", "b/abc", "b", "a & b/") == (
        b"<R><Bucket>b</Bucket><Key>a &amp; b/</Key><Location>/b/a%20%26%20b/</Location></R>"
    )


@pytest.mark.parametrize(
    ("key", "long", "side_kept", "marker"),
    [
        ("a.txt", False, False, False),
        ("a/", False, True, True),
        ("k" * 255, False, False, False),
        ("k" * 256, True, True, False),
        ("é" * 128, True, True, False),  # 256 bytes in 128 characters
        ("d/" + "k" * 300 + "/", True, True, False),
    ],
)
def test_which_keys_live_beside_the_store(key: str, long: bool, side_kept: bool, marker: bool) -> None:
    assert (has_long_segment(key), needs_side(key), keeps_marker(key)) == (long, side_kept, marker)
