"""What every service provider shares: the request context and operation dispatch."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from kennel.cloud.errors import NotImplementedOperation
from kennel.cloud.protocol.models import service_spec

if TYPE_CHECKING:
    from kennel.cloud.auth.identity import Principal
    from kennel.cloud.services.ports import ProviderDeps


@dataclass
class Context:
    """One request as a provider sees it: who, where, when."""

    request_id: str
    service: str
    operation: str
    principal: Principal
    region: str
    account: str
    now: datetime
    source_ip: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


class Provider:
    """Subclasses implement operations as ``def create_user(self, params, ctx) -> dict``.

    ``resource_arn`` names the resource an operation acts on, for IAM authorisation; ``*`` where
    AWS has no resource-level permissions for it.
    """

    service: ClassVar[str]
    unauthenticated_ok: ClassVar[frozenset[str]] = frozenset()
    # Operations AWS never authorises with IAM (e.g. sts:GetCallerIdentity works even under a Deny).
    skip_authorization: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cloud: ProviderDeps) -> None:
        self.cloud = cloud
        self._handlers: dict[str, Callable[[dict, Context], dict]] = {}

    def operations(self) -> dict[str, Callable[[dict, Context], dict]]:
        """The operation table, built once: every operation of the service's botocore model that this
        provider implements (a method named after it). Only these are ever dispatched, so a helper
        method can never be reached as an AWS operation, and the table lists what is implemented."""
        if not self._handlers:
            table = {}
            for operation in service_spec(self.service).operation_names:
                method = getattr(self, snake(operation), None)
                if callable(method):
                    table[operation] = method
            self._handlers = table
        return self._handlers

    def handler(self, operation: str) -> Callable[[dict, Context], dict]:
        found = self.operations().get(operation)
        if found is None:
            raise NotImplementedOperation(
                f"Kennel does not implement {self.service} {operation} yet; it is a valid AWS operation."
            )
        return found

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        return "*"

    def iam_action(self, operation: str) -> str | None:
        """The IAM action to authorise when AWS's differs from ``prefix:Operation`` (e.g. Lambda's
        Invoke is ``lambda:InvokeFunction``); None means the default."""
        return None

    def start(self) -> None:
        """Called once the cloud is assembled (after every provider exists)."""

    def close(self) -> None:
        """Stop background work and child processes this provider started."""

    def resource_policies(self, operation: str, params: dict) -> list:
        """Resource-based policies that also decide (a role's trust policy, a function's policy)."""
        return []
