"""The cloud's MetricSink and LogSink driven in-process from many threads, read back through the
providers' own operations: nothing lost, nothing double-counted, nothing raised into the caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kennel.cloud.auth.identity import Principal
from kennel.cloud.cloudstate import Cloud
from kennel.cloud.services.base import Context
from kennel.settings import Settings

THREADS, CALLS = 8, 500
ACCOUNT = "000000000000"


def _ctx(operation: str) -> Context:
    admin = Principal(
        arn=f"arn:aws:iam::{ACCOUNT}:user/admin",
        identity_arn=f"arn:aws:iam::{ACCOUNT}:user/admin",
        kind="user",
        name="admin",
        user_id="AIDATEST",
        account=ACCOUNT,
    )
    return Context(
        request_id="r",
        service="test",
        operation=operation,
        principal=admin,
        region="us-east-1",
        account=ACCOUNT,
        now=datetime.now(UTC),
    )


def _hammer(work: Callable[[int], None]) -> None:
    start = threading.Barrier(THREADS)

    def run(thread: int) -> None:
        start.wait()  # all threads publish at once, the way endpoint workers do
        work(thread)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _statistics(cloud: Cloud, base: int) -> list[dict]:
    params = {
        "Namespace": "AWS/SageMaker",
        "MetricName": "Invocations",
        "Period": 60,
        "Dimensions": [{"Name": "EndpointName", "Value": "dogs"}, {"Name": "VariantName", "Value": "v1"}],
        "StartTime": datetime.fromtimestamp(base, UTC),
        "EndTime": datetime.fromtimestamp(base + 120, UTC),
        "Statistics": ["Sum", "SampleCount", "Minimum", "Maximum"],
    }
    return cloud.metrics.get_metric_statistics(params, _ctx("GetMetricStatistics"))["Datapoints"]


def test_metric_sink_is_exact_under_concurrency_and_survives_restart(state_dir: Path) -> None:
    base = int(time.time()) // 60 * 60 - 300
    dims = {"VariantName": "v1", "EndpointName": "dogs"}  # any order: dimensions are a set

    def publish(thread: int) -> None:
        for i in range(CALLS):
            cloud.metrics.put(
                "AWS/SageMaker",
                "Invocations",
                dims,
                float(i % 7),
                unit="Count",
                timestamp=base + (i * 7 + thread) % 120 + 0.5,
            )

    cloud = Cloud(Settings(state_dir=state_dir, port=1))
    try:
        _hammer(publish)
        points = _statistics(cloud, base)
        assert [p["Timestamp"].timestamp() - base for p in points] == [0, 60]
        assert sum(p["SampleCount"] for p in points) == THREADS * CALLS
        assert sum(p["Sum"] for p in points) == THREADS * sum(i % 7 for i in range(CALLS))
        assert min(p["Minimum"] for p in points) == 0 and max(p["Maximum"] for p in points) == 6
        listed = cloud.metrics.list_metrics({"Namespace": "AWS/SageMaker"}, _ctx("ListMetrics"))["Metrics"]
        assert listed == [
            {
                "Namespace": "AWS/SageMaker",
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "dogs"},
                    {"Name": "VariantName", "Value": "v1"},
                ],
            }
        ]
        cloud.metrics.put("AWS/SageMaker", "Invocations", dims, 1.0, unit="Count", timestamp=base + 1)
        # Bad input is dropped, never raised into the publisher.
        cloud.metrics.put("AWS/SageMaker", "Invocations", dims, float("nan"))
        cloud.metrics.put("AWS/SageMaker", "Invocations", dims, "not a number")  # type: ignore[arg-type]
        cloud.metrics.put("AWS/SageMaker", "Invocations", None, 1.0)  # type: ignore[arg-type]
    finally:
        cloud.close()  # flushes what is still in memory
    cloud = Cloud(Settings(state_dir=state_dir, port=1))
    try:
        assert sum(p["SampleCount"] for p in _statistics(cloud, base)) == THREADS * CALLS + 1
    finally:
        cloud.close()


def test_log_sink_keeps_every_event_in_time_order(state_dir: Path) -> None:
    group, base = "/aws/sagemaker/Endpoints/dogs", time.time() - 60

    def publish(thread: int) -> None:
        for i in range(CALLS // 5):
            stamp = base + (i * THREADS + thread) / 1000
            cloud.logs.append(
                group, f"v1/i-{thread % 2}", [(stamp, f"t{thread} n{i} {'ERROR' if i % 10 == 0 else 'ok'}")]
            )

    cloud = Cloud(Settings(state_dir=state_dir, port=1))
    try:
        _hammer(publish)
        logs = cloud.logs
        cloud.logs.append(group, "v1/i-0", [(base, "")])  # empty messages are skipped, as AWS refuses them
        cloud.logs.append(group, "v1/i-0", None)  # type: ignore[arg-type]
        streams = logs.describe_log_streams({"logGroupName": group}, _ctx("DescribeLogStreams"))["logStreams"]
        assert [s["logStreamName"] for s in streams] == ["v1/i-0", "v1/i-1"]
        events = []
        for stream in ("v1/i-0", "v1/i-1"):
            params = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            events += logs.get_log_events(params, _ctx("GetLogEvents"))["events"]
        assert len(events) == THREADS * CALLS // 5
        half = events[: len(events) // 2]
        assert [e["timestamp"] for e in half] == sorted(e["timestamp"] for e in half)
        found = logs.filter_log_events(
            {"logGroupName": group, "filterPattern": "ERROR"}, _ctx("FilterLogEvents")
        )
        assert len(found["events"]) == THREADS * CALLS // 50
        (described,) = logs.describe_log_groups({"logGroupNamePrefix": group}, _ctx("DescribeLogGroups"))[
            "logGroups"
        ]
        assert described["storedBytes"] == sum(len(e["message"]) for e in events)
    finally:
        cloud.close()


def test_retention_removes_old_events_and_recounts_streams(state_dir: Path) -> None:
    cloud = Cloud(Settings(state_dir=state_dir, port=1))
    try:
        now = time.time()
        cloud.logs.append(
            "/kennel/retention", "s", [(now - 3 * 86_400, "old one"), (now - 2 * 86_400, "old two")]
        )
        cloud.logs.append("/kennel/retention", "s", [(now - 60, "fresh")])
        cloud.logs.put_retention_policy(
            {"logGroupName": "/kennel/retention", "retentionInDays": 1}, _ctx("x")
        )
        cloud.logs.writer.flush()
        assert cloud.logs.writer.enforce_retention() == 2
        params = {"logGroupName": "/kennel/retention"}
        (stream,) = cloud.logs.describe_log_streams(params, _ctx("DescribeLogStreams"))["logStreams"]
        assert stream["storedBytes"] == len("fresh") and stream["firstEventTimestamp"] == int(
            (now - 60) * 1000
        )
        events = cloud.logs.filter_log_events(params, _ctx("FilterLogEvents"))["events"]
        assert [e["message"] for e in events] == ["fresh"]
    finally:
        cloud.close()
