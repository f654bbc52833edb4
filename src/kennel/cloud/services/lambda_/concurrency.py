"""Account settings, reserved concurrency and provisioned concurrency configurations.

The rules (≥100 unreserved, provisioned within reserved) are ``kennel.runtime.functions.admission``'s
pure checks; this module reads the numbers from the store, stores the result and tells the runtime.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select, update

from kennel.cloud.services.base import Context
from kennel.cloud.services.lambda_ import common as m
from kennel.cloud.services.lambda_ import tables as t
from kennel.runtime.functions.admission import check_provisioned, check_reserved, unreserved

_NOT_PUBLISHED = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
_NOT_QUALIFIED = "The function resource provided must be an alias or a published version."


class ConcurrencyMixin:
    cloud: object

    @property
    def account_limit(self) -> int:
        return self.cloud.settings.lambda_concurrency_limit

    def get_account_settings(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.read() as conn:
            reserved = conn.execute(select(func.coalesce(func.sum(t.functions.c.reserved), 0))).scalar()
            count = conn.execute(select(func.count()).select_from(t.functions)).scalar()
            code = conn.execute(select(func.coalesce(func.sum(t.versions.c.code_size), 0))).scalar()
        return {
            "AccountLimit": {
                "TotalCodeSize": m.TOTAL_CODE_SIZE,
                "CodeSizeUnzipped": m.MAX_UNZIPPED_BYTES,
                "CodeSizeZipped": m.MAX_ZIP_BYTES,
                "ConcurrentExecutions": self.account_limit,
                "UnreservedConcurrentExecutions": unreserved(self.account_limit, reserved),
            },
            "AccountUsage": {"TotalCodeSize": code, "FunctionCount": count},
        }

    # ----- reserved concurrency ---------------------------------------------------------------------
    def put_function_concurrency(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        requested = params["ReservedConcurrentExecutions"]
        with self.cloud.store.write() as conn:
            self._function_row(conn, name)
            elsewhere = conn.execute(
                select(func.coalesce(func.sum(t.functions.c.reserved), 0)).where(t.functions.c.name != name)
            ).scalar()
            provisioned = conn.execute(
                select(func.coalesce(func.sum(t.provisioned.c.requested), 0)).where(
                    t.provisioned.c.function == name
                )
            ).scalar()
            problem = check_reserved(self.account_limit, elsewhere, requested, provisioned)
            if problem:
                raise m.user(problem)
            conn.execute(update(t.functions).where(t.functions.c.name == name).values(reserved=requested))
        self.runtime.set_reserved(name, requested)
        return {"ReservedConcurrentExecutions": requested}

    def get_function_concurrency(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.read() as conn:
            row = self._function_row(conn, name)
        return {} if row.reserved is None else {"ReservedConcurrentExecutions": row.reserved}

    def delete_function_concurrency(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.write() as conn:
            self._function_row(conn, name)
            conn.execute(update(t.functions).where(t.functions.c.name == name).values(reserved=None))
        self.runtime.set_reserved(name, None)
        return {}

    # ----- provisioned concurrency ------------------------------------------------------------------
    def _provisioned_target(self, conn, name: str, qualifier: str | None, *, for_put: bool):
        """The version row a provisioned configuration on ``qualifier`` runs (aliases resolved)."""
        if not qualifier or qualifier == m.LATEST:
            raise m.user(_NOT_PUBLISHED if for_put else _NOT_QUALIFIED)
        if m.is_version(qualifier):
            return self._version_row(conn, name, qualifier)
        alias = self._alias_row(conn, name, qualifier)
        if for_put and alias.version == m.LATEST:
            raise m.user(_NOT_PUBLISHED)
        if for_put and alias.routing and json.loads(alias.routing).get("AdditionalVersionWeights"):
            raise m.user(
                "Alias with weights can not be used with Provisioned Concurrency", m.ResourceConflict
            )
        return self._version_row(conn, name, alias.version)

    def put_provisioned_concurrency_config(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        requested = params["ProvisionedConcurrentExecutions"]
        now = ctx.now.timestamp()
        with self.cloud.store.write() as conn:
            fn = self._function_row(conn, name)
            target = self._provisioned_target(conn, name, qualifier, for_put=True)
            self._check_provisioned_overlap(conn, name, qualifier, target.version)
            rows = conn.execute(
                select(t.provisioned, t.functions.c.reserved).join(
                    t.functions, t.functions.c.name == t.provisioned.c.function
                )
            ).all()
            others = [r for r in rows if (r.function, r.qualifier) != (name, qualifier)]
            reserved_total = conn.execute(select(func.coalesce(func.sum(t.functions.c.reserved), 0))).scalar()
            problem = check_provisioned(
                self.account_limit,
                reserved_total,
                fn.reserved,
                sum(r.requested for r in others if r.function == name),
                sum(r.requested for r in others if r.reserved is None),
                requested,
            )
            if problem:
                raise m.user(problem)
            conn.execute(
                delete(t.provisioned).where(
                    t.provisioned.c.function == name, t.provisioned.c.qualifier == qualifier
                )
            )
            conn.execute(
                t.provisioned.insert().values(
                    function=name, qualifier=qualifier, requested=requested, modified=now
                )
            )
        self.runtime.provision(name, qualifier, self._spec(name, target), requested)
        return {
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": 0,
            "AllocatedProvisionedConcurrentExecutions": 0,
            "Status": "IN_PROGRESS",
            "LastModified": m.lambda_time(now),
        }

    def _check_provisioned_overlap(self, conn, name: str, qualifier: str, version: str) -> None:
        """One configuration per version: an alias and its version cannot both provision it."""
        for row in conn.execute(select(t.provisioned).where(t.provisioned.c.function == name)).all():
            if row.qualifier == qualifier:
                continue
            other = self._version_of(conn, name, row.qualifier)
            if other == version:
                if m.is_version(qualifier):
                    raise m.user("Version is pointed by a Provisioned Concurrency alias", m.ResourceConflict)
                raise m.user(
                    "Alias can't be used for Provisioned Concurrency configuration on an already "
                    "Provisioned version",
                    m.ResourceConflict,
                )

    def _provisioned_shape(self, name: str, row) -> dict:
        status = self.runtime.provisioned_status(name, row.qualifier)
        out = {
            "RequestedProvisionedConcurrentExecutions": row.requested,
            "AvailableProvisionedConcurrentExecutions": status.available if status else 0,
            "AllocatedProvisionedConcurrentExecutions": status.allocated if status else 0,
            "Status": status.status if status else "IN_PROGRESS",
            "LastModified": m.lambda_time(row.modified),
        }
        if status and status.reason:
            out["StatusReason"] = status.reason
        return out

    def _provisioned_row(self, conn, name: str, qualifier: str | None):
        self._provisioned_target(conn, name, qualifier, for_put=False)
        row = conn.execute(
            select(t.provisioned).where(
                t.provisioned.c.function == name, t.provisioned.c.qualifier == qualifier
            )
        ).first()
        if row is None:
            raise m.user("No Provisioned Concurrency Config found for this function", m.ProvisionedNotFound)
        return row

    def get_provisioned_concurrency_config(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        with self.cloud.store.read() as conn:
            row = self._provisioned_row(conn, name, qualifier)
        return self._provisioned_shape(name, row)

    def list_provisioned_concurrency_configs(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.read() as conn:
            self._function_row(conn, name)
            rows = conn.execute(
                select(t.provisioned)
                .where(t.provisioned.c.function == name)
                .order_by(t.provisioned.c.qualifier)
            ).all()
        chunk, marker = m.page(
            rows, params.get("Marker"), params.get("MaxItems"), key=lambda r: (r.qualifier,)
        )
        items = [
            {"FunctionArn": self._arn(name, r.qualifier), **self._provisioned_shape(name, r)} for r in chunk
        ]
        out: dict = {"ProvisionedConcurrencyConfigs": items}
        if marker:
            out["NextMarker"] = marker
        return out

    def delete_provisioned_concurrency_config(self, params: dict, ctx: Context) -> dict:
        name, qualifier = self._name(params)
        with self.cloud.store.write() as conn:
            self._provisioned_target(conn, name, qualifier, for_put=False)  # deleting nothing is fine
            conn.execute(
                delete(t.provisioned).where(
                    t.provisioned.c.function == name, t.provisioned.c.qualifier == qualifier
                )
            )
        self.runtime.unprovision(name, qualifier)
        return {}

    def _restore_provisioned(self) -> None:
        """After a restart: reserved concurrency to the runtime, provisioned environments started again."""
        with self.cloud.store.read() as conn:
            for row in conn.execute(select(t.functions.c.name, t.functions.c.reserved)).all():
                if row.reserved is not None:
                    self.runtime.set_reserved(row.name, row.reserved)
            targets = []
            for row in conn.execute(select(t.provisioned)).all():
                try:
                    version = self._version_of(conn, row.function, row.qualifier)
                    targets.append((row, self._version_row(conn, row.function, version)))
                except m.ResourceNotFound:
                    continue
        for row, target in targets:
            self.runtime.provision(
                row.function, row.qualifier, self._spec(row.function, target), row.requested
            )
