"""What a provider may use, named: the parts of the cloud a provider receives (``ProviderDeps``) and
the ports through which one service reaches another.

The assembly (``kennel.cloud.cloudstate.Cloud``) provides these. Nothing here imports a provider or
the assembly, so providers depend on this narrow surface and the import graph has no circle through
the assembly. A provider reaches another service only through a port here (service roles, credentials,
sinks, the alarm book, the endpoint directory) or ``internal_call`` (the real operation, as a service
principal); ``providers`` stays for the gateway's dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from kennel.cloud.audit import AuditLog
from kennel.cloud.auth.identity import IdentityDirectory
from kennel.cloud.authz import Authorizer
from kennel.cloud.objectstore.store import ObjectStore
from kennel.cloud.statestore import StateStore
from kennel.runtime.autoscaling.alarms import AlarmStatus
from kennel.runtime.sandbox import Sandbox
from kennel.settings import Settings


class ServiceRolePort(Protocol):
    def require_passable(
        self,
        ctx: Any,
        role_arn: str,
        service_principal: str,
        associated_resource_arn: str,
        *,
        errors: Any = None,
    ) -> str:
        """The role's name once the caller may pass it to the service and the role trusts the service."""
        ...

    def assumable(
        self, role_arn: str, service_principal: str, source_arn: str | None = None, *, errors: Any = None
    ) -> str:
        """The role's name if the service may assume it now (no PassRole: the service acting later)."""
        ...


class CredentialIssuer(Protocol):
    def issue(self, role: str, session: str, source_arn: str, duration_s: int) -> dict:
        """STS-shaped temporary credentials of a session of ``role``."""
        ...


class MetricSinkPort(Protocol):
    def put(self, namespace: str, name: str, dimensions: Mapping[str, str], value: float, *,
            unit: str = "None", timestamp: float | None = None) -> None: ...  # fmt: skip


class LogSinkPort(Protocol):
    def append(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None: ...


class AlarmBook(Protocol):
    """CloudWatch's metric alarms as Application Auto Scaling uses them."""

    def evaluate_alarms(self, now: float) -> list[str]:
        """Bring every metric alarm's state up to ``now`` (what drives scaling policies); returns the
        names of the alarms evaluated anew."""
        ...

    def put_managed_alarm(self, params: dict, managed_by: str, now: float) -> str:
        """Create or replace a target-tracking alarm owned by the scaling policy ``managed_by``; its ARN."""
        ...

    def delete_managed_alarms(self, names: list[str]) -> None:
        """Remove a scaling policy's alarms (those already gone are skipped)."""
        ...

    def alarm_status(self, name: str) -> AlarmStatus | None: ...

    def alarms_acting_on(self, arn: str) -> list[AlarmStatus]:
        """Alarms with actions enabled whose AlarmActions include ``arn`` (a step-scaling policy)."""
        ...


class EndpointDirectory(Protocol):
    def router_for(self, name: str, account: str) -> Any:
        """The running endpoint's router (InvokeEndpoint's data plane); AWS's error if there is none."""
        ...

    def keep_standby(self, endpoint: str, variant: str, wanted: bool) -> None:
        """Keep (or drop) a warm, unrouted instance for a variant autoscaling may grow."""
        ...


class ProviderDeps(Protocol):
    """The cloud as a provider sees it."""

    settings: Settings
    clock: Callable[[], float]  # wall time for work outside a request (a request has ctx.now)
    store: StateStore
    identities: IdentityDirectory
    authorizer: Authorizer
    audit: AuditLog
    objects: ObjectStore
    sandbox: Sandbox
    service_roles: ServiceRolePort
    providers: dict[str, Any]

    @property
    def sts(self) -> CredentialIssuer: ...

    @property
    def logs(self) -> LogSinkPort: ...

    @property
    def metrics(self) -> MetricSinkPort: ...

    @property
    def alarms(self) -> AlarmBook: ...

    @property
    def endpoints(self) -> EndpointDirectory: ...

    def internal_call(self, service: str, operation: str, params: dict, principal: Any) -> dict:
        """Another service's real operation, as ``principal`` (a service acting for the account)."""
        ...
