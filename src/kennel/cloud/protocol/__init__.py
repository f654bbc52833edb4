"""AWS wire protocols (json 1.0/1.1, rest-json, query), driven by botocore's service models.

The gateway calls, per request::

    routed = route(request, signing_service)   # Route(service, operation, protocol, labels), found once
    params = parse_request(service, operation, request, protocol=..., labels=...)  # typed + validated, or 4xx
    response = serialize_response(service, operation, result, request_id, protocol=...)
    # on any AwsError: serialize_error(service, operation, error, request_id, protocol=...)

Providers see typed dicts shaped like the operation's input and return dicts shaped like its output;
nothing outside this package builds JSON or XML for an AWS API.
"""

from kennel.cloud.protocol.messages import Headers, HttpRequest, HttpResponse
from kennel.cloud.protocol.models import SERVICES, iam_action_prefix, load_service, service_spec
from kennel.cloud.protocol.parse import parse_request
from kennel.cloud.protocol.router import Route, preload, route, wire_protocol
from kennel.cloud.protocol.serialize import serialize_error, serialize_response

__all__ = [
    "SERVICES",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "Route",
    "iam_action_prefix",
    "load_service",
    "parse_request",
    "preload",
    "route",
    "serialize_error",
    "serialize_response",
    "service_spec",
    "wire_protocol",
]
