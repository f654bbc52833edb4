"""Endpoints: the operations answer at once, the instances come and go in background threads.

Status follows SageMaker: Creating → InService (or Failed with a FailureReason); UpdateEndpoint and
UpdateEndpointWeightsAndCapacities go Updating → InService (a failed update leaves the endpoint on
its previous configuration, InService, with the reason in FailureReason). After a restart of Kennel,
endpoints that were serving report SystemUpdating until their instances answer again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import delete, select, update

from kennel.cloud.errors import ValidationError, ValidationException
from kennel.cloud.services.base import Context
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import (
    ResourceLimitExceeded,
    already_exists,
    dumps,
    list_page,
    not_found,
)
from kennel.cloud.services.sagemaker.resources import check_model_data, primary_container
from kennel.runtime.endpoints.manager import (
    CapacityError,
    DeploymentFailed,
    Endpoint,
    EndpointManager,
    VariantSpec,
)
from kennel.runtime.endpoints.router import Router

_SERVING = ("InService", "Updating", "SystemUpdating")
_RESTORE = ("InService", "Updating", "SystemUpdating", "RollingBack", "Creating")


def _total(specs: list[VariantSpec]) -> int:
    return sum(spec.instance_count for spec in specs)


def _load_specs(text: str | None) -> list[VariantSpec]:
    return [VariantSpec(**item) for item in json.loads(text or "[]")]


class EndpointsMixin:
    cloud: Any
    manager: EndpointManager
    _lock: threading.RLock
    _status: dict[str, str]

    # Provided by the provider class and ResourcesMixin.
    arn: Callable[[str, str], str]
    config_record: Callable[[str], dict[str, Any]]
    model_record: Callable[[str], dict[str, Any]]
    spawn: Callable[..., None]

    # --- helpers ---------------------------------------------------------------------------------------

    def resolve_specs(self, config: dict[str, Any]) -> list[VariantSpec]:
        specs = []
        for variant in config["spec"]["ProductionVariants"]:
            container = primary_container(self.model_record(variant["ModelName"])["spec"])
            check_model_data(container.get("ModelDataUrl"), self.cloud.settings.allow_local_model_data)
            specs.append(
                VariantSpec(
                    name=variant["VariantName"],
                    model_name=variant["ModelName"],
                    model_data_url=container.get("ModelDataUrl"),
                    environment=dict(container.get("Environment") or {}),
                    instance_type=variant["InstanceType"],
                    instance_count=int(variant["InitialInstanceCount"]),
                    weight=float(variant.get("InitialVariantWeight", 1.0)),
                    image=container.get("Image"),
                    startup_timeout_s=float(
                        variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or 240
                    ),
                )
            )
        return specs

    def _row(self, name: str) -> dict[str, Any] | None:
        with self.cloud.store.read() as conn:
            row = conn.execute(select(t.endpoints).where(t.endpoints.c.name == name)).mappings().first()
        return dict(row) if row else None

    def _set(self, name: str, **values: Any) -> None:
        values.setdefault("modified", time.time())
        with self._lock:
            if name not in self._status:
                return  # deleted meanwhile: nothing to record
            with self.cloud.store.write() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.name == name).values(**values))
            if "status" in values:
                self._status[name] = values["status"]

    def _reserve(self, endpoint: Endpoint, count: int) -> None:
        try:
            self.manager.reserve(endpoint, count)
        except CapacityError as exc:
            raise ResourceLimitExceeded(str(exc)) from None

    def router_for(self, name: str, account: str) -> Router:
        """The data path's look-up: memory only, no store read per request."""
        status = self._status.get(name)
        if status is not None and status not in _SERVING:
            raise ValidationError(
                f"Endpoint {name} of account {account} is not in service (its status is {status})."
            )
        endpoint = self.manager.endpoints.get(name) if status is not None else None
        if endpoint is None:
            raise ValidationError(f"Endpoint {name} of account {account} not found.")
        return endpoint.router

    # --- operations ------------------------------------------------------------------------------------

    def create_endpoint(self, params: dict, ctx: Context) -> dict:
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        arn = self.arn("endpoint", name)
        specs = self.resolve_specs(self.config_record(config_name))
        now = ctx.now.timestamp()
        with self._lock:
            if name in self._status or self._row(name) is not None:
                raise already_exists("endpoint", arn)
            endpoint = self.manager.register(name)
            try:
                self._reserve(endpoint, _total(specs))
            except ResourceLimitExceeded:
                self.manager.remove(name)
                raise
            with self.cloud.store.write() as conn:
                conn.execute(
                    t.endpoints.insert().values(
                        name=name,
                        arn=arn,
                        config_name=config_name,
                        status="Creating",
                        created=now,
                        modified=now,
                        deployment=dumps([asdict(s) for s in specs]),
                        tags=dumps(params.get("Tags", [])),
                    )
                )
            self._status[name] = "Creating"
        self.spawn(self._deploy, name, endpoint, config_name, specs, None)
        return {"EndpointArn": arn}

    def _deploy(
        self, name: str, endpoint: Endpoint, config_name: str, specs: list[VariantSpec], note: str | None
    ) -> None:
        try:
            self.manager.activate(endpoint, self.manager.launch(endpoint, config_name, specs))
        except DeploymentFailed as exc:
            if not endpoint.cancelled.is_set():
                self._set(name, status="Failed", failure_reason=exc.reason)
                self.manager.remove(name)
            return
        self._set(name, status="InService", failure_reason=note)

    def describe_endpoint(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointName"]
        row = self._row(name)
        if row is None:
            raise not_found("endpoint", self.arn("endpoint", name))
        out: dict[str, Any] = {
            "EndpointName": row["name"],
            "EndpointArn": row["arn"],
            "EndpointConfigName": row["config_name"],
            "EndpointStatus": row["status"],
            "CreationTime": row["created"],
            "LastModifiedTime": row["modified"],
        }
        if row["failure_reason"]:
            out["FailureReason"] = row["failure_reason"][:1024]
        endpoint = self.manager.endpoints.get(name)
        if row["status"] not in ("Creating", "Failed"):
            out["ProductionVariants"] = self._variant_summaries(_load_specs(row["deployment"]), endpoint, row)
        if row["pending"]:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": row["pending_config"] or "",
                "ProductionVariants": [
                    {
                        "VariantName": s.name,
                        "DesiredWeight": s.weight,
                        "DesiredInstanceCount": s.instance_count,
                        "InstanceType": s.instance_type,
                    }
                    for s in _load_specs(row["pending"])
                ],
                "StartTime": row["modified"],
            }
        return out

    def _variant_summaries(
        self, specs: list[VariantSpec], endpoint: Endpoint | None, row: dict
    ) -> list[dict]:
        variants = endpoint.fleet.variants if endpoint is not None else {}
        out = []
        for spec in specs:
            live = variants.get(spec.name)
            summary: dict[str, Any] = {
                "VariantName": spec.name,
                "CurrentWeight": live.weight if live else spec.weight,
                "DesiredWeight": live.desired_weight
                if live and live.desired_weight is not None
                else spec.weight,
                "CurrentInstanceCount": len(live.routable()) if live else 0,
                "DesiredInstanceCount": live.desired_count if live else spec.instance_count,
            }
            if spec.image:
                summary["DeployedImages"] = [
                    {
                        "SpecifiedImage": spec.image,
                        "ResolvedImage": spec.image,
                        "ResolutionTime": row["created"],
                    }
                ]
            out.append(summary)
        return out

    def list_endpoints(self, params: dict, ctx: Context) -> dict:
        c = t.endpoints.c
        with self.cloud.store.read() as conn:
            rows = [
                dict(r)
                for r in conn.execute(select(c.name, c.arn, c.created, c.modified, c.status)).mappings()
            ]
        page, token = list_page(
            rows,
            params,
            sort_keys={
                "Name": lambda r: r["name"],
                "CreationTime": lambda r: r["created"],
                "Status": lambda r: r["status"],
            },
        )
        out: dict[str, Any] = {
            "Endpoints": [
                {
                    "EndpointName": r["name"],
                    "EndpointArn": r["arn"],
                    "CreationTime": r["created"],
                    "LastModifiedTime": r["modified"],
                    "EndpointStatus": r["status"],
                }
                for r in page
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_endpoint(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointName"]
        with self._lock:
            with self.cloud.store.write() as conn:
                gone = conn.execute(delete(t.endpoints).where(t.endpoints.c.name == name)).rowcount
            if not gone:
                raise not_found("endpoint", self.arn("endpoint", name))
            self._status.pop(name, None)
            endpoint = self.manager.detach(name)
        if endpoint is not None:
            self.spawn(self.manager.shutdown, endpoint)
        return {}

    def _updatable(self, name: str) -> tuple[dict[str, Any], Endpoint]:
        row = self._row(name)
        arn = self.arn("endpoint", name)
        if row is None:
            raise not_found("endpoint", arn)
        endpoint = self.manager.endpoints.get(name)
        if row["status"] != "InService" or endpoint is None:
            raise ValidationException(f'Cannot update in-progress endpoint "{arn}".')
        return row, endpoint

    def update_endpoint(self, params: dict, ctx: Context) -> dict:
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        specs = self.resolve_specs(self.config_record(config_name))
        with self._lock:
            row, endpoint = self._updatable(name)
            if params.get("RetainAllVariantProperties"):
                specs = self._retained(specs, endpoint, params.get("ExcludeRetainedVariantProperties") or [])
            self._reserve(endpoint, _total(specs))
            self._set(
                name,
                status="Updating",
                failure_reason=None,
                pending=dumps([asdict(s) for s in specs]),
                pending_config=config_name,
            )
        self.spawn(self._update, name, endpoint, config_name, specs)
        return {"EndpointArn": row["arn"]}

    def _retained(
        self, specs: list[VariantSpec], endpoint: Endpoint, excluded: list[dict]
    ) -> list[VariantSpec]:
        skip = {item.get("VariantPropertyType") for item in excluded}
        out = []
        for spec in specs:
            live = endpoint.fleet.variants.get(spec.name)
            if live is not None:
                if "DesiredInstanceCount" not in skip:
                    spec = replace(spec, instance_count=live.desired_count)
                if "DesiredWeight" not in skip:
                    spec = replace(spec, weight=live.weight)
            out.append(spec)
        return out

    def _update(self, name: str, endpoint: Endpoint, config_name: str, specs: list[VariantSpec]) -> None:
        try:
            self.manager.swap(endpoint, self.manager.launch(endpoint, config_name, specs))
        except DeploymentFailed as exc:
            if not endpoint.cancelled.is_set():
                reason = f"The update was rolled back: {exc.reason}"
                self._set(name, status="InService", pending=None, pending_config=None, failure_reason=reason)
            return
        self._set(
            name,
            status="InService",
            config_name=config_name,
            deployment=dumps([asdict(s) for s in specs]),
            pending=None,
            pending_config=None,
            failure_reason=None,
        )

    def keep_standby(self, endpoint_name: str, variant_name: str, wanted: bool) -> None:
        """Autoscaling's request for a warm standby instance of a variant that may grow (not an AWS
        operation: the service-internal hook that makes scale-out take seconds, not a model load)."""
        endpoint = self.manager.endpoints.get(endpoint_name) if self.manager is not None else None
        if endpoint is not None:
            self.manager.keep_standby(endpoint, variant_name, wanted)

    def update_endpoint_weights_and_capacities(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointName"]
        with self._lock:
            row, endpoint = self._updatable(name)
            variants = endpoint.fleet.variants
            desired: dict[str, tuple[float | None, int | None]] = {}
            for item in params["DesiredWeightsAndCapacities"]:
                desired[item["VariantName"]] = (item.get("DesiredWeight"), item.get("DesiredInstanceCount"))
            missing = sorted(set(desired) - set(variants))
            if missing:
                raise ValidationException(
                    f'The variant(s) "[{", ".join(missing)}]" is/are not present in the endpoint '
                    f'"{row["arn"]}".'
                )
            extra = sum(
                max(0, (count or 0) - variants[v].desired_count)
                for v, (_, count) in desired.items()
                if count is not None
            )
            self._reserve(endpoint, extra)
            self._set(name, status="Updating", failure_reason=None)
        self.spawn(self._scale, name, endpoint, desired)
        return {"EndpointArn": row["arn"]}

    def _scale(
        self, name: str, endpoint: Endpoint, desired: dict[str, tuple[float | None, int | None]]
    ) -> None:
        failure = None
        try:
            self.manager.scale(endpoint, desired)
        except DeploymentFailed as exc:
            failure = f"The capacity update did not complete: {exc.reason}"
        row = self._row(name)
        if row is None:
            return
        specs = []
        for spec in _load_specs(row["deployment"]):
            live = endpoint.fleet.variants.get(spec.name)
            if live is not None:
                spec = replace(spec, instance_count=live.desired_count, weight=live.weight)
            specs.append(spec)
        self._set(
            name, status="InService", deployment=dumps([asdict(s) for s in specs]), failure_reason=failure
        )

    # --- restart ----------------------------------------------------------------------------------------

    def restore(self) -> None:
        """Bring back what was serving when Kennel stopped (and finish creations it interrupted)."""
        with self.cloud.store.read() as conn:
            rows = [dict(r) for r in conn.execute(select(t.endpoints)).mappings()]
        for row in rows:
            name = row["name"]
            self._status[name] = row["status"]
            if row["status"] not in _RESTORE:
                continue
            creating = row["status"] == "Creating"
            note = row["failure_reason"]
            if row["status"] in ("Updating", "RollingBack") or row["pending"]:
                note = (
                    "An update was in progress when Kennel stopped; the endpoint runs its previous "
                    "configuration."
                )
            status = "Creating" if creating else "SystemUpdating"
            self._set(name, status=status, pending=None, pending_config=None, failure_reason=note)
            specs = _load_specs(row["deployment"])
            endpoint = self.manager.register(name)
            try:
                self._reserve(endpoint, _total(specs))
            except ResourceLimitExceeded as exc:
                self._set(
                    name, status="Failed", failure_reason=f"Could not restart the endpoint: {exc.message}"
                )
                self.manager.remove(name)
                continue
            self.spawn(self._deploy, name, endpoint, row["config_name"], specs, note)
