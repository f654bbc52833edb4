"""S3 through the gateway: verify SigV4, authorise with IAM, then stream to and from SeaweedFS.

Bodies are spooled (``spool.py``) while their SHA-256 is computed, because S3 signs the body's digest
and a request must be refused before any of it reaches the store. Responses stream back unchanged
(SeaweedFS already speaks S3's XML), with Kennel's request id. The few operations the store cannot
answer truthfully (bucket policies, configuration it never holds) are answered by ``local.py`` instead,
and requests on keys the store cannot hold under their own names are routed, and their answers read
whole and rewritten, by ``sidekeys.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from xml.sax.saxutils import escape

import aiohttp
import yarl
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from kennel.cloud.auth.sigv2 import is_sigv2, verify_v2
from kennel.cloud.auth.sigv4 import AuthError, RawRequest, VerifiedRequest, verify
from kennel.cloud.objectstore import chunked, local
from kennel.cloud.objectstore.operations import (
    S3Call,
    S3RequestError,
    bucket_from_host,
    classify,
    completed_parts,
    copy_source_of,
    encode_query,
    parse_query,
)
from kennel.cloud.objectstore.seaweed import ObjectStoreUnavailable
from kennel.cloud.objectstore.sidekeys import Route
from kennel.cloud.objectstore.spool import Spool

log = logging.getLogger("kennel.s3")

REQUEST_TIMEOUT_MESSAGE = (
    "Your socket connection to the server was not read from or written to within the timeout period. "
    "Idle connections will be closed."
)

_MAX_DELETE_BODY = 2 * 1024 * 1024
_PRESIGN_PARAMS = frozenset(
    [
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-signature",
        "x-amz-security-token",
        "awsaccesskeyid",  # Signature Version 2 presigned URLs
        "signature",
        "expires",
    ]
)
# Not forwarded: credentials and hop-by-hop headers; the body is re-framed by the proxy. SSE headers
# are dropped because SeaweedFS has no KMS and the SageMaker SDK asks for aws:kms by default.
_DROPPED_REQUEST_HEADERS = frozenset(
    [
        "authorization",
        "x-amz-security-token",
        "host",
        "connection",
        "keep-alive",
        "expect",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "content-length",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-context",
        "x-amz-server-side-encryption-bucket-key-enabled",
    ]
)
_NON_ASCII = re.compile("[\x80-\xff]")
_DROPPED_RESPONSE_HEADERS = frozenset(
    ["connection", "keep-alive", "transfer-encoding", "server", "x-amz-request-id"]
)


class _ForwardSigner(S3SigV4Auth):
    """Signs a forwarded request as the store's identity: the body is not re-hashed (the gateway has
    checked it), and only Host and x-amz-*/Content-MD5 are signed, since the HTTP client may reframe the
    rest."""

    def payload(self, request) -> str:
        return "UNSIGNED-PAYLOAD"

    def headers_to_sign(self, request) -> HTTPHeaders:
        signed = HTTPHeaders()
        for name, value in request.headers.items():
            lower = name.lower()
            if lower == "host" or lower == "content-md5" or lower.startswith("x-amz-"):
                signed[lower] = value
        if "host" not in signed:
            signed["host"] = request.url.split("://", 1)[1].split("/", 1)[0]
        return signed


def error_body(
    code: str, message: str, request_id: str, resource: str = "", extra: dict[str, str] | None = None
) -> bytes:
    parts = [f"<Code>{escape(code)}</Code>", f"<Message>{escape(message)}</Message>"]
    if resource:
        parts.append(f"<Resource>{escape(resource)}</Resource>")
    for name, value in (extra or {}).items():  # e.g. <Region>, which SDKs read to redirect
        parts.append(f"<{name}>{escape(value)}</{name}>")
    parts.append(f"<RequestId>{request_id}</RequestId>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>").encode()


class S3Proxy:
    def __init__(self, cloud, *, clock=time.time) -> None:
        self.cloud = cloud
        self.clock = clock
        self.max_object_bytes = cloud.settings.max_object_bytes
        self.spool_dir = cloud.settings.state_dir / "objects" / "spool"
        self._session: aiohttp.ClientSession | None = None
        # Blocking work (SigV4, IAM, de-chunking, spool reads) runs on the S3 data plane's threads,
        # set by the gateway; None (the loop's default executor) when the proxy is used on its own.
        self.executor: Executor | None = None
        self.body_timeout_s = cloud.settings.body_timeout_s
        self.local = local.LocalOperations(cloud.bucket_policies, cloud.objects)
        self.side_keys = cloud.side_keys  # keys the store cannot hold under their names (sidekeys.py)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created inside the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64),
                timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=600),
                auto_decompress=False,  # bytes pass through as stored; the client's Accept-Encoding decides
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, scope, receive, send, request_id: str) -> None:
        method = scope["method"]
        raw_path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0] or "/"
        query_string = scope.get("query_string", b"").decode("latin-1")
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers: dict[str, str] = {}
        for name, value in pairs:
            name = name.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        request = _Incoming(method, raw_path, query_string, pairs, headers, request_id,
                            (scope.get("client") or ("127.0.0.1", 0))[0])  # fmt: skip
        spool = Spool(self.spool_dir)
        body = spool
        try:
            try:
                await self._read_body(receive, headers, spool)
                loop = asyncio.get_running_loop()
                admitted = await loop.run_in_executor(self.executor, self._admit, request, spool)
                call, verified, endpoint, forward_query, route = admitted
                if headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
                    body = await loop.run_in_executor(self.executor, self._dechunk, request, verified, spool)
                answer = None
                if local.serves(call):
                    answer = await loop.run_in_executor(
                        self.executor, self.local.answer, call, headers, body.small_body()
                    )
            except _ClientGone:
                return  # a body cut short must never be stored as if it were whole
            except S3RequestError as err:
                close = err.code == "RequestTimeout"  # the rest of the body may still come: hang up
                await _send_error(send, method, err.status, err.code, err.message, request_id, close=close)
                return
            except AuthError as err:
                region = {"Region": err.extra["Region"]} if "Region" in err.extra else None
                await _send_error(send, method, err.status, err.code, err.message, request_id, extra=region)
                return
            except chunked.ChunkedError as err:
                status = 403 if err.code == "SignatureDoesNotMatch" else 400
                await _send_error(send, method, status, err.code, err.message, request_id)
                return
            except ObjectStoreUnavailable as exc:
                await _send_error(send, method, 503, "ServiceUnavailable", str(exc), request_id)
                return
            if answer is not None:
                await _send_answer(send, method, answer, request_id)
                return
            await self._forward(send, endpoint, request, body, call, forward_query, route)
        except Exception as exc:  # last resort: one request gets an S3-shaped error, never the gateway
            if isinstance(exc, RecursionError | UnicodeError):  # only bad input causes these: the client's
                log.warning("unchecked bad input in S3 request %s: %r", request_id, exc, exc_info=True)
                await _send_error(send, method, 400, "InvalidArgument",
                                  "The request could not be read (too deeply nested or not valid text).",
                                  request_id)  # fmt: skip
                return
            log.exception("S3 request %s failed", request_id)
            await _send_error(send, method, 500, "InternalError",
                              "We encountered an internal error. Please try again.", request_id)  # fmt: skip
        finally:
            spool.close()
            if body is not spool:
                body.close()

    async def _read_body(self, receive, headers: dict[str, str], spool: Spool) -> None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_object_bytes:
            raise S3RequestError(
                "EntityTooLarge", 400,
                f"Your proposed upload of {declared} bytes exceeds the maximum allowed object size "
                f"of {self.max_object_bytes} bytes.",
            )  # fmt: skip
        idle_s = self.body_timeout_s
        loop = asyncio.get_running_loop()
        try:
            # One timer, pushed back after every chunk: S3's RequestTimeout is about silence, not length.
            async with asyncio.timeout(idle_s) as quiet:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    if chunk:
                        spool.write(chunk)
                        if spool.size > self.max_object_bytes:
                            raise S3RequestError(
                                "EntityTooLarge", 400,
                                f"Your proposed upload exceeds the maximum allowed object size of "
                                f"{self.max_object_bytes} bytes.",
                            )  # fmt: skip
                    if not message.get("more_body", False):
                        break
                    quiet.reschedule(loop.time() + idle_s)
        except TimeoutError:
            raise S3RequestError("RequestTimeout", 400, REQUEST_TIMEOUT_MESSAGE) from None

    def _admit(self, request: _Incoming, spool: Spool) -> tuple[S3Call, VerifiedRequest, str, str, Route]:
        """SigV4, then classification, then every IAM check the operation needs, then the store's
        endpoint (starting it if needed) — all on one worker thread. Also returns the query string to
        forward, rebuilt from exactly the parameters that were authorised, and where in the store the
        request goes (keys the store cannot hold under their names are kept beside it: sidekeys.py)."""
        settings = self.cloud.settings
        now = datetime.fromtimestamp(self.clock(), UTC)
        full_path = request.raw_path + (f"?{request.query_string}" if request.query_string else "")
        max_skew = timedelta(seconds=settings.max_clock_skew_s)
        lookup = self.cloud.identities.lookup
        if is_sigv2(request.headers.get("authorization", ""), request.query_string):
            verified = verify_v2(
                request.method, request.raw_path, request.query_string, request.headers, lookup,
                now=now, max_skew=max_skew, region=settings.region,
            )  # fmt: skip
        else:
            verified = verify(
                RawRequest(request.method, full_path, request.pairs, b"", body_sha256=spool.sha256),
                lookup, now=now, max_skew=max_skew, protocol="rest-xml", region=settings.region,
            )  # fmt: skip
        query = parse_query(request.query_string)
        body = b""
        if request.method == "POST" and ("delete" in query or "uploadId" in query):
            if spool.size > _MAX_DELETE_BODY:
                raise S3RequestError("MalformedXML", 400, "The request's XML body is too large.")
            body = spool.small_body() or b""
            if "uploadId" in query:  # CompleteMultipartUpload: S3 refuses parts out of order or repeated
                completed_parts(body)
                body = b""
        host_bucket = bucket_from_host(request.headers.get("host", ""))
        call = classify(
            request.method, request.raw_path, query, request.headers, body=body, host_bucket=host_bucket
        )
        principal = verified.record.principal
        for check in call.checks:
            decision = self.cloud.authorizer.decide(
                principal, check.action, check.resource, now=now, source_ip=request.source_ip,
                region=verified.region, request_id=request.request_id, access_key_id=verified.access_key_id,
                extra_context=check.context,
            )  # fmt: skip
            if not decision.allowed:
                message = decision.message(principal.arn, check.action, check.resource)
                raise S3RequestError("AccessDenied", 403, message)
        endpoint = self.cloud.objects.endpoint()
        declared = request.headers.get("x-amz-decoded-content-length", "")
        size = int(declared) if declared.isdigit() and len(declared) < 20 else spool.size
        source = request.headers.get("x-amz-copy-source")
        copying = source and call.operation in ("CopyObject", "UploadPartCopy")
        copied = copy_source_of(source) if copying else None
        route = self.side_keys.route(call, size, copied, query)
        if route.path is not None:
            self.side_keys.ensure_side_bucket()
        forwarded = encode_query(route.query if route.query is not None else query, drop=_PRESIGN_PARAMS)
        return call, verified, endpoint, forwarded, route

    def _dechunk(self, request: _Incoming, verified: VerifiedRequest, spool: Spool) -> Spool:
        """The plain body of an aws-chunked upload, every chunk signature and checksum trailer checked."""
        mode = request.headers["x-amz-content-sha256"]
        signer = None
        if mode.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
            if verified.presigned:
                raise S3RequestError("InvalidRequest", 400, "aws-chunked uploads cannot be presigned.")
            seed = request.headers.get("authorization", "").rpartition("Signature=")[2].strip()
            date = verified.signed_at.strftime("%Y%m%d")
            signer = chunked.ChunkSigner(
                chunked.signing_key(
                    verified.record.secret_access_key, date, verified.region, verified.service
                ),
                verified.signed_at.strftime("%Y%m%dT%H%M%SZ"),
                f"{date}/{verified.region}/{verified.service}/aws4_request",
                seed,
            )
        elif mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
            raise S3RequestError(
                "NotImplemented", 501, f"Kennel's S3 does not accept x-amz-content-sha256: {mode}."
            )
        plain = Spool(self.spool_dir)
        try:
            decoded = chunked.decode(spool.reader(), plain.write, signer, max_size=spool.size)
        except BaseException:
            plain.close()
            raise
        declared = request.headers.get("x-amz-decoded-content-length", "")
        if declared.isdigit() and int(declared) != decoded.size:
            plain.close()
            raise S3RequestError(
                "IncompleteBody", 400,
                f"x-amz-decoded-content-length says {declared} bytes; the chunks hold {decoded.size}.",
            )  # fmt: skip
        plain.trailers = {k: v for k, v in decoded.trailers.items() if k.startswith("x-amz-checksum-")}
        return plain

    async def _forward(
        self, send, endpoint: str, request: _Incoming, body: Spool, call: S3Call, query: str, route: Route
    ) -> None:
        host_bucket = bucket_from_host(request.headers.get("host", ""))
        path = f"/{host_bucket}{request.raw_path}" if host_bucket else request.raw_path
        if call.key_ignored:  # a bucket subresource asked at a key: the bucket's operation, as authorised
            path = "/" + quote(call.bucket or "", safe="")
        path = route.path or path
        # Raw bytes past ASCII (latin-1 here; uvicorn refuses them today, another server might not) go out
        # percent-encoded: the same bytes, so the store decodes the key that operations.split_path
        # decoded as UTF-8 and authorised.
        path = _NON_ASCII.sub(lambda found: f"%{ord(found.group()):02X}", path)
        url = endpoint + path + (f"?{query}" if query else "")
        forwarded = {k: v for k, v in request.headers.items() if k not in _DROPPED_REQUEST_HEADERS}
        if body.trailers is not None:  # it was aws-chunked
            for name in ("x-amz-decoded-content-length", "x-amz-trailer"):
                forwarded.pop(name, None)
            encodings = [e.strip() for e in forwarded.pop("content-encoding", "").split(",")]
            if kept := [e for e in encodings if e and e != "aws-chunked"]:
                forwarded["content-encoding"] = ",".join(kept)
            forwarded.update(body.trailers)
        forwarded.pop("x-amz-date", None)
        # The client's Date (what SigV2 signs) must go too: given a Date, botocore's SigV4 signer rewrites
        # it as "… -0000" and signs with it instead of adding X-Amz-Date, and SeaweedFS refuses that form
        # with MalformedDate. The forwarded request is dated by its own X-Amz-Date.
        forwarded.pop("date", None)
        forwarded.pop("x-amz-content-sha256", None)
        if route.copy_source:
            forwarded["x-amz-copy-source"] = route.copy_source
        if body.size:
            forwarded["content-length"] = str(body.size)
        unsigned = AWSRequest(method=request.method, url=url, headers=forwarded)
        identity = self.cloud.objects.identity
        _ForwardSigner(Credentials(identity.access_key_id, identity.secret), "s3", "us-east-1").add_auth(
            unsigned
        )
        small = body.small_body()
        content = small if small is not None else body.chunks(self.executor)
        try:
            # encoded=True: the path and query go out byte for byte as signed (yarl would re-quote them).
            response = await self._http().request(
                request.method, yarl.URL(url, encoded=True), headers=list(unsigned.headers.items()),
                data=content, allow_redirects=False,
            )  # fmt: skip
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("S3 store unreachable for %s %s: %s", call.operation, path, exc)
            await _send_error(send, request.method, 503, "ServiceUnavailable",
                              f"Kennel's object store did not answer: {exc}", request.request_id)  # fmt: skip
            return
        loop = asyncio.get_running_loop()
        try:
            if call.operation == "DeleteBucket" and response.status == 204:  # its policy and rows go with it
                await loop.run_in_executor(self.executor, self._bucket_deleted, call.bucket or "")
            out_headers = [
                (name.lower(), value)
                for name, value in response.raw_headers
                if name.decode("latin-1").lower() not in _DROPPED_RESPONSE_HEADERS
                and not name.lower().startswith(b"seaweed-")  # the store's own, not S3's
            ]
            out_headers.append((b"x-amz-request-id", request.request_id.encode()))
            # An object's bytes stream through; an answer Kennel acts on or rewrites is read whole first.
            body_read = call.operation in ("GetObject", "HeadObject") and 200 <= response.status < 300
            if route.buffered and not body_read:
                payload = await loop.run_in_executor(
                    self.executor, self.side_keys.finish, call, route, response.status, await response.read()
                )
                if request.method == "HEAD":
                    payload = b""
                else:
                    out_headers = [(k, v) for k, v in out_headers if k != b"content-length"]
                    out_headers.append((b"content-length", str(len(payload)).encode()))
                await send({"type": "http.response.start", "status": response.status, "headers": out_headers})
                await send({"type": "http.response.body", "body": payload})
                return
            await send({"type": "http.response.start", "status": response.status, "headers": out_headers})
            if request.method != "HEAD":
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()

    def _bucket_deleted(self, bucket: str) -> None:
        self.local.bucket_deleted(bucket)
        self.side_keys.bucket_deleted(bucket)


@dataclass(frozen=True)
class _Incoming:
    method: str
    raw_path: str
    query_string: str
    pairs: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names, repeated headers joined with commas
    request_id: str
    source_ip: str


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


async def send_slow_down(send, method: str, request_id: str) -> None:
    """S3's answer when the gateway admits no more S3 requests for now (SDKs back off and retry)."""
    await _send_error(send, method, 503, "SlowDown", "Please reduce your request rate.", request_id)


async def _send_answer(send, method: str, answer: local.Answer, request_id: str) -> None:
    body = b"" if method == "HEAD" or answer.status == 204 else answer.body
    headers = [(b"x-amz-request-id", request_id.encode())]
    if answer.status != 204:
        headers += [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(
    send,
    method: str,
    status: int,
    code: str,
    message: str,
    request_id: str,
    *,
    close: bool = False,
    extra: dict[str, str] | None = None,
) -> None:
    body = b"" if method == "HEAD" else error_body(code, message, request_id, extra=extra)
    headers = [
        (b"content-type", b"application/xml"),
        (b"content-length", str(len(body)).encode()),
        (b"x-amz-request-id", request_id.encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
