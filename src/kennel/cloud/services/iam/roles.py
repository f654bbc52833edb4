"""IAM roles and their trust policies."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from kennel.cloud import ids
from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import role_arn
from kennel.cloud.policy.policy import PolicyKind
from kennel.cloud.services.base import Context
from kennel.cloud.services.iam.common import (
    DeleteConflict,
    EntityAlreadyExists,
    NoSuchEntity,
    check_document,
    paginate,
    when,
)


class RolesMixin:
    cloud: object

    def _role_row(self, conn, name: str):
        row = conn.execute(select(t.roles).where(t.roles.c.name == name)).first()
        if row is None:
            raise NoSuchEntity(f"The role with name {name} cannot be found.")
        return row

    def _role_shape(self, row, account: str, *, detailed: bool = False) -> dict:
        shape = {
            "Path": row.path,
            "RoleName": row.name,
            "RoleId": row.role_id,
            "Arn": role_arn(account, row.name, row.path),
            "CreateDate": when(row.created),
            "AssumeRolePolicyDocument": row.trust_policy,
            "MaxSessionDuration": row.max_session_duration,
        }
        if row.description:
            shape["Description"] = row.description
        if row.boundary_arn:
            shape["PermissionsBoundary"] = {
                "PermissionsBoundaryType": "Policy",
                "PermissionsBoundaryArn": row.boundary_arn,
            }
        if detailed:
            # RoleLastUsed comes from the audit trail: the last allowed request made with the role.
            shape["RoleLastUsed"] = (
                {"LastUsedDate": when(row.last_used), "Region": row.last_used_region} if row.last_used else {}
            )
        return shape

    def create_role(self, params: dict, ctx: Context) -> dict:
        name = params["RoleName"]
        trust = check_document(params["AssumeRolePolicyDocument"], PolicyKind.TRUST, "trust")
        with self.cloud.store.write() as conn:
            if conn.execute(select(t.roles.c.name).where(func.lower(t.roles.c.name) == name.lower())).first():
                raise EntityAlreadyExists(f"Role with name {name} already exists.")
            if params.get("PermissionsBoundary"):
                self._policy_row(conn, params["PermissionsBoundary"])
            conn.execute(
                t.roles.insert().values(
                    name=name,
                    role_id=ids.unique_id("AROA"),
                    path=params.get("Path", "/"),
                    trust_policy=trust,
                    description=params.get("Description"),
                    max_session_duration=params.get("MaxSessionDuration", 3600),
                    created=ctx.now.timestamp(),
                    boundary_arn=params.get("PermissionsBoundary"),
                )
            )
            row = self._role_row(conn, name)
        return {"Role": self._role_shape(row, ctx.account)}

    def get_role(self, params: dict, ctx: Context) -> dict:
        self.cloud.audit.flush()  # so RoleLastUsed includes the requests just made
        with self.cloud.store.read() as conn:
            row = self._role_row(conn, params["RoleName"])
        return {"Role": self._role_shape(row, ctx.account, detailed=True)}

    def list_roles(self, params: dict, ctx: Context) -> dict:
        prefix = params.get("PathPrefix", "/")
        with self.cloud.store.read() as conn:
            rows = conn.execute(select(t.roles).order_by(t.roles.c.name)).all()
        rows = [r for r in rows if r.path.startswith(prefix)]
        page, extra = paginate(rows, params, key=lambda r: (r.name,))
        return {"Roles": [self._role_shape(r, ctx.account) for r in page], **extra}

    def update_role(self, params: dict, ctx: Context) -> dict:
        values = {}
        if "Description" in params:
            values["description"] = params["Description"]
        if "MaxSessionDuration" in params:
            values["max_session_duration"] = params["MaxSessionDuration"]
        with self.cloud.store.write() as conn:
            self._role_row(conn, params["RoleName"])
            if values:
                conn.execute(update(t.roles).where(t.roles.c.name == params["RoleName"]).values(**values))
        return {}

    def update_assume_role_policy(self, params: dict, ctx: Context) -> dict:
        trust = check_document(params["PolicyDocument"], PolicyKind.TRUST, "trust")
        with self.cloud.store.write() as conn:
            self._role_row(conn, params["RoleName"])
            conn.execute(
                update(t.roles).where(t.roles.c.name == params["RoleName"]).values(trust_policy=trust)
            )
        return {}

    def delete_role(self, params: dict, ctx: Context) -> dict:
        name = params["RoleName"]
        with self.cloud.store.write() as conn:
            self._role_row(conn, name)
            for table, what in ((t.attachments, "attached policies"), (t.inline_policies, "inline policies")):
                count = conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.principal_type == "role", table.c.principal_name == name)
                ).scalar()
                if count:
                    raise DeleteConflict(f"Cannot delete entity, must remove {what} first.")
            conn.execute(delete(t.sessions).where(t.sessions.c.role_name == name))
            conn.execute(delete(t.roles).where(t.roles.c.name == name))
        return {}

    def put_role_permissions_boundary(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._role_row(conn, params["RoleName"])
            self._policy_row(conn, params["PermissionsBoundary"])
            conn.execute(
                update(t.roles)
                .where(t.roles.c.name == params["RoleName"])
                .values(boundary_arn=params["PermissionsBoundary"])
            )
        return {}

    def delete_role_permissions_boundary(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._role_row(conn, params["RoleName"])
            conn.execute(
                update(t.roles).where(t.roles.c.name == params["RoleName"]).values(boundary_arn=None)
            )
        return {}
