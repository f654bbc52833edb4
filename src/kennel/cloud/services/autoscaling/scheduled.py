"""PutScheduledAction, DescribeScheduledActions, DeleteScheduledAction.

Scheduled actions change a target's MinCapacity/MaxCapacity at times given by ``at``, ``rate`` or
``cron`` expressions (see ``kennel.runtime.autoscaling.schedule``); the controller runs them when due
and moves the capacity inside the new bounds, without cooldowns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.autoscaling import tables as t
from kennel.cloud.services.autoscaling.common import (
    ObjectNotFound,
    key_filter,
    key_of,
    page,
    scheduled_arn,
    when,
)
from kennel.cloud.services.autoscaling.targets import where_key
from kennel.cloud.services.base import Context
from kennel.runtime.autoscaling.schedule import ScheduleError, parse, zone

SCHEDULED_PAGE = 50


class ScheduledMixin:
    cloud: Any
    loop: Any
    require_target: Any

    def put_scheduled_action(self, params: dict, ctx: Context) -> dict:
        key = key_of(params)
        name = params["ScheduledActionName"]
        with self.cloud.store.read() as conn:
            self.require_target(conn, key)
            old = conn.execute(
                select(t.scheduled).where(where_key(t.scheduled, key), t.scheduled.c.name == name)
            ).first()
        if old is None and not params.get("Schedule"):
            raise ValidationException("Schedule is required when creating a scheduled action")
        schedule = params.get("Schedule") or old.schedule
        timezone = params.get("Timezone") or (old.timezone if old is not None else None)
        try:
            parse(schedule)
            zone(timezone)
        except ScheduleError as exc:
            raise ValidationException(str(exc)) from None
        action = params.get("ScalableTargetAction") or {}
        low = action.get("MinCapacity", old.min_capacity if old is not None and not action else None)
        high = action.get("MaxCapacity", old.max_capacity if old is not None and not action else None)
        if low is None and high is None:
            raise ValidationException("ScalableTargetAction must specify MinCapacity, MaxCapacity or both")
        if any(v is not None and v < 0 for v in (low, high)):
            raise ValidationException("MinCapacity and MaxCapacity must be greater than or equal to 0")
        if low is not None and high is not None and low > high:
            raise ValidationException("Minimum capacity cannot be greater than maximum capacity")
        start = params["StartTime"].timestamp() if params.get("StartTime") else (old.start if old else None)
        end = params["EndTime"].timestamp() if params.get("EndTime") else (old.end if old else None)
        if start is not None and end is not None and end <= start:
            raise ValidationException("EndTime must be after StartTime")
        settings = self.cloud.settings
        row = {
            "arn": old.arn
            if old is not None
            else scheduled_arn(settings.region, settings.account_id, key, name),
            "name": name,
            "namespace": key.namespace,
            "resource_id": key.resource_id,
            "dimension": key.dimension,
            "schedule": schedule,
            "timezone": timezone,
            "start": start,
            "end": end,
            "min_capacity": low,
            "max_capacity": high,
            "created": old.created if old is not None else ctx.now.timestamp(),
            # A changed schedule starts afresh; an unchanged one keeps its last run (no second at() run).
            "last_run": old.last_run if old is not None and old.schedule == schedule else None,
        }
        with self.cloud.store.write() as conn:
            conn.execute(delete(t.scheduled).where(t.scheduled.c.arn == row["arn"]))
            conn.execute(t.scheduled.insert().values(**row))
        self.loop.wake()
        return {}

    def describe_scheduled_actions(self, params: dict, ctx: Context) -> dict:
        namespace, resource_id, dimension = key_filter(params)
        c = t.scheduled.c
        query = select(t.scheduled).where(c.namespace == namespace).order_by(c.created, c.name)
        if resource_id:
            query = query.where(c.resource_id == resource_id)
        if dimension:
            query = query.where(c.dimension == dimension)
        if params.get("ScheduledActionNames"):
            query = query.where(c.name.in_(params["ScheduledActionNames"]))
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()
        chunk, token = page(rows, params, limit=SCHEDULED_PAGE, key=lambda r: (r.created, r.name, r.arn))
        out: dict[str, Any] = {"ScheduledActions": [_shape(r) for r in chunk]}
        if token:
            out["NextToken"] = token
        return out

    def delete_scheduled_action(self, params: dict, ctx: Context) -> dict:
        key = key_of(params)
        name = params["ScheduledActionName"]
        with self.cloud.store.write() as conn:
            gone = conn.execute(
                delete(t.scheduled).where(where_key(t.scheduled, key), t.scheduled.c.name == name)
            )
            if not gone.rowcount:
                raise ObjectNotFound(
                    f"No scheduled action found for {key.describe()}, scheduled action name: {name}"
                )
        return {}


def _shape(row) -> dict:
    action = {
        k: v
        for k, v in (("MinCapacity", row.min_capacity), ("MaxCapacity", row.max_capacity))
        if v is not None
    }
    out = {
        "ScheduledActionName": row.name,
        "ScheduledActionARN": row.arn,
        "ServiceNamespace": row.namespace,
        "Schedule": row.schedule,
        "ResourceId": row.resource_id,
        "ScalableDimension": row.dimension,
        "ScalableTargetAction": action,
        "CreationTime": when(row.created),
    }
    if row.timezone:
        out["Timezone"] = row.timezone
    if row.start is not None:
        out["StartTime"] = when(row.start)
    if row.end is not None:
        out["EndTime"] = when(row.end)
    return out
