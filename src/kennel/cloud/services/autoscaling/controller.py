"""One control-loop step for one scalable target: gather the context, decide, act, record.

Order within a step:

1. settle open activities from the variant's state (InProgress → Successful / Unfulfilled / Overridden);
2. run scheduled actions that are due (new bounds at once, no cooldown);
3. while the endpoint is Updating nothing else happens (SageMaker refuses a second change; AWS calls it
   TargetServicePutResourceAsUnscalable and records it when an alarm wanted a change meanwhile);
4. move a capacity that lies outside the bounds inside them (re-registration, scheduled actions);
5. when any of the target's alarms was evaluated anew, build the policies' context and ask the pure
   ``decide`` for a decision; carry out a change through SageMaker, or record why there was none.

All durations a user gives in seconds (cooldowns) and every simulated period shrink with the cloud's time
scale: ``time_factor`` is real seconds per simulated second.

The provider builds one ``ScalingController`` and its ``ControlLoop`` calls it: ``prepare`` once per tick
(CloudWatch evaluates its alarms), then ``step_target`` for every key ``scalable_keys`` lists. What the
controller remembers between ticks (alarm versions seen, missing variants, why bounds changed) is its own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from sqlalchemy import select

from kennel.cloud.errors import AwsError
from kennel.cloud.services.autoscaling import tables as t
from kennel.cloud.services.autoscaling.activities import ActivityLog
from kennel.cloud.services.autoscaling.common import Key
from kennel.cloud.services.autoscaling.targets import where_key
from kennel.cloud.services.ports import AlarmBook
from kennel.cloud.statestore import StateStore
from kennel.runtime.autoscaling import policy as p
from kennel.runtime.autoscaling.alarms import ALARM, INSUFFICIENT_DATA, AlarmStatus
from kennel.runtime.autoscaling.loop import Capacity, ScalableResource
from kennel.runtime.autoscaling.schedule import ScheduleError, due, parse, zone

log = logging.getLogger("kennel.autoscaling")


class ScalingController:
    """The autoscaler's decisions for every scalable target, one ``step_target`` at a time."""

    def __init__(
        self,
        store: StateStore,
        variants: ScalableResource,
        alarms: AlarmBook,
        activities: ActivityLog,
        *,
        time_factor: float,
    ) -> None:
        self._store = store
        self._variants = variants
        self._alarms = alarms
        self._activities = activities
        self._time_factor = time_factor  # real seconds per simulated second
        self._seen: dict[Key, dict[str, int]] = {}  # alarm versions each target last decided on
        self._missing: set[Key] = set()  # targets whose variant is gone (warned once)
        self._bounds_cause: dict[Key, str] = {}  # why the bounds changed, for the activity that follows

    def prepare(self, now: float) -> None:
        """Each tick starts with the alarms brought up to date: they are what the policies decide on."""
        self._alarms.evaluate_alarms(now)

    def scalable_keys(self) -> list[Key]:
        with self._store.read() as conn:
            rows = conn.execute(
                select(t.targets.c.namespace, t.targets.c.resource_id, t.targets.c.dimension)
            ).all()
        return [Key(*row) for row in rows]

    def forget_target(self, key: Key) -> None:
        """Drop what is kept in memory for a deregistered target (a new registration starts afresh)."""
        self._seen.pop(key, None)
        self._missing.discard(key)
        self._bounds_cause.pop(key, None)

    def step_target(self, key: Key, now: float) -> None:
        with self._store.read() as conn:
            target = conn.execute(select(t.targets).where(where_key(t.targets, key))).first()
            policies = conn.execute(select(t.policies).where(where_key(t.policies, key))).all()
            actions = conn.execute(select(t.scheduled).where(where_key(t.scheduled, key))).all()
        if target is None:
            return
        capacity = self._variants.capacity(key.resource_id)
        if capacity is None:
            if key not in self._missing:
                log.warning(
                    "scalable target %s: the endpoint variant does not exist; not scaling it", key.resource_id
                )
                self._missing.add(key)
            return
        self._missing.discard(key)
        busy = self._settle(key, capacity)
        suspended = json.loads(target.suspended)
        bounds = p.Bounds(target.min_capacity, target.max_capacity)
        if not capacity.updating:
            self._variants.prepare(key.resource_id, capacity.desired < bounds.max and bool(policies))
        if not suspended.get("ScheduledScalingSuspended"):
            bounds = self._run_schedules(key, actions, bounds, capacity, now)
        built = self._policies(policies)
        statuses = [s for _, group in built for s in group]
        seen = self._seen.get(key, {})
        fresh = any(seen.get(s.name) != s.version for s in statuses)
        self._seen[key] = {s.name: s.version for s in statuses}
        if capacity.updating or busy:
            firing = next((s for s in statuses if s.state == ALARM), None)
            if fresh and not busy and firing is not None:
                policy = next(name for name, group in built if firing in group)
                self._activities.record_not_scaled(
                    key, _cause(firing.name, policy), (p.NotScaled(p.UNSCALABLE),)
                )
            return
        inside = bounds.clamp(capacity.desired)
        if inside != capacity.desired:
            cause = self._bounds_cause.pop(key, None) or _bounds_cause(bounds, capacity.desired)
            self._scale(key, inside, cause)
            return
        if not fresh or not built:
            return
        runtime = [
            pol
            for row, (_, group) in zip(policies, built, strict=True)
            for pol in self._runtime_policy(row, group)
        ]
        ctx = p.Context(
            now=now,
            current=capacity.current,
            desired=capacity.desired,
            bounds=bounds,
            policies=tuple(runtime),
            cooldowns=p.Cooldowns(**json.loads(target.cooldowns)),
            scale_out_suspended=bool(suspended.get("DynamicScalingOutSuspended")),
            scale_in_suspended=bool(suspended.get("DynamicScalingInSuspended")),
        )
        decision = p.decide(ctx)
        if decision.capacity is not None and decision.cause is not None:
            if self._scale(key, decision.capacity, _cause(decision.cause.alarm, decision.cause.policy)):
                with self._store.write(bump=False) as conn:
                    conn.execute(
                        t.targets.update()
                        .where(where_key(t.targets, key))
                        .values(cooldowns=json.dumps(asdict(decision.cooldowns)))
                    )
        elif decision.not_scaled and decision.cause is not None:
            self._activities.record_not_scaled(
                key, _cause(decision.cause.alarm, decision.cause.policy), decision.not_scaled
            )
        elif decision.note:
            log.debug("scalable target %s: not scaling (%s)", key.resource_id, decision.note)

    # ----- activities in flight ---------------------------------------------------------------------------
    def _settle(self, key: Key, capacity: Capacity) -> bool:
        """Close finished activities; returns whether one is still in progress."""
        open_ = self._activities.in_flight(key)
        for older in open_[:-1]:
            self._activities.finish(
                older.activity_id, "Overridden", "The desired capacity was updated by a newer scaling event."
            )
        if not open_:
            return False
        newest = open_[-1]
        if capacity.updating:
            return True
        wanted = newest.capacity
        if capacity.desired == wanted and capacity.current >= wanted:
            self._activities.finish(
                newest.activity_id,
                "Successful",
                f"Successfully set desired instance count to {wanted}. "
                "Change successfully fulfilled by sagemaker.",
            )
        else:
            detail = (
                capacity.failure
                or f"the variant has {capacity.current} of {capacity.desired} instances serving"
            )
            self._activities.finish(
                newest.activity_id,
                "Unfulfilled",
                f"Failed to set desired instance count to {wanted}. Reason: {detail}",
            )
        return False

    def _scale(self, key: Key, count: int, cause: str) -> bool:
        activity = self._activities.start(key, f"Setting desired instance count to {count}.", cause, count)
        try:
            self._variants.set_desired_capacity(key.resource_id, count)
        except AwsError as exc:
            self._activities.finish(
                activity, "Failed", f"Failed to set desired instance count to {count}. Reason: {exc.message}"
            )
            return False
        except Exception as exc:
            self._activities.finish(
                activity, "Failed", f"Failed to set desired instance count to {count}. Reason: {exc}"
            )
            raise
        self._activities.finish(activity, "InProgress")
        log.info("scalable target %s: desired instance count %d (%s)", key.resource_id, count, cause)
        return True

    # ----- scheduled actions -------------------------------------------------------------------------------
    def _run_schedules(
        self, key: Key, actions: list, bounds: p.Bounds, capacity: Capacity, now: float
    ) -> p.Bounds:
        for action in actions:
            try:
                schedule, tz = parse(action.schedule), zone(action.timezone)
            except ScheduleError:
                continue  # validated on write; a time zone the system lost must not stop the loop
            if not due(
                schedule,
                tz,
                now=now,
                last_run=action.last_run,
                created=action.created,
                start=action.start,
                end=action.end,
                time_factor=self._time_factor,
            ):
                continue
            cause = f"scheduled action name {action.name} was triggered"
            try:
                change = p.change_bounds(
                    bounds,
                    capacity.desired,
                    min_capacity=action.min_capacity,
                    max_capacity=action.max_capacity,
                )
            except ValueError as exc:
                activity = self._activities.start(key, "Setting min and max capacity", cause, None)
                self._activities.finish(
                    activity, "Failed", f"Failed to set min and max capacity. Reason: {exc}"
                )
                change = None
            with self._store.write(bump=False) as conn:
                conn.execute(t.scheduled.update().where(t.scheduled.c.arn == action.arn).values(last_run=now))
                if change is not None:
                    conn.execute(
                        t.targets.update()
                        .where(where_key(t.targets, key))
                        .values(min_capacity=change.bounds.min, max_capacity=change.bounds.max)
                    )
            if change is None:
                continue
            bounds = change.bounds
            text = f"min capacity to {bounds.min} and max capacity to {bounds.max}"
            self._activities.record_done(key, f"Setting {text}", cause, f"Successfully set {text}")
            if change.capacity is not None:
                self._bounds_cause[key] = cause
        return bounds

    # ----- policies as the pure functions see them ------------------------------------------------------
    def _policies(self, rows: list) -> list[tuple[str, list[AlarmStatus]]]:
        """(policy name, the alarm statuses it depends on) per policy row, in row order."""
        out = []
        for row in rows:
            if row.policy_type == "TargetTrackingScaling":
                found = [self._alarms.alarm_status(a["AlarmName"]) for a in json.loads(row.alarms)]
                out.append((row.name, [s for s in found if s is not None]))
            else:
                out.append((row.name, self._alarms.alarms_acting_on(row.arn)))
        return out

    def _runtime_policy(self, row, statuses: list[AlarmStatus]) -> list[p.Policy]:
        config = json.loads(row.config)
        factor = self._time_factor
        if row.policy_type == "TargetTrackingScaling":
            high = next((s for s in statuses if "-AlarmHigh-" in s.name), None)
            low = next((s for s in statuses if "-AlarmLow-" in s.name), None)
            newest = next(
                (s.evaluation for s in (high, low) if s is not None and s.evaluation is not None), None
            )
            return [
                p.TargetTracking(
                    name=row.name,
                    target=config["TargetValue"],
                    metric=newest.latest if newest else None,
                    high=high.state if high else INSUFFICIENT_DATA,
                    low=low.state if low else None,
                    high_alarm=high.name if high else "",
                    low_alarm=low.name if low else "",
                    scale_out_cooldown_s=config.get("ScaleOutCooldown", p.DEFAULT_COOLDOWN_S) * factor,
                    scale_in_cooldown_s=config.get("ScaleInCooldown", p.DEFAULT_COOLDOWN_S) * factor,
                    disable_scale_in=bool(config.get("DisableScaleIn")),
                )
            ]
        steps = tuple(
            p.Step(
                s.get("MetricIntervalLowerBound"), s.get("MetricIntervalUpperBound"), s["ScalingAdjustment"]
            )
            for s in config["StepAdjustments"]
        )
        out: list[p.Policy] = []
        for status in statuses:
            value = (
                status.evaluation.aggregate(config.get("MetricAggregationType", "Average"))
                if status.evaluation
                else None
            )
            # A state set by SetAlarmState carries no datapoint: the metric is taken to sit at the threshold.
            breach = value - status.threshold if value is not None else 0.0
            out.append(
                p.StepScaling(
                    name=row.name,
                    alarm=status.name,
                    alarm_state=status.state,
                    breach=breach,
                    above=status.comparison.startswith("Greater"),
                    adjustment_type=config["AdjustmentType"],
                    steps=steps,
                    cooldown_s=config.get("Cooldown", p.DEFAULT_COOLDOWN_S) * factor,
                    min_adjustment_magnitude=config.get("MinAdjustmentMagnitude"),
                )
            )
        return out


def _cause(alarm: str, policy: str) -> str:
    return f"monitor alarm {alarm} in state ALARM triggered policy {policy}"


def _bounds_cause(bounds: p.Bounds, desired: int) -> str:
    if desired < bounds.min:
        return f"the scalable target's minimum capacity was set to {bounds.min}"
    return f"the scalable target's maximum capacity was set to {bounds.max}"
