"""STS: GetCallerIdentity and AssumeRole (trust policy evaluated, temporary credentials issued)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from sqlalchemy import delete, select

from kennel.cloud import ids
from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import assumed_role_arn
from kennel.cloud.errors import AccessDenied, error_class
from kennel.cloud.policy.policy import PolicyKind
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.iam.common import when
from kennel.cloud.services.sts.session_policy import check_session_policies

ValidationError = error_class("ValidationError", 400)


class StsProvider(Provider):
    service = "sts"
    # AWS answers GetCallerIdentity for any valid credentials, even under an explicit Deny.
    skip_authorization = frozenset({"GetCallerIdentity"})

    def get_caller_identity(self, params: dict, ctx: Context) -> dict:
        p = ctx.principal
        return {"UserId": p.user_id, "Account": p.account, "Arn": p.arn}

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        return params.get("RoleArn", "*")

    def resource_policies(self, operation: str, params: dict) -> list:
        """The role's trust policy acts as the resource policy of sts:AssumeRole."""
        if operation != "AssumeRole":
            return []
        name = _role_name(params.get("RoleArn", ""))
        with self.cloud.store.read() as conn:
            row = conn.execute(select(t.roles.c.trust_policy).where(t.roles.c.name == name)).first()
        if row is None:
            return []
        return [
            self.cloud.identities.parsed(
                f"trust:{name}:{hash(row[0])}", f"trust:{name}", row[0], PolicyKind.TRUST
            )
        ]

    def assume_role(self, params: dict, ctx: Context) -> dict:
        arn, session = params["RoleArn"], params["RoleSessionName"]
        name = _role_name(arn)
        with self.cloud.store.read() as conn:
            role = conn.execute(select(t.roles).where(t.roles.c.name == name)).first()
        if role is None or not arn.startswith(f"arn:aws:iam::{ctx.account}:role"):
            # AWS does not reveal whether the role exists.
            raise AccessDenied(
                f"User: {ctx.principal.arn} is not authorized to perform: sts:AssumeRole on resource: {arn}"
            )
        duration = params.get("DurationSeconds", 3600)
        if duration > role.max_session_duration:
            raise ValidationError(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role "
                f"({role.max_session_duration})."
            )
        limits = check_session_policies(
            params.get("Policy"),
            params.get("PolicyArns"),
            role_account=ctx.account,
            policy_exists=self._policy_exists,
        )
        credentials = self.issue(
            name, session, ctx.principal.arn, duration,
            session_policy=limits.policy, session_policy_arns=limits.policy_arns,
        )  # fmt: skip
        return {
            "Credentials": credentials,
            "AssumedRoleUser": {
                "AssumedRoleId": f"{role.role_id}:{session}",
                "Arn": assumed_role_arn(ctx.account, name, session),
            },
            "PackedPolicySize": limits.packed_percent,
        }

    def _policy_exists(self, arn: str) -> bool:
        with self.cloud.store.read() as conn:
            return conn.execute(select(t.policies.c.arn).where(t.policies.c.arn == arn)).first() is not None

    def issue(
        self,
        role: str,
        session: str,
        source_arn: str,
        duration_s: int,
        *,
        session_policy: str | None = None,
        session_policy_arns: tuple[str, ...] | None = None,
    ) -> dict:
        """Temporary credentials for a role session (also used when Kennel itself runs code as a role).

        Session policies are stored with the session; every request made with its keys is then limited
        to what they allow as well (see ``IdentityDirectory.policies_for``)."""
        return issue_session(
            self.cloud.store, role, session, source_arn, duration_s,
            session_policy=session_policy, session_policy_arns=session_policy_arns, clock=self.cloud.clock,
        )  # fmt: skip


def issue_session(
    store,
    role: str,
    session: str,
    source_arn: str,
    duration_s: int,
    *,
    session_policy: str | None = None,
    session_policy_arns: tuple[str, ...] | None = None,
    clock: Callable[[], float] = time.time,
) -> dict:
    """Write a role session to the store and return its credentials in STS's shape. The gateway's STS
    and services acting as a role use it; so does `kennel env --role` for a role only a service may
    assume (a notebook instance's role), where Kennel acts as that service."""
    now = clock()
    record = {
        "access_key_id": ids.access_key_id(temporary=True),
        "secret": ids.secret_access_key(),
        "session_token": ids.session_token(),
        "role_name": role,
        "session_name": session,
        "source_arn": source_arn,
        "created": now,
        "expires": now + duration_s,
        "session_policy": session_policy,
        "session_policy_arns": json.dumps(list(session_policy_arns))
        if session_policy_arns is not None
        else None,
    }
    with store.write() as conn:
        conn.execute(delete(t.sessions).where(t.sessions.c.expires < now - 86400))  # keep the table small
        conn.execute(t.sessions.insert().values(**record))
    return {
        "AccessKeyId": record["access_key_id"],
        "SecretAccessKey": record["secret"],
        "SessionToken": record["session_token"],
        "Expiration": when(record["expires"]),
    }


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if ":role/" in arn else ""
