"""Which (service, operation) an HTTP request is, the way AWS's front ends tell.

json services name the operation in ``X-Amz-Target``; query services in the ``Action`` form field;
rest-json services by method and URI template (matched here with one compiled regex per template,
most specific first, bucketed by method and first path segment). The SigV4 credential scope names
the service, except that SageMaker Runtime signs as ``sagemaker``: it is the one without a target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl

from kennel.cloud.errors import (
    AwsError,
    InvalidAction,
    MalformedQueryString,
    NotImplementedOperation,
    UnknownOperationException,
)
from kennel.cloud.protocol.messages import HttpRequest
from kennel.cloud.protocol.models import (
    SERVICES,
    UNSUPPORTED_SERVICE,
    ServiceSpec,
    known_services,
    service_spec,
)

_SIGNING_NAMES = {
    "sts": "sts", "iam": "iam", "lambda": "lambda", "logs": "logs", "monitoring": "cloudwatch",
    "cloudwatch": "cloudwatch", "application-autoscaling": "application-autoscaling",
    "sagemaker-runtime": "sagemaker-runtime", "runtime.sagemaker": "sagemaker-runtime",
}  # fmt: skip
_REST_SERVICES = ("lambda", "sagemaker-runtime")
_MAX_FORM_FIELDS = 10_000
_CACHED_FORM_CHARS = 16_384
_CBOR_PATH = re.compile(r"/service/([^/]+)/operation/([^/]+)")


@dataclass(frozen=True, slots=True)
class UriTemplate:
    operation: str
    method: str
    regex: re.Pattern[str]
    labels: tuple[str, ...]  # group i+1 of ``regex`` is labels[i]
    query: tuple[tuple[str, str | None], ...]  # literal query parts the request must carry

    def match(self, path: str, query: dict[str, str]) -> dict[str, str] | None:
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        for key, value in self.query:
            if key not in query or (value is not None and query[key] != value):
                return None
        return dict(zip(self.labels, found.groups(), strict=True))


def compile_template(operation: str, method: str, request_uri: str) -> tuple[UriTemplate, tuple[int, ...]]:
    """A matcher for ``request_uri`` and its rank (smaller sorts first: the more specific template)."""
    path, _, literal_query = request_uri.partition("?")
    labels: list[str] = []
    parts: list[str] = []
    literal = 0
    for index, piece in enumerate(re.split(r"\{([^}]+)\}", path.rstrip("/") or "/")):
        if index % 2 == 0:
            parts.append(re.escape(piece))
            literal += len(piece)
        else:
            greedy = piece.endswith("+")
            labels.append(piece.rstrip("+"))
            parts.append("(.+)" if greedy else "([^/]+)")
    # botocore keeps a template's trailing slash; other clients drop it: accept both.
    regex = re.compile("".join(parts) + ("/?" if path != "/" else ""))
    query = tuple(
        (key, value if sep else None)
        for key, sep, value in (p.partition("=") for p in literal_query.split("&") if p)
    )
    greedy_count = sum(1 for piece in re.findall(r"\{([^}]+)\}", path) if piece.endswith("+"))
    rank = (-len(query), greedy_count, -literal, len(labels))
    return UriTemplate(operation, method.upper(), regex, tuple(labels), query), rank


@cache
def rest_templates(service: str) -> dict[tuple[str, str | None], tuple[UriTemplate, ...]]:
    """Templates of a rest service, keyed by (method, first path segment or None for a leading label)."""
    spec = service_spec(service)
    ranked: dict[tuple[str, str | None], list[tuple[tuple[int, ...], UriTemplate]]] = {}
    for name, raw in spec.raw["operations"].items():
        http = raw.get("http", {})
        template, rank = compile_template(name, http.get("method", "POST"), http.get("requestUri", "/"))
        first = http.get("requestUri", "/").split("?")[0].split("/")[1:2]
        segment = first[0] if first and "{" not in first[0] else None
        ranked.setdefault((template.method, segment), []).append((rank, template))
    return {key: tuple(t for _, t in sorted(items, key=lambda x: x[0])) for key, items in ranked.items()}


def match_rest(service: str, request: HttpRequest) -> tuple[UriTemplate, dict[str, str]] | None:
    table = rest_templates(service)
    method = request.method.upper()
    segment = request.path.split("/", 2)[1] if request.path.startswith("/") else ""
    query = query_fields(request.query_string) if request.query_string else {}
    for key in ((method, segment), (method, None)):
        for template in table.get(key, ()):
            labels = template.match(request.path, query)
            if labels is not None:
                return template, labels
    return None


@lru_cache(maxsize=256)
def _parse_pairs(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(
            parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_FORM_FIELDS)
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedQueryString(f"The query string or form body is malformed: {exc}") from None


def query_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``a=1&b=2`` decoded (cached: routing and parsing both read the same fields)."""
    if not text:
        return ()
    # Large forms (policy documents) are parsed twice rather than held in the cache.
    return _parse_pairs(text) if len(text) <= _CACHED_FORM_CHARS else _parse_pairs.__wrapped__(text)


def query_fields(text: str) -> dict[str, str]:
    return dict(query_pairs(text))


def form_pairs(request: HttpRequest) -> tuple[tuple[str, str], ...]:
    """Query-protocol fields: the query string's, then the form body's (which wins on repeats)."""
    body = ""
    if request.body:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedQueryString("The form body is not valid UTF-8.") from None
    return query_pairs(request.query_string) + query_pairs(body)


def wire_protocol(service: str, request: HttpRequest) -> str:
    """The protocol this request speaks; only services that accept several (CloudWatch) need to look."""
    spec = service_spec(service)
    if len(spec.protocols) == 1:
        return spec.protocol
    headers = request.headers
    if "x-amz-target" in headers and "json" in spec.protocols:
        return "json"
    if headers.get("smithy-protocol") == "rpc-v2-cbor" or _CBOR_PATH.fullmatch(request.path):
        return "smithy-rpc-v2-cbor"
    if "query" in spec.protocols:
        return "query"
    return spec.protocol


class Route(NamedTuple):
    """Where a request goes, found once and handed on: parsing and serializing reuse it instead of
    asking for the protocol again or re-matching the URI template."""

    service: str  # botocore service name
    operation: str
    protocol: str  # the wire protocol this request speaks (CloudWatch accepts three)
    labels: dict[str, str] | None = None  # rest-json URI labels as matched, still percent-encoded


def route(request: HttpRequest, signing_service: str | None) -> Route:
    """The :class:`Route` of ``request``; AWS-style errors when there is none."""
    target = request.headers.get("x-amz-target")
    if signing_service is None:
        service = _infer_service(request, target)
    elif signing_service == "sagemaker":
        service = "sagemaker" if target else "sagemaker-runtime"
    else:
        known = signing_service in known_services()
        service = _SIGNING_NAMES.get(signing_service) or (signing_service if known else "")
        if not service:
            raise UNSUPPORTED_SERVICE(
                f"Kennel does not serve the AWS service signed as '{signing_service}' "
                f"(it serves {', '.join(SERVICES)})."
            )
    spec = service_spec(service)
    protocol = wire_protocol(service, request)
    if protocol == "json":
        return Route(service, _json_operation(spec, target), protocol)
    if protocol == "query":
        return Route(service, _query_operation(spec, request), protocol)
    if protocol == "rest-json":
        found = match_rest(service, request)
        if found is None:
            raise UnknownOperationException(
                f"No operation of service {service} matches {request.method.upper()} {request.path}."
            )
        template, labels = found
        return Route(service, template.operation, protocol, labels)
    cbor = _CBOR_PATH.fullmatch(request.path)
    if cbor and spec.has_operation(cbor.group(2)):
        return Route(service, cbor.group(2), protocol)
    raise NotImplementedOperation(f"The {protocol} protocol of service {service} is not supported by Kennel.")


def _json_operation(spec: ServiceSpec, target: str | None) -> str:
    if not target:
        raise UnknownOperationException(f"Missing X-Amz-Target header for service {spec.name}.")
    prefix, _, operation = target.rpartition(".")
    if prefix != spec.target_prefix:
        raise UnknownOperationException(
            f"X-Amz-Target '{target}' does not belong to service {spec.name} "
            f"(expected the prefix '{spec.target_prefix}')."
        )
    if not spec.has_operation(operation):
        raise UnknownOperationException(
            f"Operation {operation} (X-Amz-Target '{target}') is not part of service {spec.name}."
        )
    return operation


def _query_operation(spec: ServiceSpec, request: HttpRequest) -> str:
    fields = dict(form_pairs(request))
    action = fields.get("Action")
    if not action:
        raise InvalidAction(f"The request to service {spec.name} has no Action parameter.")
    if not spec.has_operation(action):
        version = fields.get("Version", spec.api_version)
        raise InvalidAction(f"Could not find operation {action} for version {version} (service {spec.name}).")
    return action


@cache
def _wire_names() -> tuple[dict[str, str], dict[str, str]]:
    """Target prefix → service and query API version → service, over the served models (loaded once)."""
    prefixes: dict[str, str] = {}
    versions: dict[str, str] = {}
    for name in SERVICES:
        spec = service_spec(name)
        if spec.target_prefix:
            prefixes[spec.target_prefix] = name
        if "query" in spec.protocols:
            versions[spec.api_version] = name
    return prefixes, versions


def _infer_service(request: HttpRequest, target: str | None) -> str:
    """The service of an unsigned request, from what its protocol puts on the wire."""
    prefixes, versions = _wire_names()
    if target:
        service = prefixes.get(target.rpartition(".")[0])
        if service is None:
            raise UnknownOperationException(f"X-Amz-Target '{target}' names no service that Kennel serves.")
        return service
    cbor = _CBOR_PATH.fullmatch(request.path)
    if cbor and cbor.group(1) in prefixes:
        return prefixes[cbor.group(1)]
    content_type = (request.headers.get("content-type") or "").lower()
    if "action=" in request.query_string.lower() or content_type.startswith(
        "application/x-www-form-urlencoded"
    ):
        fields = dict(form_pairs(request))
        if "Action" in fields:
            version = fields.get("Version") or ""
            if version not in versions:
                raise InvalidAction(f"Could not find operation {fields['Action']} for version {version}.")
            return versions[version]
    for name in _REST_SERVICES:
        if match_rest(name, request) is not None:
            return name
    raise _unknown_request(request)


def _unknown_request(request: HttpRequest) -> AwsError:
    return UnknownOperationException(
        f"Kennel could not tell which AWS service and operation {request.method.upper()} {request.path} is."
    )


def preload(services: tuple[str, ...] = SERVICES, *, operations: bool = False) -> None:
    """Load models and routing tables now (start-up) rather than on each service's first request;
    ``operations`` also compiles every operation's shapes (SageMaker alone takes a moment)."""
    _wire_names()
    for name in services:
        spec = service_spec(name)
        if spec.protocol == "rest-json":
            rest_templates(name)
        if operations:
            for operation in spec.operation_names:
                spec.operation(operation)
