"""AWS Signature Version 4 verification of requests arriving at the Kennel gateway (pure: no I/O).

The signature is recomputed with botocore's own signer classes, so whatever botocore (boto3, the aws CLI,
the SageMaker SDK) sends verifies byte for byte; only the signer's inputs are pinned (``_Pinned``). AWS
answers one failure differently per wire protocol: :class:`AuthError` keeps a protocol-independent
``reason`` and renders ``code``/``status``/``message`` for one protocol (``_TABLE``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, unquote, unquote_to_bytes

from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import ReadOnlyCredentials

Protocol = Literal["query", "json", "rest-json", "rest-xml", "smithy-rpc-v2-cbor"]
Reason = enum.Enum("Reason", "MISSING INCOMPLETE BAD_KEY BAD_TOKEN EXPIRED_TOKEN MISMATCH SKEWED URL_EXPIRED")

ALGORITHM, MAX_PRESIGN_EXPIRES = "AWS4-HMAC-SHA256", 604800
UNSIGNED, _STAMP = botocore_auth.UNSIGNED_PAYLOAD, botocore_auth.SIGV4_TIMESTAMP
_AMZ_DATE, _SHA256_HEX = re.compile(r"\d{8}T\d{6}Z"), re.compile(r"[0-9a-fA-F]{64}")
_S3_SERVICES = frozenset({"s3", "s3-object-lambda"})


@dataclass(frozen=True)
class RawRequest:
    method: str
    raw_path: str  # path + "?" + query, still percent-encoded exactly as received
    headers: Mapping[str, str] | Iterable[tuple[str, str]]  # pairs keep duplicated header lines
    body: bytes = b""
    # A body too large to hold in memory (an S3 upload spooled to disk) is passed as its digest.
    body_sha256: str | None = None


@dataclass(frozen=True)
class SecretRecord:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires_at: datetime | None
    principal: object


CredentialLookup = Callable[[str], SecretRecord | None]


@dataclass(frozen=True)
class VerifiedRequest:
    access_key_id: str
    record: SecretRecord
    region: str
    service: str  # credential-scope service: sagemaker-runtime signs as "sagemaker"
    signed_at: datetime
    presigned: bool
    signed_headers: tuple[str, ...]
    payload_hash: str  # UNSIGNED-PAYLOAD or STREAMING-*: the body itself is not covered by this check
    expires_at: datetime | None = None  # end of a presigned URL's validity


class _Pinned:
    """Pins exactly SignedHeaders' headers (botocore's choice drops user-agent, which some SDKs sign)."""

    signed: HTTPHeaders
    payload_hash: str

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self.signed

    def payload(self, request: AWSRequest) -> str:
        return self.payload_hash


# fmt: off
# Used when the caller names no protocol: each credential-scope service's usual protocol.
DEFAULT_PROTOCOLS: Mapping[str, Protocol] = {"s3": "rest-xml", "s3-object-lambda": "rest-xml", "sts": "query",
    "iam": "query", "sagemaker": "json", "logs": "json", "application-autoscaling": "json",
    "lambda": "rest-json", "monitoring": "smithy-rpc-v2-cbor"}
# Keyed (is S3, presigned). The S3 classes skip the path's second percent-encoding other services get.
_SIGNERS: dict[tuple[bool, bool], Any] = {key: type(f"_Pinned{base.__name__}", (_Pinned, base), {})
    for key, base in {(False, False): botocore_auth.SigV4Auth, (False, True): botocore_auth.SigV4QueryAuth,
        (True, False): botocore_auth.S3SigV4Auth, (True, True): botocore_auth.S3SigV4QueryAuth}.items()}
_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
             "Secret Access Key and signing method. Consult the service documentation for details.")
_S3_MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your "
                "key and signing method.")
_BAD_TOKEN, _EXPIRED = ("The security token included in the request is invalid.",
                        "The security token included in the request is expired")
_MISSING, _GONE = "Request is missing Authentication Token", "Request has expired."
_Entry = tuple[str, int, str | None]  # code, status, message (None: the detail given where it is raised)
# Columns: query (sts, iam); json 1.0/1.1 and rpc-v2-cbor; rest-json (lambda, sagemaker-runtime); S3.
_TABLE: dict[Reason, tuple[_Entry, _Entry, _Entry, _Entry]] = {
    Reason.MISSING: (("MissingAuthenticationToken", 403, _MISSING), ("MissingAuthenticationTokenException",
                     400, _MISSING), ("MissingAuthenticationTokenException", 403, "Missing Authentication "
                     "Token"), ("AccessDenied", 403, "Access Denied")),
    Reason.INCOMPLETE: (("IncompleteSignature", 400, None), ("IncompleteSignatureException", 400, None),
                        ("IncompleteSignatureException", 403, None),
                        ("AuthorizationHeaderMalformed", 400, None)),
    Reason.BAD_KEY: (("InvalidClientTokenId", 403, _BAD_TOKEN), ("UnrecognizedClientException", 400,
                         _BAD_TOKEN), ("UnrecognizedClientException", 403, _BAD_TOKEN), ("InvalidAccessKeyId",
                         403, "The AWS Access Key Id you provided does not exist in our records.")),
    Reason.BAD_TOKEN: (("InvalidClientTokenId", 403, _BAD_TOKEN), ("UnrecognizedClientException", 400,
                       _BAD_TOKEN), ("UnrecognizedClientException", 403, _BAD_TOKEN),
                       ("InvalidToken", 400, "The provided token is malformed or otherwise invalid.")),
    Reason.EXPIRED_TOKEN: (("ExpiredToken", 403, _EXPIRED), ("ExpiredTokenException", 400, _EXPIRED),
                           ("ExpiredTokenException", 403, _EXPIRED), ("ExpiredToken", 400,
                           "The provided token has expired.")),
    Reason.MISMATCH: (("SignatureDoesNotMatch", 403, None), ("InvalidSignatureException", 400, None),
                      ("InvalidSignatureException", 403, None), ("SignatureDoesNotMatch", 403, _S3_MISMATCH)),
    Reason.SKEWED: (("SignatureDoesNotMatch", 403, None), ("InvalidSignatureException", 400, None),
                    ("InvalidSignatureException", 403, None), ("RequestTimeTooSkewed", 403,
                    "The difference between the request time and the current time is too large.")),
    Reason.URL_EXPIRED: (("RequestExpired", 400, _GONE), ("RequestExpired", 400, _GONE),
                             ("RequestExpired", 400, _GONE), ("AccessDenied", 403, "Request has expired")),
}
_COLUMN = {"query": 0, "json": 1, "smithy-rpc-v2-cbor": 1, "rest-json": 2, "rest-xml": 3}
# Failures S3 answers with a code of its own rather than its column's.
_S3_PARAMS: _Entry = ("AuthorizationQueryParametersError", 400, None)
_S3_DATE: _Entry = ("AccessDenied", 403, "AWS authentication requires a valid Date or x-amz-date header")
_S3_UNSIGNED: _Entry = ("AccessDenied", 403,
                        "There were headers present in the request which were not signed")
_S3_SHA: _Entry = ("XAmzContentSHA256Mismatch", 400,
                   "The provided 'x-amz-content-sha256' header does not match what was computed.")
# Details as AWS words them (S3 aside).
_ONE_MECHANISM = ("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
                  "query string parameter or the Authorization header should be specified")
ONE_MECHANISM = _ONE_MECHANISM  # sigv2 refuses mixed mechanisms in the same words
_NO_EQUALS = "'{}' not a valid key=value pair (missing equal-sign) in Authorization header: '{}'."
_REQUIRES = "Authorization header requires '{}' parameter."
_REQUIRES_DATE = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
_QUERY_PARAMS = ("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                 "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
_WEEK = ("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less "
         f"than {MAX_PRESIGN_EXPIRES} seconds")
_EXPIRES = {True: "X-Amz-Expires must be non-negative", False: "X-Amz-Expires should be a number"}
_PARTS = ("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
          "got '{}'")
_TERMINATOR = "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'."
_BAD_DATE = "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601"
_SCOPE_DATE = ("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
               "'{}' != '{}', from '{}'.")
_HOST_UNSIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
_NOT_YET = "Signature not yet current: {} is still later than {} ({} + {} min.)"
_SIG_EXPIRED = "Signature expired: {} is now earlier than {} ({} - {} min.)"
_NO_SHA = "Missing required header for this request: x-amz-content-sha256"
_BAD_SHA = f"x-amz-content-sha256 must be {UNSIGNED}, a STREAMING-* value or a valid sha256 value."
_BODY_UNSIGNED = ("x-amz-content-sha256: {} leaves the body unsigned, which only Amazon S3 accepts; sign the "
                  "SHA-256 of the body.")
_BAD_REGION = "Credential should be scoped to a valid region, not '{}'."
_S3_REGION = "The authorization header is malformed; the region '{}' is wrong; expecting '{}'"
_S3_QUERY_REGION = "Error parsing the X-Amz-Credential parameter; the region '{}' is wrong; expecting '{}'"
# Global services sign with us-east-1 whatever region the client is in (botocore's credentialScope).
_GLOBAL_SERVICES = frozenset({"iam", "sts"})
# fmt: on


class AuthError(Exception):
    """A refused request; ``extra`` holds the additional fields S3 puts in its error XML."""

    def __init__(
        self, reason: Reason, text: str | None = None, *, s3: _Entry | None = None, **extra: str
    ) -> None:
        self.reason, self.detail, self.s3_override, self.extra = reason, text, s3, extra
        self._render("query")

    def for_protocol(self, protocol: Protocol) -> AuthError:
        """This failure as the given protocol answers it."""
        err = AuthError(self.reason, self.detail, s3=self.s3_override, **self.extra)
        err._render(protocol)
        return err

    def _render(self, protocol: Protocol) -> None:
        column = _COLUMN[protocol]
        entry = self.s3_override if self.s3_override is not None and column == 3 else None
        self.protocol, (self.code, self.status, text) = protocol, entry or _TABLE[self.reason][column]
        self.message: str = text if text is not None else (self.detail or _MISMATCH)
        self.args = (f"{self.code} ({self.status}): {self.message}",)


@dataclass
class _Claim:  # what the request says about itself, read before any secret is consulted
    access_key_id: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    signed_at: datetime
    expires: int | None  # presigned URLs only


class _Received:
    def __init__(self, request: RawRequest) -> None:
        path, _, self.raw_query = request.raw_path.partition("?")
        self.method, self.path, self.body = request.method, path or "/", request.body
        self.body_sha256 = request.body_sha256
        pairs = request.headers.items() if isinstance(request.headers, Mapping) else request.headers
        self.headers: dict[str, list[str]] = {}
        for name, value in pairs:
            self.headers.setdefault(name.strip().lower(), []).append(value)
        self.query: dict[str, list[str]] = {}
        for part in filter(None, self.raw_query.split("&")):
            key, _, value = part.partition("=")
            self.query.setdefault(unquote(key), []).append(unquote(value))
        self.service_hint: str | None = None

    def header(self, name: str) -> str | None:
        # A repeated header counts as its values joined with commas, as in the canonical request.
        values = self.headers.get(name)
        return None if values is None else ",".join(values)

    def param(self, name: str) -> str | None:
        return (self.query.get(name) or [None])[0]


def verify(
    request: RawRequest,
    lookup: CredentialLookup,
    *,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
    protocol: Protocol | None = None,
    region: str | None = None,
) -> VerifiedRequest:
    """Who signed ``request``; else :class:`AuthError` rendered for ``protocol`` (default: the credential
    scope's usual protocol from ``DEFAULT_PROTOCOLS``, or query when no scope could be read).
    ``region``: the region this endpoint answers for; a credential scoped to another is refused."""
    received = _Received(request)
    try:
        return _verify(received, lookup, _utc(now), max_skew, region)
    except AuthError as err:
        chosen = protocol or DEFAULT_PROTOCOLS.get(received.service_hint or "", "query")
        raise err.for_protocol(chosen) from None


def _verify(
    rx: _Received, lookup: CredentialLookup, now: datetime, max_skew: timedelta, region: str | None
) -> VerifiedRequest:
    authorization = (rx.header("authorization") or "").strip()
    presigned = any(f"X-Amz-{k}" in rx.query for k in ("Algorithm", "Credential", "Signature"))
    if authorization and presigned:
        raise AuthError(Reason.INCOMPLETE, _ONE_MECHANISM, s3=("InvalidArgument", 400, None))
    if not presigned and not authorization:
        raise AuthError(Reason.MISSING)
    claim = _parse_query(rx) if presigned else _parse_header(rx, authorization)
    if region is not None:
        _check_region(claim, region)
    _check_time(claim, now, max_skew)

    record = lookup(claim.access_key_id)
    if record is None:
        raise AuthError(Reason.BAD_KEY, AWSAccessKeyId=claim.access_key_id)
    token = rx.param("X-Amz-Security-Token") if presigned else rx.header("x-amz-security-token")
    if (not _same(token, record.session_token)) if record.session_token is not None else bool(token):
        raise AuthError(Reason.BAD_TOKEN)
    if record.expires_at is not None and _utc(record.expires_at) < now:
        raise AuthError(Reason.EXPIRED_TOKEN)

    is_s3 = claim.service in _S3_SERVICES
    payload_hash = _payload_hash(rx, presigned, is_s3)
    canonical, string_to_sign, expected = _recompute(rx, claim, record, payload_hash, is_s3)
    if not _same(claim.signature, expected):
        shown = {"StringToSign": string_to_sign, "CanonicalRequest": canonical}
        raise AuthError(Reason.MISMATCH, AWSAccessKeyId=claim.access_key_id, **shown)
    computed = rx.body_sha256 or hashlib.sha256(rx.body).hexdigest()
    if _SHA256_HEX.fullmatch(payload_hash) and payload_hash.lower() != computed:
        # S3 signs with the header's word for the body; elsewhere AWS hashes the body: a plain mismatch.
        shown = {"ClientComputedContentSHA256": payload_hash, "S3ComputedContentSHA256": computed}
        raise AuthError(Reason.MISMATCH, s3=_S3_SHA, **shown)
    ends = None if claim.expires is None else claim.signed_at + timedelta(seconds=claim.expires)
    who = (claim.access_key_id, record, claim.region, claim.service, claim.signed_at, presigned)
    return VerifiedRequest(*who, claim.signed_headers, payload_hash, ends)


def _parse_header(rx: _Received, auth: str) -> _Claim:
    algorithm, _, rest = auth.partition(" ")
    params: dict[str, str] = {}
    for piece in filter(None, (p.strip() for p in rest.split(","))) if algorithm == ALGORITHM else ():
        key, eq, value = piece.partition("=")
        if not eq:
            raise AuthError(Reason.INCOMPLETE, _NO_EQUALS.format(piece, auth))
        params[key.strip()] = value.strip()
    raw_date = rx.header("x-amz-date") or rx.header("date")
    required = ("Credential", "Signature", "SignedHeaders")
    problems = [_REQUIRES.format(n) for n in required if not params.get(n)]
    if problems or raw_date is None:
        detail = " ".join(problems + [_REQUIRES_DATE] * (raw_date is None)) + f" Authorization={auth}"
        raise AuthError(Reason.INCOMPLETE, detail, s3=None if problems else _S3_DATE)
    return _claim(rx, params["Credential"], params["SignedHeaders"], params["Signature"], raw_date, None)


def _parse_query(rx: _Received) -> _Claim:
    names = ("Algorithm", "Credential", "Signature", "Date", "SignedHeaders", "Expires")
    v = {k: rx.param(f"X-Amz-{k}") or "" for k in names}
    if not all(v.values()):
        raise AuthError(Reason.INCOMPLETE, _QUERY_PARAMS, s3=_S3_PARAMS)
    claim = _claim(rx, v["Credential"], v["SignedHeaders"], v["Signature"], v["Date"], v["Expires"])
    if v["Algorithm"] != ALGORITHM:
        raise AuthError(Reason.INCOMPLETE, f'X-Amz-Algorithm only supports "{ALGORITHM}"', s3=_S3_PARAMS)
    return claim


def _claim(
    rx: _Received, credential: str, signed: str, signature: str, raw_date: str, expires: str | None
) -> _Claim:
    s3_malformed = _S3_PARAMS if expires is not None else None
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise AuthError(Reason.INCOMPLETE, _PARTS.format(credential), s3=s3_malformed)
    akid, scope_date, region, service, terminator = parts
    rx.service_hint = service
    if terminator != "aws4_request":
        raise AuthError(Reason.MISMATCH, _TERMINATOR.format(terminator), s3=s3_malformed)
    if expires is not None and not (expires.isdigit() and int(expires) <= MAX_PRESIGN_EXPIRES):
        detail = _WEEK if expires.isdigit() else _EXPIRES[expires.lstrip("-").isdigit()]
        raise AuthError(Reason.INCOMPLETE, detail, s3=_S3_PARAMS)
    try:
        if not _AMZ_DATE.fullmatch(raw_date):
            raise ValueError(raw_date)
        signed_at = datetime.strptime(raw_date, _STAMP).replace(tzinfo=UTC)
    except ValueError:
        raise AuthError(Reason.INCOMPLETE, _BAD_DATE.format(raw_date), s3=_S3_DATE) from None
    if scope_date != raw_date[:8]:
        detail = _SCOPE_DATE.format(scope_date, raw_date[:8], raw_date)
        raise AuthError(Reason.MISMATCH, detail, s3=s3_malformed or _TABLE[Reason.INCOMPLETE][3])
    names = tuple(n.strip().lower() for n in signed.split(";"))
    must_sign = {"host"}
    if service in _S3_SERVICES and expires is None:
        # S3 refuses x-amz-* headers left out of the signature (e.g. a session token added afterwards).
        must_sign |= {n for n in rx.headers if n.startswith("x-amz-")}
    if unsigned := sorted(must_sign - set(names)):
        detail = _HOST_UNSIGNED if "host" in unsigned else f"Unsigned headers: {';'.join(unsigned)}"
        raise AuthError(Reason.INCOMPLETE, detail, s3=_S3_UNSIGNED, HeadersNotSigned=",".join(unsigned))
    seconds = None if expires is None else int(expires)
    return _Claim(akid, region, service, names, signature, raw_date, signed_at, seconds)


def _check_region(claim: _Claim, region: str) -> None:
    if claim.region == region or (claim.region == "us-east-1" and claim.service in _GLOBAL_SERVICES):
        return
    presigned = claim.expires is not None
    s3_text = (_S3_QUERY_REGION if presigned else _S3_REGION).format(claim.region, region)
    s3_code = "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"
    detail = _BAD_REGION.format(claim.region)
    raise AuthError(Reason.MISMATCH, detail, s3=(s3_code, 400, s3_text), Region=region)


def _check_time(claim: _Claim, now: datetime, max_skew: timedelta) -> None:
    stamp, minutes = now.strftime(_STAMP), int(max_skew.total_seconds() // 60)
    extra = {"RequestTime": claim.timestamp, "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    extra["MaxAllowedSkewMilliseconds"] = str(int(max_skew.total_seconds() * 1000))
    if claim.signed_at - now > max_skew:
        detail = _NOT_YET.format(claim.timestamp, (now + max_skew).strftime(_STAMP), stamp, minutes)
        not_yet = ("AccessDenied", 403, "Request is not yet valid") if claim.expires is not None else None
        raise AuthError(Reason.SKEWED, detail, s3=not_yet, **extra)
    if claim.expires is not None:
        ends = claim.signed_at + timedelta(seconds=claim.expires)
        if now > ends:
            window = {"X-Amz-Expires": str(claim.expires), "Expires": ends.strftime("%Y-%m-%dT%H:%M:%SZ")}
            raise AuthError(Reason.URL_EXPIRED, **extra, **window)
    elif now - claim.signed_at > max_skew:
        detail = _SIG_EXPIRED.format(claim.timestamp, (now - max_skew).strftime(_STAMP), stamp, minutes)
        raise AuthError(Reason.SKEWED, detail, **extra)


def _payload_hash(rx: _Received, presigned: bool, is_s3: bool) -> str:
    declared = rx.header("x-amz-content-sha256")
    if declared is None and presigned:
        declared = rx.param("X-Amz-Content-Sha256")
    if declared is None:
        if is_s3 and not presigned:
            raise AuthError(Reason.INCOMPLETE, _NO_SHA, s3=("InvalidRequest", 400, _NO_SHA))
        # botocore's S3 query signer signs presigned URLs with this literal instead of a body hash.
        return UNSIGNED if is_s3 else rx.body_sha256 or hashlib.sha256(rx.body).hexdigest()
    if (declared == UNSIGNED or declared.startswith("STREAMING-")) and not is_s3:
        # Only S3 lets the signature leave the body out; elsewhere a captured request could be replayed
        # with any other body. AWS signs such services over the body itself, so this cannot match.
        raise AuthError(Reason.MISMATCH, _BODY_UNSIGNED.format(declared[:64]))
    if declared == UNSIGNED or declared.startswith("STREAMING-") or _SHA256_HEX.fullmatch(declared):
        return declared
    raise AuthError(Reason.MISMATCH, _BAD_SHA, s3=("InvalidArgument", 400, None))


def _recompute(
    rx: _Received, claim: _Claim, record: SecretRecord, payload_hash: str, is_s3: bool
) -> tuple[str, str, str]:
    credentials = ReadOnlyCredentials(claim.access_key_id, record.secret_access_key, record.session_token)
    signer = _SIGNERS[(is_s3, claim.expires is not None)](credentials, claim.service, claim.region)
    signer.signed, signer.payload_hash = HTTPHeaders(), payload_hash
    for name in claim.signed_headers:
        # A signed header that never arrived signs as empty, so its absence surfaces as a bad signature.
        for value in rx.headers.get(name, [""]):
            signer.signed[name] = value  # HTTPHeaders appends; botocore joins repeats with ','
    query = _canonical_query(rx.raw_query, drop_signature=claim.expires is not None)
    request = AWSRequest(method=rx.method, url=f"http://kennel.invalid{rx.path}?{query}")
    request.context["timestamp"] = claim.timestamp  # botocore's signing time; it never reads the clock here
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return canonical, string_to_sign, signer.signature(string_to_sign, request)


def _canonical_query(raw_query: str, *, drop_signature: bool) -> str:
    # Decoding then re-encoding each name and value canonicalises any valid client encoding (lower-case
    # hex, unescaped '~') as AWS does; botocore then sorts the pairs.
    pairs = []
    for part in filter(None, raw_query.split("&")):
        key, _, value = part.partition("=")
        name = quote(unquote_to_bytes(key), safe="-_.~")
        if not (drop_signature and name == "X-Amz-Signature"):
            pairs.append(f"{name}={quote(unquote_to_bytes(value), safe='-_.~')}")
    return "&".join(pairs)


def _same(provided: str | None, expected: str) -> bool:
    got = (provided or "").encode("utf-8", "replace")
    return provided is not None and hmac.compare_digest(got, expected.encode("utf-8", "replace"))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
