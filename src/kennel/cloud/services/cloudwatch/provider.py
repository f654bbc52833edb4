"""CloudWatch metrics: PutMetricData, GetMetricStatistics, ListMetrics here; GetMetricData in
``metricdata.py``; buckets and persistence in ``recorder.py``. The alarm operations are here too, as
thin hand-overs to the provider's ``AlarmEngine`` (``alarms.py``), which also serves autoscaling.

The provider is also the cloud's ``MetricSink``: ``put`` folds a value into an in-memory 1-second bucket
and never raises into the endpoint or function that publishes. Metric APIs have no resource-level
permissions in AWS, so every operation is authorised on ``*``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kennel.cloud.errors import error_class
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.cloudwatch import aggregate as agg
from kennel.cloud.services.cloudwatch import tables as t
from kennel.cloud.services.cloudwatch.alarms import AlarmEngine
from kennel.cloud.services.cloudwatch.metricdata import (
    PAGES,
    InvalidParameterCombination,
    InvalidParameterValue,
    MetricDataMixin,
    check_period,
    dimension_key,
    time_range,
)
from kennel.cloud.services.cloudwatch.recorder import Dimensions, MetricKey, MetricRecorder

log = logging.getLogger("kennel.cloudwatch")

MissingParameter = error_class("MissingParameter")

MAX_METRIC_DATA = 1000
MAX_DIMENSIONS = 30
MAX_VALUES = 150
MAX_DATAPOINTS = 1440
PAST_LIMIT_S = 14 * 86_400
FUTURE_LIMIT_S = 2 * 3600
LIST_PAGE = 500
LISTED_FOR_S = 14 * 86_400  # AWS stops listing a metric two weeks after its last data point
RECENTLY_ACTIVE_S = 3 * 3600
# AWS refuses magnitudes outside roughly 2^-260 .. 2^360 (other than zero).
_LARGEST, _SMALLEST = 2.0**360, 2.0**-260


class CloudWatchProvider(MetricDataMixin, Provider):
    service = "cloudwatch"

    def __init__(self, cloud, *, clock=time.time) -> None:
        super().__init__(cloud)
        self.clock = clock
        self.recorder = MetricRecorder(cloud.store, clock)
        settings = cloud.settings
        self.alarms = AlarmEngine(
            cloud.store,
            self.recorder,
            region=settings.region,
            account_id=settings.account_id,
            time_scale_s=settings.time_scale_s,
        )
        self._enqueue = self.recorder.queue.append
        self._sink_errors = 0

    def start(self) -> None:
        self.recorder.start()

    def close(self) -> None:
        self.recorder.close()

    # ----- MetricSink ---------------------------------------------------------------------------------
    def put(
        self,
        namespace: str,
        name: str,
        dimensions: Mapping[str, str],
        value: float,
        *,
        unit: str = "None",
        timestamp: float | None = None,
    ) -> None:
        try:
            # Validation, sorting and bucketing happen in the writer thread; the caller pays for one
            # tuple and one queue append (the dimension items are copied: callers reuse their dicts).
            items = tuple(dimensions.items()) if dimensions else ()
            self._enqueue(
                (namespace, name, items, unit, self.clock() if timestamp is None else timestamp, value)
            )
        except Exception:  # telemetry must never break the caller; say so once, then count
            self._sink_errors += 1
            if self._sink_errors == 1:
                log.exception("dropping metric %s/%s", namespace, name)

    # ----- alarms: the operations are dispatched by name, so they stay here and hand over -------------
    def put_metric_alarm(self, params: dict, ctx: Context) -> dict:
        self.alarms.put_alarm(params, ctx.now.timestamp())
        return {}

    def describe_alarms(self, params: dict, ctx: Context) -> dict:
        return self.alarms.describe(params)

    def delete_alarms(self, params: dict, ctx: Context) -> dict:
        self.alarms.delete(params["AlarmNames"])
        return {}

    def set_alarm_state(self, params: dict, ctx: Context) -> dict:
        self.alarms.set_state(params, ctx.now.timestamp())
        return {}

    # ----- PutMetricData ------------------------------------------------------------------------------
    def put_metric_data(self, params: dict, ctx: Context) -> dict:
        namespace = params["Namespace"]
        if namespace.startswith("AWS/"):
            raise InvalidParameterValue(f"The value {namespace} for parameter Namespace is invalid.")
        data = list(params.get("MetricData") or [])
        for entity in params.get("EntityMetricData") or []:
            data.extend(entity.get("MetricData") or [])
        if not data:
            raise MissingParameter("The parameter MetricData is required.")
        if len(data) > MAX_METRIC_DATA:
            raise InvalidParameterValue(
                f"The collection MetricData must not have a size greater than {MAX_METRIC_DATA}."
            )
        now = ctx.now.timestamp()
        # Validate the whole request before recording any of it: AWS accepts or rejects it as one.
        checked = [_check_datum(datum, f"MetricData.member.{i}", now) for i, datum in enumerate(data, 1)]
        for datum, (dims, second) in zip(data, checked, strict=True):
            metric: MetricKey = (namespace, datum["MetricName"], dims)
            unit = datum.get("Unit") or "None"
            if datum.get("Value") is not None:
                self.recorder.record(metric, unit, second, float(datum["Value"]))
            elif datum.get("Values") is not None:
                counts = datum.get("Counts") or [1.0] * len(datum["Values"])
                for value, count in zip(datum["Values"], counts, strict=True):
                    if count > 0:
                        self.recorder.record(metric, unit, second, float(value), float(count))
            else:
                stats = datum["StatisticValues"]
                self.recorder.record_set(metric, unit, second, stats["SampleCount"], stats["Sum"],
                                         stats["Minimum"], stats["Maximum"])  # fmt: skip
        return {}

    # ----- GetMetricStatistics ------------------------------------------------------------------------
    def get_metric_statistics(self, params: dict, ctx: Context) -> dict:
        start, end = time_range(params)
        period = check_period(params["Period"], "Period")
        statistics = params.get("Statistics") or []
        extended = params.get("ExtendedStatistics") or []
        if bool(statistics) == bool(extended):
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics, but not both."
            )
        for name in extended:
            if agg.parse_percentile(name) is None:
                raise InvalidParameterValue(
                    f"The value {name} for parameter ExtendedStatistics is not supported: Kennel computes "
                    "percentiles (p0 to p100) only."
                )
        origin = agg.align(start, period)
        requested = math.ceil((end - origin) / period)
        if requested > MAX_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {requested} datapoints, which exceeds the limit of "
                f"{MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing Period, "
                "or decreasing the time range."
            )
        name = params["MetricName"]
        metric_id = self.recorder.find((params["Namespace"], name, dimension_key(params.get("Dimensions"))))
        if metric_id is None:
            return {"Label": name, "Datapoints": []}
        found = self.recorder.periods(metric_id, origin, end, period, params.get("Unit"), bool(extended))
        datapoints = []
        for (unit, at), bucket in sorted(found.items(), key=lambda item: (item[0][1], item[0][0])):
            point: dict[str, Any] = {"Timestamp": datetime.fromtimestamp(at, UTC), "Unit": unit}
            for statistic in statistics:
                value = agg.statistic(bucket, statistic)
                if value is not None:
                    point[statistic] = value
            if extended:
                values = {p: agg.statistic(bucket, p) for p in extended}
                point["ExtendedStatistics"] = {p: v for p, v in values.items() if v is not None}
            datapoints.append(point)
        return {"Label": name, "Datapoints": datapoints}

    # ----- ListMetrics --------------------------------------------------------------------------------
    def list_metrics(self, params: dict, ctx: Context) -> dict:
        self.recorder.flush()
        now = ctx.now.timestamp()
        recent = RECENTLY_ACTIVE_S if params.get("RecentlyActive") == "PT3H" else LISTED_FOR_S
        query = select(t.metrics).where(t.metrics.c.last_put >= now - recent).order_by(t.metrics.c.id)
        if params.get("Namespace"):
            query = query.where(t.metrics.c.namespace == params["Namespace"])
        if params.get("MetricName"):
            query = query.where(t.metrics.c.name == params["MetricName"])
        after = PAGES.decode_token(params.get("NextToken"), like=(int,))
        if after is not None:
            query = query.where(t.metrics.c.id > after[0])  # the query is in id order: resume past the last
        filters = [(f["Name"], f.get("Value")) for f in params.get("Dimensions") or []]
        found: list[tuple[int, dict[str, Any]]] = []
        with self.cloud.store.read() as conn:
            for row in conn.execute(query):
                dims = dict(json.loads(row.dimensions))
                if any(
                    key not in dims or (value is not None and dims[key] != value) for key, value in filters
                ):
                    continue
                pairs = [{"Name": k, "Value": v} for k, v in dims.items()]
                found.append(
                    (row.id, {"Namespace": row.namespace, "MetricName": row.name, "Dimensions": pairs})
                )
                if len(found) > LIST_PAGE:  # one beyond the page says another page follows
                    break
        page, token = PAGES.cut(found, LIST_PAGE, key=lambda pair: (pair[0],))
        result: dict[str, Any] = {"Metrics": [metric for _, metric in page]}
        if token:
            result["NextToken"] = token
        return result


# ----- validation ----------------------------------------------------------------------------------------


def _number(value: float, label: str) -> float:
    magnitude = abs(value)
    if not math.isfinite(value) or magnitude > _LARGEST or (magnitude and magnitude < _SMALLEST):
        raise InvalidParameterValue(f"The value {value} for parameter {label} is invalid.")
    return value


def _check_datum(datum: dict, label: str, now: float) -> tuple[Dimensions, int]:
    dimensions = datum.get("Dimensions") or []
    if len(dimensions) > MAX_DIMENSIONS:
        raise InvalidParameterValue(
            f"The collection {label}.Dimensions must not have a size greater than {MAX_DIMENSIONS}."
        )
    names = [d["Name"] for d in dimensions]
    if len(set(names)) != len(names):
        raise InvalidParameterValue(f"The collection {label}.Dimensions must not contain duplicate names.")
    has_value, has_values = datum.get("Value") is not None, datum.get("Values") is not None
    has_stats = datum.get("StatisticValues") is not None
    if has_value + has_values + has_stats > 1:
        raise InvalidParameterCombination(
            f"The parameters {label}.Value, {label}.Values and {label}.StatisticValues are mutually "
            "exclusive and you have specified more than one."
        )
    if not (has_value or has_values or has_stats):
        raise MissingParameter(
            f"One of {label}.Value, {label}.Values or {label}.StatisticValues is required."
        )
    if datum.get("Counts") is not None and not has_values:
        raise InvalidParameterCombination(f"The parameter {label}.Counts needs {label}.Values.")
    if has_value:
        _number(datum["Value"], f"{label}.Value")
    if has_values:
        values, counts = datum["Values"], datum.get("Counts")
        if len(values) > MAX_VALUES:
            raise InvalidParameterValue(
                f"The collection {label}.Values must not have a size greater than 150."
            )
        if counts is not None and len(counts) != len(values):
            raise InvalidParameterValue(
                f"The parameters {label}.Values and {label}.Counts must be of the same size."
            )
        for value in values:
            _number(value, f"{label}.Values")
        for count in counts or []:
            if not math.isfinite(count) or count < 0:
                raise InvalidParameterValue(f"The value {count} for parameter {label}.Counts is invalid.")
    if has_stats:
        stats = datum["StatisticValues"]
        for key in ("SampleCount", "Sum", "Minimum", "Maximum"):
            _number(stats[key], f"{label}.StatisticValues.{key}")
        if stats["SampleCount"] <= 0 or stats["Minimum"] > stats["Maximum"]:
            raise InvalidParameterValue(
                f"The parameter {label}.StatisticValues needs SampleCount > 0 and Minimum <= Maximum."
            )
    if datum.get("StorageResolution") not in (None, 1, 60):
        raise InvalidParameterValue(
            f"The value {datum['StorageResolution']} for parameter {label}.StorageResolution is invalid "
            "(1 or 60)."
        )
    moment = datum["Timestamp"].timestamp() if datum.get("Timestamp") is not None else now
    if moment < now - PAST_LIMIT_S:
        raise InvalidParameterValue(
            f"The parameter {label}.Timestamp must specify a time no more than two weeks in the past."
        )
    if moment > now + FUTURE_LIMIT_S:
        raise InvalidParameterValue(
            f"The parameter {label}.Timestamp must specify a time no more than two hours in the future."
        )
    return dimension_key(dimensions), math.floor(moment)
