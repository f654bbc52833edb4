"""S3 through the live gateway (SeaweedFS behind SigV4 and IAM), driven by boto3 and the aws CLI."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from tests.integration.support.cli import AWS

from kennel.cloud.objectstore.chunked import ChunkSigner, signing_key

pytestmark = pytest.mark.timeout(300)


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def make_user(cloud, policy: dict) -> tuple[str, str, str]:
    iam = cloud.client("iam")
    name = f"s3user-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def test_objects_round_trip_with_metadata_listing_copy_and_delete(s3, bucket: str) -> None:
    keys = ["data/a.txt", "data/sub dir/b+c.txt", "data/ünïcode/ß.txt", "other/x.bin"]
    for index, key in enumerate(keys):
        s3.put_object(
            Bucket=bucket, Key=key, Body=f"body {index}".encode(), ContentType="text/plain",
            Metadata={"origin": f"test-{index}"},
        )  # fmt: skip
    got = s3.get_object(Bucket=bucket, Key="data/sub dir/b+c.txt")
    assert got["Body"].read() == b"body 1"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"origin": "test-1"}
    head = s3.head_object(Bucket=bucket, Key="data/ünïcode/ß.txt")
    assert head["ContentLength"] == len(b"body 2")

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="data/", Delimiter="/")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["data/a.txt"]
    assert sorted(p["Prefix"] for p in listed["CommonPrefixes"]) == ["data/sub dir/", "data/ünïcode/"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    assert sorted(o["Key"] for page in pages for o in page.get("Contents", [])) == sorted(keys)

    s3.copy_object(Bucket=bucket, Key="copied.txt", CopySource={"Bucket": bucket, "Key": "data/a.txt"})
    assert s3.get_object(Bucket=bucket, Key="copied.txt")["Body"].read() == b"body 0"

    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as not_empty:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(not_empty) == "BucketNotEmpty"
    deleted = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in [*keys, "copied.txt"]]}
    )
    assert len(deleted["Deleted"]) == len(keys) + 1
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as gone:
        s3.list_objects_v2(Bucket=bucket)
    assert error_code(gone) == "NoSuchBucket"
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_multipart_upload_and_ranged_download(s3, bucket: str) -> None:
    payload = os.urandom(3 * 1024 * 1024) * 6  # 18 MiB: boto3 uploads it in three 8 MiB-or-less parts
    s3.upload_fileobj(io.BytesIO(payload), bucket, "big/blob.bin")
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big/blob.bin", out)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(payload).digest()
    ranged = s3.get_object(Bucket=bucket, Key="big/blob.bin", Range="bytes=100-199")["Body"].read()
    assert ranged == payload[100:200]


def test_sse_kms_requests_are_accepted(s3, bucket: str) -> None:
    """The SageMaker SDK asks for aws:kms on uploads; Kennel stores the object (without KMS)."""
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", ServerSideEncryption="aws:kms")
    assert s3.get_object(Bucket=bucket, Key="enc")["Body"].read() == b"secret"


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_presigned_urls(cloud, bucket: str, signature_version: str) -> None:
    cloud.client("s3").put_object(Bucket=bucket, Key="shared/file.txt", Body=b"presigned body")
    signer = boto3.session.Session().client(
        "s3", endpoint_url=cloud.endpoint, region_name="us-east-1",
        aws_access_key_id=cloud.access_key_id, aws_secret_access_key=cloud.secret_access_key,
        config=Config(signature_version=signature_version),
    )  # fmt: skip
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared/file.txt"})
    assert ("X-Amz-Signature" in url) == (signature_version == "s3v4")
    assert urllib.request.urlopen(url, timeout=10).read() == b"presigned body"

    tampered = url.replace("shared/file.txt", "shared/other.txt")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in refused.value.read()

    expired = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared/file.txt"}, ExpiresIn=1
    )
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as late:
        urllib.request.urlopen(expired, timeout=10)
    assert late.value.code == 403
    assert b"<Code>AccessDenied</Code>" in late.value.read()


def test_bad_credentials_get_s3_errors(cloud, bucket: str) -> None:
    with pytest.raises(ClientError) as unknown:
        cloud.client("s3", key="AKIAUNKNOWNKEY000000").list_objects_v2(Bucket=bucket)
    assert error_code(unknown) == "InvalidAccessKeyId"
    with pytest.raises(ClientError) as wrong:
        cloud.client("s3", secret="wrong-secret").list_objects_v2(Bucket=bucket)
    assert error_code(wrong) == "SignatureDoesNotMatch"
    anonymous = urllib.request.Request(f"{cloud.endpoint}/{bucket}/anything")
    with pytest.raises(urllib.error.HTTPError) as no_auth:
        urllib.request.urlopen(anonymous, timeout=10)
    assert no_auth.value.code == 403


def test_iam_least_privilege_per_prefix(cloud, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="data/ok.txt", Body=b"ok")
    s3.put_object(Bucket=bucket, Key="private/no.txt", Body=b"no")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/data/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": "data/*"}}},
        ],
    }  # fmt: skip
    user, key, secret = make_user(cloud, policy)
    reader = cloud.client("s3", key=key, secret=secret)
    assert reader.get_object(Bucket=bucket, Key="data/ok.txt")["Body"].read() == b"ok"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]] == [
        "data/ok.txt"
    ]

    denials = {
        "get outside the prefix": lambda: reader.get_object(Bucket=bucket, Key="private/no.txt"),
        "list without the prefix": lambda: reader.list_objects_v2(Bucket=bucket),
        "put": lambda: reader.put_object(Bucket=bucket, Key="data/new.txt", Body=b"x"),
        "delete": lambda: reader.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "data/ok.txt"}]}),
        "copy into the bucket": lambda: reader.copy_object(
            Bucket=bucket, Key="data/copy.txt", CopySource={"Bucket": bucket, "Key": "data/ok.txt"}
        ),
        "list buckets": lambda: reader.list_buckets(),
    }
    for what, call in denials.items():
        with pytest.raises(ClientError) as denied:
            call()
        assert error_code(denied) == "AccessDenied", what
    with pytest.raises(ClientError) as message:
        reader.get_object(Bucket=bucket, Key="private/no.txt")
    text = message.value.response["Error"]["Message"]
    assert f"user/{user} is not authorized to perform: s3:GetObject" in text
    assert f"arn:aws:s3:::{bucket}/private/no.txt" in text
    assert s3.get_object(Bucket=bucket, Key="data/ok.txt")["Body"].read() == b"ok"  # nothing was deleted


def test_aws_chunked_upload_with_chunk_signatures(cloud, bucket: str) -> None:
    """SDKs that stream (x-amz-content-sha256: STREAMING-…) frame the body in signed chunks; boto3 does so
    only over HTTPS, so the request is signed with botocore's signer and framed here."""
    chunks = [os.urandom(64 * 1024), os.urandom(1000)]
    payload = b"".join(chunks)
    port = int(cloud.endpoint.rsplit(":", 1)[1])

    def send(tamper: bool) -> tuple[int, bytes]:
        url = f"{cloud.endpoint}/{bucket}/chunked.bin"
        amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        body_length = sum(
            len(f"{len(c):x};chunk-signature={'0' * 64}\r\n") + len(c) + 2 for c in [*chunks, b""]
        )
        headers = {
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(payload)),
            "content-length": str(body_length),
            "x-amz-date": amz_date,
        }
        request = AWSRequest(method="PUT", url=url, headers=headers)
        request.context["timestamp"] = amz_date

        class Streaming(S3SigV4Auth):
            def payload(self, request) -> str:
                return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

        Streaming(Credentials(cloud.access_key_id, cloud.secret_access_key), "s3", "us-east-1").add_auth(
            request
        )
        seed = request.headers["Authorization"].rpartition("Signature=")[2]
        signer = ChunkSigner(
            signing_key(cloud.secret_access_key, amz_date[:8], "us-east-1", "s3"),
            amz_date, f"{amz_date[:8]}/us-east-1/s3/aws4_request", seed,
        )  # fmt: skip
        framed = b""
        for index, chunk in enumerate([*chunks, b""]):
            signature = signer.expect(chunk)
            data = chunk if not (tamper and index == 1) else b"X" + chunk[1:]
            framed += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "PUT", f"/{bucket}/chunked.bin", body=framed, headers=dict(request.headers.items())
        )
        response = connection.getresponse()
        return response.status, response.read()

    status, body = send(tamper=False)
    assert status == 200, body
    s3 = cloud.client("s3")
    assert s3.get_object(Bucket=bucket, Key="chunked.bin")["Body"].read() == payload
    status, body = send(tamper=True)
    assert status == 403 and b"SignatureDoesNotMatch" in body
    assert s3.get_object(Bucket=bucket, Key="chunked.bin")["Body"].read() == payload  # unchanged


def test_aws_cli_high_level_commands(cloud, tmp_path: Path) -> None:
    def aws(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*AWS, *args], env=cloud.cli_env(), capture_output=True, text=True, timeout=120)

    name = f"kennel-cli-{uuid.uuid4().hex[:8]}"
    assert aws("s3", "mb", f"s3://{name}").returncode == 0
    source = tmp_path / "dataset"
    (source / "train" / "001.Affenpinscher").mkdir(parents=True)
    (source / "train" / "001.Affenpinscher" / "a.jpg").write_bytes(os.urandom(2048))
    (source / "valid").mkdir()
    (source / "valid" / "b.jpg").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart through the CLI
    synced = aws("s3", "sync", str(source), f"s3://{name}/dogImages")
    assert synced.returncode == 0, synced.stderr
    listing = aws("s3", "ls", "--recursive", f"s3://{name}/dogImages/")
    assert "dogImages/train/001.Affenpinscher/a.jpg" in listing.stdout
    assert "dogImages/valid/b.jpg" in listing.stdout
    back = tmp_path / "b.jpg"
    assert aws("s3", "cp", f"s3://{name}/dogImages/valid/b.jpg", str(back)).returncode == 0
    assert back.read_bytes() == (source / "valid" / "b.jpg").read_bytes()
    url = aws("s3", "presign", f"s3://{name}/dogImages/train/001.Affenpinscher/a.jpg").stdout.strip()
    assert (
        urllib.request.urlopen(url, timeout=10).read()
        == (source / "train/001.Affenpinscher/a.jpg").read_bytes()
    )
    head = json.loads(aws("s3api", "head-object", "--bucket", name, "--key", "dogImages/valid/b.jpg").stdout)
    assert head["ContentLength"] == 9 * 1024 * 1024
    refused = aws("s3", "rb", f"s3://{name}")
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr
    assert aws("s3", "rm", "--recursive", f"s3://{name}/").returncode == 0
    assert aws("s3", "rb", f"s3://{name}").returncode == 0
