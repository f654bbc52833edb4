"""Issue 12's front-door checks as pure functions: S3 query and key rules, SigV4 scope and payload rules,
aws-chunked bounds, JSON depth and Unicode, query-protocol indexes, IAM policy size and depth."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kennel.cloud.auth.sigv4 import AuthError, RawRequest, SecretRecord, verify
from kennel.cloud.errors import SerializationException
from kennel.cloud.objectstore import chunked
from kennel.cloud.objectstore.operations import (
    S3RequestError,
    check_key,
    classify,
    completed_parts,
    encode_query,
    parse_query,
)
from kennel.cloud.policy.policy import MalformedPolicyDocument, parse_policy
from kennel.cloud.protocol.codec import decode_json_body, json_depth
from kennel.cloud.protocol.models import service_spec
from kennel.cloud.protocol.query import parse_form

RECORD = SecretRecord("AKIDEXAMPLE", "secret", None, None, principal="someone")


def _s3_error(call, *args) -> str:
    with pytest.raises(S3RequestError) as err:
        call(*args)
    return err.value.code


def test_s3_query_parameters_are_taken_once_and_forwarded_as_parsed() -> None:
    assert _s3_error(parse_query, "list-type=2&prefix=a&prefix=b") == "InvalidArgument"
    assert _s3_error(parse_query, "prefix=a&pre%66ix=b") == "InvalidArgument"  # the same name once decoded
    params = parse_query("list-type=2&prefix=a%2Fb+c&uploads&X-Amz-Signature=abc")
    assert params == {"list-type": "2", "prefix": "a/b c", "uploads": "", "X-Amz-Signature": "abc"}
    drop = frozenset({"x-amz-signature"})
    assert encode_query(params, drop=drop) == "list-type=2&prefix=a%2Fb%20c&uploads"
    assert parse_query(encode_query(params, drop=drop)) == {
        k: v for k, v in params.items() if k != "X-Amz-Signature"
    }


@pytest.mark.parametrize(
    ("key", "code"),
    [("public/../secret", "InvalidArgument"), ("./x", "InvalidArgument"), ("a//b", "InvalidArgument"),
     ("/a", "InvalidArgument"), ("..", "InvalidArgument"), ("k" * 1025, "KeyTooLongError"),
     ("é" * 513, "KeyTooLongError")],
)  # fmt: skip
def test_keys_the_store_cannot_keep_verbatim_are_refused(key: str, code: str) -> None:
    assert _s3_error(check_key, key) == code


def test_ordinary_keys_pass() -> None:
    for key in ("a", "a/", "a/b/c.txt", "a..b", ".hidden", "x/.../y", "k" * 1024, "é" * 512):
        check_key(key)


def test_complete_multipart_upload_parts_must_ascend() -> None:
    def body(*numbers: int) -> bytes:
        parts = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part>" for n in numbers)
        return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()

    assert completed_parts(body(1, 2, 5)) == [1, 2, 5]
    assert _s3_error(completed_parts, body(1, 1, 2)) == "InvalidPartOrder"
    assert _s3_error(completed_parts, body(2, 1)) == "InvalidPartOrder"
    assert _s3_error(completed_parts, body(0)) == "InvalidArgument"
    assert _s3_error(completed_parts, b"<!DOCTYPE x [<!ENTITY a 'b'>]><x/>") == "MalformedXML"
    assert _s3_error(completed_parts, b"<a>" * 3000 + b"</a>" * 3000) in ("MalformedXML", "InvalidPartOrder")


def test_an_aws_chunked_size_past_the_body_is_refused_from_its_header() -> None:
    body = b"ffffffffffffffff;chunk-signature=00\r\nhello\r\n0;chunk-signature=00\r\n\r\n"
    with pytest.raises(chunked.ChunkedError) as err:
        chunked.decode(io.BytesIO(body).read, lambda _: None, None, max_size=len(body))
    assert err.value.code == "IncompleteBody"
    with pytest.raises(chunked.ChunkedError):
        chunked.decode(io.BytesIO(b"1" * 5000 + b"\r\n").read, lambda _: None, None, max_size=6000)


def _signed(
    service: str, region: str, headers: dict[str, str] | None = None, body: bytes = b"{}"
) -> RawRequest:
    request = AWSRequest(method="POST", url="http://localhost/", data=body, headers=headers or {})
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), service, region).add_auth(request)
    return RawRequest("POST", "/", [*request.headers.items(), ("host", "localhost")], body)


def _verify(raw: RawRequest, protocol: str = "json"):
    # botocore's signer dates requests with the real clock: verify against it at the same moment (a clock
    # read at import would drift past the 15-minute skew allowance in a long suite).
    return verify(raw, lambda key: RECORD if key == RECORD.access_key_id else None, now=datetime.now(UTC),
                  protocol=protocol, region="us-east-1")  # fmt: skip


def test_credential_scope_region_must_be_the_endpoints() -> None:
    assert _verify(_signed("logs", "us-east-1")).region == "us-east-1"
    assert _verify(_signed("iam", "us-east-1"), "query").service == "iam"  # global: us-east-1 always
    with pytest.raises(AuthError) as json_err:
        _verify(_signed("logs", "eu-west-1"))
    assert (json_err.value.code, json_err.value.status) == ("InvalidSignatureException", 400)
    assert "valid region" in json_err.value.message
    with pytest.raises(AuthError) as query_err:
        _verify(_signed("sts", "eu-west-1"), "query")
    assert query_err.value.code == "SignatureDoesNotMatch"
    with pytest.raises(AuthError) as s3_err:
        _verify(_signed("s3", "eu-west-1", {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}), "rest-xml")
    assert (s3_err.value.code, s3_err.value.status) == ("AuthorizationHeaderMalformed", 400)


def test_json_depth_and_unicode_are_checked_before_use() -> None:
    assert json_depth(b'{"a": "[[[[", "b": [[1]]}') == 3
    assert json_depth(b'"\\"[["') == 0
    with pytest.raises(SerializationException):
        decode_json_body(b"[" * 101 + b"]" * 101)
    with pytest.raises(SerializationException):
        decode_json_body(b'{"a": "\\ud800"}')
    assert decode_json_body(b'{"a": "\\ud83d\\ude00"}') == {"a": "😀"}


def test_query_protocol_list_index_is_bounded() -> None:
    shape = service_spec("iam").operation("TagUser").input
    problems: list[str] = []
    parsed = parse_form(shape, [("UserName", "u"), (f"Tags.member.{'9' * 4300}.Key", "k")], problems)
    assert problems and "list index" in problems[0] and parsed["UserName"] == "u"


def test_policy_depth_is_bounded_before_parsing() -> None:
    deep = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Sid":'
    with pytest.raises(MalformedPolicyDocument):
        parse_policy(deep + "[" * 3000 + "]" * 3000 + "}]}")
    with pytest.raises(MalformedPolicyDocument):
        parse_policy(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"\\ud800"}]}'
        )


def test_a_bucket_segment_cannot_smuggle_a_key() -> None:
    assert _s3_error(classify, "GET", "/bkt%2Fpublic", {}, {}) == "InvalidBucketName"
    assert _s3_error(classify, "GET", "/bkt/%ff", {}, {}) == "InvalidURI"
    assert classify("GET", "/bkt/public%2Fx.txt", {}, {}).key == "public/x.txt"
