"""CloudWatch statistic buckets, period bucketing, percentiles, metric math and the roll-up ladder."""

from __future__ import annotations

import math
import random

import pytest

from kennel.cloud.services.cloudwatch import aggregate as agg
from kennel.cloud.services.cloudwatch.expressions import ExpressionError, evaluate, identifiers
from kennel.cloud.services.cloudwatch.recorder import MetricRecorder
from kennel.cloud.statestore import StateStore


def _bucket(*values: float) -> agg.Bucket:
    bucket = agg.new_bucket()
    for value in values:
        agg.add_value(bucket, value)
    return bucket


def test_bucket_statistics() -> None:
    bucket = _bucket(3, 1, 2)
    agg.add_value(bucket, 10, count=2)
    assert [agg.statistic(bucket, s) for s in agg.STATISTICS] == [5, 26 / 5, 26, 1, 10]
    assert agg.statistic(bucket, "p50") == 3 and agg.statistic(bucket, "p100") == 10
    assert agg.statistic(bucket, "p0") == 1 and agg.statistic(bucket, "tm99") is None
    empty = agg.new_bucket()
    assert agg.statistic(empty, "SampleCount") == 0 and agg.statistic(empty, "Average") is None
    assert agg.statistic(empty, "Minimum") is None and agg.statistic(empty, "p50") is None


def test_statistic_sets_make_percentiles_unknown() -> None:
    bucket = _bucket(1, 2)
    agg.add_statistic_set(bucket, count=4, total=20, minimum=0.5, maximum=9)
    assert (bucket[agg.COUNT], bucket[agg.SUM], bucket[agg.MIN], bucket[agg.MAX]) == (6, 23, 0.5, 9)
    assert agg.statistic(bucket, "p50") is None
    merged = _bucket(5)
    agg.merge(merged, bucket)
    assert merged[agg.SAMPLES] is None and merged[agg.COUNT] == 7


def test_merge_keeps_exact_totals_and_distributions() -> None:
    a, b = _bucket(1, 2, 2), _bucket(2, 8)
    agg.merge(a, b)
    assert (a[agg.SUM], a[agg.COUNT], a[agg.MIN], a[agg.MAX]) == (15, 5, 1, 8)
    assert a[agg.SAMPLES] == {1: 1, 2: 3, 8: 1}
    assert b[agg.SAMPLES] == {2: 1, 8: 1}  # merging never aliases the other bucket's samples


@pytest.mark.parametrize(
    ("p", "expected"), [(0, 1), (25, 25), (50, 50), (90, 90), (99, 99), (99.5, 100), (100, 100)]
)
def test_percentiles_are_nearest_rank(p: float, expected: float) -> None:
    bucket = _bucket(*random.Random(1).sample(range(1, 101), 100))
    assert agg.statistic(bucket, f"p{p:g}") == expected


def test_compression_bounds_memory_and_keeps_percentiles_close() -> None:
    rng = random.Random(7)
    values = [rng.gauss(100, 15) for _ in range(20_000)]
    bucket = _bucket(*values)
    assert len(bucket[agg.SAMPLES]) <= agg.MAX_SAMPLES
    assert math.isclose(sum(bucket[agg.SAMPLES].values()), 20_000)
    assert bucket[agg.COUNT] == 20_000 and math.isclose(bucket[agg.SUM], sum(values))
    ordered = sorted(values)
    for p in (50, 90, 99):
        exact = ordered[math.ceil(len(ordered) * p / 100) - 1]
        assert abs(agg.statistic(bucket, f"p{p}") - exact) < 3.0  # 0.2 standard deviations


def test_samples_round_trip_through_bytes() -> None:
    samples = {1.5: 2.0, -3.25: 1.0}
    assert agg.decode_samples(agg.encode_samples(samples)) == samples
    assert agg.encode_samples(None) is None and agg.decode_samples(None) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("p99", 99.0),
        ("p99.9", 99.9),
        ("p0", 0.0),
        ("p100", 100.0),
        ("p101", None),
        ("p", None),
        ("P99", None),
        ("tm99", None),
        ("p99.", None),
    ],
)
def test_percentile_names(name: str, expected: float | None) -> None:
    assert agg.parse_percentile(name) == expected


def test_periods_align_like_aws() -> None:
    assert [agg.valid_period(p) for p in (1, 5, 10, 20, 30, 60, 120, 3600)] == [True] * 8
    assert [agg.valid_period(p) for p in (0, 2, 45, 90, 61)] == [False] * 5
    assert agg.align(1_000_000_037, 60) == 1_000_000_020  # down to the minute
    assert agg.align(1_000_000_037, 300) == 1_000_000_020  # minute-multiple periods: the minute too
    assert agg.align(1_000_000_037, 10) == 1_000_000_030 and agg.align(1_000_000_037, 1) == 1_000_000_037
    origin = 1_000_000_020
    assert [agg.slot(origin + s, origin, 300) - origin for s in (0, 299, 300, 1000)] == [0, 0, 300, 900]


def test_by_period_combines_second_buckets() -> None:
    origin = 600
    rows = [(600, _bucket(1)), (659, _bucket(2, 3)), (660, _bucket(10)), (725, _bucket(4))]
    periods = agg.by_period(rows, origin, 60)
    assert sorted(periods) == [600, 660, 720]
    assert [agg.statistic(periods[600], s) for s in ("Sum", "SampleCount", "Maximum")] == [6, 3, 3]
    assert agg.statistic(periods[660], "Sum") == 10 and agg.statistic(periods[720], "Average") == 4


def _math(expression: str, **series: dict) -> object:
    def resolve(name: str):
        if name not in series:
            raise ExpressionError(f"Unrecognized identifier {name}.")
        return series[name]

    return evaluate(
        expression, resolve, lambda label: [s for k, s in series.items() if label is None or label in k]
    )


def test_metric_math() -> None:
    a, b = {0: 1.0, 60: 2.0, 120: 3.0}, {0: 10.0, 60: 20.0}
    assert _math("a + b", a=a, b=b) == {0: 11, 60: 22}
    assert _math("(a + 1) * 2 - -b / 10", a=a, b=b) == {0: 5, 60: 8}
    assert _math("SUM([a, b])", a=a, b=b) == {0: 11, 60: 22, 120: 3}
    assert _math("MAX([a, b * 0])", a=a, b=b) == {0: 1, 60: 2, 120: 3}
    assert _math("AVG(a)", a=a) == 2 and _math("MIN(a) + MAX(a)", a=a) == 4
    assert _math("a / (b - 10)", a=a, b=b) == {60: 0.2}
    assert _math("SUM(METRICS())", a=a, b=b) == {0: 11, 60: 22, 120: 3}
    assert _math('SUM(METRICS("b"))', a=a, b=b) == b
    assert _math("[a, b] * 2", a=a, b=b) == [{0: 2, 60: 4, 120: 6}, {0: 20, 60: 40}]
    assert math.isnan(_math("AVG(a)", a={}))  # type: ignore[arg-type]
    assert identifiers("SUM([m1, m_2]) / total + 3") == {"m1", "m_2", "total"}


@pytest.mark.parametrize(
    "expression", ["", "a +", "a b", "(a", "[a, 1]", "RATE(a)", "a % 2", "zz", "METRICS(a)"]
)
def test_metric_math_errors(expression: str) -> None:
    with pytest.raises(ExpressionError):
        _math(expression, a={0: 1.0})


def test_recorder_flushes_and_rolls_up(tmp_path) -> None:
    store = StateStore(tmp_path / "kennel.db")
    now = 10_000_000
    recorder = MetricRecorder(store, lambda: now)
    metric = ("NS", "Latency", (("Endpoint", "e"),))
    old = now - 4 * 3600  # older than the 3 hours 1-second buckets are kept
    for second in range(old, old + 120):
        recorder.record(metric, "Milliseconds", second, float(second - old))
    recorder.record(metric, "Milliseconds", now - 10, 5.0)
    recorder.record(metric, "Milliseconds", now - 10, 7.0)
    metric_id = recorder.find(metric)
    assert metric_id is not None and recorder.find(("NS", "Latency", ())) is None
    fine = recorder.periods(metric_id, now - 60, now, 10, None, True)
    assert fine[("Milliseconds", now - 10)][agg.COUNT] == 2
    assert recorder.rollup() == 120
    assert recorder.periods(metric_id, old, old + 120, 1, None, False) == {}  # 1-second data is gone
    minutes = recorder.periods(metric_id, old - old % 60, now, 60, "Milliseconds", True)
    assert sum(b[agg.COUNT] for b in minutes.values()) == 122
    assert sum(b[agg.SUM] for b in minutes.values()) == sum(range(120)) + 12
    first = minutes[("Milliseconds", old - old % 60)]
    assert agg.statistic(first, "p100") == first[agg.MAX]  # distributions survive the roll-up
    store.close()
