"""botocore's service models, compiled once into small shape trees that the codecs walk quickly.

botocore's own ``Shape`` objects resolve references and merge member traits on every access; the
gateway touches the same few shapes on every request, so they are compiled here into plain slotted
objects (member traits merged, wire names resolved, members grouped by HTTP location) and cached.
Shapes are compiled lazily, per operation, because SageMaker alone has over 3000 of them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from botocore.loaders import Loader
from botocore.model import ServiceModel

from kennel.cloud.errors import (
    AwsError,
    InvalidAction,
    UnknownOperationException,
    ValidationError,
    ValidationException,
    error_class,
)

SERVICES = (
    "sts", "iam", "sagemaker", "sagemaker-runtime", "lambda", "logs", "cloudwatch", "application-autoscaling",
)  # fmt: skip
SUPPORTED_PROTOCOLS = ("json", "rest-json", "query")
UNSUPPORTED_SERVICE = error_class("UnrecognizedServiceException", 400)

_LOADER = Loader()
_SCALARS = frozenset({"string", "integer", "long", "float", "double", "boolean", "timestamp", "blob"})


@dataclass(slots=True, eq=False)
class Member:
    """A reference to a shape from a structure, list or map, with the reference's own traits merged in."""

    name: str
    shape: Shape
    location: str | None = None  # uri | querystring | header | headers | statusCode | None (body)
    location_name: str | None = None
    jsonvalue: bool = False
    timestamp_format: str | None = None
    flattened: bool = False
    wire: str = ""  # the name on the wire: locationName, else the member name
    label: str = ""  # the name in validation messages

    def __post_init__(self) -> None:
        self.wire = self.location_name or self.name
        # AWS names members in validation messages the way its Java models do: lower camel case.
        self.label = self.name[:1].lower() + self.name[1:]


@dataclass(slots=True, eq=False)
class Shape:
    name: str
    type: str
    members: dict[str, Member] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    member: Member | None = None  # list element
    key: Member | None = None  # map
    value: Member | None = None
    min: int | float | None = None
    max: int | float | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    sensitive: bool = False
    flattened: bool = False
    document: bool = False
    union: bool = False
    streaming: bool = False
    eventstream: bool = False
    payload: str | None = None
    timestamp_format: str | None = None
    url_encoded: bool = False  # IAM sends policy documents URL-encoded (RFC 3986) inside its XML
    error_code: str | None = None  # exception shapes only
    error_status: int | None = None
    sender_fault: bool | None = None
    # Derived groupings, filled once the members are known.
    body_index: dict[str, Member] = field(default_factory=dict)  # wire name → body member
    body_members: tuple[Member, ...] = ()
    located: tuple[Member, ...] = ()
    checks: bool | None = None  # whether validation has anything to look at below this shape (lazy)
    regex: Any = None  # compiled pattern, set on first use by the validator

    @property
    def is_scalar(self) -> bool:
        return self.type in _SCALARS


@dataclass(slots=True, eq=False)
class Operation:
    name: str
    method: str
    request_uri: str
    response_code: int
    input: Shape | None
    output: Shape | None
    result_wrapper: str | None


@dataclass(eq=False)
class ServiceSpec:
    """One service: its wire metadata plus lazily compiled operations and error shapes."""

    name: str
    raw: dict[str, Any] = field(repr=False)
    protocol: str = "json"
    protocols: tuple[str, ...] = ()
    json_version: str = "1.1"
    target_prefix: str | None = None
    api_version: str = ""
    xml_namespace: str = ""
    signing_name: str = ""
    endpoint_prefix: str = ""
    query_compatible: bool = False
    _shapes: dict[str, Shape] = field(default_factory=dict, repr=False)
    _operations: dict[str, Operation] = field(default_factory=dict, repr=False)
    _error_names: dict[str, str] = field(default_factory=dict, repr=False)
    _errors: dict[str, Shape] = field(default_factory=dict, repr=False)  # fully compiled only
    # Compiling registers a shape before its members exist (for recursion); the lock keeps other
    # threads from seeing one half-built. Only misses take it.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def operation_names(self) -> list[str]:
        return list(self.raw["operations"])

    def has_operation(self, name: str) -> bool:
        return name in self.raw["operations"]

    def operation(self, name: str) -> Operation:
        op = self._operations.get(name)
        if op is None:
            with self._lock:
                op = self._compile_operation(name)
        return op

    def _compile_operation(self, name: str) -> Operation:
        op = self._operations.get(name)
        if op is None:
            raw = self.raw["operations"].get(name)
            if raw is None:
                cls = InvalidAction if self.protocol == "query" else UnknownOperationException
                raise cls(f"Operation {name} is not supported by service {self.name}.")
            http = raw.get("http", {})
            output = raw.get("output")
            op = Operation(
                name=name,
                method=http.get("method", "POST"),
                request_uri=http.get("requestUri", "/"),
                response_code=int(http.get("responseCode", 200)),
                input=self.shape(raw["input"]["shape"]) if "input" in raw else None,
                output=self.shape(output["shape"]) if output else None,
                result_wrapper=output.get("resultWrapper") if output else None,
            )
            self._operations[name] = op
        return op

    def error_shape(self, code: str) -> Shape | None:
        shape = self._errors.get(code)
        if shape is None:
            name = self._error_names.get(code)
            if name is None:
                return None
            with self._lock:
                shape = self._errors[code] = self.shape(name)
        return shape

    def validation_error(self, protocol: str | None = None) -> type[AwsError]:
        """The class AWS uses for constraint failures here: query services and SageMaker Runtime say
        ``ValidationError`` (the runtime models it), the JSON services ``ValidationException``."""
        if (protocol or self.protocol) == "query" or (
            "ValidationError" in self._error_names and "ValidationException" not in self._error_names
        ):
            return ValidationError
        return ValidationException

    def shape(self, name: str) -> Shape:
        """The compiled shape ``name`` (elsewhere, use ``operation`` or ``error_shape``)."""
        shape = self._shapes.get(name)
        if shape is None:
            with self._lock:
                shape = self._shapes.get(name) or _compile(self, name)
        return shape


def _merge_ref(spec: ServiceSpec, name: str, ref: dict[str, Any]) -> Member:
    shape = spec.shape(ref["shape"])
    raw_shape = spec.raw["shapes"][ref["shape"]]
    return Member(
        name=name,
        shape=shape,
        location=ref.get("location"),
        location_name=ref.get("locationName") or raw_shape.get("locationName"),
        jsonvalue=bool(ref.get("jsonvalue")),
        timestamp_format=ref.get("timestampFormat") or shape.timestamp_format,
        flattened=bool(ref.get("flattened") or shape.flattened),
    )


def _compile(spec: ServiceSpec, name: str) -> Shape:
    raw = spec.raw["shapes"][name]
    error = raw.get("error") or {}
    shape = Shape(
        name=name,
        type=raw["type"],
        required=tuple(raw.get("required", ())),
        min=raw.get("min"),
        max=raw.get("max"),
        pattern=raw.get("pattern"),
        enum=tuple(raw.get("enum", ())),
        sensitive=bool(raw.get("sensitive")),
        flattened=bool(raw.get("flattened")),
        document=bool(raw.get("document")),
        union=bool(raw.get("union")),
        streaming=bool(raw.get("streaming")),
        eventstream=bool(raw.get("eventstream")),
        payload=raw.get("payload"),
        timestamp_format=raw.get("timestampFormat"),
        url_encoded=spec.name == "iam" and name == "policyDocumentType",
        error_code=(error.get("code") or name) if raw.get("exception") else None,
        error_status=error.get("httpStatusCode"),
        sender_fault=error.get("senderFault") if error else None,
    )
    # Registered before the members are compiled, so recursive shapes terminate.
    spec._shapes[name] = shape
    if shape.type == "structure":
        shape.members = {m: _merge_ref(spec, m, ref) for m, ref in raw.get("members", {}).items()}
        body = [m for m in shape.members.values() if m.location is None]
        shape.body_members = tuple(body)
        shape.body_index = {m.wire: m for m in body}
        shape.located = tuple(m for m in shape.members.values() if m.location is not None)
    elif shape.type == "list":
        shape.member = _merge_ref(spec, "member", raw["member"])
    elif shape.type == "map":
        shape.key = _merge_ref(spec, "key", raw["key"])
        shape.value = _merge_ref(spec, "value", raw["value"])
    return shape


@cache
def load_service(name: str) -> ServiceModel:
    """botocore's own model of ``name`` (for callers that want its richer API; the codecs use specs)."""
    return ServiceModel(_raw(name), service_name=name)


_EXTRA_MODELS: dict[str, dict[str, Any]] = {}


def register_model(name: str, raw: dict[str, Any]) -> None:
    """Serve ``name`` from a botocore-format model botocore does not ship (tests, private APIs).

    Register before the first request for ``name``: specs and routing tables are cached by name."""
    _EXTRA_MODELS[name] = raw


def known_services() -> tuple[str, ...]:
    return SERVICES + tuple(_EXTRA_MODELS)


@cache
def _raw(name: str) -> dict[str, Any]:
    if name in _EXTRA_MODELS:
        return _EXTRA_MODELS[name]
    if name not in SERVICES:
        raise UNSUPPORTED_SERVICE(
            f"Kennel does not serve the AWS service '{name}' (it serves {', '.join(SERVICES)})."
        )
    return _LOADER.load_service_model(name, "service-2")


@cache
def service_spec(name: str) -> ServiceSpec:
    raw = _raw(name)
    meta = raw["metadata"]
    protocols = tuple(meta.get("protocols") or (meta["protocol"],))
    chosen = next((p for p in protocols if p in SUPPORTED_PROTOCOLS), meta["protocol"])
    spec = ServiceSpec(
        name=name,
        raw=raw,
        protocol=chosen,
        protocols=protocols,
        json_version=meta.get("jsonVersion", "1.0" if chosen == "json" else "1.1"),
        target_prefix=meta.get("targetPrefix"),
        api_version=meta.get("apiVersion", ""),
        xml_namespace=meta.get("xmlNamespace")
        or f"https://{meta.get('endpointPrefix', name)}.amazonaws.com/doc/{meta.get('apiVersion', '')}/",
        signing_name=meta.get("signingName") or meta.get("endpointPrefix") or name,
        endpoint_prefix=meta.get("endpointPrefix", name),
        query_compatible="awsQueryCompatible" in meta,
    )
    for shape_name, shape in raw["shapes"].items():
        if shape.get("exception"):
            code = (shape.get("error") or {}).get("code") or shape_name
            spec._error_names[code] = shape_name
    return spec


_IAM_PREFIX_OVERRIDES = {"cloudwatch": "cloudwatch", "sagemaker-runtime": "sagemaker"}


def iam_action_prefix(service: str) -> str:
    """The service prefix of IAM actions (``prefix:Operation``); not always the signing name."""
    override = _IAM_PREFIX_OVERRIDES.get(service)
    return override if override else service_spec(service).signing_name
