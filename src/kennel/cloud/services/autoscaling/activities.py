"""DescribeScalingActivities and the writing of activities, in AWS's words.

A scaling activity starts Pending, becomes InProgress once SageMaker accepted the new instance count,
and ends Successful when the variant serves that count — or Failed (SageMaker refused), Unfulfilled
(the endpoint settled elsewhere) or Overridden (a newer activity replaced it). Decisions not to scale
are recorded as Failed activities with NotScaledReasons, shown only with IncludeNotScaledActivities;
a repeat of the previous not-scaled record (same reasons, same cause) is not written again, so an
endpoint held at its maximum leaves one record per episode instead of one per minute. History older
than six weeks is dropped, as in AWS.

``ActivitiesMixin`` is the provider's DescribeScalingActivities; ``ActivityLog`` writes the activities and
is handed to the ``ScalingController`` (the only writer), so the controller needs no provider to record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select

from kennel.cloud.services.autoscaling import tables as t
from kennel.cloud.services.autoscaling.common import Key, key_filter, new_id, page, when
from kennel.cloud.services.autoscaling.targets import where_key
from kennel.cloud.services.base import Context
from kennel.cloud.statestore import StateStore
from kennel.runtime.autoscaling.policy import NotScaled

ACTIVITIES_PAGE = 50
KEPT_S = 42 * 86_400
OPEN = ("Pending", "InProgress")


class ActivitiesMixin:
    cloud: Any

    def describe_scaling_activities(self, params: dict, ctx: Context) -> dict:
        namespace, resource_id, dimension = key_filter(params)
        c = t.activities.c
        query = select(t.activities).where(c.namespace == namespace).order_by(c.seq.desc())
        if resource_id:
            query = query.where(c.resource_id == resource_id)
        if dimension:
            query = query.where(c.dimension == dimension)
        if not params.get("IncludeNotScaledActivities"):
            query = query.where(c.not_scaled.is_(None))
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()
        chunk, token = page(rows, params, limit=ACTIVITIES_PAGE, key=lambda r: (r.seq,), descending=True)
        out: dict[str, Any] = {"ScalingActivities": [_shape(r) for r in chunk]}
        if token:
            out["NextToken"] = token
        return out


class ActivityLog:
    """The scaling activities table as the controller writes it, stamped with the provider's clock."""

    def __init__(self, store: StateStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def start(self, key: Key, description: str, cause: str, capacity: int | None) -> str:
        """A new Pending activity; returns its id."""
        activity_id = new_id()
        now = self._clock()
        with self._store.write(bump=False) as conn:
            conn.execute(
                t.activities.insert().values(
                    activity_id=activity_id,
                    namespace=key.namespace,
                    resource_id=key.resource_id,
                    dimension=key.dimension,
                    description=description,
                    cause=cause,
                    start=now,
                    status="Pending",
                    capacity=capacity,
                )
            )
            conn.execute(delete(t.activities).where(t.activities.c.start < now - KEPT_S))
        return activity_id

    def finish(self, activity_id: str, status: str, message: str | None = None) -> None:
        """Move an activity on: InProgress, or an end status (which stamps its end time)."""
        values: dict[str, Any] = {"status": status, "status_message": message}
        if status not in OPEN:
            values["end"] = self._clock()
        with self._store.write(bump=False) as conn:
            conn.execute(
                t.activities.update().where(t.activities.c.activity_id == activity_id).values(**values)
            )

    def record_done(self, key: Key, description: str, cause: str, message: str) -> None:
        """An activity that completed as it was made (a scheduled change of the bounds)."""
        self.finish(self.start(key, description, cause, None), "Successful", message)

    def record_not_scaled(self, key: Key, cause: str, reasons: tuple[NotScaled, ...]) -> bool:
        """Write a not-scaled activity unless it repeats the previous one; returns whether it wrote."""
        encoded = json.dumps([_reason(r) for r in reasons])
        c = t.activities.c
        with self._store.write(bump=False) as conn:
            last = conn.execute(
                select(c.not_scaled, c.cause)
                .where(where_key(t.activities, key))
                .order_by(c.seq.desc())
                .limit(1)
            ).first()
            if last is not None and last.not_scaled == encoded and last.cause == cause:
                return False
            now = self._clock()
            conn.execute(
                t.activities.insert().values(
                    activity_id=new_id(),
                    namespace=key.namespace,
                    resource_id=key.resource_id,
                    dimension=key.dimension,
                    description="Attempting to scale due to alarm triggered",
                    cause=cause,
                    start=now,
                    end=now,
                    status="Failed",
                    not_scaled=encoded,
                )
            )
        return True

    def in_flight(self, key: Key) -> list:
        """The target's Pending and InProgress activities, oldest first."""
        c = t.activities.c
        with self._store.read() as conn:
            return conn.execute(
                select(t.activities).where(where_key(t.activities, key), c.status.in_(OPEN)).order_by(c.seq)
            ).all()


def _reason(reason: NotScaled) -> dict:
    out: dict[str, Any] = {"Code": reason.code}
    for field, value in (
        ("MaxCapacity", reason.max_capacity),
        ("MinCapacity", reason.min_capacity),
        ("CurrentCapacity", reason.current_capacity),
    ):
        if value is not None:
            out[field] = value
    return out


def _shape(row) -> dict:
    out: dict[str, Any] = {
        "ActivityId": row.activity_id,
        "ServiceNamespace": row.namespace,
        "ResourceId": row.resource_id,
        "ScalableDimension": row.dimension,
        "Description": row.description,
        "Cause": row.cause,
        "StartTime": when(row.start),
        "StatusCode": row.status,
    }
    if row.end is not None:
        out["EndTime"] = when(row.end)
    if row.status_message:
        out["StatusMessage"] = row.status_message
    if row.details:
        out["Details"] = row.details
    if row.not_scaled:
        out["NotScaledReasons"] = json.loads(row.not_scaled)
    return out
