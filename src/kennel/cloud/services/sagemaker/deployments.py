"""The endpoint deployment state machine: what an endpoint's status is and how it moves.

Status follows SageMaker: Creating → InService (or Failed with a FailureReason); UpdateEndpoint and
UpdateEndpointWeightsAndCapacities go Updating → InService (a failed update leaves the endpoint on
its previous configuration, InService, with the reason in FailureReason). After a restart of Kennel,
endpoints that were serving report SystemUpdating until their instances answer again.

The operations (``endpoints.py``) validate a request and hand it here; every transition is started
at once and finished in a background task, and every status change is written to the store and kept
in memory, so the data path (``router_for``, the :class:`EndpointDirectory` port) never reads the store.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy import delete, select, update

from kennel.cloud.errors import ValidationError, ValidationException
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import ResourceLimitExceeded, already_exists, dumps, not_found
from kennel.cloud.statestore import StateStore
from kennel.runtime.endpoints.manager import EndpointManager
from kennel.runtime.endpoints.router import Router
from kennel.runtime.endpoints.shared import CapacityError, DeploymentFailed, Endpoint, VariantSpec

_SERVING = ("InService", "Updating", "SystemUpdating")
_RESTORE = ("InService", "Updating", "SystemUpdating", "RollingBack", "Creating")
Desired = dict[str, tuple[float | None, int | None]]  # variant → (weight, instance count), None = keep


def total_instances(specs: list[VariantSpec]) -> int:
    return sum(spec.instance_count for spec in specs)


def load_specs(text: str | None) -> list[VariantSpec]:
    return [VariantSpec(**item) for item in json.loads(text or "[]")]


class EndpointDeployments:
    """Owns the endpoints' statuses and their transitions; the provider's operations call it."""

    def __init__(
        self,
        store: StateStore,
        manager: EndpointManager,
        spawn: Callable[..., None],
        arn: Callable[[str, str], str],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.manager = manager
        self.spawn = spawn  # runs a transition's slow half in a background task
        self.arn = arn
        self.clock = clock  # transitions finish outside any request
        self._lock = threading.RLock()
        self._status: dict[str, str] = {}  # the data path's view, kept in step with the store

    # --- reading -------------------------------------------------------------------------------------

    def row(self, name: str) -> dict[str, Any] | None:
        with self.store.read() as conn:
            row = conn.execute(select(t.endpoints).where(t.endpoints.c.name == name)).mappings().first()
        return dict(row) if row else None

    def live(self, name: str) -> Endpoint | None:
        """The running endpoint (its fleet and router), if instances were ever started for it."""
        return self.manager.endpoints.get(name)

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

    def keep_standby(self, endpoint_name: str, variant_name: str, wanted: bool) -> None:
        """Autoscaling's request for a warm standby instance of a variant that may grow (not an AWS
        operation: the service-internal hook that makes scale-out take seconds, not a model load)."""
        endpoint = self.manager.endpoints.get(endpoint_name)
        if endpoint is not None:
            self.manager.keep_standby(endpoint, variant_name, wanted)

    # --- transitions ---------------------------------------------------------------------------------

    def create(
        self, name: str, config_name: str, specs: list[VariantSpec], tags: list[dict], now: float
    ) -> str:
        """Creating: capacity reserved and the row written now; InService or Failed when the instances
        have started (or not)."""
        arn = self.arn("endpoint", name)
        with self._lock:
            if name in self._status or self.row(name) is not None:
                raise already_exists("endpoint", arn)
            endpoint = self.manager.register(name)
            try:
                self._reserve(endpoint, total_instances(specs))
            except ResourceLimitExceeded:
                self.manager.remove(name)
                raise
            row = {
                "name": name, "arn": arn, "config_name": config_name, "status": "Creating", "created": now,
                "modified": now, "deployment": dumps([asdict(s) for s in specs]), "tags": dumps(tags),
            }  # fmt: skip
            with self.store.write() as conn:
                conn.execute(t.endpoints.insert().values(**row))
            self._status[name] = "Creating"
        self.spawn(self._deploy, name, endpoint, config_name, specs, None)
        return arn

    def delete(self, name: str) -> None:
        with self._lock:
            with self.store.write() as conn:
                gone = conn.execute(delete(t.endpoints).where(t.endpoints.c.name == name)).rowcount
            if not gone:
                raise not_found("endpoint", self.arn("endpoint", name))
            self._status.pop(name, None)
            endpoint = self.manager.detach(name)
        if endpoint is not None:
            self.spawn(self.manager.shutdown, endpoint)

    def update(
        self, name: str, config_name: str, specs: list[VariantSpec], retain: bool, excluded: list[dict]
    ) -> str:
        """Updating: the new configuration's instances start beside the old ones, then take over; a
        failed start rolls back to the old configuration."""
        with self._lock:
            row, endpoint = self._updatable(name)
            if retain:
                specs = _retained(specs, endpoint, excluded)
            self._reserve(endpoint, total_instances(specs))
            self._set(
                name, status="Updating", failure_reason=None, pending=dumps([asdict(s) for s in specs]),
                pending_config=config_name,
            )  # fmt: skip
        self.spawn(self._update, name, endpoint, config_name, specs)
        return row["arn"]

    def scale(self, name: str, desired: Desired) -> str:
        """Updating: variants' weights and instance counts move to ``desired`` in place."""
        with self._lock:
            row, endpoint = self._updatable(name)
            variants = endpoint.fleet.variants
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
        return row["arn"]

    def restore(self) -> None:
        """Bring back what was serving when Kennel stopped (and finish creations it interrupted)."""
        with self.store.read() as conn:
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
            specs = load_specs(row["deployment"])
            endpoint = self.manager.register(name)
            try:
                self._reserve(endpoint, total_instances(specs))
            except ResourceLimitExceeded as exc:
                self._set(
                    name, status="Failed", failure_reason=f"Could not restart the endpoint: {exc.message}"
                )
                self.manager.remove(name)
                continue
            self.spawn(self._deploy, name, endpoint, row["config_name"], specs, note)

    # --- the background halves -----------------------------------------------------------------------

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

    def _update(self, name: str, endpoint: Endpoint, config_name: str, specs: list[VariantSpec]) -> None:
        try:
            self.manager.swap(endpoint, self.manager.launch(endpoint, config_name, specs))
        except DeploymentFailed as exc:
            if not endpoint.cancelled.is_set():
                reason = f"The update was rolled back: {exc.reason}"
                self._set(name, status="InService", pending=None, pending_config=None, failure_reason=reason)
            return
        self._set(
            name, status="InService", config_name=config_name, deployment=dumps([asdict(s) for s in specs]),
            pending=None, pending_config=None, failure_reason=None,
        )  # fmt: skip

    def _scale(self, name: str, endpoint: Endpoint, desired: Desired) -> None:
        failure = None
        try:
            self.manager.scale(endpoint, desired)
        except DeploymentFailed as exc:
            failure = f"The capacity update did not complete: {exc.reason}"
        row = self.row(name)
        if row is None:
            return
        specs = []
        for spec in load_specs(row["deployment"]):
            live = endpoint.fleet.variants.get(spec.name)
            if live is not None:
                spec = replace(spec, instance_count=live.desired_count, weight=live.weight)
            specs.append(spec)
        self._set(
            name, status="InService", deployment=dumps([asdict(s) for s in specs]), failure_reason=failure
        )

    # --- bookkeeping ---------------------------------------------------------------------------------

    def _set(self, name: str, **values: Any) -> None:
        values.setdefault("modified", self.clock())
        with self._lock:
            if name not in self._status:
                return  # deleted meanwhile: nothing to record
            with self.store.write() as conn:
                conn.execute(update(t.endpoints).where(t.endpoints.c.name == name).values(**values))
            if "status" in values:
                self._status[name] = values["status"]

    def _reserve(self, endpoint: Endpoint, count: int) -> None:
        try:
            self.manager.reserve(endpoint, count)
        except CapacityError as exc:
            raise ResourceLimitExceeded(str(exc)) from None

    def _updatable(self, name: str) -> tuple[dict[str, Any], Endpoint]:
        row = self.row(name)
        arn = self.arn("endpoint", name)
        if row is None:
            raise not_found("endpoint", arn)
        endpoint = self.manager.endpoints.get(name)
        if row["status"] != "InService" or endpoint is None:
            raise ValidationException(f'Cannot update in-progress endpoint "{arn}".')
        return row, endpoint


def _retained(specs: list[VariantSpec], endpoint: Endpoint, excluded: list[dict]) -> list[VariantSpec]:
    """RetainAllVariantProperties: keep the live counts and weights unless excluded."""
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
