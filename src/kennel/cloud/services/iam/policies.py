"""Managed policies (with versions and attachments) and inline policies of users and roles."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from kennel.cloud import ids
from kennel.cloud.auth import tables as t
from kennel.cloud.policy.policy import PolicyKind
from kennel.cloud.services.base import Context
from kennel.cloud.services.iam.common import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    NoSuchEntity,
    check_document,
    paginate,
    when,
)

MAX_VERSIONS = 5


class IamPoliciesMixin:
    cloud: object

    # ----- managed policies -------------------------------------------------------------------------
    def _policy_row(self, conn, arn: str):
        row = conn.execute(select(t.policies).where(t.policies.c.arn == arn)).first()
        if row is None:
            raise NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")
        return row

    def _policy_shape(self, conn, row) -> dict:
        count = conn.execute(
            select(func.count()).select_from(t.attachments).where(t.attachments.c.policy_arn == row.arn)
        ).scalar()
        shape = {
            "PolicyName": row.name,
            "PolicyId": row.policy_id,
            "Arn": row.arn,
            "Path": row.path,
            "DefaultVersionId": row.default_version,
            "AttachmentCount": count,
            "PermissionsBoundaryUsageCount": 0,
            "IsAttachable": True,
            "CreateDate": when(row.created),
            "UpdateDate": when(row.updated),
        }
        if row.description:
            shape["Description"] = row.description
        return shape

    def create_policy(self, params: dict, ctx: Context) -> dict:
        name, path = params["PolicyName"], params.get("Path", "/")
        document = check_document(params["PolicyDocument"], PolicyKind.IDENTITY, "managed")
        arn = f"arn:aws:iam::{ctx.account}:policy{path}{name}"
        now = ctx.now.timestamp()
        with self.cloud.store.write() as conn:
            if conn.execute(select(t.policies.c.arn).where(t.policies.c.arn == arn)).first():
                raise EntityAlreadyExists(
                    f"A policy called {name} already exists. Duplicate names are not allowed."
                )
            conn.execute(
                t.policies.insert().values(
                    arn=arn,
                    name=name,
                    policy_id=ids.unique_id("ANPA"),
                    path=path,
                    description=params.get("Description"),
                    default_version="v1",
                    aws_managed=False,
                    created=now,
                    updated=now,
                )
            )
            conn.execute(
                t.policy_versions.insert().values(
                    policy_arn=arn, version_id="v1", document=document, created=now
                )
            )
            self.cloud.store.next_value(conn, f"policy-version:{arn}")
            shape = self._policy_shape(conn, self._policy_row(conn, arn))
        return {"Policy": shape}

    def get_policy(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.read() as conn:
            return {"Policy": self._policy_shape(conn, self._policy_row(conn, params["PolicyArn"]))}

    def list_policies(self, params: dict, ctx: Context) -> dict:
        scope = params.get("Scope", "All")
        prefix = params.get("PathPrefix", "/")
        with self.cloud.store.read() as conn:
            rows = conn.execute(select(t.policies).order_by(t.policies.c.name)).all()
            rows = [
                r
                for r in rows
                if r.path.startswith(prefix) and (scope == "All" or (scope == "AWS") == bool(r.aws_managed))
            ]
            shapes = [self._policy_shape(conn, r) for r in rows]
        if params.get("OnlyAttached"):
            shapes = [s for s in shapes if s["AttachmentCount"]]
        page, extra = paginate(shapes, params, key=lambda s: (s["PolicyName"], s["Arn"]))
        return {"Policies": page, **extra}

    def delete_policy(self, params: dict, ctx: Context) -> dict:
        arn = params["PolicyArn"]
        with self.cloud.store.write() as conn:
            row = self._policy_row(conn, arn)
            if row.aws_managed:
                raise InvalidInput("AWS managed policies cannot be deleted.")
            if conn.execute(select(t.attachments).where(t.attachments.c.policy_arn == arn)).first():
                raise DeleteConflict("Cannot delete a policy attached to entities.")
            conn.execute(delete(t.policy_versions).where(t.policy_versions.c.policy_arn == arn))
            conn.execute(delete(t.policies).where(t.policies.c.arn == arn))
        return {}

    # ----- versions ---------------------------------------------------------------------------------
    def _version_shape(self, row, default: str, *, with_document: bool) -> dict:
        shape = {
            "VersionId": row.version_id,
            "IsDefaultVersion": row.version_id == default,
            "CreateDate": when(row.created),
        }
        if with_document:
            shape["Document"] = row.document
        return shape

    def create_policy_version(self, params: dict, ctx: Context) -> dict:
        arn = params["PolicyArn"]
        document = check_document(params["PolicyDocument"], PolicyKind.IDENTITY, "managed")
        with self.cloud.store.write() as conn:
            row = self._policy_row(conn, arn)
            if row.aws_managed:
                raise InvalidInput("AWS managed policies cannot be changed.")
            count = conn.execute(
                select(func.count())
                .select_from(t.policy_versions)
                .where(t.policy_versions.c.policy_arn == arn)
            ).scalar()
            if count >= MAX_VERSIONS:
                raise LimitExceeded(
                    f"A managed policy can have up to {MAX_VERSIONS} versions. "
                    "Before you create a new version, you must delete an existing version."
                )
            version = f"v{self.cloud.store.next_value(conn, f'policy-version:{arn}')}"
            now = ctx.now.timestamp()
            conn.execute(
                t.policy_versions.insert().values(
                    policy_arn=arn, version_id=version, document=document, created=now
                )
            )
            default = row.default_version
            if params.get("SetAsDefault"):
                default = version
            conn.execute(
                update(t.policies).where(t.policies.c.arn == arn).values(default_version=default, updated=now)
            )
            created = conn.execute(
                select(t.policy_versions).where(
                    t.policy_versions.c.policy_arn == arn, t.policy_versions.c.version_id == version
                )
            ).first()
        return {"PolicyVersion": self._version_shape(created, default, with_document=False)}

    def _version_row(self, conn, arn: str, version: str):
        row = conn.execute(
            select(t.policy_versions).where(
                t.policy_versions.c.policy_arn == arn, t.policy_versions.c.version_id == version
            )
        ).first()
        if row is None:
            raise NoSuchEntity(f"Policy {arn} version {version} does not exist or is not attachable.")
        return row

    def get_policy_version(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.read() as conn:
            policy = self._policy_row(conn, params["PolicyArn"])
            row = self._version_row(conn, params["PolicyArn"], params["VersionId"])
        return {"PolicyVersion": self._version_shape(row, policy.default_version, with_document=True)}

    def list_policy_versions(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.read() as conn:
            policy = self._policy_row(conn, params["PolicyArn"])
            rows = conn.execute(
                select(t.policy_versions)
                .where(t.policy_versions.c.policy_arn == params["PolicyArn"])
                .order_by(t.policy_versions.c.created.desc())
            ).all()
        page, extra = paginate(
            rows, params, key=lambda r: (r.created, int(r.version_id[1:])), descending=True
        )
        return {
            "Versions": [self._version_shape(r, policy.default_version, with_document=False) for r in page],
            **extra,
        }

    def set_default_policy_version(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.write() as conn:
            self._policy_row(conn, params["PolicyArn"])
            self._version_row(conn, params["PolicyArn"], params["VersionId"])
            conn.execute(
                update(t.policies)
                .where(t.policies.c.arn == params["PolicyArn"])
                .values(default_version=params["VersionId"], updated=ctx.now.timestamp())
            )
        return {}

    def delete_policy_version(self, params: dict, ctx: Context) -> dict:
        arn, version = params["PolicyArn"], params["VersionId"]
        with self.cloud.store.write() as conn:
            policy = self._policy_row(conn, arn)
            self._version_row(conn, arn, version)
            if policy.default_version == version:
                raise DeleteConflict("Cannot delete the default version of a policy.")
            conn.execute(
                delete(t.policy_versions).where(
                    t.policy_versions.c.policy_arn == arn, t.policy_versions.c.version_id == version
                )
            )
        return {}

    # ----- attachments ------------------------------------------------------------------------------
    def _attach(self, kind: str, name: str, arn: str) -> dict:
        with self.cloud.store.write() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
            self._policy_row(conn, arn)
            key = dict(principal_type=kind, principal_name=name, policy_arn=arn)
            exists = conn.execute(select(t.attachments).filter_by(**key)).first()
            if not exists:
                count = conn.execute(
                    select(func.count())
                    .select_from(t.attachments)
                    .filter_by(principal_type=kind, principal_name=name)
                ).scalar()
                if count >= 20:
                    raise LimitExceeded(f"Cannot exceed quota for PoliciesPer{kind.capitalize()}: 20")
                conn.execute(t.attachments.insert().values(**key))
        return {}

    def _detach(self, kind: str, name: str, arn: str) -> dict:
        with self.cloud.store.write() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
            gone = conn.execute(
                delete(t.attachments).filter_by(principal_type=kind, principal_name=name, policy_arn=arn)
            ).rowcount
            if not gone:
                raise NoSuchEntity(f"Policy {arn} was not found.")
        return {}

    def _attached(self, kind: str, name: str, params: dict) -> dict:
        with self.cloud.store.read() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
            rows = conn.execute(
                select(t.policies.c.name, t.policies.c.arn)
                .join(t.attachments, t.attachments.c.policy_arn == t.policies.c.arn)
                .where(t.attachments.c.principal_type == kind, t.attachments.c.principal_name == name)
                .order_by(t.policies.c.name)
            ).all()
        page, extra = paginate(rows, params, key=lambda r: (r.name, r.arn))
        return {"AttachedPolicies": [{"PolicyName": r.name, "PolicyArn": r.arn} for r in page], **extra}

    def attach_role_policy(self, params: dict, ctx: Context) -> dict:
        return self._attach("role", params["RoleName"], params["PolicyArn"])

    def detach_role_policy(self, params: dict, ctx: Context) -> dict:
        return self._detach("role", params["RoleName"], params["PolicyArn"])

    def attach_user_policy(self, params: dict, ctx: Context) -> dict:
        return self._attach("user", params["UserName"], params["PolicyArn"])

    def detach_user_policy(self, params: dict, ctx: Context) -> dict:
        return self._detach("user", params["UserName"], params["PolicyArn"])

    def list_attached_role_policies(self, params: dict, ctx: Context) -> dict:
        return self._attached("role", params["RoleName"], params)

    def list_attached_user_policies(self, params: dict, ctx: Context) -> dict:
        return self._attached("user", params["UserName"], params)

    def list_entities_for_policy(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.read() as conn:
            self._policy_row(conn, params["PolicyArn"])
            rows = conn.execute(
                select(t.attachments).where(t.attachments.c.policy_arn == params["PolicyArn"])
            ).all()
            users = conn.execute(select(t.users.c.name, t.users.c.user_id)).all()
            roles = conn.execute(select(t.roles.c.name, t.roles.c.role_id)).all()
        user_ids, role_ids = dict(users), dict(roles)
        return {
            "PolicyUsers": [
                {"UserName": r.principal_name, "UserId": user_ids[r.principal_name]}
                for r in rows
                if r.principal_type == "user"
            ],
            "PolicyRoles": [
                {"RoleName": r.principal_name, "RoleId": role_ids[r.principal_name]}
                for r in rows
                if r.principal_type == "role"
            ],
            "PolicyGroups": [],
            "IsTruncated": False,
        }

    # ----- inline policies --------------------------------------------------------------------------
    def _put_inline(self, kind: str, name: str, params: dict) -> dict:
        document = check_document(params["PolicyDocument"], PolicyKind.IDENTITY, f"{kind}-inline")
        key = dict(principal_type=kind, principal_name=name, policy_name=params["PolicyName"])
        with self.cloud.store.write() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
            conn.execute(delete(t.inline_policies).filter_by(**key))
            conn.execute(t.inline_policies.insert().values(**key, document=document))
        return {}

    def _inline_row(self, conn, kind: str, name: str, policy: str):
        (self._user_row if kind == "user" else self._role_row)(conn, name)
        row = conn.execute(
            select(t.inline_policies).filter_by(principal_type=kind, principal_name=name, policy_name=policy)
        ).first()
        if row is None:
            raise NoSuchEntity(f"The {kind} policy with name {policy} cannot be found.")
        return row

    def _get_inline(self, kind: str, name: str, policy: str) -> dict:
        with self.cloud.store.read() as conn:
            row = self._inline_row(conn, kind, name, policy)
        owner = "UserName" if kind == "user" else "RoleName"
        return {owner: name, "PolicyName": policy, "PolicyDocument": row.document}

    def _delete_inline(self, kind: str, name: str, policy: str) -> dict:
        with self.cloud.store.write() as conn:
            self._inline_row(conn, kind, name, policy)
            conn.execute(
                delete(t.inline_policies).filter_by(
                    principal_type=kind, principal_name=name, policy_name=policy
                )
            )
        return {}

    def _list_inline(self, kind: str, name: str, params: dict) -> dict:
        with self.cloud.store.read() as conn:
            (self._user_row if kind == "user" else self._role_row)(conn, name)
            names = (
                conn.execute(
                    select(t.inline_policies.c.policy_name)
                    .filter_by(principal_type=kind, principal_name=name)
                    .order_by(t.inline_policies.c.policy_name)
                )
                .scalars()
                .all()
            )
        page, extra = paginate(list(names), params, key=lambda name: (name,))
        return {"PolicyNames": page, **extra}

    def put_role_policy(self, params: dict, ctx: Context) -> dict:
        return self._put_inline("role", params["RoleName"], params)

    def get_role_policy(self, params: dict, ctx: Context) -> dict:
        return self._get_inline("role", params["RoleName"], params["PolicyName"])

    def delete_role_policy(self, params: dict, ctx: Context) -> dict:
        return self._delete_inline("role", params["RoleName"], params["PolicyName"])

    def list_role_policies(self, params: dict, ctx: Context) -> dict:
        return self._list_inline("role", params["RoleName"], params)

    def put_user_policy(self, params: dict, ctx: Context) -> dict:
        return self._put_inline("user", params["UserName"], params)

    def get_user_policy(self, params: dict, ctx: Context) -> dict:
        return self._get_inline("user", params["UserName"], params["PolicyName"])

    def delete_user_policy(self, params: dict, ctx: Context) -> dict:
        return self._delete_inline("user", params["UserName"], params["PolicyName"])

    def list_user_policies(self, params: dict, ctx: Context) -> dict:
        return self._list_inline("user", params["UserName"], params)
