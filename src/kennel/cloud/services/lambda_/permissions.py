"""Function policies (AddPermission, GetPolicy, RemovePermission): resource policies for Invoke.

One policy per function and qualifier, as AWS keeps them: a statement added with a Qualifier grants
on the alias or version only. Invoke evaluates the policy of exactly what the caller named.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import delete, select

from kennel.cloud.policy.policy import MalformedPolicyDocument, PolicyKind, parse_policy
from kennel.cloud.services.base import Context
from kennel.cloud.services.lambda_ import common as m
from kennel.cloud.services.lambda_ import tables as t

_ACTION = re.compile(r"^(lambda:[*]|lambda:[a-zA-Z]+|[*])$")


def principal_element(principal: str, account: str) -> str | dict:
    """AddPermission's Principal as the policy states it."""
    if principal == "*":
        return "*"
    if re.fullmatch(r"\d{12}", principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:"):
        return {"AWS": principal}
    if re.fullmatch(r"[a-z0-9.-]+\.amazonaws\.com(\.cn)?", principal):
        return {"Service": principal}
    raise m.user(f"The provided principal was invalid. Please check the principal and try again: {principal}")


class PermissionsMixin:
    cloud: object

    def _policy_row(self, conn, name: str, qualifier: str | None):
        return conn.execute(
            select(t.policies).where(
                t.policies.c.function == name, t.policies.c.qualifier == (qualifier or "")
            )
        ).first()

    def _check_qualifier(self, conn, name: str, qualifier: str | None) -> None:
        self._function_row(conn, name)
        if qualifier and qualifier != m.LATEST:
            if m.is_version(qualifier):
                self._version_row(conn, name, qualifier)
            else:
                self._alias_row(conn, name, qualifier)

    def add_permission(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        if not _ACTION.match(params["Action"]):
            raise m.user(f"The action {params['Action']} is not a Lambda action.")
        statement: dict = {
            "Sid": params["StatementId"],
            "Effect": "Allow",
            "Principal": principal_element(params["Principal"], ctx.account),
            "Action": params["Action"],
            "Resource": self._arn(name, qualifier),
        }
        condition: dict = {}
        if params.get("SourceArn"):
            condition.setdefault("ArnLike", {})["AWS:SourceArn"] = params["SourceArn"]
        if params.get("SourceAccount"):
            condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = params["SourceAccount"]
        if params.get("PrincipalOrgID"):
            condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = params["PrincipalOrgID"]
        if params.get("EventSourceToken"):
            condition.setdefault("StringEquals", {})["lambda:EventSourceToken"] = params["EventSourceToken"]
        if condition:
            statement["Condition"] = condition
        with self.cloud.store.write() as conn:
            self._check_qualifier(conn, name, qualifier)
            row = self._policy_row(conn, name, qualifier)
            document = (
                json.loads(row.document)
                if row
                else {"Version": "2012-10-17", "Id": "default", "Statement": []}
            )
            if row is not None:
                self._check_revision(params, row.revision)
            if any(s.get("Sid") == statement["Sid"] for s in document["Statement"]):
                raise m.user(
                    "The statement id (sid) provided already exists. Please provide a new statement id, "
                    "or remove the existing statement.",
                    m.ResourceConflict,
                )
            document["Statement"].append(statement)
            text = json.dumps(document, separators=(",", ":"))
            try:
                parse_policy(text, kind=PolicyKind.RESOURCE)
            except MalformedPolicyDocument as exc:
                raise m.user(f"The policy statement is invalid: {exc}") from None
            self._save_policy(conn, name, qualifier, text)
        return {"Statement": json.dumps(statement, separators=(",", ":"))}

    def _save_policy(self, conn, name: str, qualifier: str | None, text: str | None) -> None:
        conn.execute(
            delete(t.policies).where(
                t.policies.c.function == name, t.policies.c.qualifier == (qualifier or "")
            )
        )
        if text is not None:
            conn.execute(
                t.policies.insert().values(
                    function=name, qualifier=qualifier or "", document=text, revision=m.revision()
                )
            )

    def get_policy(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        with self.cloud.store.read() as conn:
            self._check_qualifier(conn, name, qualifier)
            row = self._policy_row(conn, name, qualifier)
        if row is None:
            raise m.user("The resource you requested does not exist.", m.ResourceNotFound)
        return {"Policy": row.document, "RevisionId": row.revision}

    def remove_permission(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        sid = params["StatementId"]
        with self.cloud.store.write() as conn:
            self._check_qualifier(conn, name, qualifier)
            row = self._policy_row(conn, name, qualifier)
            document = json.loads(row.document) if row else {"Statement": []}
            kept = [s for s in document["Statement"] if s.get("Sid") != sid]
            if row is None or len(kept) == len(document["Statement"]):
                raise m.user(f"Statement {sid} is not found in resource policy.", m.ResourceNotFound)
            self._check_revision(params, row.revision)
            document["Statement"] = kept
            self._save_policy(
                conn, name, qualifier, json.dumps(document, separators=(",", ":")) if kept else None
            )
        return {}

    def function_policies(self, name: str, qualifier: str | None) -> list:
        """The parsed resource policy Invoke evaluates for ``name[:qualifier]`` (cached per revision)."""
        with self.cloud.store.read() as conn:
            row = self._policy_row(conn, name, qualifier)
        if row is None:
            return []
        label = f"{name}:{qualifier}" if qualifier else name
        key = f"lambda-policy:{label}:{row.revision}"
        return [
            self.cloud.identities.parsed(key, f"function policy {label}", row.document, PolicyKind.RESOURCE)
        ]
