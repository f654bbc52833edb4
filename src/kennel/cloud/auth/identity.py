"""Who is calling: access keys → principals, and the policies that apply to each principal.

Lookups happen on every request, so results are cached in memory and dropped whenever the store's
``generation`` moves (any committed write). Parsed policies are cached the same way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import select

from kennel.cloud.auth import tables as t
from kennel.cloud.auth.sigv4 import SecretRecord
from kennel.cloud.policy.policy import Policy, PolicyKind, parse_policy
from kennel.cloud.statestore import StateStore


@dataclass(frozen=True)
class Principal:
    arn: str  # as AWS reports the caller (user ARN, or sts assumed-role ARN)
    identity_arn: str  # where the policies live: the IAM user or role
    kind: str  # "user" | "assumed-role"
    name: str  # user name or role name
    user_id: str  # AIDA… for users, AROA…:session for role sessions
    account: str
    session_name: str | None = None
    # The STS access key of a role session created with session policies (AssumeRole Policy/PolicyArns):
    # they are stored with that session, so its permissions differ from the role's. None otherwise.
    limited_session: str | None = None


@dataclass(frozen=True)
class PolicySet:
    identity: tuple[Policy, ...]
    boundary: Policy | None
    # None: no session policies; otherwise the session may do only what one of them allows, too.
    session: tuple[Policy, ...] | None = None


def user_arn(account: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:user{path}{name}"


def role_arn(account: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:role{path}{name}"


def assumed_role_arn(account: str, role: str, session: str) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"


class IdentityDirectory:
    def __init__(self, store: StateStore, account: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.account = account
        self.clock = clock
        self._lock = threading.Lock()
        self._generation = -1
        self._records: dict[str, SecretRecord | None] = {}
        self._policies: dict[tuple[str, str], PolicySet] = {}
        self._documents: dict[str, Policy] = {}

    def _fresh(self) -> None:
        if self._generation != self.store.generation:
            with self._lock:
                self._records.clear()
                self._policies.clear()
                self._generation = self.store.generation

    # ----- credentials ------------------------------------------------------------------------------
    def lookup(self, access_key_id: str) -> SecretRecord | None:
        """The SigV4 verifier's credential lookup (long-term user keys and STS session keys)."""
        self._fresh()
        if access_key_id in self._records:
            return self._records[access_key_id]
        record = self._load(access_key_id)
        with self._lock:
            self._records[access_key_id] = record
        return record

    def _load(self, access_key_id: str) -> SecretRecord | None:
        with self.store.read() as conn:
            if access_key_id.startswith("ASIA"):
                row = conn.execute(
                    select(t.sessions, t.roles.c.role_id, t.roles.c.path)
                    .join(t.roles, t.roles.c.name == t.sessions.c.role_name)
                    .where(t.sessions.c.access_key_id == access_key_id)
                ).first()
                if row is None:
                    return None
                principal = Principal(
                    arn=assumed_role_arn(self.account, row.role_name, row.session_name),
                    identity_arn=role_arn(self.account, row.role_name, row.path),
                    kind="assumed-role",
                    name=row.role_name,
                    user_id=f"{row.role_id}:{row.session_name}",
                    account=self.account,
                    session_name=row.session_name,
                    limited_session=access_key_id
                    if row.session_policy is not None or row.session_policy_arns is not None
                    else None,
                )
                expires = datetime.fromtimestamp(row.expires, UTC)
                return SecretRecord(access_key_id, row.secret, row.session_token, expires, principal)
            row = conn.execute(
                select(t.access_keys, t.users.c.user_id, t.users.c.path)
                .join(t.users, t.users.c.name == t.access_keys.c.user_name)
                .where(t.access_keys.c.access_key_id == access_key_id, t.access_keys.c.status == "Active")
            ).first()
        if row is None:
            return None
        arn = user_arn(self.account, row.user_name, row.path)
        principal = Principal(arn, arn, "user", row.user_name, row.user_id, self.account)
        return SecretRecord(access_key_id, row.secret, None, None, principal)

    def role_session(self, role_name: str, session: str) -> Principal | None:
        """The principal a service acts as when it assumes ``role_name`` (None if there is no such role)."""
        with self.store.read() as conn:
            row = conn.execute(
                select(t.roles.c.role_id, t.roles.c.path).where(t.roles.c.name == role_name)
            ).first()
        if row is None:
            return None
        return Principal(
            arn=assumed_role_arn(self.account, role_name, session),
            identity_arn=role_arn(self.account, role_name, row.path),
            kind="assumed-role",
            name=role_name,
            user_id=f"{row.role_id}:{session}",
            account=self.account,
            session_name=session,
        )

    # ----- policies ---------------------------------------------------------------------------------
    def policies_for(self, principal: Principal) -> PolicySet:
        self._fresh()
        kind = "role" if principal.kind == "assumed-role" else "user"
        key = (kind, principal.name)
        cached = self._policies.get(key)
        if cached is None:
            cached = self.load_policies(kind, principal.name)
            with self._lock:
                self._policies[key] = cached
        if principal.limited_session is None:
            return cached
        session_key = ("session", principal.limited_session)
        limited = self._policies.get(session_key)
        if limited is None:
            limited = replace(cached, session=self.session_policies(principal.limited_session))
            with self._lock:
                self._policies[session_key] = limited
        return limited

    def session_policies(self, access_key_id: str) -> tuple[Policy, ...]:
        """The session policies stored with an STS session: the inline one, then the managed ones at
        their current default version. A managed policy deleted since the session began contributes
        nothing, so the session loses what it allowed (never gains: the set only limits)."""
        with self.store.read() as conn:
            row = conn.execute(
                select(t.sessions.c.session_policy, t.sessions.c.session_policy_arns).where(
                    t.sessions.c.access_key_id == access_key_id
                )
            ).first()
            if row is None:
                return ()
            arns = json.loads(row.session_policy_arns) if row.session_policy_arns else []
            managed = (
                conn.execute(
                    select(
                        t.policy_versions.c.policy_arn,
                        t.policy_versions.c.version_id,
                        t.policy_versions.c.document,
                    )
                    .join(t.policies, t.policies.c.arn == t.policy_versions.c.policy_arn)
                    .where(
                        t.policies.c.arn.in_(arns),
                        t.policy_versions.c.version_id == t.policies.c.default_version,
                    )
                ).all()
                if arns
                else []
            )
        found: list[Policy] = []
        if row.session_policy is not None:
            found.append(
                # keyed by the document itself (at most 2,048 characters): sessions given the same
                # policy share one parse, and the cache grows with distinct policies, not sessions
                self.parsed(f"session#{row.session_policy}", "session policy", row.session_policy)
            )  # fmt: skip
        found += [self.parsed(f"{arn}#{version}", arn, document) for arn, version, document in managed]
        return tuple(found)

    def load_policies(self, kind: str, name: str) -> PolicySet:
        with self.store.read() as conn:
            managed = conn.execute(
                select(
                    t.policy_versions.c.policy_arn,
                    t.policy_versions.c.version_id,
                    t.policy_versions.c.document,
                )
                .join(t.policies, t.policies.c.arn == t.policy_versions.c.policy_arn)
                .join(t.attachments, t.attachments.c.policy_arn == t.policies.c.arn)
                .where(
                    t.attachments.c.principal_type == kind,
                    t.attachments.c.principal_name == name,
                    t.policy_versions.c.version_id == t.policies.c.default_version,
                )
            ).all()
            inline = conn.execute(
                select(t.inline_policies.c.policy_name, t.inline_policies.c.document).where(
                    t.inline_policies.c.principal_type == kind, t.inline_policies.c.principal_name == name
                )
            ).all()
            table = t.users if kind == "user" else t.roles
            boundary_row = conn.execute(select(table.c.boundary_arn).where(table.c.name == name)).first()
            boundary = None
            if boundary_row is not None and boundary_row[0]:
                doc = conn.execute(
                    select(t.policy_versions.c.version_id, t.policy_versions.c.document)
                    .join(t.policies, t.policies.c.arn == t.policy_versions.c.policy_arn)
                    .where(
                        t.policies.c.arn == boundary_row[0],
                        t.policy_versions.c.version_id == t.policies.c.default_version,
                    )
                ).first()
                if doc is not None:
                    boundary = self.parsed(f"{boundary_row[0]}#{doc[0]}", boundary_row[0], doc[1])
        identity = [self.parsed(f"{arn}#{version}", arn, document) for arn, version, document in managed]
        identity += [
            self.parsed(f"{kind}/{name}/{pname}#{hash(document)}", pname, document)
            for pname, document in inline
        ]
        return PolicySet(tuple(identity), boundary)

    def parsed(
        self, cache_key: str, name: str, document: str, kind: PolicyKind = PolicyKind.IDENTITY
    ) -> Policy:
        """Policy documents are immutable per version, so their parse is cached for good."""
        policy = self._documents.get(cache_key)
        if policy is None:
            policy = parse_policy(document, name=name, kind=kind)
            self._documents[cache_key] = policy
        return policy
