"""The IAM authorisation decision: policies plus a request in, Allow / explicit Deny / implicit Deny out.

Pure and storage-free: the caller gathers the principal's identity policies, the resource's policy,
the principal's permissions boundary and, for a role session created with ``Policy``/``PolicyArns``, its
session policies. The order follows the IAM user guide's policy evaluation logic
(reference_policies_evaluation-logic): an explicit Deny anywhere wins; otherwise an Allow is required
from an identity policy or, within one account, from a resource policy that names the principal; a
cross-account request needs both; a permissions boundary and the session policies must also allow,
except where a same-account resource policy names the user or the role session itself
(access_policies, "Session policies"; access_policies_boundaries).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kennel.cloud.policy.conditions import ContextValue, to_text
from kennel.cloud.policy.policy import Effect, Policy, Principals, Statement

__all__ = [
    "AuthzRequest",
    "Decision",
    "MatchedStatement",
    "Outcome",
    "PolicyType",
    "RequestContext",
    "evaluate",
    "principal_matches",
]

_MULTI = (list, tuple, set, frozenset)


@dataclass(frozen=True)
class AuthzRequest:
    """One request to authorise. ``service`` is set when an AWS service principal is the caller."""

    principal_arn: str
    action: str  # "service:Operation"
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    service: str | None = None


class Outcome(enum.Enum):
    # The values are the EvalDecision strings of iam:SimulatePrincipalPolicy.
    ALLOW = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"


class PolicyType(enum.Enum):
    IDENTITY = "identity-based policy"
    RESOURCE = "resource-based policy"
    PERMISSIONS_BOUNDARY = "permissions boundary"
    SESSION = "session policy"

    @property
    def with_article(self) -> str:
        return f"{'an' if self is PolicyType.IDENTITY else 'a'} {self.value}"


@dataclass(frozen=True, slots=True)
class MatchedStatement:
    """The statement a decision rests on, for explanations and audit logs."""

    policy_name: str
    sid: str | None
    index: int  # position in the policy's Statement list, for statements without a Sid
    policy_type: PolicyType
    effect: Effect

    def __str__(self) -> str:
        label = self.sid if self.sid else f"statement {self.index}"
        return f"{self.policy_name or '(unnamed policy)'} [{label}] ({self.effect.value})"


@dataclass(frozen=True, slots=True)
class Decision:
    """``policy_type``: the kind of policy that granted (allow), denied (explicit deny) or had no
    allowing statement (implicit deny); the message names it."""

    outcome: Outcome
    matched_statement: MatchedStatement | None = None
    policy_type: PolicyType | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def message(self, principal: str, action: str, resource: str) -> str:
        """The AccessDenied text AWS returns for this decision."""
        if self.outcome is Outcome.ALLOW:
            raise ValueError("an allowed request has no AccessDenied message")
        head = f"User: {principal} is not authorized to perform: {action} on resource: {resource}"
        kind = self.policy_type or PolicyType.IDENTITY
        if self.outcome is Outcome.EXPLICIT_DENY:
            return f"{head} with an explicit deny in {kind.with_article}"
        return f"{head} because no {kind.value} allows the {action} action"


def _arn_parts(arn: str) -> list[str] | None:
    parts = arn.split(":", 5)
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def _account(arn: str) -> str | None:
    """The owning account; None where the ARN names none, including AWS-owned resources such as
    ``arn:aws:iam::aws:policy/...`` (every account may read AWS managed policies)."""
    parts = _arn_parts(arn)
    return (parts[4] if parts[4] not in ("", "aws") else None) if parts else None


def _session_role(principal_arn: str) -> tuple[str, str] | None:
    """(account, role name) of an ``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`` principal."""
    parts = _arn_parts(principal_arn)
    if parts is None or parts[2] != "sts" or not parts[5].startswith("assumed-role/"):
        return None
    return parts[4], parts[5].split("/")[1]


class RequestContext:
    """Condition keys of one request, looked up case-insensitively.

    Keys AWS always supplies are derived when the caller did not pass them: aws:PrincipalArn (the role,
    not the session, for role sessions), aws:PrincipalAccount and aws:username from the principal ARN,
    aws:CurrentTime and aws:EpochTime from the clock.
    """

    __slots__ = ("_values",)

    def __init__(self, principal_arn: str, context: Mapping[str, ContextValue]) -> None:
        values: dict[str, Any] = {key.lower(): value for key, value in context.items()}
        parts = _arn_parts(principal_arn)
        if parts is not None:
            values.setdefault("aws:principalaccount", parts[4])
            role = _session_role(principal_arn)
            if role is not None:
                values.setdefault("aws:principalarn", f"arn:{parts[1]}:iam::{role[0]}:role/{role[1]}")
            values.setdefault("aws:principalarn", principal_arn)
            if parts[2] == "iam" and parts[5].startswith("user/"):
                values.setdefault("aws:username", parts[5].rsplit("/", 1)[1])
        if "aws:currenttime" not in values or "aws:epochtime" not in values:
            now = datetime.now(UTC)
            values.setdefault("aws:currenttime", now)
            values.setdefault("aws:epochtime", int(now.timestamp()))
        self._values = values

    def values(self, key: str) -> list[Any] | None:
        """All values of a key; None when absent, and an empty multi-valued key counts as absent."""
        value = self._values.get(key.lower())
        if value is None:
            return None
        if isinstance(value, _MULTI):
            return list(value) or None
        return [value]

    def variable(self, key: str) -> str | None:
        """A key's value for ``${key}``; multi-valued keys cannot be substituted."""
        value = self._values.get(key.lower())
        if value is None or isinstance(value, _MULTI):
            return None
        return to_text(value)


class _Via(enum.IntEnum):
    """How a Principal element named the caller, weakest first."""

    ACCOUNT = 1  # the account id or its root ARN: delegates to the account's own identity policies
    ANYONE = 2
    ROLE = 3  # the role ARN of the calling role session
    SERVICE = 4
    EXACT = 5  # the caller's own ARN (user, role session, federated or canonical id)


def _principal_via(principals: Principals, principal_arn: str, service: str | None) -> _Via | None:
    if principals.anyone:
        return _Via.ANYONE
    best: _Via | None = None
    if service and any(s.lower() == service.lower() for s in principals.service):
        best = _Via.SERVICE
    if not principal_arn:
        return best
    if principal_arn in principals.aws or principal_arn in principals.federated:
        return _Via.EXACT
    if principal_arn in principals.canonical_user:
        return _Via.EXACT
    parts = _arn_parts(principal_arn)
    role = _session_role(principal_arn)
    for entry in principals.aws:
        via: _Via | None = None
        if entry == "*":
            via = _Via.ANYONE
        elif parts is not None and parts[4] and entry in (parts[4], f"arn:{parts[1]}:iam::{parts[4]}:root"):
            via = _Via.ACCOUNT
        elif role is not None:
            named = _arn_parts(entry)
            if named and named[2] == "iam" and named[4] == role[0] and named[5].startswith("role/"):
                via = _Via.ROLE if named[5].rsplit("/", 1)[1] == role[1] else None
        if via is not None and (best is None or via > best):
            best = via
    return best


def _statement_via(statement: Statement, principal_arn: str, service: str | None) -> _Via | None:
    if statement.principal is not None:
        return _principal_via(statement.principal, principal_arn, service)
    if statement.not_principal is not None:
        # NotPrincipal compares literally: the IAM guide has a role session exempted by listing the
        # session's own ARN, and an account ARN exempts only the account principal, not its users.
        listed = _principal_via(statement.not_principal, principal_arn, service)
        return None if listed in (_Via.EXACT, _Via.SERVICE, _Via.ANYONE) else _Via.ANYONE
    return None


def principal_matches(statement: Statement, principal_arn: str, *, service: str | None = None) -> bool:
    """Whether a resource or trust policy statement's Principal/NotPrincipal covers the caller.

    ``principal_arn`` is the caller's ARN (``""`` for a service calling as itself); ``service`` is the
    caller's service principal (``"lambda.amazonaws.com"``). ``"*"`` covers everyone and ``{"AWS": "*"}``
    every AWS principal; an account id or ``arn:aws:iam::ACCT:root`` covers every principal of that
    account (which then also needs its own identity-policy allow); a role ARN covers its sessions. A
    statement with neither element (an identity policy's) names nobody: False.
    """
    return _statement_via(statement, principal_arn, service) is not None


def _matched(policy: Policy, index: int, statement: Statement, kind: PolicyType) -> MatchedStatement:
    return MatchedStatement(policy.name, statement.sid, index, kind, statement.effect)


def _scan(
    policies: Sequence[Policy], kind: PolicyType, request: AuthzRequest, ctx: RequestContext
) -> tuple[Decision | None, MatchedStatement | None, _Via | None]:
    """(explicit-deny decision, first allowing statement, how the best allow named the caller)."""
    allow: MatchedStatement | None = None
    allow_via: _Via | None = None
    for policy in policies:
        for index, statement in enumerate(policy.statements):
            if allow_via is _Via.EXACT and not statement.is_deny:
                continue  # nothing can beat the allow already found; only a Deny still matters
            via: _Via | None = _Via.EXACT
            if kind is PolicyType.RESOURCE:
                via = _statement_via(statement, request.principal_arn, request.service)
                if via is None:
                    continue
            if not statement.applies(request.action, request.resource, ctx):
                continue
            if statement.is_deny:
                return (
                    Decision(Outcome.EXPLICIT_DENY, _matched(policy, index, statement, kind), kind),
                    None,
                    None,
                )
            if allow_via is None or (via is not None and via > allow_via):
                allow, allow_via = _matched(policy, index, statement, kind), via
    return None, allow, allow_via


def evaluate(
    request: AuthzRequest,
    identity_policies: Sequence[Policy],
    resource_policies: Sequence[Policy] = (),
    *,
    permissions_boundary: Policy | None = None,
    session_policies: Sequence[Policy] | None = None,
) -> Decision:
    """Decide one request. See the module docstring for the order of the rules.

    ``session_policies`` None: not a session with session policies (nothing to intersect with); a
    sequence, even an empty one, limits the session to what they allow (their union)."""
    ctx = RequestContext(request.principal_arn, request.context)

    denied, identity_allow, _ = _scan(identity_policies, PolicyType.IDENTITY, request, ctx)
    if denied is not None:
        return denied
    denied, resource_allow, resource_via = _scan(resource_policies, PolicyType.RESOURCE, request, ctx)
    if denied is not None:
        return denied
    boundary_allow: MatchedStatement | None = None
    if permissions_boundary is not None:
        denied, boundary_allow, _ = _scan(
            [permissions_boundary], PolicyType.PERMISSIONS_BOUNDARY, request, ctx
        )
        if denied is not None:
            return denied
    session_allow: MatchedStatement | None = None
    if session_policies is not None:
        # An explicit Deny in a session policy wins like any other (evaluation logic, step 1).
        denied, session_allow, _ = _scan(session_policies, PolicyType.SESSION, request, ctx)
        if denied is not None:
            return denied

    resource_accounts = ctx.values("aws:ResourceAccount")
    resource_account = to_text(resource_accounts[0]) if resource_accounts else _account(request.resource)
    principal_account = _account(request.principal_arn)
    cross_account = bool(principal_account and resource_account and principal_account != resource_account)

    if cross_account:
        # Across accounts both sides must allow: the caller's account and the resource owner.
        if identity_allow is None:
            return Decision(Outcome.IMPLICIT_DENY, None, PolicyType.IDENTITY)
        if resource_allow is None:
            return Decision(Outcome.IMPLICIT_DENY, None, PolicyType.RESOURCE)
        granted = identity_allow
    else:
        # A resource policy naming only the account delegates to that account's identity policies.
        direct = resource_allow if resource_via is not None and resource_via > _Via.ACCOUNT else None
        granted = identity_allow or direct
        if granted is None:
            return Decision(Outcome.IMPLICIT_DENY, None, PolicyType.IDENTITY)

    # Within an account a resource policy that names the user or the role session itself is limited
    # neither by the boundary (access_policies_boundaries) nor by session policies: its permissions are
    # added after the session policy applies (access_policies, "Session policies"). Naming the role's
    # ARN instead adds them before, so the session policy (and boundary) limits them like the rest.
    names_caller = not cross_account and resource_via is _Via.EXACT and resource_allow is not None
    for limit, limit_allow, kind in (
        (permissions_boundary, boundary_allow, PolicyType.PERMISSIONS_BOUNDARY),
        (session_policies, session_allow, PolicyType.SESSION),
    ):
        if limit is not None and limit_allow is None:
            if not names_caller:
                return Decision(Outcome.IMPLICIT_DENY, None, kind)
            assert resource_allow is not None
            granted = resource_allow
    return Decision(Outcome.ALLOW, granted, granted.policy_type)
