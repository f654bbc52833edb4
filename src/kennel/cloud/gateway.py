"""The gateway: one ASGI app on one loopback port for every service.

Per request: read the body (size-limited) → route to (service, operation) → verify SigV4 → parse and
validate the parameters from botocore's model → authorise ``prefix:Operation`` on the resource with
IAM → run the provider → serialize. Every AWS API error of the JSON, rest-json and query services
becomes an HTTP response here (S3's proxy, ``objectstore/proxy.py``, renders S3's XML errors itself),
and nothing a client sends can make it answer anything but a well-formed AWS error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import zlib
from datetime import UTC, datetime, timedelta

from kennel.cloud import ids
from kennel.cloud.auth.sigv2 import is_sigv2
from kennel.cloud.auth.sigv4 import AuthError, RawRequest, verify
from kennel.cloud.cloudstate import Cloud
from kennel.cloud.errors import (
    AccessDenied,
    AccessDeniedException,
    AwsError,
    InternalFailure,
    NotImplementedOperation,
    RequestEntityTooLarge,
    SerializationException,
    ServiceUnavailable,
    error_class,
)
from kennel.cloud.objectstore.proxy import REQUEST_TIMEOUT_MESSAGE, S3Proxy, send_slow_down
from kennel.cloud.planes import ENDPOINTS, FUNCTIONS, OBJECTS, Planes, plane_for
from kennel.cloud.protocol import (
    HttpRequest,
    HttpResponse,
    iam_action_prefix,
    parse_request,
    preload,
    route,
    serialize_error,
    serialize_response,
)
from kennel.cloud.services.base import Context

log = logging.getLogger("kennel.gateway")

HEALTH_PATH = "/_kennel/health"
_SCOPE_SERVICE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
_BUCKET_SEGMENT = re.compile(r"(?!\d{4}-\d{2}-\d{2}$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_OTHER_REST_ROOTS = frozenset({"endpoints", "service", "_kennel"})  # sagemaker-runtime, CBOR, health
# S3's error for a connection that went quiet; it answers a stalled body for every service.
RequestTimeout = error_class("RequestTimeout", 400)
_QUERY_SCOPE_SERVICE = re.compile(r"X-Amz-Credential=[^&]*?%2F\d{8}%2F[^&%]+%2F([^&%]+)%2Faws4_request", re.I)


def signing_service(request: HttpRequest) -> str | None:
    """The credential-scope service, read cheaply before verification (routing needs it first)."""
    return _scope_service(request.headers.get("authorization") or "", request.query_string)


def _scope_service(authorization: str, query_string: str) -> str | None:
    match = _SCOPE_SERVICE.search(authorization)
    if match is None:
        match = _QUERY_SCOPE_SERVICE.search(query_string)
    return match.group(1) if match else None


def _is_s3(scope) -> bool:
    """S3 is told by its credential scope before the body is read: it streams, everything else buffers.
    An unsigned request for a bucket path is S3's too (anonymous access, which S3 refuses)."""
    headers = dict(scope["headers"])
    text = headers.get(b"authorization", b"").decode("latin-1")
    query_string = scope.get("query_string", b"").decode("latin-1")
    if text or "X-Amz-Credential=" in query_string or b"x-amz-target" in headers:
        return _scope_service(text, query_string) == "s3" or is_sigv2(text, query_string)
    if is_sigv2(text, query_string):
        return True
    first = scope["path"].lstrip("/").split("/", 1)[0]
    return bool(_BUCKET_SEGMENT.fullmatch(first)) and first not in _OTHER_REST_ROOTS


class Gateway:
    def __init__(self, cloud: Cloud, *, clock=time.time) -> None:
        self.cloud = cloud
        self.clock = clock
        self.max_skew = timedelta(seconds=cloud.settings.max_clock_skew_s)
        preload(list(cloud.providers))  # models and routing tables now, not on the first request
        self.s3 = S3Proxy(cloud, clock=clock)
        # Data-plane work gets its own threads and a bounded queue each (see planes.py).
        self.planes = Planes(cloud.settings)
        self.s3.executor = self.planes[OBJECTS].executor
        self.body_timeout_s = cloud.settings.body_timeout_s

    # ----- ASGI -------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == HEALTH_PATH:
            await _send(send, HttpResponse(200, {"content-type": "application/json"}, self._health()))
            return
        request_id = ids.request_id()
        if _is_s3(scope):
            objects = self.planes[OBJECTS]
            if not objects.try_enter():  # refused before the body is read: shedding load costs little
                await send_slow_down(send, scope["method"], request_id)
                return
            try:
                await self.s3.handle(scope, receive, send, request_id)
            finally:
                objects.leave()
            return
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0] or "/"
        plane = self.planes[plane_for(scope["method"], path)]
        if not plane.try_enter():
            await _send(send, self._throttled(plane.name, request_id))
            return
        try:
            try:
                body = await self._read_body(scope, receive)
            except _ClientGone:
                return  # nobody to answer; a truncated body must not run as if it were whole
            except AwsError as err:
                response = self._error_response(None, None, err, request_id)
                if isinstance(err, RequestTimeout):
                    response.headers["connection"] = "close"
                await _send(send, response)
                return
            request = HttpRequest(
                method=scope["method"],
                path=path,
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
                body=body,
            )
            source_ip = (scope.get("client") or ("127.0.0.1", 0))[0]
            response = await plane.call(self.handle, request, request_id, source_ip)
        finally:
            plane.leave()
        await _send(send, response)

    def _throttled(self, plane: str, request_id: str) -> HttpResponse:
        """The service's own answer for "too busy", when a data-plane kind has no room left."""
        limit = self.planes[plane].limit
        if plane == ENDPOINTS:
            # InvokeEndpoint's model lists ServiceUnavailable (503, "try your call again"); SDKs retry it.
            err: AwsError = ServiceUnavailable(
                f"Kennel is already serving {limit} InvokeEndpoint requests; retry with backoff."
            )
            return self._error_response("sagemaker-runtime", "InvokeEndpoint", err, request_id, "rest-json")
        if plane == FUNCTIONS:
            err = error_class("TooManyRequestsException", 429)(
                f"Rate exceeded: Kennel is already running {limit} synchronous invocations.",
                Reason="ConcurrentInvocationLimitExceeded",
                Type="User",
            )
            return self._error_response("lambda", "Invoke", err, request_id, "rest-json")
        raise AssertionError(f"the {plane} plane has no limit")

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Control-plane calls run on the default executor; models and functions wait on their own
                # planes' threads, so a function calling back (Lambda → InvokeEndpoint) cannot deadlock it.
                asyncio.get_running_loop().set_default_executor(self.planes.control.executor)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.s3.aclose()
                self.planes.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, scope, receive) -> bytes:
        limit = self.cloud.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise RequestEntityTooLarge(
                    f"Request body of {int(value)} bytes exceeds the limit of {limit} bytes."
                )
        chunks, size = [], 0
        idle_s = self.body_timeout_s
        loop = asyncio.get_running_loop()
        try:
            # One timer for the whole body, pushed back after every chunk: an idle timeout, not a total.
            async with asyncio.timeout(idle_s) as quiet:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise RequestEntityTooLarge(f"Request body exceeds the limit of {limit} bytes.")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                    quiet.reschedule(loop.time() + idle_s)
        except TimeoutError:
            raise RequestTimeout(REQUEST_TIMEOUT_MESSAGE) from None
        return b"".join(chunks)

    def _health(self) -> bytes:
        """Liveness plus saturation: per plane, its threads, the work on them, what waits, refusals."""
        saturated = self.planes.saturated()
        return json.dumps({
            "status": "saturated" if saturated else "ok", "region": self.cloud.settings.region,
            "services": sorted(self.cloud.providers), "saturated": saturated, "planes": self.planes.stats(),
        }).encode()  # fmt: skip

    # ----- the pipeline -----------------------------------------------------------------------------
    def handle(self, request: HttpRequest, request_id: str, source_ip: str = "127.0.0.1") -> HttpResponse:
        service = operation = protocol = None
        try:
            routed = route(request, signing_service(request))
            service, operation, protocol = routed.service, routed.operation, routed.protocol
            now = datetime.fromtimestamp(self.clock(), UTC)
            raw_path = request.path + (f"?{request.query_string}" if request.query_string else "")
            try:
                verified = verify(
                    RawRequest(request.method, raw_path, list(request.headers.items()), request.body),
                    self.cloud.identities.lookup,
                    now=now,
                    max_skew=self.max_skew,
                    protocol=_auth_protocol(protocol),
                    region=self.cloud.settings.region,
                )
            except AuthError as err:
                raise _auth_error(err) from None
            request = self._decoded(request)
            params = parse_request(service, operation, request, protocol=protocol, labels=routed.labels)
            provider = self.cloud.providers.get(service)
            if provider is None:
                raise NotImplementedOperation(
                    f"Kennel does not implement the {service} service yet (operation {operation})."
                )
            principal = verified.record.principal
            ctx = Context(
                request_id=request_id, service=service, operation=operation, principal=principal,
                region=verified.region, account=self.cloud.settings.account_id, now=now, source_ip=source_ip,
            )  # fmt: skip
            if operation not in provider.skip_authorization:
                self._authorize(provider, ctx, params, protocol, verified.access_key_id)
            result = provider.handler(operation)(params, ctx)
            return serialize_response(service, operation, result, request_id, protocol=protocol)
        except AwsError as err:
            return self._error_response(service, operation, err, request_id, protocol)
        except Exception as exc:  # last resort: one request gets an AWS-shaped error, never the gateway
            failure = input_fault(exc)
            if failure is None:  # a genuine server fault: a 500, logged with its traceback
                log.exception("unhandled error in %s %s (request %s)", service, operation, request_id)
                failure = InternalFailure("We encountered an internal error. Please try again.")
            else:  # input no check caught yet: still the client's 400, logged so the check gets written
                log.warning("unchecked bad input in %s %s (request %s): %r", service, operation,
                            request_id, exc, exc_info=True)  # fmt: skip
            return self._error_response(service, operation, failure, request_id, protocol)

    def _decoded(self, request: HttpRequest) -> HttpRequest:
        """botocore gzips large bodies (PutMetricData > 10 KB); the signature covers the compressed
        bytes, so decompression happens after verification, with the same size limit."""
        encoding = (request.headers.get("content-encoding") or "").lower()
        if "gzip" not in encoding:
            return request
        limit = self.cloud.settings.max_body_bytes
        try:
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(request.body, limit + 1)
        except zlib.error as exc:
            raise SerializationException(f"Content-Encoding is gzip but the body is not: {exc}") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise RequestEntityTooLarge(f"Decompressed request body exceeds the limit of {limit} bytes.")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-encoding"]
        return HttpRequest(request.method, request.path, request.query_string, headers, body)

    def _authorize(self, provider, ctx: Context, params: dict, protocol: str, access_key_id: str) -> None:
        action = provider.iam_action(ctx.operation) or f"{iam_action_prefix(ctx.service)}:{ctx.operation}"
        resource = provider.resource_arn(ctx.operation, params, ctx)
        resource_policies = provider.resource_policies(ctx.operation, params)
        decision = self.cloud.authorizer.decide(
            ctx.principal, action, resource, now=ctx.now, source_ip=ctx.source_ip, region=ctx.region,
            request_id=ctx.request_id, access_key_id=access_key_id, resource_policies=resource_policies,
        )  # fmt: skip
        if not decision.allowed:
            message = decision.message(ctx.principal.arn, action, resource)
            raise AccessDenied(message) if protocol == "query" else AccessDeniedException(message)

    def _error_response(
        self, service, operation, err: AwsError, request_id: str, protocol: str | None = None
    ) -> HttpResponse:
        if service is None:
            body = json.dumps({"__type": err.code, "message": err.message}).encode("utf-8", "replace")
            headers = {"content-type": "application/json", "x-amzn-RequestId": request_id,
                       "x-amzn-ErrorType": err.code}  # fmt: skip
            return HttpResponse(err.status, headers, body)
        try:
            return serialize_error(service, operation, err, request_id, protocol=protocol)
        except Exception:
            log.exception("could not serialize %r for %s", err, service)
            return self._error_response(None, None, err, request_id)  # plain JSON never fails to encode


def input_fault(exc: BaseException) -> AwsError | None:
    """The 400 for an exception only bad input can cause (a structure nested too deep for a recursive
    walk, text that is not valid Unicode, a number too large to convert); None for anything else."""
    if isinstance(exc, RecursionError):
        return SerializationException("The request is nested too deeply.")
    if isinstance(exc, UnicodeError):
        return SerializationException("The request contains text that is not valid Unicode.")
    if isinstance(exc, OverflowError) or (isinstance(exc, ValueError) and "digits" in str(exc)):
        return SerializationException("The request contains a number too large to process.")
    return None


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def _auth_protocol(protocol: str) -> str:
    return (
        protocol if protocol in ("query", "json", "rest-json", "rest-xml", "smithy-rpc-v2-cbor") else "json"
    )


def _auth_error(err: AuthError) -> AwsError:
    return error_class(err.code, err.status)(err.message, status=err.status)


async def _send(send, response: HttpResponse) -> None:
    # "replace": a header value a provider built from client text must not turn the answer into a 500.
    headers = [(k.lower().encode("latin-1", "replace"), str(v).encode("latin-1", "replace"))
               for k, v in response.headers.items()]  # fmt: skip
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
