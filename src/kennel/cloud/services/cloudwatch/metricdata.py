"""GetMetricData: metric queries and metric math, paged by MaxDatapoints.

Each MetricStat query reads one metric into one value per period (data with different units is merged
unless the query names a Unit). Expressions are evaluated over those series (``expressions.py``); an
expression that reduces to a scalar is reported at every timestamp the request's metric queries have.
Pages cut the concatenated results after MaxDatapoints values; a result cut short says PartialData. The
token names the last (query, timestamp) returned, so a period that gains its first datapoint between two
pages neither repeats a value nor hides one, and it is bound to the request's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from kennel.cloud.errors import ValidationError, error_class
from kennel.cloud.services.base import Context
from kennel.cloud.services.cloudwatch import aggregate as agg
from kennel.cloud.services.cloudwatch.expressions import ExpressionError, Series, Value, evaluate
from kennel.cloud.services.cloudwatch.recorder import Dimensions
from kennel.cloud.services.paging import Paginator

InvalidParameterValue = error_class("InvalidParameterValue")
InvalidParameterCombination = error_class("InvalidParameterCombination")
InvalidNextToken = error_class("InvalidNextToken")

# CloudWatch's paginator for its listings (DescribeAlarms, ListMetrics), and GetMetricData's, whose
# tokens are bound to the request and say so when refused.
PAGES = Paginator(lambda _token: InvalidNextToken("The NextToken is invalid."))
METRIC_DATA_PAGES = Paginator(
    lambda _token: InvalidNextToken("The NextToken does not belong to this request or is malformed.")
)

MAX_QUERIES = 500
DEFAULT_MAX_DATAPOINTS = 100_800
_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")


def time_range(params: dict) -> tuple[int, float]:
    start, end = params["StartTime"].timestamp(), params["EndTime"].timestamp()
    if end <= start:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    return math.floor(start), end


def check_period(period: int, label: str) -> int:
    if not agg.valid_period(period):
        raise InvalidParameterValue(
            f"The parameter {label} must be 1, 5, 10, 20, 30 or a multiple of 60 (got {period})."
        )
    return period


def dimension_key(dimensions: list[dict] | None) -> Dimensions:
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions or []))


class MetricDataMixin:
    def get_metric_data(self, params: dict, ctx: Context) -> dict:
        start, end = time_range(params)
        queries = params["MetricDataQueries"]
        _check_queries(queries)
        by_id = {query["Id"]: query for query in queries}
        values: dict[str, Value] = {}
        pending: set[str] = set()

        def resolve(query_id: str) -> Value:
            if query_id in values:
                return values[query_id]
            query = by_id.get(query_id)
            if query is None:
                raise ExpressionError(f"Unrecognized identifier {query_id}.")
            if query_id in pending:
                raise ExpressionError(f"Circular reference to {query_id}.")
            pending.add(query_id)
            if "MetricStat" in query:
                value: Value = self._stat_series(query["MetricStat"], start, end)
            else:
                try:
                    value = evaluate(query["Expression"], resolve, metrics)
                except ExpressionError as exc:
                    raise ValidationError(f"Error in expression '{query_id}': {exc}") from None
            pending.discard(query_id)
            values[query_id] = value
            return value

        def metrics(label: str | None) -> list[Series]:
            return [resolve(q["Id"]) for q in queries  # type: ignore[misc]
                    if "MetricStat" in q and (label is None or label in _label(q))]  # fmt: skip

        results: list[tuple[dict, list[tuple[int, float]]]] = []
        descending = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        for query in queries:
            if query.get("ReturnData") is False:
                continue
            value = resolve(query["Id"])
            if isinstance(value, list):
                raise ValidationError(
                    f"Error in expression '{query['Id']}': it must return a single time series."
                )
            if isinstance(value, float):
                stamps = set().union(*(resolve(q["Id"]) for q in queries if "MetricStat" in q))  # type: ignore[arg-type]
                value = {} if math.isnan(value) else dict.fromkeys(stamps, value)
            results.append((query, sorted(value.items(), reverse=descending)))
        return _page(params, results, descending)

    def _stat_series(self, stat: dict, start: int, end: float) -> Series:
        metric = stat["Metric"]
        if not metric.get("Namespace") or not metric.get("MetricName"):
            raise ValidationError("A MetricStat's Metric needs a Namespace and a MetricName.")
        period, name = stat["Period"], stat["Stat"]
        metric_id = self.recorder.find((metric["Namespace"], metric["MetricName"],
                                        dimension_key(metric.get("Dimensions"))))  # fmt: skip
        if metric_id is None:
            return {}
        origin = agg.align(start, period)
        percentile = agg.parse_percentile(name) is not None
        found = self.recorder.periods(metric_id, origin, end, period, stat.get("Unit"), percentile)
        per_slot: dict[int, agg.Bucket] = {}
        for (_unit, at), bucket in found.items():
            if at in per_slot:
                agg.merge(per_slot[at], bucket)
            else:
                per_slot[at] = bucket
        series: Series = {}
        for at, bucket in per_slot.items():
            value = agg.statistic(bucket, name)
            if value is not None:
                series[at] = value
        return series


def _label(query: dict) -> str:
    if query.get("Label"):
        return query["Label"]
    return (
        query["MetricStat"]["Metric"].get("MetricName", query["Id"]) if "MetricStat" in query else query["Id"]
    )


def _check_queries(queries: list[dict]) -> None:
    if not queries:
        raise ValidationError("MetricDataQueries must contain at least one query.")
    if len(queries) > MAX_QUERIES:
        raise ValidationError(f"MetricDataQueries must contain at most {MAX_QUERIES} queries.")
    seen: set[str] = set()
    for i, query in enumerate(queries, 1):
        label = f"MetricDataQueries.member.{i}"
        query_id = query["Id"]
        if not _ID.fullmatch(query_id):
            raise ValidationError(
                f"The value {query_id} for parameter {label}.Id is invalid: it must start with a lowercase "
                "letter and contain only letters, digits and underscores."
            )
        if query_id in seen:
            raise ValidationError(f"The value {query_id} for parameter {label}.Id is used more than once.")
        seen.add(query_id)
        if ("MetricStat" in query) == ("Expression" in query):
            raise ValidationError(f"{label} must have exactly one of MetricStat or Expression.")
        if "MetricStat" in query:
            stat = query["MetricStat"]
            check_period(stat["Period"], f"{label}.MetricStat.Period")
            if stat["Stat"] not in agg.STATISTICS and agg.parse_percentile(stat["Stat"]) is None:
                raise ValidationError(
                    f"The value {stat['Stat']} for parameter {label}.MetricStat.Stat is not supported: "
                    f"Kennel supports {', '.join(agg.STATISTICS)} and percentiles pNN."
                )


def _fingerprint(params: dict) -> str:
    ids = [query["Id"] for query in params["MetricDataQueries"]]
    basis = [ids, params["StartTime"].timestamp(), params["EndTime"].timestamp(), params.get("ScanBy")]
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]


def _page(params: dict, results: list[tuple[dict, list[tuple[int, float]]]], descending: bool) -> dict:
    limit = params.get("MaxDatapoints") or DEFAULT_MAX_DATAPOINTS
    if limit < 1:
        raise ValidationError("MaxDatapoints must be at least 1.")
    # Every value keyed by (its result's index, its timestamp in scan order): results keep the order
    # of the request's queries, which the fingerprint pins, and a series has one value per timestamp.
    points = [(index, at, value) for index, (_, series) in enumerate(results) for at, value in series]

    def key(point: tuple[int, int, float]) -> tuple[int, int]:
        return point[0], -point[1] if descending else point[1]

    page, token = METRIC_DATA_PAGES.page(
        points, key, limit=limit, token=params.get("NextToken"), scope=_fingerprint(params)
    )
    # A result is complete when nothing of it, or of any result before it, is left for a later page.
    if token is None:
        first_left = len(results)
    else:
        last = key(page[-1])
        first_left = min(point[0] for point in points if key(point) > last)
    chunks: dict[int, list[tuple[int, float]]] = {}
    for index, at, value in page:
        chunks.setdefault(index, []).append((at, value))
    out: list[dict[str, Any]] = []
    for index, (query, _) in enumerate(results):
        chunk = chunks.get(index, [])
        out.append({
            "Id": query["Id"], "Label": _label(query),
            "Timestamps": [datetime.fromtimestamp(at, UTC) for at, _ in chunk],
            "Values": [value for _, value in chunk],
            "StatusCode": "Complete" if index < first_left else "PartialData",
            "Messages": [],
        })  # fmt: skip
    result: dict[str, Any] = {"MetricDataResults": out, "Messages": []}
    if token is not None:
        result["NextToken"] = token
    return result
