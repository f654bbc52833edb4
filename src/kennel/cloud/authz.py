"""Authorise one request: gather the principal's policies, evaluate, record the decision."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from kennel.cloud.audit import AuditLog, AuditRecord
from kennel.cloud.auth.identity import IdentityDirectory, Principal
from kennel.cloud.policy.evaluate import AuthzRequest, Decision, Outcome, evaluate
from kennel.cloud.policy.policy import Policy

_DECISION_NAMES = {
    Outcome.ALLOW: "Allow",
    Outcome.EXPLICIT_DENY: "ExplicitDeny",
    Outcome.IMPLICIT_DENY: "ImplicitDeny",
}


def context_keys(principal: Principal, *, now: datetime, source_ip: str, region: str) -> dict[str, object]:
    """The global condition keys AWS sets on every request."""
    keys: dict[str, object] = {
        "aws:CurrentTime": now,
        "aws:EpochTime": int(now.timestamp()),
        "aws:SourceIp": source_ip,
        "aws:SecureTransport": False,  # the gateway speaks plain HTTP on loopback
        "aws:RequestedRegion": region,
        "aws:PrincipalArn": principal.identity_arn,
        "aws:PrincipalAccount": principal.account,
        "aws:PrincipalType": "AssumedRole" if principal.kind == "assumed-role" else "User",
        "aws:userid": principal.user_id,
    }
    if principal.kind == "user":
        keys["aws:username"] = principal.name
    return keys


# The resource policies kept apart from the caller's request (S3 bucket policies): (principal, action,
# resource) → the policies that also decide that check.
ResourcePolicySource = Callable[[Principal, str, str], Sequence[Policy]]


class Authorizer:
    def __init__(
        self,
        identities: IdentityDirectory,
        audit: AuditLog,
        resource_policies_of: ResourcePolicySource | None = None,
    ) -> None:
        self.identities = identities
        self.audit = audit
        # Looked up here rather than by each caller, so that no S3 check (the proxy's, or a provider's
        # reading S3 as a role) can be made without its bucket's policy.
        self.resource_policies_of = resource_policies_of

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        *,
        now: datetime | None = None,
        source_ip: str = "127.0.0.1",
        region: str = "us-east-1",
        request_id: str = "",
        access_key_id: str = "",
        extra_context: Mapping[str, object] | None = None,
        resource_policies: Sequence[Policy] = (),
        record: bool = True,
    ) -> Decision:
        now = now or datetime.now(UTC)
        policies = self.identities.policies_for(principal)
        context = context_keys(principal, now=now, source_ip=source_ip, region=region)
        if extra_context:
            context.update(extra_context)
        if self.resource_policies_of is not None:
            resource_policies = (*resource_policies, *self.resource_policies_of(principal, action, resource))
        decision = evaluate(
            AuthzRequest(principal.arn, action, resource, context),
            policies.identity,
            resource_policies,
            permissions_boundary=policies.boundary,
            session_policies=policies.session,
        )
        if record:
            self.audit.record(
                AuditRecord(
                    time=time.time(),
                    principal_arn=principal.arn,
                    identity_arn=principal.identity_arn,
                    action=action,
                    resource=resource,
                    decision=_DECISION_NAMES[decision.outcome],
                    source_ip=source_ip,
                    region=region,
                    request_id=request_id,
                    access_key_id=access_key_id,
                    role_name=principal.name if principal.kind == "assumed-role" and decision.allowed else "",
                )
            )
        return decision
