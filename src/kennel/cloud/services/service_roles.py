"""Roles handed to services: the one place that decides whether a caller may pass a role to a service.

AWS checks two things whenever a request gives a service a role to act as later (Lambda's function
role, SageMaker's execution role, …):

1. the caller may ``iam:PassRole`` on the role's ARN, evaluated with the request context keys
   ``iam:PassedToService`` (the service principal) and ``iam:AssociatedResourceArn`` (the resource that
   will use the role), as the IAM user guide's "Granting a user permissions to pass a role to an AWS
   service" (id_roles_use_passrole) describes; and
2. the role exists and its trust policy lets that service principal ``sts:AssumeRole``.

Each service words the refusals its own way, so the caller picks the flavour (:class:`PassRoleErrors`);
the default follows the service principal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import IdentityDirectory
from kennel.cloud.authz import Authorizer
from kennel.cloud.errors import AccessDeniedException, AwsError, ValidationException, error_class
from kennel.cloud.policy.evaluate import AuthzRequest, evaluate
from kennel.cloud.policy.policy import MalformedPolicyDocument, PolicyKind
from kennel.cloud.services.base import Context
from kennel.cloud.statestore import StateStore

__all__ = ["LAMBDA", "SAGEMAKER", "PassRoleErrors", "ServiceRoles", "errors_for"]

PASS_ROLE = "iam:PassRole"
_ROLE_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):role(/(?:[\w+=,.@-]+/)*)([\w+=,.@-]+)$")

_LambdaInvalidParameter = error_class("InvalidParameterValueException", 400)


@dataclass(frozen=True)
class PassRoleErrors:
    """How a service words the two refusals: ``denied(message)`` gets IAM's AccessDenied text for
    iam:PassRole, ``cannot_assume(role_arn)`` is raised when the role is missing or does not trust
    the service."""

    denied: Callable[[str], AwsError]
    cannot_assume: Callable[[str], AwsError]


# Lambda: AccessDeniedException carrying IAM's text; an unusable role is an InvalidParameterValueException
# with one fixed sentence (observed from CreateFunction / UpdateFunctionConfiguration).
LAMBDA = PassRoleErrors(
    denied=AccessDeniedException,
    cannot_assume=lambda _arn: _LambdaInvalidParameter(
        "The role defined for the function cannot be assumed by Lambda."
    ),
)

# SageMaker: AccessDeniedException for PassRole; a role it cannot assume is a ValidationException
# (observed from CreateModel, CreateTrainingJob, CreateTransformJob).
SAGEMAKER = PassRoleErrors(
    denied=AccessDeniedException,
    cannot_assume=lambda arn: ValidationException(
        f"Could not assume role {arn}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role."
    ),
)


def _generic(service_principal: str) -> PassRoleErrors:
    return PassRoleErrors(
        denied=AccessDeniedException,
        cannot_assume=lambda arn: ValidationException(
            f"Role {arn} cannot be assumed by principal '{service_principal}'."
        ),
    )


def errors_for(service_principal: str) -> PassRoleErrors:
    """The refusal wording of the service a role is passed to (a generic one for others)."""
    known = {"lambda.amazonaws.com": LAMBDA, "sagemaker.amazonaws.com": SAGEMAKER}
    return known.get(service_principal.lower()) or _generic(service_principal)


class ServiceRoles:
    def __init__(self, store: StateStore, identities: IdentityDirectory, authorizer: Authorizer) -> None:
        self.store = store
        self.identities = identities
        self.authorizer = authorizer

    def require_passable(
        self,
        ctx: Context,
        role_arn: str,
        service_principal: str,
        associated_resource_arn: str,
        *,
        errors: PassRoleErrors | None = None,
    ) -> str:
        """Raise AWS's errors unless the caller (ctx.principal) may pass role_arn to service_principal
        (iam:PassRole on the role ARN, context iam:PassedToService=service_principal,
        iam:AssociatedResourceArn) and the role exists and its trust policy lets service_principal
        sts:AssumeRole. Returns the role name."""
        errors = errors or errors_for(service_principal)
        # PassRole first: AWS refuses a caller who may not pass the role before saying anything about
        # the role itself, so a caller without PassRole cannot probe which roles exist.
        decision = self.authorizer.decide(
            ctx.principal,
            PASS_ROLE,
            role_arn,
            now=ctx.now,
            source_ip=ctx.source_ip,
            region=ctx.region,
            request_id=ctx.request_id,
            extra_context={
                "iam:PassedToService": service_principal,
                "iam:AssociatedResourceArn": associated_resource_arn,
            },
        )
        if not decision.allowed:
            raise errors.denied(decision.message(ctx.principal.arn, PASS_ROLE, role_arn))
        return self.assumable(role_arn, service_principal, associated_resource_arn, errors=errors)

    def assumable(
        self,
        role_arn: str,
        service_principal: str,
        source_arn: str | None = None,
        *,
        errors: PassRoleErrors | None = None,
    ) -> str:
        """The role's name if it exists in this account and trusts ``service_principal``; otherwise the
        service's "cannot assume" error. No PassRole here: this is the service itself assuming a role it
        was given earlier (Lambda at each cold start), which AWS re-checks against the trust policy."""
        name = self._own_role(role_arn, self.identities.account)
        if name is None or not self.trusts(name, service_principal, source_arn=source_arn):
            raise (errors or errors_for(service_principal)).cannot_assume(role_arn)
        return name

    def _own_role(self, role_arn: str, account: str) -> str | None:
        """The role's name when ``role_arn`` names a role of this account, path included."""
        match = _ROLE_ARN_RE.match(role_arn or "")
        if match is None or match.group(1) != account:
            return None
        path, name = match.group(2), match.group(3)
        with self.store.read() as conn:
            row = conn.execute(select(t.roles.c.path).where(t.roles.c.name == name)).first()
        # A role ARN names the role by path and name; the same name under another path is not it.
        return name if row is not None and row.path == path else None

    def trusts(
        self,
        role_name: str,
        service_principal: str,
        *,
        source_arn: str | None = None,
        source_account: str | None = None,
    ) -> bool:
        """Whether the role's trust policy lets ``service_principal`` sts:AssumeRole.

        The trust policy is evaluated as the resource policy it is (an explicit Deny wins, conditions
        apply), with the keys a service sets when it assumes a role on behalf of a resource:
        aws:SourceAccount and aws:SourceArn (IAM user guide, confused-deputy prevention)."""
        with self.store.read() as conn:
            row = conn.execute(
                select(t.roles.c.trust_policy, t.roles.c.path).where(t.roles.c.name == role_name)
            ).first()
        if row is None:
            return False
        try:
            trust = self.identities.parsed(
                f"trust:{role_name}:{hash(row.trust_policy)}", f"trust:{role_name}", row.trust_policy,
                PolicyKind.TRUST,
            )  # fmt: skip
        except MalformedPolicyDocument:
            return False
        account = source_account or self.identities.account
        context: dict[str, object] = {"aws:SourceAccount": account}
        if source_arn:
            context["aws:SourceArn"] = source_arn
        role_arn = f"arn:aws:iam::{self.identities.account}:role{row.path}{role_name}"
        request = AuthzRequest("", "sts:AssumeRole", role_arn, context, service=service_principal)
        return evaluate(request, (), (trust,)).allowed
