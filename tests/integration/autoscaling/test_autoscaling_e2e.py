"""Target tracking end to end on a compressed clock (one simulated minute per real second).

A tiny ResNet-18 endpoint (32 px) is registered with min 1 / max 3 and a target of 10 invocations per
instance per period. A paced step load of 30 requests per second must take it to 3 instances a few
periods after the high alarm's third datapoint; when the load stops, the low alarm needs 15 periods
below 9 before the variant goes back to 1 instance — and no request may fail along the way, neither
while new instances join nor while surplus ones are drained and stopped.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import torch
from botocore.config import Config
from PIL import Image
from tests.integration.conftest import LiveCloud, start_gateway, stop_gateway
from tests.integration.support.endpoints import serve
from tests.integration.support.roles import service_role

from kennel.ml.artifact import ArtifactMeta, package_model, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess

pytestmark = pytest.mark.slow

NS, DIM = "sagemaker", "sagemaker:variant:DesiredInstanceCount"
TARGET, RATE, MAX = 10.0, 30.0, 3
LOW_PERIODS = 15


@pytest.fixture(scope="module")
def fast_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    previous = os.environ.get("KENNEL_TIME_SCALE")
    os.environ["KENNEL_TIME_SCALE"] = "1"  # the gateway process reads it at start-up
    try:
        live = start_gateway(tmp_path_factory.mktemp("kennel-fast") / "state")
    finally:
        if previous is None:
            os.environ.pop("KENNEL_TIME_SCALE")
        else:
            os.environ["KENNEL_TIME_SCALE"] = previous
    yield live
    stop_gateway(live)


def model(root: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(8,))
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=32),
        classes=["001.A", "002.B", "003.C"],
        labels=["A", "B", "C"],
    )
    return package_model(write_model_dir(root / "model", build_model(cfg), meta), root / "model.tar.gz")


class StepLoad:
    """Paced InvokeEndpoint calls from several threads; every failure is kept with its time."""

    def __init__(self, cloud: LiveCloud, endpoint: str, rate: float, threads: int = 6) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (40, 160, 90)).save(buffer, "JPEG")
        self.body, self.endpoint, self.cloud = buffer.getvalue(), endpoint, cloud
        self.interval = threads / rate
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self.halt = threading.Event()
        self.workers = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]
        self.lock = threading.Lock()

    def run(self, index: int) -> None:
        client = boto3.session.Session().client(
            "sagemaker-runtime",
            endpoint_url=self.cloud.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.cloud.access_key_id,
            aws_secret_access_key=self.cloud.secret_access_key,
            config=Config(retries={"max_attempts": 1}),
        )
        due = time.time() + self.interval * index / len(self.workers)
        while not self.halt.is_set():
            time.sleep(max(0.0, due - time.time()))
            try:
                client.invoke_endpoint(EndpointName=self.endpoint, Body=self.body, ContentType="image/jpeg")
                with self.lock:
                    self.ok += 1
            except Exception as exc:
                with self.lock:
                    self.failures.append((time.time(), f"{type(exc).__name__}: {exc}"))
            due = max(due + self.interval, time.time() - self.interval)

    def __enter__(self) -> StepLoad:
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.halt.set()
        for worker in self.workers:
            worker.join()


def test_step_load_scales_out_to_max_and_back_to_min_without_failures(fast_cloud, tmp_path) -> None:
    sm, aas = fast_cloud.client("sagemaker"), fast_cloud.client("application-autoscaling")
    name, resource = "scaled", "endpoint/scaled/variant/AllTraffic"
    service_role(fast_cloud, "Sm")  # SageMaker refuses a role that is missing or does not trust it
    container = {"Image": "pytorch-inference:2.0-cpu", "ModelDataUrl": str(model(tmp_path))}
    serve(sm, name, container, role="arn:aws:iam::000000000000:role/Sm", delay=0.5, attempts=240)
    aas.register_scalable_target(
        ServiceNamespace=NS, ResourceId=resource, ScalableDimension=DIM, MinCapacity=1, MaxCapacity=MAX
    )
    aas.put_scaling_policy(
        PolicyName="invocations",
        ServiceNamespace=NS,
        ResourceId=resource,
        ScalableDimension=DIM,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": TARGET,
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 60,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
    )

    def variant() -> tuple[str, int, int]:
        described = sm.describe_endpoint(EndpointName=name)
        v = described["ProductionVariants"][0]
        return described["EndpointStatus"], v["CurrentInstanceCount"], v["DesiredInstanceCount"]

    def wait(condition, timeout_s: float, what: str) -> float:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if condition(variant()):
                return time.time()
            time.sleep(0.2)
        raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s (now {variant()})")

    with StepLoad(fast_cloud, name, RATE) as load:
        started = time.time()
        # 30 per period on one instance against a target of 10: ceil(1 × 30 / 10) = 3 after three high
        # periods, plus a period for the datapoint to settle and the decision (generous for a busy CI box).
        asked = wait(lambda v: v[2] == MAX, 12, "the scale-out decision to 3 instances")
        wait(lambda v: v == ("InService", MAX, MAX), 90, "3 instances serving")
        assert asked - started >= 3  # not before three datapoints were above the target
        time.sleep(3)  # a few periods of steady load on the full fleet
    stopped = time.time()
    back = wait(lambda v: v == ("InService", 1, 1), LOW_PERIODS + 45, "the scale-in to 1 instance")
    assert back - stopped >= LOW_PERIODS - 1  # the low alarm needs 15 datapoints below 90 % of the target
    assert load.failures == [], load.failures[:5]
    assert load.ok > RATE * 8
    deadline = time.time() + 5  # the loop settles the last activity within a tick of the endpoint settling
    while True:
        found = aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=resource)
        activities = found["ScalingActivities"]
        if activities[0]["StatusCode"] != "InProgress" or time.time() > deadline:
            break
        time.sleep(0.1)
    scaled = [
        (a["Description"], a["StatusCode"], a["Cause"].split(" in state")[0]) for a in reversed(activities)
    ]
    *outs, last = scaled  # a slow first datapoint may split the scale-out in two steps, never more
    assert outs and all("-AlarmHigh-" in cause for _, _, cause in outs) and len(outs) <= 2
    assert outs[-1][0] == "Setting desired instance count to 3."
    assert last[0] == "Setting desired instance count to 1." and "-AlarmLow-" in last[2]
    assert all(status == "Successful" for _, status, _ in scaled)


def test_alarms_follow_custom_metrics_on_the_compressed_clock(fast_cloud) -> None:
    """PutMetricData → a 2-of-2 alarm and a metric-math alarm go to ALARM within a few one-second periods,
    then to INSUFFICIENT_DATA once the data stops (TreatMissingData missing)."""
    cw = fast_cloud.client("cloudwatch")
    dims = [{"Name": "Queue", "Value": "jobs"}]
    cw.put_metric_alarm(
        AlarmName="queue-deep",
        Namespace="Custom/App",
        MetricName="QueueDepth",
        Dimensions=dims,
        Statistic="Average",
        Period=60,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=100.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    stat = {
        "Metric": {"Namespace": "Custom/App", "MetricName": "QueueDepth", "Dimensions": dims},
        "Stat": "Sum",
        "Period": 60,
    }
    cw.put_metric_alarm(
        AlarmName="queue-math",
        EvaluationPeriods=1,
        Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            {"Id": "m1", "MetricStat": stat, "ReturnData": False},
            {"Id": "e1", "Expression": "m1 / 100", "ReturnData": True},
        ],
    )

    def states() -> dict[str, str]:
        shown = cw.describe_alarms(AlarmNamePrefix="queue-")["MetricAlarms"]
        return {a["AlarmName"]: a["StateValue"] for a in shown}

    deadline = time.time() + 15
    while states() != {"queue-deep": "ALARM", "queue-math": "ALARM"}:
        assert time.time() < deadline, states()
        cw.put_metric_data(
            Namespace="Custom/App",
            MetricData=[{"MetricName": "QueueDepth", "Dimensions": dims, "Value": 150.0}] * 10,
        )
        time.sleep(0.2)
    (deep,) = cw.describe_alarms(AlarmNames=["queue-deep"], StateValue="ALARM")["MetricAlarms"]
    assert deep["StateReason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [150.0 (")
    assert deep["StateReason"].endswith(
        "were greater than the threshold (100.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert json.loads(deep["StateReasonData"])["recentDatapoints"] == [150.0, 150.0]
    deadline = time.time() + 10
    while states()["queue-deep"] != "INSUFFICIENT_DATA":
        assert time.time() < deadline, states()
        time.sleep(0.2)
    assert cw.describe_alarms(StateValue="OK", AlarmNamePrefix="queue-")["MetricAlarms"] == []
    cw.delete_alarms(AlarmNames=["queue-deep", "queue-math"])
