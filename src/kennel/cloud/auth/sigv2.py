"""S3's legacy Signature Version 2 (HMAC-SHA1), for what boto3 still produces by default.

``s3.generate_presigned_url(...)`` in us-east-1 yields ``?AWSAccessKeyId=…&Signature=…&Expires=…``
URLs, and old tools send ``Authorization: AWS AKID:signature``. S3 accepts both; the string to sign
is VERB, Content-MD5, Content-Type, Date (or Expires), the x-amz-* headers, and the resource with
its subresources (AWS S3 "Signing and authenticating REST requests").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from kennel.cloud.auth.sigv4 import ONE_MECHANISM, AuthError, Reason, SecretRecord, VerifiedRequest

# Query parameters that are part of the signed resource.
_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "acl",
        "cors",
        "defaultObjectAcl",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
        "analytics",
        "metrics",
        "inventory",
        "object-lock",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
    ]
)
_QUERY_AUTH = ("AWSAccessKeyId", "Signature", "Expires")


def is_sigv2(authorization: str, query_string: str) -> bool:
    if authorization.startswith("AWS "):
        return True
    names = {part.split("=", 1)[0] for part in query_string.split("&")}
    return "AWSAccessKeyId" in names and "Signature" in names


def string_to_sign(
    method: str, raw_path: str, query: Iterable[tuple[str, str]], headers: dict[str, str], when: str
) -> str:
    """``headers``: lower-case names (repeated ones joined by commas); ``when``: Date or Expires."""
    amz = {name: value.strip() for name, value in headers.items() if name.startswith("x-amz-")}
    resource = raw_path
    sub = sorted((name, value) for name, value in query if name in _SUBRESOURCES)
    if sub:
        resource += "?" + "&".join(f"{name}={value}" if value != "" else name for name, value in sub)
    lines = [
        method.upper(),
        headers.get("content-md5", "").strip(),
        headers.get("content-type", "").strip(),
        when,
    ]
    lines += [f"{name}:{amz[name]}" for name in sorted(amz)]
    return "\n".join(lines) + "\n" + resource


def verify_v2(*args, **kwargs) -> VerifiedRequest:
    """Who signed this Signature Version 2 request; else :class:`AuthError` as S3 words it."""
    try:
        return _verify_v2(*args, **kwargs)
    except AuthError as err:
        raise err.for_protocol("rest-xml") from None


def _verify_v2(
    method: str,
    raw_path: str,
    query_string: str,
    headers: dict[str, str],
    lookup: Callable[[str], SecretRecord | None],
    *,
    now: datetime,
    max_skew: timedelta,
    region: str,
) -> VerifiedRequest:
    pairs = [_split(part) for part in query_string.split("&") if part]
    params = dict(pairs)
    presigned = "Signature" in params
    signed_query_v4 = any(f"X-Amz-{name}" in params for name in ("Algorithm", "Credential", "Signature"))
    if (presigned and headers.get("authorization")) or signed_query_v4:
        # AWS refuses a request that authenticates two ways (here: a query signature and a header).
        raise AuthError(Reason.INCOMPLETE, ONE_MECHANISM, s3=("InvalidArgument", 400, None))
    if presigned:
        key_id, signature = params.get("AWSAccessKeyId", ""), params["Signature"]
        expires = params.get("Expires", "")
        if not expires.isdigit():
            raise AuthError(Reason.INCOMPLETE, "Query-string authentication requires the Signature, Expires "
                            "and AWSAccessKeyId parameters", s3=("AccessDenied", 403, None))  # fmt: skip
        if int(expires) < now.timestamp():
            raise AuthError(Reason.URL_EXPIRED)
        when = expires
        # x-amz-* query parameters stand for headers in a presigned URL.
        signed_headers = dict(headers) | {k.lower(): v for k, v in pairs if k.lower().startswith("x-amz-")}
        signed_at, ends = now, datetime.fromtimestamp(int(expires), UTC)
    else:
        credential = headers.get("authorization", "")[len("AWS ") :]
        key_id, _, signature = credential.rpartition(":")
        if not key_id or not signature:
            raise AuthError(Reason.INCOMPLETE, "Authorization header is invalid -- one and only one ' ' "
                            "(space) required", s3=("InvalidArgument", 400, None))  # fmt: skip
        signed_at = _request_time(headers)
        if abs(signed_at - now) > max_skew:
            raise AuthError(Reason.SKEWED)
        when = "" if "x-amz-date" in headers else headers.get("date", "")
        signed_headers, ends = headers, None
    record = lookup(key_id)
    if record is None:
        raise AuthError(Reason.BAD_KEY, AWSAccessKeyId=key_id)
    token = params.get("x-amz-security-token") if presigned else headers.get("x-amz-security-token")
    if (token != record.session_token) if record.session_token is not None else bool(token):
        raise AuthError(Reason.BAD_TOKEN)
    if record.expires_at is not None and record.expires_at.astimezone(UTC) < now:
        raise AuthError(Reason.EXPIRED_TOKEN)
    query = [(k, v) for k, v in pairs if k not in _QUERY_AUTH]
    text = string_to_sign(method, raw_path, query, signed_headers, when)
    digest = hmac.new(record.secret_access_key.encode(), text.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
        raise AuthError(Reason.MISMATCH, AWSAccessKeyId=key_id, StringToSign=text)
    return VerifiedRequest(key_id, record, region, "s3", signed_at, presigned, (), "UNSIGNED-PAYLOAD", ends)


def _split(part: str) -> tuple[str, str]:
    name, _, value = part.partition("=")
    return unquote(name), unquote(value)


def _request_time(headers: dict[str, str]) -> datetime:
    raw = headers.get("x-amz-date") or headers.get("date") or ""
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        try:
            moment = datetime.strptime(raw, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise AuthError(
                Reason.INCOMPLETE, "AWS authentication requires a valid Date or x-amz-date header",
                s3=("AccessDenied", 403, None),
            ) from None  # fmt: skip
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
