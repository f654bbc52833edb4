"""IAM users and their access keys."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from kennel.cloud import ids
from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import user_arn
from kennel.cloud.services.base import Context
from kennel.cloud.services.iam.common import (
    DeleteConflict,
    EntityAlreadyExists,
    LimitExceeded,
    NoSuchEntity,
    paginate,
    when,
)

MAX_KEYS_PER_USER = 2


class UsersMixin:
    cloud: object

    def _user_row(self, conn, name: str):
        row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise NoSuchEntity(f"The user with name {name} cannot be found.")
        return row

    def _user_shape(self, row, account: str) -> dict:
        shape = {
            "Path": row.path,
            "UserName": row.name,
            "UserId": row.user_id,
            "Arn": user_arn(account, row.name, row.path),
            "CreateDate": when(row.created),
        }
        if row.boundary_arn:
            shape["PermissionsBoundary"] = {
                "PermissionsBoundaryType": "Policy",
                "PermissionsBoundaryArn": row.boundary_arn,
            }
        return shape

    def create_user(self, params: dict, ctx: Context) -> dict:
        name = params["UserName"]
        with self.cloud.store.write() as conn:
            exists = conn.execute(
                select(t.users.c.name).where(func.lower(t.users.c.name) == name.lower())
            ).first()
            if exists:
                raise EntityAlreadyExists(f"User with name {name} already exists.")
            row = {
                "name": name,
                "user_id": ids.unique_id("AIDA"),
                "path": params.get("Path", "/"),
                "created": ctx.now.timestamp(),
                "boundary_arn": params.get("PermissionsBoundary"),
            }
            if row["boundary_arn"]:
                self._policy_row(conn, row["boundary_arn"])
            conn.execute(t.users.insert().values(**row))
            created = self._user_row(conn, name)
        return {"User": self._user_shape(created, ctx.account)}

    def get_user(self, params: dict, ctx: Context) -> dict:
        name = params.get("UserName") or (ctx.principal.name if ctx.principal.kind == "user" else None)
        if name is None:
            raise self.validation_error("Must specify userName when calling with non-User credentials")
        with self.cloud.store.read() as conn:
            row = self._user_row(conn, name)
            last = conn.execute(
                select(func.max(t.access_keys.c.last_used)).where(t.access_keys.c.user_name == name)
            ).scalar()
        shape = self._user_shape(row, ctx.account)
        if last:
            shape["PasswordLastUsed"] = when(last)
        return {"User": shape}

    def list_users(self, params: dict, ctx: Context) -> dict:
        prefix = params.get("PathPrefix", "/")
        with self.cloud.store.read() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).all()
        rows = [r for r in rows if r.path.startswith(prefix)]
        page, extra = paginate(rows, params, key=lambda r: (r.name,))
        return {"Users": [self._user_shape(r, ctx.account) for r in page], **extra}

    def delete_user(self, params: dict, ctx: Context) -> dict:
        name = params["UserName"]
        with self.cloud.store.write() as conn:
            self._user_row(conn, name)
            for table, what in (
                (t.access_keys, "access keys"),
                (t.attachments, "attached policies"),
                (t.inline_policies, "inline policies"),
            ):
                column = table.c.user_name if table is t.access_keys else table.c.principal_name
                query = select(func.count()).select_from(table).where(column == name)
                if table is not t.access_keys:
                    query = query.where(table.c.principal_type == "user")
                if conn.execute(query).scalar():
                    raise DeleteConflict(f"Cannot delete entity, must delete {what} first.")
            conn.execute(delete(t.users).where(t.users.c.name == name))
        return {}

    def put_user_permissions_boundary(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._user_row(conn, params["UserName"])
            self._policy_row(conn, params["PermissionsBoundary"])
            conn.execute(
                update(t.users)
                .where(t.users.c.name == params["UserName"])
                .values(boundary_arn=params["PermissionsBoundary"])
            )
        return {}

    def delete_user_permissions_boundary(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._user_row(conn, params["UserName"])
            conn.execute(
                update(t.users).where(t.users.c.name == params["UserName"]).values(boundary_arn=None)
            )
        return {}

    # ----- access keys ------------------------------------------------------------------------------
    def _key_owner(self, params: dict, ctx: Context) -> str:
        name = params.get("UserName") or (ctx.principal.name if ctx.principal.kind == "user" else None)
        if name is None:
            raise self.validation_error("Must specify userName when calling with non-User credentials")
        return name

    def create_access_key(self, params: dict, ctx: Context) -> dict:
        name = self._key_owner(params, ctx)
        key = {
            "access_key_id": ids.access_key_id(),
            "secret": ids.secret_access_key(),
            "user_name": name,
            "status": "Active",
            "created": ctx.now.timestamp(),
        }
        with self.cloud.store.write() as conn:
            self._user_row(conn, name)
            count = conn.execute(
                select(func.count()).select_from(t.access_keys).where(t.access_keys.c.user_name == name)
            ).scalar()
            if count >= MAX_KEYS_PER_USER:
                raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}")
            conn.execute(t.access_keys.insert().values(**key))
        return {
            "AccessKey": {
                "UserName": name,
                "AccessKeyId": key["access_key_id"],
                "Status": "Active",
                "SecretAccessKey": key["secret"],
                "CreateDate": when(key["created"]),
            }
        }

    def list_access_keys(self, params: dict, ctx: Context) -> dict:
        name = self._key_owner(params, ctx)
        with self.cloud.store.read() as conn:
            self._user_row(conn, name)
            rows = conn.execute(
                select(t.access_keys)
                .where(t.access_keys.c.user_name == name)
                .order_by(t.access_keys.c.created)
            ).all()
        page, extra = paginate(rows, params, key=lambda r: (r.created, r.access_key_id))
        metadata = [
            {
                "UserName": r.user_name,
                "AccessKeyId": r.access_key_id,
                "Status": r.status,
                "CreateDate": when(r.created),
            }
            for r in page
        ]
        return {"AccessKeyMetadata": metadata, **extra}

    def _key_row(self, conn, key_id: str, user: str | None):
        query = select(t.access_keys).where(t.access_keys.c.access_key_id == key_id)
        row = conn.execute(query).first()
        if row is None or (user is not None and row.user_name != user):
            raise NoSuchEntity(f"The Access Key with id {key_id} cannot be found.")
        return row

    def update_access_key(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._key_row(conn, params["AccessKeyId"], self._key_owner(params, ctx))
            conn.execute(
                update(t.access_keys)
                .where(t.access_keys.c.access_key_id == params["AccessKeyId"])
                .values(status=params["Status"])
            )
        return {}

    def delete_access_key(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._key_row(conn, params["AccessKeyId"], self._key_owner(params, ctx))
            conn.execute(delete(t.access_keys).where(t.access_keys.c.access_key_id == params["AccessKeyId"]))
        return {}

    def get_access_key_last_used(self, params: dict, ctx: Context) -> dict:
        self.cloud.audit.flush()
        with self.cloud.store.read() as conn:
            row = self._key_row(conn, params["AccessKeyId"], None)
        used = {"ServiceName": row.last_used_service or "N/A", "Region": row.last_used_region or "N/A"}
        if row.last_used:
            used["LastUsedDate"] = when(row.last_used)
        return {"UserName": row.user_name, "AccessKeyLastUsed": used}
