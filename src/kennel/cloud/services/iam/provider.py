"""The IAM provider: operations live in mixins by resource; this class names their resources."""

from __future__ import annotations

import threading

from sqlalchemy import select

from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import role_arn, user_arn
from kennel.cloud.errors import ValidationError
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.iam.access import AccessMixin
from kennel.cloud.services.iam.managed import MANAGED_POLICIES, managed_arn, managed_document
from kennel.cloud.services.iam.policies import IamPoliciesMixin
from kennel.cloud.services.iam.roles import RolesMixin
from kennel.cloud.services.iam.users import UsersMixin


class IamProvider(UsersMixin, RolesMixin, IamPoliciesMixin, AccessMixin, Provider):
    service = "iam"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self._jobs: dict = {}
        self._jobs_lock = threading.Lock()

    @staticmethod
    def validation_error(message: str) -> ValidationError:
        return ValidationError(message)

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        account = ctx.account
        if "UserName" in params:
            return user_arn(account, params["UserName"])
        if "RoleName" in params:
            return role_arn(account, params["RoleName"])
        if "PolicyArn" in params:
            return params["PolicyArn"]
        if "PolicySourceArn" in params:
            return params["PolicySourceArn"]
        if operation in (
            "CreateAccessKey",
            "ListAccessKeys",
            "DeleteAccessKey",
            "UpdateAccessKey",
            "GetUser",
        ):
            return ctx.principal.identity_arn  # acting on the caller's own user
        if operation == "CreatePolicy":
            return f"arn:aws:iam::{account}:policy{params.get('Path', '/')}{params['PolicyName']}"
        return "*"

    def seed(self) -> None:
        """AWS managed policies exist in every account; make sure ours do (idempotent)."""
        now = self.cloud.clock()
        with self.cloud.store.write() as conn:
            for name, (path, description, _) in MANAGED_POLICIES.items():
                arn = managed_arn(name)
                if conn.execute(select(t.policies.c.arn).where(t.policies.c.arn == arn)).first():
                    continue
                conn.execute(
                    t.policies.insert().values(
                        arn=arn,
                        name=name,
                        policy_id="ANPA" + name.upper()[:17].ljust(17, "X"),
                        path=path,
                        description=description,
                        default_version="v1",
                        aws_managed=True,
                        created=now,
                        updated=now,
                    )
                )
                conn.execute(
                    t.policy_versions.insert().values(
                        policy_arn=arn, version_id="v1", document=managed_document(name), created=now
                    )
                )
