"""Aliases: named pointers to a version, optionally splitting traffic with a second version."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update

from kennel.cloud.services.base import Context
from kennel.cloud.services.lambda_ import common as m
from kennel.cloud.services.lambda_ import tables as t


class AliasesMixin:
    cloud: object

    def _alias_row(self, conn, name: str, alias: str):
        row = conn.execute(
            select(t.aliases).where(t.aliases.c.function == name, t.aliases.c.name == alias)
        ).first()
        if row is None:
            self._function_row(conn, name)
            raise m.user(f"Cannot find alias arn: {self._arn(name, alias)}", m.ResourceNotFound)
        return row

    def _version_of(self, conn, name: str, qualifier: str | None) -> str:
        """The version a qualifier names (an alias's main version; its traffic split is Invoke's business)."""
        if qualifier is None or m.is_version(qualifier):
            return qualifier or m.LATEST
        row = conn.execute(
            select(t.aliases).where(t.aliases.c.function == name, t.aliases.c.name == qualifier)
        ).first()
        if row is None:
            self._function_row(conn, name)
            raise m.user(f"Function not found: {self._arn(name, qualifier)}", m.ResourceNotFound)
        return row.version

    def _alias_shape(self, name: str, row) -> dict:
        out = {
            "AliasArn": self._arn(name, row.name),
            "Name": row.name,
            "FunctionVersion": row.version,
            "Description": row.description,
            "RevisionId": row.revision,
        }
        if row.routing:
            out["RoutingConfig"] = json.loads(row.routing)
        return out

    def _check_routing(self, conn, name: str, version: str, routing: dict | None) -> str | None:
        if routing is None:
            return None
        weights = routing.get("AdditionalVersionWeights") or {}
        if not weights:
            return None
        if len(weights) > 1:
            raise m.user("Number of items in AdditionalVersionWeights cannot be greater than 1")
        if version == m.LATEST:
            raise m.user("$LATEST is not supported for an alias pointing to more than 1 version")
        for other, weight in weights.items():
            if other == version:
                raise m.user(
                    f"Invalid function version {other}. Function version {other} is already "
                    "included in routing configuration."
                )
            if not 0.0 <= weight <= 1.0:
                raise m.user(f"Invalid weight {weight}: weights must lie between 0.0 and 1.0.")
            self._version_row(conn, name, other)
        return json.dumps({"AdditionalVersionWeights": weights})

    def create_alias(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        alias, version = params["Name"], params["FunctionVersion"]
        with self.cloud.store.write() as conn:
            self._version_row(conn, name, version)
            routing = self._check_routing(conn, name, version, params.get("RoutingConfig"))
            found = conn.execute(
                select(t.aliases.c.name).where(t.aliases.c.function == name, t.aliases.c.name == alias)
            ).first()
            if found:
                raise m.user(f"Alias already exists: {self._arn(name, alias)}", m.ResourceConflict)
            conn.execute(
                t.aliases.insert().values(
                    function=name,
                    name=alias,
                    version=version,
                    routing=routing,
                    description=params.get("Description", ""),
                    revision=m.revision(),
                )
            )
            row = self._alias_row(conn, name, alias)
        return self._alias_shape(name, row)

    def get_alias(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.read() as conn:
            return self._alias_shape(name, self._alias_row(conn, name, params["Name"]))

    def list_aliases(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        with self.cloud.store.read() as conn:
            self._function_row(conn, name)
            rows = conn.execute(
                select(t.aliases).where(t.aliases.c.function == name).order_by(t.aliases.c.name)
            ).all()
        if params.get("FunctionVersion"):
            rows = [r for r in rows if r.version == params["FunctionVersion"]]
        chunk, marker = m.page(rows, params.get("Marker"), params.get("MaxItems"), key=lambda r: (r.name,))
        out: dict = {"Aliases": [self._alias_shape(name, r) for r in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out

    def update_alias(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        alias = params["Name"]
        with self.cloud.store.write() as conn:
            row = self._alias_row(conn, name, alias)
            self._check_revision(params, row.revision)
            version = params.get("FunctionVersion", row.version)
            self._version_row(conn, name, version)
            values = {"version": version, "revision": m.revision()}
            if "RoutingConfig" in params:
                values["routing"] = self._check_routing(conn, name, version, params["RoutingConfig"])
            if "Description" in params:
                values["description"] = params["Description"]
            provisioned = conn.execute(
                select(t.provisioned).where(
                    t.provisioned.c.function == name, t.provisioned.c.qualifier == alias
                )
            ).first()
            if provisioned is not None and (values.get("routing") or version == m.LATEST):
                raise m.user(
                    "Alias with weights can not be used with Provisioned Concurrency", m.ResourceConflict
                )
            conn.execute(
                update(t.aliases)
                .where(t.aliases.c.function == name, t.aliases.c.name == alias)
                .values(**values)
            )
            row = self._alias_row(conn, name, alias)
            target = self._version_row(conn, name, version)
        if provisioned is not None:
            # The alias now points elsewhere: its provisioned environments must run the new version.
            self.runtime.provision(name, alias, self._spec(name, target), provisioned.requested)
        return self._alias_shape(name, row)

    def delete_alias(self, params: dict, ctx: Context) -> dict:
        name, _ = self._name(params, qualifier_ok=False)
        alias = params["Name"]
        with self.cloud.store.write() as conn:
            self._alias_row(conn, name, alias)
            for table in (t.provisioned, t.policies, t.event_configs):
                conn.execute(delete(table).where(table.c.function == name, table.c.qualifier == alias))
            conn.execute(delete(t.aliases).where(t.aliases.c.function == name, t.aliases.c.name == alias))
        self.runtime.unprovision(name, alias)
        return {}
