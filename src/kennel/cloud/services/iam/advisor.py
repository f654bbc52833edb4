"""Access advisor: over-broad grants, idle principals, unused permissions, and least-privilege
policies generated from what a principal actually did (the audit trail)."""

from __future__ import annotations

import fnmatch
import json
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select

from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import IdentityDirectory, role_arn, user_arn
from kennel.cloud.services.iam.access import principal_from_arn
from kennel.cloud.statestore import StateStore

FULL_ACCESS_SUFFIXES = ("FullAccess", "AdministratorAccess")


@dataclass(frozen=True)
class Finding:
    principal_arn: str
    kind: str  # broad-action | full-access-policy | unused-principal | unused-permission
    detail: str


def _principals(store: StateStore, account: str) -> list[tuple[str, str, str, float]]:
    with store.read() as conn:
        users = conn.execute(select(t.users.c.name, t.users.c.path, t.users.c.created)).all()
        roles = conn.execute(select(t.roles.c.name, t.roles.c.path, t.roles.c.created)).all()
    found = [("user", n, user_arn(account, n, p), c) for n, p, c in users]
    return found + [("role", n, role_arn(account, n, p), c) for n, p, c in roles]


def _used_actions(store: StateStore, identity_arn: str) -> dict[str, tuple[float, set[str]]]:
    with store.read() as conn:
        rows = conn.execute(
            select(t.audit.c.action, t.audit.c.resource, func.max(t.audit.c.time))
            .where(t.audit.c.identity_arn == identity_arn, t.audit.c.decision == "Allow")
            .group_by(t.audit.c.action, t.audit.c.resource)
        ).all()
    used: dict[str, tuple[float, set[str]]] = {}
    for action, resource, last in rows:
        previous = used.get(action, (0.0, set()))
        used[action] = (max(previous[0], last), previous[1] | {resource})
    return used


def audit_findings(
    store: StateStore, account: str, *, unused_days: float = 90, now: float | None = None
) -> list[Finding]:
    now = now or time.time()
    directory = IdentityDirectory(store, account, time.time)
    with store.read() as conn:
        attached = conn.execute(select(t.attachments.c.principal_type, t.attachments.c.principal_name,
                                       t.attachments.c.policy_arn)).all()  # fmt: skip
    findings: list[Finding] = []
    for kind, name, arn, created in _principals(store, account):
        for _, _, policy_arn in (a for a in attached if a[0] == kind and a[1] == name):
            if policy_arn.rsplit("/", 1)[-1].endswith(FULL_ACCESS_SUFFIXES):
                findings.append(Finding(arn, "full-access-policy", f"has {policy_arn} attached"))
        granted: set[str] = set()
        for policy in directory.load_policies(kind, name).identity:
            for statement in policy.statements:
                if statement.is_deny or not statement.action:
                    continue
                broad_resource = not statement.resource or "*" in statement.resource
                for action in statement.action:
                    granted.add(action.lower())
                    if action == "*" or (action.endswith(":*") and broad_resource):
                        findings.append(
                            Finding(arn, "broad-action", f"policy {policy.name or '?'} allows {action} on *")
                        )
        used = _used_actions(store, arn)
        last = max((u[0] for u in used.values()), default=None)
        if last is None and now - created > unused_days * 86400:
            findings.append(
                Finding(arn, "unused-principal", f"never used in the {unused_days:g} days since creation")
            )
        elif last is not None and now - last > unused_days * 86400:
            findings.append(
                Finding(arn, "unused-principal", f"last used {(now - last) / 86400:.0f} days ago")
            )
        used_lower = {a.lower() for a in used}
        for pattern in sorted(granted):
            if not any(fnmatch.fnmatchcase(a, pattern) for a in used_lower):
                findings.append(Finding(arn, "unused-permission", f"grants {pattern} but never used it"))
    return findings


def generate_policy(store: StateStore, principal_arn: str) -> dict:
    """A least-privilege identity policy covering exactly the allowed requests on record."""
    principal_from_arn(principal_arn)  # validates the ARN
    by_service: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for action, (_, resources) in _used_actions(store, principal_arn).items():
        service = action.split(":", 1)[0]
        by_service[service][action] |= resources
    statements = []
    for service in sorted(by_service):
        # Group actions that touch the same resources into one statement, like Access Analyzer does.
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for action, resources in by_service[service].items():
            key = ("*",) if "*" in resources else tuple(sorted(resources))
            groups[key].append(action)
        for resources, actions in sorted(groups.items()):
            statements.append({
                "Sid": f"{service.replace('-', '').capitalize()}{len(statements) + 1}",
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": list(resources) if len(resources) > 1 else resources[0],
            })  # fmt: skip
    return {"Version": "2012-10-17", "Statement": statements}


def policy_json(policy: dict) -> str:
    return json.dumps(policy, indent=2)
