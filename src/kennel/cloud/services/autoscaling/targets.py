"""RegisterScalableTarget, DescribeScalableTargets, DeregisterScalableTarget."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, delete, select

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.autoscaling import tables as t
from kennel.cloud.services.autoscaling.common import (
    Key,
    ObjectNotFound,
    key_filter,
    key_of,
    page,
    service_linked_role_arn,
    target_arn,
    when,
)
from kennel.cloud.services.base import Context

SUSPENSIONS = ("DynamicScalingInSuspended", "DynamicScalingOutSuspended", "ScheduledScalingSuspended")
TARGETS_PAGE = 50


def where_key(table, key: Key):
    return and_(
        table.c.namespace == key.namespace,
        table.c.resource_id == key.resource_id,
        table.c.dimension == key.dimension,
    )


class TargetsMixin:
    cloud: Any
    variants: Any
    loop: Any
    forget_target: Callable[[Key], None]  # hands over to the controller, which remembers targets

    def target_row(self, conn, key: Key):
        return conn.execute(select(t.targets).where(where_key(t.targets, key))).first()

    def require_target(self, conn, key: Key):
        row = self.target_row(conn, key)
        if row is None:
            raise ObjectNotFound(f"No scalable target registered for {key.describe()}")
        return row

    def register_scalable_target(self, params: dict, ctx: Context) -> dict:
        key = key_of(params)
        low, high = params.get("MinCapacity"), params.get("MaxCapacity")
        for value, label in ((low, "MinCapacity"), (high, "MaxCapacity")):
            if value is not None and value < 0:
                raise ValidationException(f"{label} must be greater than or equal to 0")
        with self.cloud.store.read() as conn:
            existing = self.target_row(conn, key)
        if existing is None:
            if low is None or high is None:
                raise ValidationException(
                    "MinCapacity and MaxCapacity are required to register a new scalable target"
                )
            self.variants.check(key.resource_id)  # the variant must exist (and be InService)
        new_min = low if low is not None else existing.min_capacity
        new_max = high if high is not None else existing.max_capacity
        if new_min > new_max:
            raise ValidationException("Minimum capacity cannot be greater than maximum capacity")
        suspended = {name: False for name in SUSPENSIONS}
        if existing is not None:
            suspended.update(json.loads(existing.suspended))
        suspended.update(
            {k: bool(v) for k, v in (params.get("SuspendedState") or {}).items() if k in SUSPENSIONS}
        )
        settings = self.cloud.settings
        with self.cloud.store.write() as conn:
            if new_min < 1 and self.has_tracking_policy(conn, key):
                raise ValidationException(
                    "SageMaker target tracking needs MinCapacity of at least 1; delete the target-tracking "
                    "policy first or keep MinCapacity >= 1"
                )
            row = self.target_row(conn, key)
            if row is None:
                arn = target_arn(settings.region, settings.account_id)
                conn.execute(
                    t.targets.insert().values(
                        namespace=key.namespace,
                        resource_id=key.resource_id,
                        dimension=key.dimension,
                        arn=arn,
                        min_capacity=new_min,
                        max_capacity=new_max,
                        role_arn=service_linked_role_arn(settings.account_id),
                        suspended=json.dumps(suspended),
                        created=ctx.now.timestamp(),
                        cooldowns="{}",
                    )
                )
            else:
                arn = row.arn
                conn.execute(
                    t.targets.update()
                    .where(where_key(t.targets, key))
                    .values(min_capacity=new_min, max_capacity=new_max, suspended=json.dumps(suspended))
                )
        self.loop.wake()  # capacity outside the new bounds moves inside at once
        return {"ScalableTargetARN": arn}

    def describe_scalable_targets(self, params: dict, ctx: Context) -> dict:
        namespace, _, dimension = key_filter(params)
        query = select(t.targets).where(t.targets.c.namespace == namespace).order_by(t.targets.c.created)
        if dimension:
            query = query.where(t.targets.c.dimension == dimension)
        if params.get("ResourceIds"):
            query = query.where(t.targets.c.resource_id.in_(params["ResourceIds"]))
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()
        chunk, token = page(
            rows, params, limit=TARGETS_PAGE, key=lambda r: (r.created, r.resource_id, r.dimension)
        )
        out: dict[str, Any] = {"ScalableTargets": [_target_shape(r) for r in chunk]}
        if token:
            out["NextToken"] = token
        return out

    def deregister_scalable_target(self, params: dict, ctx: Context) -> dict:
        key = key_of(params)
        with self.cloud.store.write() as conn:
            if self.target_row(conn, key) is None:
                raise ObjectNotFound(f"No scalable target found for {key.describe()}")
            alarms = [
                a["AlarmName"]
                for row in conn.execute(select(t.policies.c.alarms).where(where_key(t.policies, key)))
                for a in json.loads(row.alarms)
            ]
            conn.execute(delete(t.policies).where(where_key(t.policies, key)))
            conn.execute(delete(t.scheduled).where(where_key(t.scheduled, key)))
            conn.execute(delete(t.targets).where(where_key(t.targets, key)))
        self.cloud.alarms.delete_managed_alarms(alarms)
        self.forget_target(key)
        self.variants.prepare(key.resource_id, False)
        return {}

    def has_tracking_policy(self, conn, key: Key) -> bool:
        found = conn.execute(
            select(t.policies.c.arn).where(
                where_key(t.policies, key), t.policies.c.policy_type == "TargetTrackingScaling"
            )
        ).first()
        return found is not None


def _target_shape(row) -> dict:
    return {
        "ServiceNamespace": row.namespace,
        "ResourceId": row.resource_id,
        "ScalableDimension": row.dimension,
        "MinCapacity": row.min_capacity,
        "MaxCapacity": row.max_capacity,
        "RoleARN": row.role_arn,
        "CreationTime": when(row.created),
        "SuspendedState": json.loads(row.suspended),
        "ScalableTargetARN": row.arn,
    }
