"""The IAM policy language: a policy document parsed, validated and compiled into statements.

Parsing does all the work that does not depend on a request (wildcards become regular expressions,
condition values are type-checked and converted), so evaluation only runs precompiled matchers.
Refusals raise :class:`MalformedPolicyDocument` with the wording IAM uses where it is known.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kennel.cloud.policy.conditions import (
    Clause,
    Lookup,
    MalformedPolicyDocument,
    Mode,
    PatternSet,
    compile_condition,
)
from kennel.cloud.protocol.codec import has_lone_surrogate, json_depth

__all__ = [
    "VERSIONS",
    "Effect",
    "MalformedPolicyDocument",
    "Policy",
    "PolicyKind",
    "Principals",
    "Statement",
    "parse_policy",
]

CURRENT_VERSION = "2012-10-17"
LEGACY_VERSION = "2008-10-17"
VERSIONS = (CURRENT_VERSION, LEGACY_VERSION)
# A valid policy nests six levels at most (Statement → statement → Condition → operator → key → values).
MAX_POLICY_DEPTH = 32

_POLICY_FIELDS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_FIELDS = frozenset(
    {
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
    }
)
_PRINCIPAL_TYPES = {
    "AWS": "aws",
    "Service": "service",
    "Federated": "federated",
    "CanonicalUser": "canonical_user",
}
_VENDOR_RE = re.compile(r"^[A-Za-z0-9-]+$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


class PolicyKind(enum.Enum):
    """Where a policy is used, which decides whether Principal and Resource are required or forbidden."""

    IDENTITY = "identity"  # attached to a user, group or role, or used as a permissions boundary
    RESOURCE = "resource"  # attached to a bucket, function, endpoint...: names its principals
    TRUST = "trust"  # a role's AssumeRolePolicyDocument: names principals, has no Resource


@dataclass(frozen=True, slots=True)
class Principals:
    """A Principal or NotPrincipal element: ``"*"`` (anyone) or identifiers grouped by principal type."""

    anyone: bool = False
    aws: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()
    canonical_user: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Statement:
    """One statement; the ``*_matcher`` and ``clauses`` fields are its compiled form."""

    effect: Effect
    sid: str | None = None
    action: tuple[str, ...] | None = None
    not_action: tuple[str, ...] | None = None
    resource: tuple[str, ...] | None = None
    not_resource: tuple[str, ...] | None = None
    principal: Principals | None = None
    not_principal: Principals | None = None
    condition: Mapping[str, Any] = field(default_factory=dict)
    action_matcher: PatternSet | None = field(default=None, repr=False)
    resource_matcher: PatternSet | None = field(default=None, repr=False)
    clauses: tuple[Clause, ...] = field(default=(), repr=False)

    @property
    def is_deny(self) -> bool:
        return self.effect is Effect.DENY

    def matches_action(self, action: str) -> bool:
        assert self.action_matcher is not None
        hit = self.action_matcher.matches(action)
        return hit if self.action is not None else not hit

    def matches_resource(self, resource: str, ctx: Lookup) -> bool:
        if self.resource_matcher is None:  # trust policies have no Resource: the role itself is implied
            return True
        hit = self.resource_matcher.matches(resource, ctx)
        return hit if self.resource is not None else not hit

    def conditions_hold(self, ctx: Lookup) -> bool:
        return all(clause.holds(ctx) for clause in self.clauses)

    def applies(self, action: str, resource: str, ctx: Lookup) -> bool:
        """Whether the statement covers the request, principals aside (the caller checks those)."""
        return (
            self.matches_action(action) and self.matches_resource(resource, ctx) and self.conditions_hold(ctx)
        )


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """A parsed policy. ``name`` (a policy ARN or inline name) is what decisions cite."""

    statements: tuple[Statement, ...]
    version: str = LEGACY_VERSION
    id: str | None = None
    name: str = ""
    kind: PolicyKind | None = None

    @classmethod
    def parse(
        cls, document: str | bytes | Mapping[str, Any], *, name: str = "", kind: PolicyKind | None = None
    ) -> Policy:
        return parse_policy(document, name=name, kind=kind)


def _syntax(detail: str) -> MalformedPolicyDocument:
    return MalformedPolicyDocument(f"Syntax errors in policy. {detail}")


def _strings(value: Any, element: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, list) and not value:
        raise _syntax(f"{element} must not be empty.")
    raise _syntax(f"{element} must be a string or a list of strings.")


def _check_action(action: str) -> None:
    if action == "*":
        return
    vendor, sep, name = action.partition(":")
    if not sep or not vendor or not name:
        raise MalformedPolicyDocument(
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        )
    if not _VENDOR_RE.match(vendor):
        raise MalformedPolicyDocument(f"Vendor {vendor} is not valid")


def _check_resource(resource: str) -> None:
    if resource != "*" and not resource.startswith("arn:"):
        raise MalformedPolicyDocument(f'Resource {resource} must be in ARN format or "*".')


def _principals(raw: Any, element: str) -> Principals:
    if raw == "*":
        return Principals(anyone=True)
    if not isinstance(raw, dict) or not raw:
        raise MalformedPolicyDocument(f'Invalid principal in policy: {element} must be "*" or an object')
    groups: dict[str, tuple[str, ...]] = {}
    for kind, value in raw.items():
        if kind not in _PRINCIPAL_TYPES:
            raise MalformedPolicyDocument(f'Invalid principal in policy: "{kind}":{json.dumps(value)}')
        ids = _strings(value, f"{element}.{kind}")
        for ident in ids:
            valid = bool(ident.strip()) and (
                kind != "AWS" or ident == "*" or ident.startswith("arn:") or bool(_ACCOUNT_RE.match(ident))
            )
            if not valid:
                raise MalformedPolicyDocument(f'Invalid principal in policy: "{kind}":"{ident}"')
        groups[_PRINCIPAL_TYPES[kind]] = ids
    return Principals(**groups)


def _pair(raw: Mapping[str, Any], positive: str, negative: str) -> tuple[Any, Any]:
    if positive in raw and negative in raw:
        raise _syntax(f"A statement cannot have both {positive} and {negative}.")
    return raw.get(positive), raw.get(negative)


def _statement(raw: Any, *, variables: bool, kind: PolicyKind | None) -> Statement:
    if not isinstance(raw, dict):
        raise _syntax("Each statement must be an object.")
    unknown = sorted(set(raw) - _STATEMENT_FIELDS)
    if unknown:
        raise _syntax(f"Unknown field {unknown[0]} in a statement.")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise _syntax("Sid must be a string.")
    if "Effect" not in raw:
        raise MalformedPolicyDocument("Missing required field Effect")
    try:
        effect = Effect(raw["Effect"])
    except (ValueError, TypeError):
        raise MalformedPolicyDocument(f"Invalid effect: {raw['Effect']}") from None

    action_raw, not_action_raw = _pair(raw, "Action", "NotAction")
    if action_raw is None and not_action_raw is None:
        raise MalformedPolicyDocument("Policy statement must contain actions.")
    action_key = "Action" if action_raw is not None else "NotAction"
    actions = _strings(raw[action_key], action_key)
    for action in actions:
        _check_action(action)

    resource_raw, not_resource_raw = _pair(raw, "Resource", "NotResource")
    resources: tuple[str, ...] | None = None
    if resource_raw is not None or not_resource_raw is not None:
        if kind is PolicyKind.TRUST:
            present = "Resource" if resource_raw is not None else "NotResource"
            raise MalformedPolicyDocument(f"Has prohibited field {present}")
        resource_key = "Resource" if resource_raw is not None else "NotResource"
        resources = _strings(raw[resource_key], resource_key)
        for resource in resources:
            _check_resource(resource)
    elif kind is not PolicyKind.TRUST:
        raise MalformedPolicyDocument("Policy statement must contain resources.")

    principal_raw, not_principal_raw = _pair(raw, "Principal", "NotPrincipal")
    has_principal = principal_raw is not None or not_principal_raw is not None
    if kind is PolicyKind.IDENTITY and has_principal:
        raise MalformedPolicyDocument("Policy document should not specify a principal.")
    if kind is PolicyKind.TRUST and not_principal_raw is not None:
        # IAM user guide, reference_policies_elements_notprincipal: not usable in role trust policies.
        raise MalformedPolicyDocument("Has prohibited field NotPrincipal")
    if kind in (PolicyKind.RESOURCE, PolicyKind.TRUST) and not has_principal:
        raise MalformedPolicyDocument("Missing required field Principal")

    condition = raw.get("Condition", {})
    clauses = compile_condition(condition, variables=variables) if "Condition" in raw else ()
    return Statement(
        effect=effect,
        sid=sid,
        action=actions if action_raw is not None else None,
        not_action=actions if not_action_raw is not None else None,
        resource=resources if resource_raw is not None else None,
        not_resource=resources if not_resource_raw is not None else None,
        principal=_principals(principal_raw, "Principal") if principal_raw is not None else None,
        not_principal=_principals(not_principal_raw, "NotPrincipal")
        if not_principal_raw is not None
        else None,
        condition=condition,
        # IAM allows no policy variables in Action, so one alternation covers every listed action.
        action_matcher=PatternSet(actions, Mode.ACTION, variables=False),
        resource_matcher=PatternSet(resources, Mode.RESOURCE, variables=variables) if resources else None,
        clauses=clauses,
    )


def parse_policy(
    document: str | bytes | Mapping[str, Any], *, name: str = "", kind: PolicyKind | None = None
) -> Policy:
    """Parse and validate a policy document (JSON text or an already-decoded mapping).

    ``kind`` adds the checks IAM makes for that use (identity policies name no principal, resource and
    trust policies must, trust policies have no Resource); None checks only the common grammar.
    """
    if isinstance(document, str | bytes):
        text = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else document
        # Checked before json.loads: a document nested thousands deep must be a 400, not a RecursionError.
        if json_depth(text) > MAX_POLICY_DEPTH:
            raise _syntax(f"The document is nested more than {MAX_POLICY_DEPTH} levels deep.")
        try:
            raw = json.loads(document)
        except (ValueError, RecursionError):
            raise MalformedPolicyDocument("Syntax errors in policy.") from None
        if has_lone_surrogate(raw):
            raise _syntax("The document contains invalid Unicode (an unpaired surrogate).")
    else:
        raw = document
    if not isinstance(raw, Mapping):
        raise MalformedPolicyDocument("Syntax errors in policy.")
    unknown = sorted(set(raw) - _POLICY_FIELDS)
    if unknown:
        raise _syntax(f"Unknown field {unknown[0]} in the policy document.")

    version = raw.get("Version", LEGACY_VERSION)
    if version not in VERSIONS:
        raise _syntax(f"Version must be {CURRENT_VERSION} or {LEGACY_VERSION}, not {json.dumps(version)}.")
    policy_id = raw.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise _syntax("Id must be a string.")
    if "Statement" not in raw:
        raise MalformedPolicyDocument("Missing required field Statement")
    body = raw["Statement"]
    items = [body] if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        raise _syntax("Statement must be an object or a non-empty list of objects.")

    # Policy variables are a 2012-10-17 feature; older documents treat ${...} as literal text.
    variables = version == CURRENT_VERSION
    statements = tuple(_statement(item, variables=variables, kind=kind) for item in items)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicyDocument("Statement IDs (SID) in a single policy must be unique.")
    return Policy(statements=statements, version=version, id=policy_id, name=name, kind=kind)
