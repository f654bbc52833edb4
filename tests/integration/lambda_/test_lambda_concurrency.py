"""Lambda concurrency for real: reserved concurrency caps a burst, provisioned environments skip Init."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError
from tests.integration.support.lambda_functions import REPORT, create, overlap, tail


def burst(lam, count: int, event: dict, **params) -> list[tuple[str, object, object]]:
    """``count`` invocations released together: (outcome, request id or error code, payload or reason)."""
    barrier = threading.Barrier(count)

    def one(_: int):
        barrier.wait()
        try:
            response = lam.invoke(Payload=json.dumps(event).encode(), **params)
        except ClientError as exc:
            return "throttled", exc.response["Error"]["Code"], exc.response.get("Reason")
        return "ok", response, json.loads(response["Payload"].read())

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_reserved_concurrency_caps_a_burst(cloud, lam, role) -> None:
    name = create(lam, role, Timeout=30)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    results = burst(lam, 20, {"op": "slot", "seconds": 1}, FunctionName=name)
    ran = [r for r in results if r[0] == "ok"]
    throttled = [r for r in results if r[0] == "throttled"]
    assert len(ran) == 5 and len(throttled) == 15
    assert {(code, reason) for _, code, reason in throttled} == {
        ("TooManyRequestsException", "ReservedFunctionConcurrentInvocationLimitExceeded")
    }
    assert all(response.get("FunctionError") is None for _, response, _ in ran)
    assert overlap([payload for _, _, payload in ran]) <= 5
    ran_ids = {payload["id"] for _, _, payload in ran}
    assert ran_ids == {response["ResponseMetadata"]["RequestId"] for _, response, _ in ran}  # none lost

    stats = cloud.client("cloudwatch")
    deadline, total = time.monotonic() + 10, 0.0
    while time.monotonic() < deadline and total < 15:
        points = stats.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Throttles",
            Dimensions=[{"Name": "FunctionName", "Value": name}],
            StartTime=time.time() - 600,
            EndTime=time.time() + 60,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        total = sum(p["Sum"] for p in points)
        time.sleep(0.2)
    assert total == 15


def test_provisioned_alias_serves_without_init(lam, role) -> None:
    name = create(lam, role, Timeout=30)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                                 ProvisionedConcurrentExecutions=2)  # fmt: skip
    assert put["Status"] == "IN_PROGRESS"
    deadline = time.monotonic() + 30
    while (config := lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live"))[
        "Status"
    ] != "READY":
        assert config["Status"] == "IN_PROGRESS" and time.monotonic() < deadline
        time.sleep(0.1)
    assert (
        config["AllocatedProvisionedConcurrentExecutions"]
        == config["AvailableProvisionedConcurrentExecutions"]
        == 2
    )

    results = burst(lam, 2, {"op": "slot", "seconds": 1}, FunctionName=name, Qualifier="live",
                    LogType="Tail")  # fmt: skip
    assert [r[0] for r in results] == ["ok", "ok"]
    assert [REPORT.match(tail(response)[-1]).group("init") for _, response, _ in results] == [None, None]
    assert {response["ExecutedVersion"] for _, response, _ in results} == {version}

    # A third concurrent request finds both provisioned environments busy and spills over to on-demand.
    results = burst(lam, 3, {"op": "slot", "seconds": 1}, FunctionName=name, Qualifier="live",
                    LogType="Tail")  # fmt: skip
    inits = sorted(REPORT.match(tail(response)[-1]).group("init") is not None for _, response, _ in results)
    assert inits == [False, False, True]
