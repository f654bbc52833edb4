"""The running cloud: store, identities, authorisation, audit and the service providers."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from kennel.cloud import ids
from kennel.cloud.audit import AuditLog
from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import IdentityDirectory, user_arn
from kennel.cloud.authz import Authorizer
from kennel.cloud.objectstore.bucketpolicies import BucketPolicies
from kennel.cloud.objectstore.sidekeys import SideKeys
from kennel.cloud.objectstore.store import ObjectStore
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.iam.managed import managed_arn
from kennel.cloud.services.iam.provider import IamProvider
from kennel.cloud.services.registry import PROVIDERS
from kennel.cloud.services.service_roles import ServiceRoles
from kennel.cloud.services.sts.provider import StsProvider
from kennel.cloud.statestore import StateStore
from kennel.runtime.sandbox import Sandbox
from kennel.settings import Settings


@dataclass(frozen=True)
class AdminCredentials:
    user: str
    access_key_id: str
    secret_access_key: str


class Cloud:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = time.time  # one clock for the providers' work outside a request
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.state_dir, 0o700)
        self.store = StateStore(settings.db_path)
        self.identities = IdentityDirectory(self.store, settings.account_id, time.time)
        self.audit = AuditLog(self.store)
        # S3 bucket policies, kept by Kennel and consulted by every S3 authorisation check
        self.bucket_policies = BucketPolicies(self.store, user_arn(settings.account_id, settings.admin_user))
        self.authorizer = Authorizer(self.identities, self.audit, self.bucket_policies.for_request)
        # iam:PassRole + trust checks for every operation that hands a service a role
        self.service_roles = ServiceRoles(self.store, self.identities, self.authorizer)
        self.objects = ObjectStore(settings.state_dir / "objects")  # SeaweedFS starts on first use
        self.side_keys = SideKeys(self.store, self.objects)  # S3 keys the store cannot hold as named
        # The one door for user code (functions, model servers, training jobs); refuses to exist where
        # bubblewrap cannot run unless KENNEL_SANDBOX=off was chosen.
        self.sandbox = Sandbox.from_environment(gateway_port=settings.port, state_dir=settings.state_dir)
        self.providers: dict[str, Provider] = {}
        for provider_class in PROVIDERS:
            provider = provider_class(self)
            self.providers[provider.service] = provider
        self.iam.seed()
        self.admin = self.ensure_admin()
        for provider in self.providers.values():
            provider.start()  # background work (instances, environments, control loops) begins here

    @property
    def iam(self) -> IamProvider:
        return self.providers["iam"]  # type: ignore[return-value]

    @property
    def sts(self) -> StsProvider:
        return self.providers["sts"]  # type: ignore[return-value]

    @property
    def logs(self):
        """The CloudWatch Logs provider; implements ``kennel.runtime.telemetry.LogSink``."""
        return self.providers["logs"]

    @property
    def metrics(self):
        """The CloudWatch provider; implements ``kennel.runtime.telemetry.MetricSink``."""
        return self.providers["cloudwatch"]

    @property
    def alarms(self):
        """The CloudWatch provider's alarm engine: the alarm book autoscaling evaluates each tick."""
        return self.providers["cloudwatch"].alarms  # type: ignore[attr-defined]

    @property
    def endpoints(self):
        """The SageMaker endpoint deployments as the endpoint directory (routers for InvokeEndpoint, warm
        standbys); built when the SageMaker provider starts."""
        return self.providers["sagemaker"].deployments  # type: ignore[attr-defined]

    def internal_call(self, service: str, operation: str, params: dict, principal) -> dict:
        """Another service's real operation (its validation and semantics), as a service principal."""
        ctx = Context(
            request_id=ids.request_id(),
            service=service,
            operation=operation,
            principal=principal,
            region=self.settings.region,
            account=self.settings.account_id,
            now=datetime.now(UTC),
        )
        return self.providers[service].handler(operation)(params, ctx)

    def ensure_admin(self) -> AdminCredentials:
        """The admin user exists from the first start on; its first access key is what `kennel env` prints."""
        name = self.settings.admin_user
        with self.store.write() as conn:
            if conn.execute(select(t.users.c.name).where(t.users.c.name == name)).first() is None:
                now = time.time()
                conn.execute(
                    t.users.insert().values(name=name, user_id=ids.unique_id("AIDA"), path="/", created=now)
                )
                conn.execute(
                    t.attachments.insert().values(
                        principal_type="user",
                        principal_name=name,
                        policy_arn=managed_arn("AdministratorAccess"),
                    )
                )
                conn.execute(
                    t.access_keys.insert().values(
                        access_key_id=ids.access_key_id(),
                        secret=ids.secret_access_key(),
                        user_name=name,
                        status="Active",
                        created=now,
                    )
                )
            row = conn.execute(
                select(t.access_keys.c.access_key_id, t.access_keys.c.secret)
                .where(t.access_keys.c.user_name == name)
                .order_by(t.access_keys.c.created)
            ).first()
        if row is None:
            raise RuntimeError(
                f"the admin user {name} has no access key; create one with iam CreateAccessKey"
            )
        return AdminCredentials(name, row[0], row[1])

    def close(self) -> None:
        for provider in reversed(list(self.providers.values())):
            try:
                provider.close()
            except Exception:  # one provider failing to stop must not keep the others running
                logging.getLogger(__name__).exception("closing %s failed", provider.service)
        self.sandbox.close()
        self.objects.close()
        self.audit.close()
        self.store.close()


def admin_credentials(settings: Settings) -> AdminCredentials | None:
    """The admin user's first key, read straight from the store (works while the gateway runs)."""
    if not settings.db_path.exists():
        return None
    store = StateStore(settings.db_path)
    try:
        with store.read() as conn:
            row = conn.execute(
                select(t.access_keys.c.access_key_id, t.access_keys.c.secret)
                .where(t.access_keys.c.user_name == settings.admin_user)
                .order_by(t.access_keys.c.created)
            ).first()
    finally:
        store.close()
    return AdminCredentials(settings.admin_user, row[0], row[1]) if row else None
