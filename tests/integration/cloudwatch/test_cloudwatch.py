"""CloudWatch metrics through the live gateway with boto3 (json 1.0, query-compatible) and the aws CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

AWS = str(Path(sys.executable).with_name("aws"))


def _namespace() -> str:
    return f"Kennel/Test/{uuid.uuid4().hex[:8]}"


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _base() -> int:
    """A minute boundary half an hour ago: inside the 1-second retention, clear of the present."""
    return int(time.time()) // 60 * 60 - 1800


def _code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def _datum(name: str, when: float, unit: str = "Milliseconds", dims: dict | None = None, **value) -> dict:
    datum = {"MetricName": name, "Timestamp": _at(when), "Unit": unit, **value}
    if dims:
        datum["Dimensions"] = [{"Name": k, "Value": v} for k, v in dims.items()]
    return datum


def test_statistics_units_periods_and_percentiles(cloud) -> None:
    cw, ns, base = cloud.client("cloudwatch"), _namespace(), _base()
    dims = {"EndpointName": "dogs"}
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            _datum("Latency", base + 5, dims=dims, Value=10),
            _datum("Latency", base + 6, dims=dims, Value=20),
            _datum("Latency", base + 10, "Seconds", dims=dims, Value=5),
            _datum("Latency", base + 65, dims=dims, Value=30),
            _datum("Latency", base + 70, dims=dims, Values=[1, 2], Counts=[3, 1], StorageResolution=1),
            _datum(
                "Batch",
                base + 5,
                "Count",
                StatisticValues={"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4},
            ),
        ],
    )
    query = {
        "Namespace": ns,
        "MetricName": "Latency",
        "Dimensions": [{"Name": "EndpointName", "Value": "dogs"}],
        "StartTime": _at(base),
        "EndTime": _at(base + 120),
    }
    everything = ["Sum", "SampleCount", "Minimum", "Maximum", "Average"]
    got = cw.get_metric_statistics(**query, Period=60, Statistics=everything)
    assert got["Label"] == "Latency"
    points = [
        (
            p["Timestamp"].timestamp(),
            p["Unit"],
            p["Sum"],
            p["SampleCount"],
            p["Minimum"],
            p["Maximum"],
            p["Average"],
        )
        for p in got["Datapoints"]
    ]
    assert points == [
        (base, "Milliseconds", 30, 2, 10, 20, 15),
        (base, "Seconds", 5, 1, 5, 5, 5),  # each unit is its own series, as in AWS
        (base + 60, "Milliseconds", 35, 5, 1, 30, 7),
    ]
    only_ms = cw.get_metric_statistics(**query, Period=60, Statistics=["Sum"], Unit="Milliseconds")
    assert [p["Sum"] for p in only_ms["Datapoints"]] == [30, 35]
    fine = cw.get_metric_statistics(**query, Period=10, Statistics=["SampleCount"])["Datapoints"]
    assert [(p["Timestamp"].timestamp() - base, p["SampleCount"]) for p in fine] == [
        (0, 2),
        (10, 1),
        (60, 1),
        (70, 4),
    ]
    percentiles = cw.get_metric_statistics(
        **query, Period=60, ExtendedStatistics=["p50", "p90", "p100"], Unit="Milliseconds"
    )["Datapoints"]
    assert percentiles[1]["ExtendedStatistics"] == {"p50": 1.0, "p90": 30.0, "p100": 30.0}
    batch = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Batch",
        StartTime=_at(base),
        EndTime=_at(base + 60),
        Period=60,
        Statistics=["Average", "Maximum"],
    )["Datapoints"]
    assert [(p["Average"], p["Maximum"], p["Unit"]) for p in batch] == [(2.5, 4, "Count")]
    unknown = cw.get_metric_statistics(**{**query, "MetricName": "Nope"}, Period=60, Statistics=["Sum"])
    assert unknown["Datapoints"] == []
    no_dims = cw.get_metric_statistics(**{**query, "Dimensions": []}, Period=60, Statistics=["Sum"])
    assert no_dims["Datapoints"] == []  # dimensions must match exactly


def test_get_metric_statistics_rejections(cloud) -> None:
    cw, base = cloud.client("cloudwatch"), _base()
    query = {"Namespace": "Kennel/Any", "MetricName": "M", "StartTime": _at(base), "EndTime": _at(base + 600)}
    cases = [
        ({"Period": 45, "Statistics": ["Sum"]}, "InvalidParameterValue"),
        ({"Period": 60, "Statistics": ["Sum"], "ExtendedStatistics": ["p90"]}, "InvalidParameterCombination"),
        ({"Period": 60}, "InvalidParameterCombination"),
        ({"Period": 60, "ExtendedStatistics": ["tm99"]}, "InvalidParameterValue"),
        ({"Period": 1, "Statistics": ["Sum"], "StartTime": _at(base - 3600)}, "InvalidParameterCombination"),
        ({"Period": 60, "Statistics": ["Sum"], "EndTime": _at(base)}, "InvalidParameterValue"),
    ]
    for extra, code in cases:
        with pytest.raises(ClientError) as refused:
            cw.get_metric_statistics(**{**query, **extra})
        assert _code(refused) == code, extra


def test_put_metric_data_rejections_are_all_or_nothing(cloud) -> None:
    cw, ns, now = cloud.client("cloudwatch"), _namespace(), time.time()
    good = _datum("Good", now, Value=1)
    cases = [
        ("AWS/SageMaker", [good], "InvalidParameterValue"),
        (
            ns,
            [
                good,
                _datum(
                    "Bad",
                    now,
                    Value=1,
                    StatisticValues={"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1},
                ),
            ],
            "InvalidParameterCombination",
        ),
        (ns, [good, _datum("Bad", now, Values=[1, 2], Counts=[1])], "InvalidParameterValue"),
        (ns, [good, _datum("Bad", now - 15 * 86_400, Value=1)], "InvalidParameterValue"),
        (ns, [good, _datum("Bad", now + 3 * 3600, Value=1)], "InvalidParameterValue"),
        (ns, [good, _datum("Bad", now, Value=1, StorageResolution=5)], "InvalidParameterValue"),
        (ns, [_datum(f"M{i}", now, Value=1) for i in range(1001)], "InvalidParameterValue"),
        (ns, [{"MetricName": "Bad"}], "MissingParameter"),
    ]
    for namespace, data, code in cases:
        with pytest.raises(ClientError) as refused:
            cw.put_metric_data(Namespace=namespace, MetricData=data)
        assert _code(refused) == code, data[-1]
    unchecked = cloud.client("cloudwatch", validate=False)
    many = {f"d{i}": "x" for i in range(31)}
    with pytest.raises(ClientError) as too_many:
        unchecked.put_metric_data(Namespace=ns, MetricData=[_datum("Bad", now, dims=many, Value=1)])
    assert too_many.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert cw.list_metrics(Namespace=ns)["Metrics"] == []  # nothing of a refused request was kept


def test_get_metric_data_math_scan_order_and_pages(cloud) -> None:
    cw, ns, base = cloud.client("cloudwatch"), _namespace(), _base()
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            _datum("A", base + 1, "Count", Value=1),
            _datum("A", base + 61, "Count", Value=2),
            _datum("A", base + 121, "Count", Value=3),
            _datum("B", base + 2, "Count", Value=10),
            _datum("B", base + 62, "Count", Value=20),
        ],
    )

    def stat(name: str, statistic: str = "Sum") -> dict:
        return {"Metric": {"Namespace": ns, "MetricName": name}, "Period": 60, "Stat": statistic}

    queries = [
        {"Id": "a", "MetricStat": stat("A")},
        {"Id": "b", "MetricStat": stat("B"), "ReturnData": False},
        {"Id": "plus", "Expression": "a + b", "Label": "A plus B"},
        {"Id": "total", "Expression": "SUM([a, b])"},
        {"Id": "mean", "Expression": "AVG(a)"},
        {"Id": "ratio", "Expression": "a / (b - 10)"},
        {"Id": "all", "Expression": "SUM(METRICS()) * 2 - 1"},
        {"Id": "median", "MetricStat": stat("A", "p50")},
    ]
    window = {"StartTime": _at(base), "EndTime": _at(base + 180)}
    results = cw.get_metric_data(MetricDataQueries=queries, **window)["MetricDataResults"]
    series = {
        r["Id"]: [(t.timestamp() - base, v) for t, v in zip(r["Timestamps"], r["Values"], strict=True)]
        for r in results
    }
    assert list(series) == ["a", "plus", "total", "mean", "ratio", "all", "median"]  # b: ReturnData False
    assert series["a"] == [(120, 3), (60, 2), (0, 1)]  # TimestampDescending by default
    assert series["plus"] == [(60, 22), (0, 11)]  # series combine where both have data
    assert series["total"] == [(120, 3), (60, 22), (0, 11)]
    assert series["mean"] == [(120, 2), (60, 2), (0, 2)]  # a scalar, at every timestamp
    assert series["ratio"] == [(60, 0.2)]  # a division by zero leaves the timestamp out
    assert series["all"] == [(120, 11), (60, 47), (0, 23)]  # METRICS(): a, b and median
    assert series["median"] == [(120, 3), (60, 2), (0, 1)]
    assert {r["Id"]: r["Label"] for r in results}["plus"] == "A plus B"
    assert all(r["StatusCode"] == "Complete" for r in results)
    ascending = cw.get_metric_data(MetricDataQueries=queries[:1], ScanBy="TimestampAscending", **window)
    assert [t.timestamp() - base for t in ascending["MetricDataResults"][0]["Timestamps"]] == [0, 60, 120]
    collected: dict[str, list[float]] = {}
    statuses: list[str] = []
    kwargs: dict = {"MetricDataQueries": queries[:4], "MaxDatapoints": 4, **window}
    while True:
        page = cw.get_metric_data(**kwargs)
        for result in page["MetricDataResults"]:
            collected.setdefault(result["Id"], []).extend(result["Values"])
            statuses.append(result["StatusCode"])
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert collected == {"a": [3, 2, 1], "plus": [22, 11], "total": [3, 22, 11]}
    assert "PartialData" in statuses
    with pytest.raises(ClientError) as bad_token:
        cw.get_metric_data(MetricDataQueries=queries[:1], NextToken="bogus", **window)
    assert _code(bad_token) == "InvalidNextToken"
    for bad in (
        [{"Id": "e", "Expression": "a +"}, queries[0]],
        [{"Id": "e", "Expression": "zz * 2"}],
        [{"Id": "Upper", "MetricStat": stat("A")}],
        [{"Id": "e", "Expression": "RATE(a)"}, queries[0]],
        [{"Id": "e", "Expression": "f"}, {"Id": "f", "Expression": "e"}],
    ):
        with pytest.raises(ClientError) as refused:
            cw.get_metric_data(MetricDataQueries=bad, **window)
        assert _code(refused) == "ValidationError", bad


def test_list_metrics_filters_and_pagination(cloud) -> None:
    cw, ns, now = cloud.client("cloudwatch"), _namespace(), time.time()
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            _datum("Requests", now, dims={"Endpoint": "a"}, Value=1),
            _datum("Requests", now, dims={"Endpoint": "b"}, Value=1),
            _datum("Requests", now, dims={"Variant": "v1", "Endpoint": "a"}, Value=1),
            _datum("Latency", now, Value=1),
        ],
    )

    def listed(**kwargs) -> list:
        return [
            (m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]})
            for m in cw.list_metrics(Namespace=ns, **kwargs)["Metrics"]
        ]

    assert len(listed()) == 4 and len(listed(RecentlyActive="PT3H")) == 4
    assert sorted(d.get("Endpoint", "") for _, d in listed(MetricName="Requests")) == ["a", "a", "b"]
    assert listed(Dimensions=[{"Name": "Endpoint", "Value": "a"}, {"Name": "Variant"}]) == [
        ("Requests", {"Endpoint": "a", "Variant": "v1"})
    ]
    assert listed(Dimensions=[{"Name": "Variant"}]) == [("Requests", {"Endpoint": "a", "Variant": "v1"})]
    big = _namespace()
    cw.put_metric_data(Namespace=big, MetricData=[_datum(f"M{i:03d}", now, Value=i) for i in range(501)])
    pages = list(cw.get_paginator("list_metrics").paginate(Namespace=big))
    assert [len(p["Metrics"]) for p in pages] == [500, 1]
    assert len({m["MetricName"] for p in pages for m in p["Metrics"]}) == 501
    with pytest.raises(ClientError) as bad_token:
        cw.list_metrics(Namespace=ns, NextToken="bogus")
    assert _code(bad_token) == "InvalidNextToken"


def test_cli_list_metrics(cloud) -> None:
    cw, ns = cloud.client("cloudwatch"), _namespace()
    cw.put_metric_data(Namespace=ns, MetricData=[_datum("Invocations", time.time(), "Count", Value=3)])
    done = subprocess.run(
        [AWS, "cloudwatch", "list-metrics", "--namespace", ns, "--output", "json"],
        env=cloud.cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [m["MetricName"] for m in json.loads(done.stdout)["Metrics"]] == ["Invocations"]


def test_large_put_metric_data_is_gzipped_by_boto3_and_accepted(cloud) -> None:
    """botocore compresses bodies over 10 KB; the gateway verifies the signature, then inflates."""
    cw, ns = cloud.client("cloudwatch"), _namespace()
    seen = {}

    def record(**kwargs) -> None:
        seen["enc"] = kwargs["request"].headers.get("Content-Encoding")

    cw.meta.events.register("before-send.cloudwatch.PutMetricData", record)
    base = _base()
    data = [
        {"MetricName": "Big", "Value": float(i), "Timestamp": base + i % 60, "Unit": "Count"}
        for i in range(600)
    ]
    for chunk in range(0, 600, 300):
        cw.put_metric_data(Namespace=ns, MetricData=data[chunk : chunk + 300])
    assert seen["enc"] in (b"gzip", "gzip")
    stats = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Big",
        StartTime=base,
        EndTime=base + 60,
        Period=60,
        Statistics=["SampleCount", "Sum"],
    )["Datapoints"]
    assert stats[0]["SampleCount"] == 600 and stats[0]["Sum"] == sum(range(600))
