"""SigV4 verification against requests signed by real botocore clients.

Requests are caught in botocore's ``before-send`` event, so nothing leaves the process; one test sends
real requests to a recorder on 127.0.0.1 to check that what arrives on the wire verifies the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from kennel.cloud.auth.sigv4 import AuthError, Protocol, RawRequest, Reason, SecretRecord, verify

ENDPOINT = "http://127.0.0.1:4566"
AKID, TEMP_AKID, SECRET, TOKEN = "AKIAKENNELTEST000001", "ASIAKENNELTEST000002", "kennel/secret+key", "tok-1"
RECORDS = {
    AKID: SecretRecord(AKID, SECRET, None, None, principal="alice"),
    TEMP_AKID: SecretRecord(TEMP_AKID, SECRET, TOKEN, datetime(2100, 1, 1, tzinfo=UTC), principal="role"),
}
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
INVALID = ("InvalidClientTokenId", 403, "The security token included in the request is invalid.")
_SESSION = botocore.session.Session()  # one loader cache for every client keeps the suite fast


class _Sent(Exception):
    def __init__(self, request: Any) -> None:
        self.request = request


def _stop(request: Any, **_: Any) -> None:
    raise _Sent(request)


def client(service: str, akid: str = AKID, secret: str = SECRET, token: str | None = None, **kw: Any) -> Any:
    region, endpoint = kw.pop("region", "us-east-1"), kw.pop("endpoint", ENDPOINT)
    config = Config(retries={"max_attempts": 1}, **kw)
    credentials = {"aws_access_key_id": akid, "aws_secret_access_key": secret, "aws_session_token": token}
    return _SESSION.create_client(service, region, endpoint_url=endpoint, config=config, **credentials)


def _raw(prepared: Any) -> RawRequest:
    url = urlsplit(prepared.url)
    # urllib3 puts Host (with the port) on the wire; botocore signed exactly that value.
    headers = [("Host", url.netloc)]
    headers += [(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()]
    body = prepared.body.read() if hasattr(prepared.body, "read") else prepared.body or b""
    body = body.encode() if isinstance(body, str) else body
    return RawRequest(prepared.method, url.path + (f"?{url.query}" if url.query else ""), headers, body)


def signed(service: str, operation: str, params: dict[str, Any] | None = None, **kw: Any) -> RawRequest:
    sender = client(service, **kw)
    sender.meta.events.register("before-send", _stop)
    with pytest.raises(_Sent) as sent:
        getattr(sender, operation)(**(params or {}))
    return _raw(sent.value.request)


def presigned(
    service: str, operation: str, params: dict[str, Any], method: str = "GET", **kw: Any
) -> RawRequest:
    expires = kw.pop("expires", 300)
    url = urlsplit(client(service, **kw).generate_presigned_url(operation, params, expires, method))
    return RawRequest(method, f"{url.path}?{url.query}", [("Host", url.netloc)])


def s3_url(key: str = "k", **kw: Any) -> RawRequest:
    return presigned("s3", "get_object", {"Bucket": "bkt", "Key": key}, signature_version="s3v4", **kw)


def pairs(raw: RawRequest) -> list[tuple[str, str]]:
    return list(raw.headers.items() if isinstance(raw.headers, dict) else raw.headers)


def header(raw: RawRequest, name: str) -> str:
    return next(v for k, v in pairs(raw) if k.lower() == name.lower())


def with_header(raw: RawRequest, name: str, value: str | None) -> RawRequest:
    kept = [(k, v) for k, v in pairs(raw) if k.lower() != name.lower()]
    return RawRequest(
        raw.method, raw.raw_path, kept + ([(name, value)] if value is not None else []), raw.body
    )


def signed_at(raw: RawRequest) -> datetime:
    query = dict(p.split("=", 1) for p in raw.raw_path.partition("?")[2].split("&") if "=" in p)
    stamp = query.get("X-Amz-Date") or header(raw, "X-Amz-Date")
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def check(raw: RawRequest, now: datetime | None = None, lookup: Callable = RECORDS.get, **kw: Any) -> Any:
    return verify(raw, lookup, now=now or signed_at(raw), **kw)


def refused(raw: RawRequest, **kw: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        check(raw, **kw)
    return caught.value


def got(err: AuthError) -> tuple[str, int, str]:
    return err.code, err.status, err.message


ROLE = "arn:aws:iam::123456789012:role/kennel"
CLIENT_CASES = [
    ("sts", "get_caller_identity", {}),
    ("iam", "simulate_principal_policy", {"PolicySourceArn": ROLE, "ActionNames": ["s3:*"]}),
    ("sagemaker", "describe_endpoint", {"EndpointName": "ep-1"}),
    ("sagemaker-runtime", "invoke_endpoint", {"EndpointName": "ep 1", "Body": b"{}"}),
    ("lambda", "invoke", {"FunctionName": "my-func:prod", "Payload": b'{"a": 1}'}),
    ("lambda", "get_function", {"FunctionName": "arn:aws:lambda:us-east-1:1:function:f", "Qualifier": "v 1"}),
    ("lambda", "get_provisioned_concurrency_config", {"FunctionName": "f%2F", "Qualifier": "a~b+c"}),
    ("logs", "describe_log_streams", {"logGroupName": "/aws/sagemaker/TrainingJobs"}),
    ("application-autoscaling", "describe_scalable_targets", {"ServiceNamespace": "sagemaker"}),
    ("cloudwatch", "list_metrics", {"Namespace": "AWS/SageMaker"}),
    ("s3", "put_object", {"Bucket": "bkt", "Key": "dir/a b+c~ü%.txt", "Body": b"hello"}),
    ("s3", "list_objects_v2", {"Bucket": "bkt", "Prefix": "a b/ü", "Delimiter": "/"}),
]
LIST_CALLS = [("sagemaker", "list_models"), ("lambda", "list_functions")]
SCOPES = {"sagemaker-runtime": "sagemaker", "cloudwatch": "monitoring"}  # others sign as their own name


@pytest.mark.parametrize(("service", "operation", "params"), CLIENT_CASES)
def test_real_client_requests_verify(service: str, operation: str, params: dict[str, Any]) -> None:
    raw = signed(service, operation, params)
    verified = check(raw)
    assert (verified.access_key_id, verified.record.principal) == (AKID, "alice")
    assert (verified.service, verified.region) == (SCOPES.get(service, service), "us-east-1")
    assert not verified.presigned and "host" in verified.signed_headers
    assert verified.signed_at == signed_at(raw)


def test_presigned_s3_get() -> None:
    raw = s3_url("a b/ü.txt")
    verified = check(raw)
    assert verified.presigned and verified.service == "s3" and verified.payload_hash == "UNSIGNED-PAYLOAD"
    assert verified.expires_at == signed_at(raw) + timedelta(seconds=300)
    assert check(raw, now=signed_at(raw) + timedelta(seconds=300)).presigned

    late = refused(raw, now=signed_at(raw) + timedelta(seconds=301))
    assert got(late) == ("AccessDenied", 403, "Request has expired")
    assert late.extra["X-Amz-Expires"] == "300" and late.for_protocol("query").code == "RequestExpired"
    early = refused(raw, now=signed_at(raw) - timedelta(minutes=16))
    assert got(early) == ("AccessDenied", 403, "Request is not yet valid")
    other_key = RawRequest("GET", raw.raw_path.replace("a%20b", "a%20c"), raw.headers)
    assert refused(other_key).code == "SignatureDoesNotMatch"
    assert refused(RawRequest("PUT", raw.raw_path, raw.headers)).code == "SignatureDoesNotMatch"


def test_presigned_limits() -> None:
    err = refused(s3_url(expires=604801))
    assert (err.code, err.status) == ("AuthorizationQueryParametersError", 400)
    assert err.for_protocol("query").message.startswith("X-Amz-Expires must be less than a week")
    raw = s3_url()
    negative = RawRequest("GET", raw.raw_path.replace("X-Amz-Expires=300", "X-Amz-Expires=-1"), raw.headers)
    assert refused(negative).message == "X-Amz-Expires must be non-negative"
    # Refused before the credential scope is read, so only the caller knows the protocol.
    both = with_header(raw, "Authorization", "AWS4-HMAC-SHA256 Credential=x")
    assert refused(both, protocol="rest-xml").code == "InvalidArgument" and refused(both).code == INCOMPLETE


def test_presigned_non_s3_url() -> None:
    raw = presigned("sts", "get_caller_identity", {}, method="GET")
    verified = check(raw)
    assert verified.presigned and verified.service == "sts"
    assert refused(RawRequest("POST", raw.raw_path, raw.headers)).code == "SignatureDoesNotMatch"
    expired = refused(raw, now=signed_at(raw) + timedelta(seconds=301))
    assert got(expired) == ("RequestExpired", 400, "Request has expired.")


def test_session_tokens() -> None:
    raw = signed("sts", "get_caller_identity", akid=TEMP_AKID, token=TOKEN)
    assert check(raw).record.principal == "role"
    other_token = signed("sts", "get_caller_identity", akid=TEMP_AKID, token="tok-2")
    for bad in (other_token, with_header(raw, "X-Amz-Security-Token", None)):
        err = refused(bad)
        assert got(err) == INVALID
        assert got(err.for_protocol("json"))[:2] == ("UnrecognizedClientException", 400)
    assert got(refused(signed("sts", "get_caller_identity", token="stray"))) == INVALID

    gone = {TEMP_AKID: SecretRecord(TEMP_AKID, SECRET, TOKEN, signed_at(raw) - timedelta(seconds=1), "role")}
    err = refused(raw, lookup=gone.get)
    assert got(err) == ("ExpiredToken", 403, "The security token included in the request is expired")
    assert got(err.for_protocol("rest-xml")) == ("ExpiredToken", 400, "The provided token has expired.")
    assert check(s3_url(akid=TEMP_AKID, token=TOKEN)).presigned
    assert refused(s3_url(akid=TEMP_AKID, token="tok-2")).code == "InvalidToken"


def test_wrong_secret_per_protocol() -> None:
    sts = refused(signed("sts", "get_caller_identity", secret="not-the-secret"))
    assert got(sts) == ("SignatureDoesNotMatch", 403, MISMATCH) and sts.reason is Reason.MISMATCH
    sagemaker, lam = (refused(signed(name, op, secret="x")) for name, op in LIST_CALLS)
    assert got(sagemaker) == ("InvalidSignatureException", 400, MISMATCH)
    assert (lam.code, lam.status) == ("InvalidSignatureException", 403)
    s3 = refused(signed("s3", "list_buckets", secret="x"))
    assert (s3.code, s3.status) == ("SignatureDoesNotMatch", 403) and "Check your key" in s3.message
    assert s3.extra["CanonicalRequest"].startswith("GET\n/\n") and s3.extra["StringToSign"].startswith("AWS4")


def test_unknown_key_and_missing_auth() -> None:
    assert got(refused(signed("sts", "get_caller_identity", akid="AKIAUNKNOWN000000000"))) == INVALID
    s3 = refused(signed("s3", "list_buckets", akid="AKIAUNKNOWN000000000"))
    assert (s3.code, s3.extra["AWSAccessKeyId"]) == ("InvalidAccessKeyId", "AKIAUNKNOWN000000000")

    bare = with_header(signed("sts", "get_caller_identity"), "Authorization", None)
    err = refused(bare)
    assert got(err) == ("MissingAuthenticationToken", 403, "Request is missing Authentication Token")
    assert refused(bare, protocol="rest-xml").code == "AccessDenied"
    assert refused(with_header(bare, "Authorization", "   ")).code == "MissingAuthenticationToken"


def _edit(find: str, replace: str) -> Callable[[str], str]:
    return lambda auth: auth.replace(find, replace, 1)


INCOMPLETE, BAD = "IncompleteSignature", "SignatureDoesNotMatch"
MALFORMED = [
    (lambda a: a.split(", Signature=")[0], INCOMPLETE, "Authorization header requires 'Signature' parameter"),
    (_edit("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), INCOMPLETE, "Authorization header requires 'Credential'"),
    (lambda a: "Bearer abc.def", INCOMPLETE, "Authorization=Bearer abc.def"),
    (_edit("Credential=", "Credential "), INCOMPLETE, "not a valid key=value pair (missing equal-sign)"),
    (_edit("/us-east-1/", "/"), INCOMPLETE, "Credential must have exactly 5 slash-delimited elements"),
    (_edit("aws4_request", "aws5_request"), BAD, "valid terminator: 'aws4_request', not 'aws5_request'"),
    (_edit("content-type;host;", "content-type;"), INCOMPLETE, "'Host' or ':authority' must be a"),
    (lambda a: a[:-10], BAD, MISMATCH),
    (lambda a: a[:-4] + "zzzz", BAD, MISMATCH),
    (lambda a: a[:-64] + a[-64:].upper(), BAD, MISMATCH),
    (lambda a: a[: a.index("Signature=") + 10], INCOMPLETE, "requires 'Signature' parameter"),
]


@pytest.mark.parametrize(("edit", "code", "text"), MALFORMED)
def test_malformed_authorization(edit: Callable[[str], str], code: str, text: str) -> None:
    raw = signed("sts", "get_caller_identity")
    err = refused(with_header(raw, "Authorization", edit(header(raw, "Authorization"))))
    assert err.code == code and text in err.message
    assert err.status == (400 if code == INCOMPLETE else 403)


def test_date_problems() -> None:
    raw = signed("sts", "get_caller_identity")
    undated = with_header(raw, "X-Amz-Date", None)
    err = refused(undated, now=signed_at(raw))
    assert "requires existence of either a 'X-Amz-Date' or a 'Date' header" in err.message
    assert refused(undated, now=signed_at(raw), protocol="rest-xml").code == "AccessDenied"
    bad = refused(with_header(raw, "X-Amz-Date", "2026-01-01T00:00:00Z"), now=signed_at(raw))
    assert bad.message.startswith("Date must be in ISO-8601 'basic format'. Got '2026-01-01T00:00:00Z'.")
    day_later = signed_at(raw) + timedelta(days=1)
    err = refused(with_header(raw, "X-Amz-Date", day_later.strftime("%Y%m%dT%H%M%SZ")), now=day_later)
    assert err.code == BAD and "Date in Credential scope does not match" in err.message


def test_clock_skew(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = datetime(2030, 1, 2, 3, 4, 5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: frozen)
    raw = signed("sts", "get_caller_identity")
    assert header(raw, "X-Amz-Date") == "20300102T030405Z"
    assert check(raw, now=frozen + timedelta(minutes=14)).signed_at == frozen.replace(tzinfo=UTC)
    late = refused(raw, now=frozen + timedelta(minutes=16))
    text = "Signature expired: 20300102T030405Z is now earlier than 20300102T030505Z "
    text += "(20300102T032005Z - 15 min.)"
    assert got(late) == (BAD, 403, text)
    assert got(late.for_protocol("json"))[:2] == ("InvalidSignatureException", 400)
    early = refused(raw, now=frozen - timedelta(minutes=16))
    assert early.message == (
        "Signature not yet current: 20300102T030405Z is still later than 20300102T030305Z "
        "(20300102T024805Z + 15 min.)"
    )
    s3 = refused(signed("s3", "list_buckets"), now=frozen + timedelta(minutes=16))
    assert (s3.code, s3.extra["MaxAllowedSkewMilliseconds"]) == ("RequestTimeTooSkewed", "900000")
    narrow = refused(raw, now=frozen + timedelta(minutes=6), max_skew=timedelta(minutes=5))
    assert narrow.message.endswith("(20300102T031005Z - 5 min.)")


def test_tampering_is_caught() -> None:
    sts = signed("sts", "get_caller_identity")
    other_action = sts.body.replace(b"GetCallerIdentity", b"GetSessionToken")
    assert refused(RawRequest("POST", "/", sts.headers, other_action)).code == BAD
    assert refused(RawRequest("PUT", "/", sts.headers, sts.body)).code == BAD
    sm = signed("sagemaker", "describe_endpoint", {"EndpointName": "ep"})
    other_target = with_header(sm, "X-Amz-Target", "SageMaker.DeleteEndpoint")
    assert refused(other_target).code == "InvalidSignatureException"
    lam = signed("lambda", "get_function", {"FunctionName": "my:fn", "Qualifier": "1"})
    path = lam.raw_path
    changes = path.replace("my%3Afn", "my:fn"), path.replace("Qualifier=1", "Qualifier=2"), path + "&x"
    for changed in changes:
        assert refused(RawRequest("GET", changed, lam.headers)).code == "InvalidSignatureException"
    # Another valid encoding of the same query string still verifies: names and values are re-encoded.
    listing = signed("s3", "list_objects_v2", {"Bucket": "b", "Prefix": "a:b~c"})
    assert "prefix=a%3Ab~c" in listing.raw_path
    recoded = listing.raw_path.replace("a%3Ab~c", "a%3ab%7Ec")
    assert check(RawRequest("GET", recoded, listing.headers, listing.body)).service == "s3"

    put = signed("s3", "put_object", {"Bucket": "b", "Key": "k", "Body": b"hello"})
    err = refused(RawRequest("PUT", put.raw_path, put.headers, b"jello"))
    assert (err.code, err.status) == ("XAmzContentSHA256Mismatch", 400)
    assert err.for_protocol("query").code == BAD
    err = refused(with_header(put, "X-Amz-Meta-Extra", "sneaky"))
    assert (err.code, err.extra["HeadersNotSigned"]) == ("AccessDenied", "x-amz-meta-extra")
    sha = "x-amz-content-sha256"
    err = refused(with_header(put, sha, None))
    assert (err.code, err.message) == ("InvalidRequest", f"Missing required header for this request: {sha}")


def test_header_names_values_and_duplicates() -> None:
    raw = signed("sagemaker", "describe_endpoint", {"EndpointName": "ep"}, region="eu-west-1")
    as_mapping = RawRequest(raw.method, raw.raw_path, dict(pairs(raw)), raw.body)
    assert check(as_mapping, now=signed_at(raw)).region == "eu-west-1"
    shouting = [(k.upper(), v) for k, v in pairs(raw)]
    assert check(RawRequest(raw.method, raw.raw_path, shouting, raw.body)).service == "sagemaker"
    spaced = with_header(raw, "X-Amz-Target", "  SageMaker.DescribeEndpoint  ")
    assert check(spaced).service == "sagemaker"  # canonical header values are trimmed

    request = AWSRequest("GET", f"{ENDPOINT}/2015-03-31/functions", headers={"X-Custom": "a"})
    request.headers.add_header("X-Custom", "b  c")  # a repeated header line, as proxies and some SDKs send
    botocore.auth.SigV4Auth(Credentials(AKID, SECRET), "lambda", "us-east-1").add_auth(request)
    assert "x-custom" in request.headers["Authorization"]
    lines = [("Host", "127.0.0.1:4566"), *request.headers.items()]
    path = "/2015-03-31/functions"
    assert check(RawRequest("GET", path, lines)).service == "lambda"
    dropped = [(k, v) for k, v in lines if (k, v) != ("X-Custom", "b  c")]
    joined = [(k, "a,b c" if k == "X-Custom" else v) for k, v in dropped]
    assert check(RawRequest("GET", path, joined)).service == "lambda"  # AWS joins repeats with ","
    swapped = [(k, {"a": "b  c", "b  c": "a"}[v] if k == "X-Custom" else v) for k, v in lines]
    assert refused(RawRequest("GET", path, swapped)).code == "InvalidSignatureException"
    assert refused(RawRequest("GET", path, dropped)).code == "InvalidSignatureException"


@pytest.mark.parametrize("host", ["127.0.0.1:4567", "localhost:4566", "127.0.0.1"])
def test_request_through_another_host_or_port(host: str) -> None:
    assert refused(with_header(signed("sts", "get_caller_identity"), "Host", host)).code == BAD


def test_error_rendering_table() -> None:
    expected = {
        Reason.MISSING: ("MissingAuthenticationToken", "MissingAuthenticationTokenException", "AccessDenied"),
        Reason.INCOMPLETE: (INCOMPLETE, "IncompleteSignatureException", "AuthorizationHeaderMalformed"),
        Reason.BAD_KEY: ("InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId"),
        Reason.BAD_TOKEN: ("InvalidClientTokenId", "UnrecognizedClientException", "InvalidToken"),
        Reason.EXPIRED_TOKEN: ("ExpiredToken", "ExpiredTokenException", "ExpiredToken"),
        Reason.MISMATCH: (BAD, "InvalidSignatureException", BAD),
        Reason.SKEWED: (BAD, "InvalidSignatureException", "RequestTimeTooSkewed"),
        Reason.URL_EXPIRED: ("RequestExpired", "RequestExpired", "AccessDenied"),
    }
    protocols: tuple[Protocol, ...] = ("query", "json", "smithy-rpc-v2-cbor", "rest-json", "rest-xml")
    for reason, (query, json, s3) in expected.items():
        err = AuthError(reason, "detail")
        assert [err.for_protocol(p).code for p in protocols] == [query, json, json, json, s3]
        assert str(err).startswith(f"{query} ({err.status}): ") and err.protocol == "query"
    why = AuthError(Reason.INCOMPLETE, "why").for_protocol("rest-json")
    assert got(why) == ("IncompleteSignatureException", 403, "why")


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[RawRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(RawRequest(self.command, self.path, list(self.headers.items()), body))
        self.send_response(418)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


def test_requests_as_received_on_loopback() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        for service, operation, params in (CLIENT_CASES[0], ("lambda", "invoke", {"FunctionName": "f:1 ü"})):
            with pytest.raises(Exception):  # noqa: B017 - the recorder answers 418; only the request matters
                getattr(client(service, endpoint=endpoint), operation)(**params)
        assert [check(raw, now=datetime.now(UTC)).service for raw in _Recorder.seen] == ["sts", "lambda"]
        assert header(_Recorder.seen[0], "Host") == endpoint.removeprefix("http://")
    finally:
        server.shutdown()
        server.server_close()
