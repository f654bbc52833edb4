"""AWS errors as exceptions: one class per error code, raised anywhere, rendered once by the gateway.

Each carries the code, the HTTP status and whether the caller (sender) or Kennel (receiver) is at
fault, the way the AWS protocols report them. Extra fields (``ModelError``'s OriginalStatusCode,
``TooManyRequestsException``'s Reason, …) ride in ``fields`` and are serialized from the error shape
when the service model defines one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AwsError(Exception):
    code: ClassVar[str] = "InternalFailure"
    status: ClassVar[int] = 500
    sender_fault: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:  # the same code can carry a different status per protocol (auth errors)
            self.status = status
        self.fields = fields
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


def _error(code: str, status: int, sender_fault: bool = True) -> type[AwsError]:
    return type(code, (AwsError,), {"code": code, "status": status, "sender_fault": sender_fault})


def error_class(code: str, status: int = 400, sender_fault: bool = True) -> type[AwsError]:
    """The class for ``code`` with ``status``, created on first use so providers can name any
    modelled error. Keyed by both: services disagree (Lambda's ResourceNotFoundException is a 404,
    CloudWatch Logs' a 400), and one service's choice must not leak into another's answers."""
    builtin = _REGISTRY.get(code)
    if builtin is not None and builtin.status == status:
        return builtin
    known = _DYNAMIC.get((code, status))
    if known is None:
        known = _DYNAMIC[(code, status)] = _error(code, status, sender_fault)
    return known


class InternalFailure(AwsError):
    pass


class ServiceUnavailable(AwsError):
    code, status = "ServiceUnavailable", 503


class ValidationException(AwsError):
    code, status, sender_fault = "ValidationException", 400, True


class ValidationError(AwsError):
    """The query-protocol spelling (IAM, STS) of a validation failure."""

    code, status, sender_fault = "ValidationError", 400, True


class InvalidAction(AwsError):
    code, status, sender_fault = "InvalidAction", 400, True


class UnknownOperationException(AwsError):
    code, status, sender_fault = "UnknownOperationException", 400, True


class SerializationException(AwsError):
    code, status, sender_fault = "SerializationException", 400, True


class MalformedQueryString(AwsError):
    code, status, sender_fault = "MalformedQueryString", 400, True


class RequestEntityTooLarge(AwsError):
    code, status, sender_fault = "RequestEntityTooLarge", 413, True


class AccessDenied(AwsError):
    """Query services (IAM, STS) say ``AccessDenied``."""

    code, status, sender_fault = "AccessDenied", 403, True


class AccessDeniedException(AwsError):
    """JSON and REST-JSON services say ``AccessDeniedException``."""

    code, status, sender_fault = "AccessDeniedException", 400, True


class NotImplementedOperation(AwsError):
    """An operation the service model defines but Kennel does not implement (yet).

    A 4xx on purpose: SDKs retry 5xx answers, and retrying cannot make the operation exist.
    """

    code, status, sender_fault = "UnsupportedOperation", 400, True


_DYNAMIC: dict[tuple[str, int], type[AwsError]] = {}
_REGISTRY: dict[str, type[AwsError]] = {
    cls.code: cls
    for cls in (
        InternalFailure,
        ServiceUnavailable,
        ValidationException,
        ValidationError,
        InvalidAction,
        UnknownOperationException,
        SerializationException,
        MalformedQueryString,
        RequestEntityTooLarge,
        AccessDenied,
        AccessDeniedException,
        NotImplementedOperation,
    )
}
