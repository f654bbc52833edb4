"""CloudWatch metric alarms: ``AlarmEngine`` does the work of PutMetricAlarm, DescribeAlarms, DeleteAlarms
and SetAlarmState (the provider's operations hand their parameters to it) and runs ``evaluate_alarms``,
the evaluation pass the autoscaler's loop runs each tick (no alarm history yet). The CloudWatch provider
builds the engine and owns it; the cloud's alarm-book port (``kennel.cloud.services.ports.AlarmBook``)
is this engine.

Evaluation is the pure ``kennel.runtime.autoscaling.alarms.evaluate`` over datapoints read from the
recorder. Periods follow the cloud's time scale (a 60-second period lasts ``time_scale_s`` real seconds),
so alarm windows shrink with every other simulated minute. An alarm is evaluated once per period, when a
new period has completed.

SageMaker publishes its invocation counts as 0 for minutes without traffic; Kennel's endpoints publish
only when requests arrive, so for those metrics (Sum or SampleCount) a period after the metric's first
datapoint that has no data reads as 0. That is what lets the low target-tracking alarm see an idle
endpoint, while a metric that never had data stays INSUFFICIENT_DATA (no scale-in on it).

Alarms that Application Auto Scaling creates for target tracking are *managed*: they appear here like
any other alarm, but PutMetricAlarm refuses to change them (change the scaling policy instead). Actions
other than scaling-policy ARNs (SNS topics, EC2 actions) are stored and listed but not carried out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Float, String, Table, Text, delete, func, select

from kennel.cloud.errors import error_class
from kennel.cloud.services.cloudwatch import aggregate as agg
from kennel.cloud.services.cloudwatch import tables as cw
from kennel.cloud.services.cloudwatch.expressions import ExpressionError, evaluate
from kennel.cloud.services.cloudwatch.metricdata import PAGES, dimension_key
from kennel.cloud.services.cloudwatch.recorder import MetricRecorder
from kennel.cloud.statestore import StateStore, metadata
from kennel.runtime.autoscaling import alarms as rules
from kennel.runtime.autoscaling.alarms import AlarmStatus

log = logging.getLogger("kennel.cloudwatch.alarms")

ResourceNotFound = error_class("ResourceNotFound", 404)
InvalidParameterValue = error_class("InvalidParameterValue")
InvalidParameterCombination = error_class("InvalidParameterCombination")
InvalidFormat = error_class("InvalidFormat")

alarms_table = Table(
    "cw_alarms",
    metadata,
    Column("name", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("config", Text, nullable=False),  # the PutMetricAlarm parameters, JSON
    Column("state", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("reason_data", Text, nullable=True),
    Column("state_updated", Float, nullable=False),
    Column("transitioned", Float, nullable=False),
    Column("config_updated", Float, nullable=False),
    Column("managed_by", String, nullable=True),  # the scaling policy ARN for target-tracking alarms
)
# fmt: off
_CONFIG_KEYS = ("AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
                "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
                "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
                "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics")
# fmt: on
_ZERO_WHEN_IDLE = {
    ("AWS/SageMaker", n)
    for n in ("Invocations", "InvocationsPerInstance", "Invocation4XXErrors", "Invocation5XXErrors")
}
DESCRIBE_PAGE = 50


@dataclass
class _Alarm:
    name: str
    arn: str
    config: dict[str, Any]
    managed_by: str | None
    state_updated: float
    transitioned: float
    config_updated: float
    state: str = rules.INSUFFICIENT_DATA
    reason: str = "Unchecked: Initial alarm creation"
    reason_data: str | None = None
    evaluated_end: int = 0
    evaluation: rules.Evaluation | None = None
    version: int = 0
    first_seen: dict[int, int] = field(default_factory=dict)  # metric id → first datapoint (zero filling)

    @classmethod
    def from_row(cls, row) -> _Alarm:
        values = {c: getattr(row, c) for c in _COLUMNS}
        return cls(**{**values, "config": json.loads(row.config)})

    def row(self) -> dict[str, Any]:
        return {c: json.dumps(self.config) if c == "config" else getattr(self, c) for c in _COLUMNS}


_COLUMNS = tuple(c.name for c in alarms_table.columns)


class AlarmEngine:
    """The account's metric alarms: their table, an in-memory copy of it, and their evaluation.

    The CloudWatch provider owns one and hands its operations here; Application Auto Scaling reaches it
    through the cloud's alarm-book port (managed alarms, the statuses it decides on, ``evaluate_alarms``
    each tick). Every read and change of the cache happens under ``_lock``; the slow part of an
    evaluation (reading datapoints) does not, so a tick never holds up PutMetricAlarm.
    """

    def __init__(
        self,
        store: StateStore,
        recorder: MetricRecorder,
        *,
        region: str,
        account_id: str,
        time_scale_s: float,
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._arn_prefix = f"arn:aws:cloudwatch:{region}:{account_id}:alarm:"
        self._time_scale_s = time_scale_s
        # Re-entrant: _transition writes the table while a caller already holds the lock.
        self._lock = threading.RLock()
        # Only this engine writes cw_alarms, so the table is read once, here, and then kept in step.
        with store.read() as conn:
            rows = conn.execute(select(alarms_table)).all()
        self._alarms: dict[str, _Alarm] = {r.name: _Alarm.from_row(r) for r in rows}

    def _real_period(self, period: int) -> int:
        return max(1, round(period * self._time_scale_s / 60.0))

    # ----- PutMetricAlarm -------------------------------------------------------------------------------
    def put_alarm(self, params: dict, now: float) -> None:
        """PutMetricAlarm from a user: refused for an alarm a scaling policy manages."""
        self._store_alarm(params, now, managed_by=None)

    def put_managed_alarm(self, params: dict, managed_by: str, now: float) -> str:
        """Create or replace an alarm on behalf of a scaling policy; returns its ARN."""
        return self._store_alarm(params, now, managed_by=managed_by)

    def _store_alarm(self, params: dict, now: float, *, managed_by: str | None) -> str:
        config = {k: params[k] for k in _CONFIG_KEYS if params.get(k) is not None}
        try:
            rules.check_config(config)
        except rules.AlarmConfigError as exc:
            raise error_class(exc.code)(exc.message) from None
        name = params["AlarmName"]
        arn = self._arn_prefix + name
        with self._lock:
            old = self._alarms.get(name)
            if old is not None and old.managed_by and managed_by is None:
                raise InvalidParameterValue(
                    f"Alarm {name} is managed by Application Auto Scaling for the target-tracking policy "
                    f"{old.managed_by} and cannot be changed; update or delete that scaling policy instead."
                )
            if old is None:
                alarm = _Alarm(name, arn, config, managed_by, now, now, now)
            else:
                # AWS: an update overwrites the configuration and leaves the state as it is.
                alarm = replace(
                    old, config=config, managed_by=managed_by, config_updated=now, evaluated_end=0
                )
                alarm.evaluation, alarm.version, alarm.first_seen = None, old.version + 1, {}
            row = alarm.row()
            with self._store.write(bump=False) as conn:
                conn.execute(delete(alarms_table).where(alarms_table.c.name == name))
                conn.execute(alarms_table.insert().values(**row))
            self._alarms[name] = alarm
        return arn

    # ----- DescribeAlarms -------------------------------------------------------------------------------
    def describe(self, params: dict) -> dict:
        """DescribeAlarms' response for its parameters."""
        if params.get("AlarmNames") and params.get("AlarmNamePrefix"):
            raise InvalidParameterCombination("AlarmNames and AlarmNamePrefix cannot be specified together.")
        types = params.get("AlarmTypes")
        composite_only = params.get("ChildrenOfAlarmName") or params.get("ParentsOfAlarmName")
        if composite_only or (types and "MetricAlarm" not in types):
            return {"MetricAlarms": [], "CompositeAlarms": []}  # Kennel has no composite alarms
        names, prefix = set(params.get("AlarmNames") or ()), params.get("AlarmNamePrefix")
        state, action_prefix = params.get("StateValue"), params.get("ActionPrefix")
        limit = params.get("MaxRecords") or DESCRIBE_PAGE
        with self._lock:
            alarms = list(self._alarms.values())
        picked = [
            a
            for a in alarms
            if (not names or a.name in names)
            and (not prefix or a.name.startswith(prefix))
            and (not state or a.state == state)
            and (not action_prefix or any(x.startswith(action_prefix) for x in _actions(a.config)))
        ]
        page, token = PAGES.page(picked, lambda a: (a.name,), limit=limit, token=params.get("NextToken"))
        out: dict[str, Any] = {"MetricAlarms": [_shape(a) for a in page], "CompositeAlarms": []}
        if token:
            out["NextToken"] = token
        return out

    # ----- DeleteAlarms ---------------------------------------------------------------------------------
    def delete(self, names: list[str]) -> None:
        """DeleteAlarms: all of them, or none when one does not exist."""
        names = list(dict.fromkeys(names))
        with self._lock:
            missing = [n for n in names if n not in self._alarms]
            if missing:
                raise ResourceNotFound(
                    f"{len(missing)}/{len(names)} alarms not found: [{', '.join(missing)}]"
                )
            self._drop(names)

    def delete_managed_alarms(self, names: list[str]) -> None:
        """Remove the alarms of a deleted scaling policy (those already gone are skipped)."""
        with self._lock:
            self._drop([n for n in names if n in self._alarms])

    def _drop(self, names: list[str]) -> None:
        if not names:
            return
        with self._store.write(bump=False) as conn:
            conn.execute(delete(alarms_table).where(alarms_table.c.name.in_(names)))
        for name in names:
            self._alarms.pop(name, None)

    # ----- SetAlarmState --------------------------------------------------------------------------------
    def set_state(self, params: dict, now: float) -> None:
        """SetAlarmState for its parameters."""
        name, state = params["AlarmName"], params["StateValue"]
        data = params.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise InvalidFormat("StateReasonData is not valid JSON.") from None
        with self._lock:
            alarm = self._alarms.get(name)
            if alarm is None:
                raise ResourceNotFound(f"Alarm {name} not found")
            # Until the next evaluation, as in AWS: the state then follows the data again.
            self._transition(alarm, state, params["StateReason"], data, now)
            alarm.version += 1

    def _transition(self, alarm: _Alarm, state: str, reason: str, data: str | None, now: float) -> None:
        if state != alarm.state:
            alarm.transitioned = now
        alarm.state, alarm.reason, alarm.reason_data, alarm.state_updated = state, reason, data, now
        with self._store.write(bump=False) as conn:
            conn.execute(alarms_table.update().where(alarms_table.c.name == alarm.name).values(**alarm.row()))

    # ----- evaluation -----------------------------------------------------------------------------------
    def evaluate_alarms(self, now: float | None = None) -> list[str]:
        """Evaluate every alarm whose newest complete period has advanced; returns their names."""
        now = time.time() if now is None else now
        with self._lock:
            alarms = list(self._alarms.values())
        done = []
        for alarm in alarms:
            try:
                if self._evaluate(alarm, now):
                    done.append(alarm.name)
            except Exception:  # one alarm with a bad metric must not keep the others from being evaluated
                log.exception("evaluating alarm %s failed", alarm.name)
        return done

    def _evaluate(self, alarm: _Alarm, now: float) -> bool:
        config = alarm.config
        period = self._real_period(rules.config_period(config))
        settle = min(1.0, 0.4 * period)
        end = rules.window_end(period, now, settle)
        if end <= alarm.evaluated_end:
            return False
        rule = rules.rule_from_config(config, period)
        start = end - period * rule.evaluation_periods
        points = self._datapoints(alarm, start, end, period)
        result = rules.evaluate(rule, points, now, alarm.state, settle)
        with self._lock:
            if self._alarms.get(alarm.name) is not alarm:
                return False  # replaced or deleted while we read
            alarm.evaluated_end, alarm.evaluation = end, result
            alarm.version += 1
            if result.state != alarm.state:
                self._transition(
                    alarm, result.state, result.reason, rules.reason_data(config, rule, result, now), now
                )
        return True

    def _datapoints(self, alarm: _Alarm, start: int, end: int, period: int) -> dict[int, float]:
        config = alarm.config
        if "Metrics" not in config:
            stat = config.get("Statistic") or config["ExtendedStatistic"]
            metric = {
                "Namespace": config["Namespace"],
                "MetricName": config["MetricName"],
                "Dimensions": config.get("Dimensions"),
            }
            return self._series(alarm, metric, stat, config.get("Unit"), start, end, period)
        queries = {q["Id"]: q for q in config["Metrics"]}
        values: dict[str, Any] = {}

        def resolve(query_id: str) -> Any:
            if query_id not in values:
                query = queries.get(query_id)
                if query is None:
                    raise ExpressionError(f"Unrecognized identifier {query_id}.")
                if "MetricStat" in query:
                    ms = query["MetricStat"]
                    values[query_id] = self._series(
                        alarm, ms["Metric"], ms["Stat"], ms.get("Unit"), start, end, period
                    )
                else:
                    values[query_id] = evaluate(query["Expression"], resolve, every)
            return values[query_id]

        def every(label: str | None) -> list:
            return [
                resolve(i)
                for i, q in queries.items()
                if "MetricStat" in q and (label is None or label in (q.get("Label") or ""))
            ]

        returned = next(q["Id"] for q in config["Metrics"] if q.get("ReturnData", True))
        value = resolve(returned)
        return value if isinstance(value, dict) else {}

    def _series(
        self, alarm: _Alarm, metric: dict, stat: str, unit: str | None, start: int, end: int, period: int
    ) -> dict[int, float]:
        key = (metric["Namespace"], metric["MetricName"], dimension_key(metric.get("Dimensions")))
        metric_id = self._recorder.find(key)
        if metric_id is None:
            return {}
        found = self._recorder.periods(
            metric_id, start, end, period, unit, agg.parse_percentile(stat) is not None
        )
        merged: dict[int, agg.Bucket] = {}
        for (_unit, at), bucket in found.items():
            if at in merged:
                agg.merge(merged[at], bucket)
            else:
                merged[at] = bucket
        series = {at: v for at, b in merged.items() if (v := agg.statistic(b, stat)) is not None}
        if (key[0], key[1]) in _ZERO_WHEN_IDLE and stat in ("Sum", "SampleCount"):
            first = alarm.first_seen.get(metric_id)
            if first is None:
                with self._store.read() as conn:
                    first = conn.execute(
                        select(func.min(cw.buckets.c.ts)).where(cw.buckets.c.metric_id == metric_id)
                    ).scalar()
                if first is None:
                    return series
                alarm.first_seen[metric_id] = first
            for at in range(start, end, period):
                if at + period > first:
                    series.setdefault(at, 0.0)
        return series

    # ----- what the autoscaler reads --------------------------------------------------------------------
    def alarm_status(self, name: str) -> AlarmStatus | None:
        with self._lock:
            alarm = self._alarms.get(name)
            return None if alarm is None else _status(alarm)

    def alarms_acting_on(self, arn: str) -> list[AlarmStatus]:
        """Alarms with actions enabled whose AlarmActions include ``arn`` (a step-scaling policy)."""
        with self._lock:
            return [
                _status(a)
                for a in self._alarms.values()
                if a.config.get("ActionsEnabled", True) and arn in (a.config.get("AlarmActions") or [])
            ]


def _status(alarm: _Alarm) -> AlarmStatus:
    config = alarm.config
    actions = tuple(config.get("AlarmActions") or ())
    enabled = config.get("ActionsEnabled", True)
    return AlarmStatus(alarm.name, alarm.state, config["Threshold"], config["ComparisonOperator"], enabled,
                       actions, alarm.evaluation, alarm.version)  # fmt: skip


def _actions(config: dict) -> list[str]:
    return [
        *(config.get("AlarmActions") or ()),
        *(config.get("OKActions") or ()),
        *(config.get("InsufficientDataActions") or ()),
    ]


def _shape(alarm: _Alarm) -> dict:
    out = {k: v for k, v in alarm.config.items()}
    out.setdefault("ActionsEnabled", True)
    for key in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        out.setdefault(key, [])
    out.update(
        {
            "AlarmName": alarm.name,
            "AlarmArn": alarm.arn,
            "StateValue": alarm.state,
            "StateReason": alarm.reason,
            "StateUpdatedTimestamp": datetime.fromtimestamp(alarm.state_updated, UTC),
            "StateTransitionedTimestamp": datetime.fromtimestamp(alarm.transitioned, UTC),
            "AlarmConfigurationUpdatedTimestamp": datetime.fromtimestamp(alarm.config_updated, UTC),
        }
    )
    if alarm.reason_data:
        out["StateReasonData"] = alarm.reason_data
    return out
