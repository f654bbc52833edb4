"""Keys the store cannot hold under their own names behave as on S3: keys ending in "/" keep their bodies
(the store alone keeps such a key as a folder marker and drops what was written to it), and keys with a
path segment over 255 bytes are kept at all (the store refuses them). Every way in, every way out, and
what listings say of them."""

from __future__ import annotations

import hashlib
import io

import pytest
from botocore.exceptions import ClientError
from tests.integration.front_door.signed_http import send, signed

pytestmark = pytest.mark.timeout(300)

SIDE_BUCKET = "sthree-kennel-side-keys"


def _code(failed: pytest.ExceptionInfo) -> str:
    return failed.value.response["Error"]["Code"]


def test_a_folder_key_keeps_its_body_metadata_and_figures(s3, bucket: str) -> None:
    body = b"notes about this folder"
    put = s3.put_object(Bucket=bucket, Key="a/", Body=body, ContentType="text/markdown", Metadata={"k": "v"})
    assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    got = s3.get_object(Bucket=bucket, Key="a/")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (body, "text/markdown", {"k": "v"})
    assert s3.get_object(Bucket=bucket, Key="a/", Range="bytes=6-10")["Body"].read() == body[6:11]
    head = s3.head_object(Bucket=bucket, Key="a/")
    assert (head["ContentLength"], head["ETag"]) == (len(body), put["ETag"])
    s3.put_object(Bucket=bucket, Key="a/child.txt", Body=b"child")
    # Listings place "a/" where S3 does, with the body's size and ETag, in every listing form.
    v2 = s3.list_objects_v2(Bucket=bucket, Prefix="a/")
    assert [(o["Key"], o["Size"], o["ETag"]) for o in v2["Contents"]] == [
        ("a/", len(body), put["ETag"]),
        ("a/child.txt", 5, f'"{hashlib.md5(b"child").hexdigest()}"'),
    ]
    assert v2["Contents"][0]["LastModified"] == head["LastModified"]
    v1 = s3.list_objects(Bucket=bucket, Prefix="a/")
    assert [(o["Key"], o["Size"]) for o in v1["Contents"]] == [("a/", len(body)), ("a/child.txt", 5)]
    encoded = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    assert {o["Key"]: o["Size"] for o in encoded["Contents"]}["a/"] == len(body)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="a/")
    assert {v["Key"]: v["Size"] for v in versions["Versions"]}["a/"] == len(body)
    folded = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert "Contents" not in folded and folded["CommonPrefixes"] == [{"Prefix": "a/"}]


def test_replacing_emptying_and_deleting_a_folder_body(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/", Body=b"first")
    s3.put_object(Bucket=bucket, Key="a/", Body=b"second, longer")
    assert s3.get_object(Bucket=bucket, Key="a/")["Body"].read() == b"second, longer"
    s3.put_object(Bucket=bucket, Key="a/", Body=b"")  # a plain folder marker again
    assert s3.get_object(Bucket=bucket, Key="a/")["Body"].read() == b""
    assert s3.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"][0]["Size"] == 0
    s3.put_object(Bucket=bucket, Key="a/", Body=b"third")
    s3.put_object(Bucket=bucket, Key="a/kept.txt", Body=b"kept")
    s3.delete_object(Bucket=bucket, Key="a/")
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket=bucket, Key="a/")
    assert _code(gone) == "NoSuchKey"
    assert s3.get_object(Bucket=bucket, Key="a/kept.txt")["Body"].read() == b"kept"
    s3.put_object(Bucket=bucket, Key="b/", Body=b"deleted in a batch")
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b/"}, {"Key": "a/kept.txt"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["a/kept.txt", "b/"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)  # nothing of it is left behind


def test_copies_into_and_out_of_a_folder_key(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain.txt", Body=b"plain bytes")
    s3.copy_object(Bucket=bucket, Key="c/", CopySource={"Bucket": bucket, "Key": "plain.txt"})
    assert s3.get_object(Bucket=bucket, Key="c/")["Body"].read() == b"plain bytes"
    s3.copy_object(Bucket=bucket, Key="back.txt", CopySource={"Bucket": bucket, "Key": "c/"})
    assert s3.get_object(Bucket=bucket, Key="back.txt")["Body"].read() == b"plain bytes"


def test_multipart_upload_to_a_folder_key(s3, bucket: str) -> None:
    started = s3.create_multipart_upload(Bucket=bucket, Key="m/")
    assert (started["Bucket"], started["Key"]) == (bucket, "m/")  # never the side bucket's names
    upload = started["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="m/", UploadId=upload, PartNumber=1, Body=b"in parts")
    parts = s3.list_parts(Bucket=bucket, Key="m/", UploadId=started["UploadId"])
    assert (parts["Bucket"], parts["Key"], len(parts["Parts"])) == (bucket, "m/", 1)
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="m/", UploadId=started["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    assert (done["Bucket"], done["Key"]) == (bucket, "m/")
    assert s3.get_object(Bucket=bucket, Key="m/")["Body"].read() == b"in parts"
    s3.upload_fileobj(io.BytesIO(b"through the transfer manager"), bucket, "t/")
    assert s3.get_object(Bucket=bucket, Key="t/")["Body"].read() == b"through the transfer manager"


def test_tags_of_a_folder_key(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="tagged/", Body=b"x", Tagging="team=dogs")
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged/")["TagSet"] == [{"Key": "team", "Value": "dogs"}]
    cats = {"TagSet": [{"Key": "team", "Value": "cats"}]}
    s3.put_object_tagging(Bucket=bucket, Key="tagged/", Tagging=cats)
    assert s3.get_object_tagging(Bucket=bucket, Key="tagged/")["TagSet"] == [{"Key": "team", "Value": "cats"}]


def test_the_side_bucket_is_out_of_reach(cloud, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/", Body=b"kept aside")
    assert SIDE_BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket=SIDE_BUCKET)
    assert _code(listing) == "NoSuchBucket"
    with pytest.raises(ClientError) as creating:
        s3.create_bucket(Bucket="sthree-mine")
    assert _code(creating) == "InvalidBucketName"
    with pytest.raises(ClientError) as copied:  # not even as a copy source, which is authorised apart
        s3.copy_object(Bucket=bucket, Key="stolen.txt", CopySource=f"{SIDE_BUCKET}/{bucket}/0000")
    assert _code(copied) == "NoSuchBucket"
    status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}/missing/?tagging"))
    assert status == 404 and SIDE_BUCKET.encode() not in payload


LONG = "k" * 1024  # one segment at S3's limit; the store refuses any over 255 bytes
LONG_IN_DIR = "dir/" + "é" * 300  # 600 bytes in its last segment


def test_a_key_with_a_long_segment_is_kept(s3, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key=LONG, Body=b"one long segment", Metadata={"k": "v"})
    got = s3.get_object(Bucket=bucket, Key=LONG)
    assert (got["Body"].read(), got["Metadata"]) == (b"one long segment", {"k": "v"})
    assert got["ETag"] == put["ETag"]
    assert s3.head_object(Bucket=bucket, Key=LONG)["ContentLength"] == 16
    s3.put_object(Bucket=bucket, Key=LONG_IN_DIR, Body=b"accented")
    s3.copy_object(Bucket=bucket, Key="copied.txt", CopySource={"Bucket": bucket, "Key": LONG_IN_DIR})
    assert s3.get_object(Bucket=bucket, Key="copied.txt")["Body"].read() == b"accented"
    s3.copy_object(Bucket=bucket, Key="dir/" + "c" * 400, CopySource={"Bucket": bucket, "Key": "copied.txt"})
    assert s3.get_object(Bucket=bucket, Key="dir/" + "c" * 400)["Body"].read() == b"accented"
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="m" * 300)
    assert _code(missing) == "NoSuchKey"
    s3.delete_object(Bucket=bucket, Key=LONG)
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=bucket, Key=LONG)
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_listings_merge_long_keys_in_s3_order(s3, bucket: str) -> None:
    names = ["a.txt", "dir/" + "b" * 300, "dir/plain.txt", "j" * 400, "k.txt", "z/" + "q" * 260 + "/deep"]
    for name in names:
        s3.put_object(Bucket=bucket, Key=name, Body=name.encode()[:10])
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == sorted(names)
    assert {o["Key"]: o["Size"] for o in listed["Contents"]}["j" * 400] == 10
    # One key a page: every key exactly once, in order, across the store's keys and the side keys.
    paged = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, MaxKeys=1)
             for o in page.get("Contents", [])]  # fmt: skip
    assert paged == sorted(names)
    paged_v1 = [o["Key"] for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, MaxKeys=2)
                for o in page.get("Contents", [])]  # fmt: skip
    assert paged_v1 == sorted(names)
    folded = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in folded["Contents"]] == ["a.txt", "j" * 400, "k.txt"]
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["dir/", "z/"]
    inside = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == ["dir/" + "b" * 300, "dir/plain.txt"]
    deep = s3.list_objects_v2(Bucket=bucket, Prefix="z/", Delimiter="/")
    assert [p["Prefix"] for p in deep["CommonPrefixes"]] == ["z/" + "q" * 260 + "/"]
    encoded = s3.list_objects_v2(Bucket=bucket, EncodingType="url", Prefix="j")
    assert [o["Key"] for o in encoded["Contents"]] == ["j" * 400]
    versions = s3.list_object_versions(Bucket=bucket, Prefix="dir/")
    assert [v["Key"] for v in versions["Versions"]] == ["dir/" + "b" * 300, "dir/plain.txt"]
    with pytest.raises(ClientError) as forged:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="not-a-token")
    assert _code(forged) == "InvalidArgument"
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": n} for n in names]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(names)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_a_bucket_holding_only_a_long_key_is_not_empty(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key=LONG, Body=b"the store alone cannot see me")
    with pytest.raises(ClientError) as not_empty:
        s3.delete_bucket(Bucket=bucket)
    assert _code(not_empty) == "BucketNotEmpty"
    s3.delete_object(Bucket=bucket, Key=LONG)
    s3.delete_bucket(Bucket=bucket)


def test_multipart_upload_to_a_long_key(s3, bucket: str) -> None:
    s3.upload_fileobj(io.BytesIO(b"long and multipart"), bucket, LONG)
    assert s3.get_object(Bucket=bucket, Key=LONG)["Body"].read() == b"long and multipart"
