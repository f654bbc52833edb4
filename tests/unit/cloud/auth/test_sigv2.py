"""Signature Version 2 for S3, checked against requests signed by botocore's own HMAC-v1 signers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kennel.cloud.auth.sigv2 import is_sigv2, verify_v2
from kennel.cloud.auth.sigv4 import AuthError, SecretRecord

KEY, SECRET = "AKIAEXAMPLEKEY000001", "secret/with+chars"
RECORD = SecretRecord(KEY, SECRET, None, None, principal="someone")


def lookup(key: str) -> SecretRecord | None:
    return RECORD if key == KEY else None


def presigned(url: str, expires: int = 300) -> str:
    request = AWSRequest(method="GET", url=url)
    HmacV1QueryAuth(Credentials(KEY, SECRET), expires=expires).add_auth(request)
    return request.url


def check(method: str, url: str, headers: dict[str, str] | None = None, now: datetime | None = None):
    parts = urlsplit(url)
    return verify_v2(
        method, parts.path, parts.query, {k.lower(): v for k, v in (headers or {}).items()}, lookup,
        now=now or datetime.now(UTC), max_skew=timedelta(minutes=15), region="us-east-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4566/bucket/plain.txt",
        "http://127.0.0.1:4566/bucket/dir/a%20b%2Bc.txt",
        "http://127.0.0.1:4566/bucket/key?response-content-type=text%2Fplain",
        "http://127.0.0.1:4566/bucket/key?uploadId=abc&partNumber=2",
    ],
)
def test_botocore_presigned_urls_verify(url: str) -> None:
    signed = presigned(url)
    assert is_sigv2("", urlsplit(signed).query)
    verified = check("GET", signed)
    assert verified.presigned and verified.access_key_id == KEY and verified.service == "s3"


def test_tampering_expiry_and_unknown_keys_are_refused() -> None:
    signed = presigned("http://127.0.0.1:4566/bucket/a.txt")
    with pytest.raises(AuthError) as tampered:
        check("GET", signed.replace("/a.txt", "/b.txt"))
    assert (tampered.value.code, tampered.value.status) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(AuthError) as wrong_method:
        check("DELETE", signed)
    assert wrong_method.value.code == "SignatureDoesNotMatch"
    with pytest.raises(AuthError) as expired:
        check("GET", signed, now=datetime.now(UTC) + timedelta(seconds=400))
    assert (expired.value.code, expired.value.message) == ("AccessDenied", "Request has expired")
    with pytest.raises(AuthError) as unknown:
        check("GET", signed.replace(KEY, "AKIAUNKNOWN000000000"))
    assert unknown.value.code == "InvalidAccessKeyId"


def test_header_authorization() -> None:
    request = AWSRequest(
        method="PUT", url="http://127.0.0.1:4566/bucket/k?tagging",
        headers={"Content-Type": "text/plain", "x-amz-meta-origin": "test", "Content-MD5": "abc=="},
    )  # fmt: skip
    HmacV1Auth(Credentials(KEY, SECRET)).add_auth(request)
    headers = dict(request.headers.items())
    assert headers["Authorization"].startswith(f"AWS {KEY}:")
    assert not check("PUT", request.url, headers).presigned
    with pytest.raises(AuthError):
        check("PUT", request.url, {**headers, "x-amz-meta-origin": "changed"})
    late = datetime.now(UTC) + timedelta(minutes=20)
    with pytest.raises(AuthError) as skewed:
        check("PUT", request.url, headers, now=late)
    assert skewed.value.code == "RequestTimeTooSkewed"
