"""Issue 12, items 3-7 and 10: the front door refuses what AWS refuses, and bad input is never a 500.

Every request here is either boto3's or signed by botocore's own signers (see ``signed_http.py``).
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
import uuid
from xml.etree import ElementTree

import boto3
import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from tests.integration.front_door.signed_http import allow, form, json_call, make_user, send, signed

from kennel.cloud.objectstore.chunked import ChunkSigner, signing_key

pytestmark = pytest.mark.timeout(300)
ACCOUNT = "000000000000"


def _code(payload: bytes) -> str:
    text = payload.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        return json.loads(text).get("__type", "").rsplit("#", 1)[-1]
    root = ElementTree.fromstring(payload)
    found = root.find(".//{*}Code")
    if found is None:
        found = root.find(".//Code")
    return found.text if found is not None else ""


def _client_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def s3(cloud):
    return cloud.client("s3")


@pytest.fixture()
def bucket(s3) -> str:
    name = f"door-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="public/hello.txt", Body=b"public")
    s3.put_object(Bucket=name, Key="secret.txt", Body=b"secret")
    s3.put_object(Bucket=name, Key="secret/inner.txt", Body=b"inner")
    return name


# ----- item 3: one value per S3 query parameter, and the store gets what was authorised -----------------


def test_repeated_query_parameter_is_refused_before_the_prefix_condition(cloud, bucket: str) -> None:
    policy = allow(["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"], {"StringLike": {"s3:prefix": "public/*"}})
    _, key, secret = make_user(cloud, policy)
    who = {"key": key, "secret": secret}

    def listing(query: str) -> tuple[int, bytes]:
        status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}?{query}", **who))
        return status, payload

    status, payload = listing("list-type=2&prefix=secret%2F&prefix=public%2F")
    assert (status, _code(payload)) == (400, "InvalidArgument")
    status, payload = listing("list-type=2&prefix=public%2F&prefix=secret%2F")
    assert (status, _code(payload)) == (400, "InvalidArgument")
    status, payload = listing("list-type=2&list-type=2&prefix=public%2F")
    assert (status, _code(payload)) == (400, "InvalidArgument")
    status, payload = listing("list-type=2&prefix=public%2F")
    assert status == 200 and b"public/hello.txt" in payload and b"secret" not in payload
    # A value the store would decode as a space ("+") is authorised and forwarded as that same space.
    status, payload = listing("list-type=2&prefix=public%2Fx%20y")
    assert status == 200 and b"<Prefix>public/x y</Prefix>" in payload
    status, payload = listing("list-type=2&prefix=secret%2F")
    assert (status, _code(payload)) == (403, "AccessDenied")


# ----- item 4: dot segments are refused before anything is authorised ----------------------------------


@pytest.mark.parametrize(
    "path", ["public/../secret.txt", "public/%2e%2e/secret.txt", "public/%2E%2E/secret.txt",
             "public/./../secret.txt", "public//../secret.txt", "./secret.txt", "public%2F..%2Fsecret.txt"],
)  # fmt: skip
def test_dot_segments_are_refused_not_authorised(cloud, bucket: str, path: str) -> None:
    _, key, secret = make_user(cloud, allow(["s3:GetObject"], [f"arn:aws:s3:::{bucket}/public/*"]))
    for who in ({"key": key, "secret": secret}, {}):  # the limited user and the admin alike
        status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}/{path}", **who))
        assert (status, _code(payload)) == (400, "InvalidArgument"), payload
        assert payload != b"secret"
    status, _, payload = send(
        signed(cloud, "s3", "GET", f"/{bucket}/public/hello.txt", key=key, secret=secret)
    )
    assert (status, payload) == (200, b"public")


def test_dot_segment_prefixes_and_copy_sources_are_refused(cloud, s3, bucket: str) -> None:
    status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}?list-type=2&prefix=public%2F..%2F"))
    assert (status, _code(payload)) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as copied:
        s3.copy_object(Bucket=bucket, Key="public/copy.txt", CopySource=f"{bucket}/public/../secret.txt")
    assert _client_code(copied) == "InvalidArgument"


# ----- item 5: the body is signed outside S3; one auth mechanism; the right region ---------------------


class _UnsignedBodySigner(SigV4Auth):
    """botocore's SigV4 signer told to leave the body out, as an attacker replaying a request would."""

    mode = "UNSIGNED-PAYLOAD"

    def payload(self, request) -> str:
        return self.mode

    def _modify_request_before_signing(self, request) -> None:
        super()._modify_request_before_signing(request)
        request.headers["X-Amz-Content-SHA256"] = self.mode


class _StreamingSigner(_UnsignedBodySigner):
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


@pytest.mark.parametrize("signer", [_UnsignedBodySigner, _StreamingSigner])
def test_unsigned_bodies_are_refused_outside_s3(cloud, signer) -> None:
    fields = "Action=GetCallerIdentity&Version=2011-06-15"
    status, payload = form(cloud, "sts", fields, signer=signer)
    assert (status, _code(payload)) == (403, "SignatureDoesNotMatch")
    status, payload = json_call(cloud, "logs", "Logs_20140328.DescribeLogGroups", b"{}", signer=signer)
    assert (status, _code(payload)) == (400, "InvalidSignatureException")
    # The same request with its body signed is fine.
    assert form(cloud, "sts", fields)[0] == 200


def test_sigv2_presigned_url_with_an_authorization_header_is_refused(cloud, s3, bucket: str) -> None:
    v2 = boto3.session.Session().client(
        "s3", endpoint_url=cloud.endpoint, region_name="us-east-1", aws_access_key_id=cloud.access_key_id,
        aws_secret_access_key=cloud.secret_access_key, config=Config(signature_version="s3"),
    )  # fmt: skip
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "secret.txt"})
    assert "Signature=" in url and "AWSAccessKeyId=" in url
    plain = AWSRequest(method="GET", url=url)
    assert send(plain)[::2] == (200, b"secret")
    both = AWSRequest(method="GET", url=url)
    HmacV1Auth(Credentials(cloud.access_key_id, cloud.secret_access_key)).add_auth(both)
    status, _, payload = send(both)
    assert (status, _code(payload)) == (400, "InvalidArgument") and b"Only one auth mechanism" in payload
    v4_header = AWSRequest(method="GET", url=url)
    v4_header.headers["Authorization"] = signed(cloud, "s3", "GET", f"/{bucket}/secret.txt").headers[
        "Authorization"
    ]
    status, _, payload = send(v4_header)
    assert (status, _code(payload)) == (400, "InvalidArgument")


def test_a_credential_scoped_to_another_region_is_refused(cloud, bucket: str) -> None:
    status, payload = form(cloud, "sts", "Action=GetCallerIdentity&Version=2011-06-15", region="eu-west-1")
    assert (status, _code(payload)) == (403, "SignatureDoesNotMatch")
    assert b"Credential should be scoped to a valid region" in payload
    status, payload = json_call(cloud, "logs", "Logs_20140328.DescribeLogGroups", b"{}", region="eu-west-1")
    assert (status, _code(payload)) == (400, "InvalidSignatureException")
    status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}/secret.txt", region="eu-west-1"))
    assert (status, _code(payload)) == (400, "AuthorizationHeaderMalformed")
    assert b"the region 'eu-west-1' is wrong; expecting 'us-east-1'" in payload
    assert b"<Region>us-east-1</Region>" in payload  # what SDKs read to redirect
    # IAM is global: AWS's endpoint takes us-east-1 (botocore's credential scope for it) and no other.
    assert form(cloud, "iam", "Action=ListUsers&Version=2010-05-08", region="us-east-1")[0] == 200
    status, payload = form(cloud, "iam", "Action=ListUsers&Version=2010-05-08", region="eu-west-1")
    assert (status, _code(payload)) == (403, "SignatureDoesNotMatch")


# ----- item 6: "log-group:NAME:*" grants the group's operations ------------------------------------------


def test_log_group_star_arn_grants_group_operations(cloud) -> None:
    logs = cloud.client("logs")
    group = f"/kennel/door-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logs.put_log_events(logGroupName=group, logStreamName="s",
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "hello"}])  # fmt: skip
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}"
    actions = [
        "logs:DescribeLogStreams",
        "logs:FilterLogEvents",
        "logs:GetLogEvents",
        "logs:PutRetentionPolicy",
    ]
    _, key, secret = make_user(cloud, allow(actions, [f"{arn}:*"]))
    reader = cloud.client("logs", key=key, secret=secret)
    assert [s["logStreamName"] for s in reader.describe_log_streams(logGroupName=group)["logStreams"]] == [
        "s"
    ]
    reader.filter_log_events(logGroupName=group)
    reader.get_log_events(logGroupName=group, logStreamName="s")
    reader.put_retention_policy(logGroupName=group, retentionInDays=1)
    # Without ":*" the policy names the group resource but not what group operations are authorised on.
    _, key, secret = make_user(cloud, allow(actions, [arn]))
    bare = cloud.client("logs", key=key, secret=secret)
    with pytest.raises(ClientError) as denied:
        bare.describe_log_streams(logGroupName=group)
    assert _client_code(denied) == "AccessDeniedException" and f"{arn}:*" in str(denied.value)


# ----- item 7: the reproducers, each a 4xx with a body --------------------------------------------------


def test_query_list_index_of_4300_digits(cloud) -> None:
    status, payload = form(cloud, "iam", f"Action=TagUser&Version=2010-05-08&UserName=nobody"
                           f"&Tags.member.{'9' * 4300}.Key=k&Tags.member.{'9' * 4300}.Value=v")  # fmt: skip
    assert status == 400 and _code(payload) == "ValidationError"


def test_lone_surrogate_in_json_string(cloud) -> None:
    body = b'{"logGroupNamePrefix": "\\ud800x"}'
    status, payload = json_call(cloud, "logs", "Logs_20140328.DescribeLogGroups", body)
    assert status == 400 and _code(payload) == "SerializationException"
    body = b'{"NameContains": "\\udfff"}'
    status, payload = json_call(cloud, "sagemaker", "SageMaker.ListEndpoints", body)
    assert status == 400 and payload


@pytest.mark.parametrize("depth", [40, 3000])
def test_deeply_nested_policy_documents(cloud, depth: int) -> None:
    iam = cloud.client("iam")
    user = f"deep-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    nested = "[" * depth + "]" * depth
    document = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Sid":'
        + nested
        + "}]}"
    )
    # A user's inline policy may hold 2,048 characters: 3,000 levels are over it before any parsing.
    with pytest.raises(ClientError) as inline:
        iam.put_user_policy(UserName=user, PolicyName="deep", PolicyDocument=document)
    assert _client_code(inline) == ("LimitExceeded" if depth == 3000 else "MalformedPolicyDocument")
    # A managed policy may hold 6,144: the depth bound refuses it, before json.loads could recurse.
    with pytest.raises(ClientError) as managed:
        iam.create_policy(PolicyName=f"deep-{uuid.uuid4().hex[:6]}", PolicyDocument=document)
    assert _client_code(managed) == "MalformedPolicyDocument"
    assert "nested" in str(managed.value)
    for spaced in (document.replace("[", "[ "), document.replace("[", "\n[")):  # whitespace does not count
        with pytest.raises(ClientError) as roomy:
            iam.create_policy(PolicyName=f"deep-{uuid.uuid4().hex[:6]}", PolicyDocument=spaced)
        assert _client_code(roomy) == "MalformedPolicyDocument"


def test_policy_size_is_checked_before_parsing(cloud) -> None:
    iam = cloud.client("iam")
    huge = json.dumps(allow(["s3:GetObject"], [f"arn:aws:s3:::b/{'k' * 7000}"]))
    with pytest.raises(ClientError) as limit:
        iam.create_policy(PolicyName=f"huge-{uuid.uuid4().hex[:6]}", PolicyDocument=huge)
    assert _client_code(limit) == "LimitExceeded"


def test_simulate_principal_policy_with_a_non_numeric_numeric_value(cloud) -> None:
    iam = cloud.client("iam")
    user = f"sim-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    with pytest.raises(ClientError) as bad:
        entry = {"ContextKeyName": "s3:max-keys", "ContextKeyValues": ["x"], "ContextKeyType": "numeric"}
        iam.simulate_principal_policy(
            PolicySourceArn=arn, ActionNames=["s3:GetObject"], ContextEntries=[entry]
        )
    assert _client_code(bad) == "InvalidInput"
    with pytest.raises(ClientError) as malformed:
        iam.simulate_principal_policy(
            PolicySourceArn=arn, ActionNames=["s3:GetObject"], PolicyInputList=["{"]
        )
    assert _client_code(malformed) == "MalformedPolicyDocument"


class _S3Streaming(S3SigV4Auth):
    def payload(self, request) -> str:
        return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def test_aws_chunked_chunk_of_2_64_minus_1_bytes_is_refused_at_once(cloud, bucket: str) -> None:
    seed_request = signed(
        cloud, "s3", "PUT", f"/{bucket}/chunked.bin", signer=_S3Streaming,
        headers={"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "5"},
    )  # fmt: skip
    stamp = seed_request.headers["X-Amz-Date"]
    seed = seed_request.headers["Authorization"].rpartition("Signature=")[2]
    chain = ChunkSigner(signing_key(cloud.secret_access_key, stamp[:8], "us-east-1", "s3"), stamp,
                        f"{stamp[:8]}/us-east-1/s3/aws4_request", seed)  # fmt: skip
    body = f"ffffffffffffffff;chunk-signature={chain.expect(b'hello')}\r\nhello\r\n".encode()
    seed_request.data = body
    started = time.monotonic()
    status, _, payload = send(seed_request, timeout=10)
    assert (status, _code(payload)) == (400, "IncompleteBody")
    assert time.monotonic() - started < 5


# ----- item 10: S3 details -------------------------------------------------------------------------------


def test_duplicate_part_numbers_are_invalid_part_order(s3, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    first = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"a" * 5 * 2**20)
    second = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=b"b")
    parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 1, "ETag": first["ETag"]},
             {"PartNumber": 2, "ETag": second["ETag"]}]  # fmt: skip
    for wrong in (parts, list(reversed(parts[1:]))):
        with pytest.raises(ClientError) as refused:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": wrong}
            )
        assert _client_code(refused) == "InvalidPartOrder"
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts[1:]}
    )
    assert len(s3.get_object(Bucket=bucket, Key="mp")["Body"].read()) == 5 * 2**20 + 1


def test_key_length_limit_is_1024_bytes(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as too_long:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert _client_code(too_long) == "KeyTooLongError"
    with pytest.raises(ClientError) as multibyte:  # 1,026 bytes in 513 characters
        s3.put_object(Bucket=bucket, Key="é" * 513, Body=b"x")
    assert _client_code(multibyte) == "KeyTooLongError"
    key = "/".join(["k" * 200] * 5) + "/" + "k" * 19  # 1,024 bytes
    assert len(key.encode()) == 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"at the limit")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"at the limit"


def test_a_1024_byte_key_without_slashes_is_stored(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"one segment")
    assert s3.get_object(Bucket=bucket, Key="k" * 1024)["Body"].read() == b"one segment"


def test_sigv2_header_signed_get_works_end_to_end(cloud, bucket: str) -> None:
    request = AWSRequest(method="GET", url=f"{cloud.endpoint}/{bucket}/secret.txt")
    HmacV1Auth(Credentials(cloud.access_key_id, cloud.secret_access_key)).add_auth(request)
    assert request.headers["Authorization"].startswith("AWS ")
    status, headers, payload = send(request)
    assert (status, payload) == (200, b"secret")
    assert headers["etag"].strip('"') == hashlib.md5(b"secret").hexdigest()


def test_a_folder_key_keeps_its_body(s3, bucket: str) -> None:
    """S3 keeps a body on ``a/`` (SeaweedFS alone would answer 200 and drop it); the whole behaviour is
    in tests/integration/s3/test_s3_side_keys.py."""
    s3.put_object(Bucket=bucket, Key="a/", Body=b"a body")
    assert s3.get_object(Bucket=bucket, Key="a/")["Body"].read() == b"a body"


def _raw_get(cloud, path_bytes: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """A GET whose request line carries raw bytes (http.client would refuse to send them)."""
    host, port = cloud.endpoint.split("//", 1)[1].split(":")
    lines = [b"GET " + path_bytes + b" HTTP/1.1", f"Host: {host}:{port}".encode(), b"Connection: close"]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_keys_are_decoded_as_utf8_strictly_and_forwarded_as_authorised(cloud, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="public/é.txt", Body=b"accented")
    _, key, secret = make_user(cloud, allow(["s3:GetObject"], [f"arn:aws:s3:::{bucket}/public/*"]))
    encoded = f"/{bucket}/public/%C3%A9.txt"
    assert send(signed(cloud, "s3", "GET", encoded, key=key, secret=secret))[::2] == (200, b"accented")
    # Raw UTF-8 bytes in the request line, signed over the path as the server would read it (bytes as
    # latin-1), as a hostile client can: the HTTP server refuses the request line itself.
    raw = f"/{bucket}/public/é.txt".encode()
    request = signed(cloud, "s3", "GET", raw.decode("latin-1"), key=key, secret=secret)
    status, _ = _raw_get(cloud, raw, dict(request.headers.items()))
    assert status == 400
    for bad in ("public/%ff.txt", "public/%c3.txt", "public/%ed%a0%80.txt"):
        status, _, payload = send(signed(cloud, "s3", "GET", f"/{bucket}/{bad}", key=key, secret=secret))
        assert (status, _code(payload)) == (400, "InvalidURI"), bad
