"""Load against endpoints through boto3, and the autoscaling step-load run shared by
``benchmarks/autoscaling.py`` and ``make demo``: paced senders, a capacity sampler, per-period metrics,
and a ``Timeline`` for the scaling plot."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
from botocore.config import Config
from PIL import Image
from rich.console import Console

from kennel.demo.timeline import CapacitySample, Timeline, per_period

RESOURCE = "endpoint/{}/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@dataclass(frozen=True)
class StepLoad:
    rate: float = 30.0  # offered requests per second during the step
    threads: int = 6
    target: float = 10.0  # InvocationsPerInstance per period
    max: int = 3
    hold_s: float = 8.0  # load kept on after reaching the maximum


class Clients:
    def __init__(self, endpoint: str, key: str, secret: str) -> None:
        self.args = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": key,
            "aws_secret_access_key": secret,
            "config": Config(retries={"max_attempts": 1}, max_pool_connections=32),
        }

    def __call__(self, service: str):
        return boto3.session.Session().client(service, **self.args)


class Load:
    """Paced senders: ``rate`` requests per second in total, from ``threads`` boto3 clients."""

    def __init__(self, clients: Clients, endpoint: str, rate: float, threads: int) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, "JPEG")
        self.body, self.endpoint, self.clients = buffer.getvalue(), endpoint, clients
        self.rate, self.threads = rate, threads
        self.sent: list[float] = []
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()

    def _run(self, index: int) -> None:
        client = self.clients("sagemaker-runtime")
        interval = self.threads / self.rate
        due = time.time() + interval * index / self.threads
        while not self._stop.is_set():
            time.sleep(max(0.0, due - time.time()))
            sent = time.time()
            try:
                client.invoke_endpoint(EndpointName=self.endpoint, Body=self.body, ContentType="image/jpeg")
                self.sent.append(sent)
            except Exception as exc:  # counted, never raised: the figure is how many fail
                self.failures.append((sent, f"{type(exc).__name__}: {exc}"))
            due = max(due + interval, time.time() - interval)  # do not burst to catch up after a stall


class Sampler(threading.Thread):
    def __init__(self, clients: Clients, endpoint: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.sm, self.endpoint, self.t0 = clients("sagemaker"), endpoint, t0
        self.samples: list[CapacitySample] = []
        self.status = "InService"
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            described = self.sm.describe_endpoint(EndpointName=self.endpoint)
            variant = described["ProductionVariants"][0]
            self.status = described["EndpointStatus"]
            self.samples.append(
                CapacitySample(
                    time.time() - self.t0, variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]
                )
            )
            self.halt.wait(0.1)

    def latest(self) -> CapacitySample:
        return self.samples[-1] if self.samples else CapacitySample(0, 1, 1)


def metric_periods(cw, endpoint: str, start: float, end: float, period_s: int) -> dict[int, float]:
    """InvocationsPerInstance Sum per alarm period, built from 1-second data (valid at any time scale)."""
    found = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="InvocationsPerInstance",
        Statistics=["Sum"],
        Period=1,
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=datetime.fromtimestamp(start, UTC),
        EndTime=datetime.fromtimestamp(end, UTC),
    )
    sums: dict[int, float] = {}
    for point in found["Datapoints"]:
        second = int(point["Timestamp"].timestamp())
        slot = second - second % period_s
        sums[slot] = sums.get(slot, 0.0) + point["Sum"]
    return sums


def third_high_end(sums: dict[int, float], target: float, period_s: int, after: float) -> float | None:
    """End of the first period that completes three consecutive periods above the target."""
    for slot in sorted(s for s in sums if s >= after - period_s):
        if all(sums.get(slot - k * period_s, 0.0) > target for k in range(3)):
            return slot + period_s
    return None


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def step_load(
    clients: Clients, name: str, args: StepLoad, period_s: int, console: Console, *, cold: float | None = None
) -> dict:
    """Register the endpoint's variant for target tracking, offer a step load, stop it, wait for the
    scale-in; return the figures and a ``Timeline`` under ``"timeline"``."""
    aas, cw = clients("application-autoscaling"), clients("cloudwatch")
    resource = RESOURCE.format(name)
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        MinCapacity=1,
        MaxCapacity=args.max,
    )
    aas.put_scaling_policy(
        PolicyName="invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": args.target,
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 60,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
    )
    t0 = time.time()
    sampler = Sampler(clients, name, t0)
    sampler.start()
    load = Load(clients, name, args.rate, args.threads)
    console.print(f"offering {args.rate:g} req/s to {name}")
    load.start()
    at_max = wait_for(lambda: sampler.latest().current >= args.max, 120 * period_s)
    time.sleep(args.hold_s)
    load.stop()
    load_end = time.time()
    console.print(f"load stopped after {load_end - t0:.1f} s; waiting for the scale-in")
    # 15 low periods, then draining; generous margin for a busy machine
    back = wait_for(
        lambda: (
            sampler.latest().desired == 1 and sampler.latest().current == 1 and sampler.status == "InService"
        ),
        40 * period_s + 60,
    )
    time.sleep(1.0)
    sampler.halt.set()
    sampler.join()
    done = time.time()
    activities = aas.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION
    )["ScalingActivities"]
    scaled = sorted(
        (a for a in activities if a["Description"].startswith("Setting desired")),
        key=lambda a: a["StartTime"],
    )
    sums = metric_periods(cw, name, t0 - period_s, done, period_s)
    outs = [a for a in scaled if a["StartTime"].timestamp() < load_end]
    ins = [a for a in scaled if a["StartTime"].timestamp() >= load_end]
    report: dict = {
        "reached maximum": str(at_max),
        "back at minimum": str(back),
    }
    if cold is not None:
        report["cold CreateEndpoint (baseline)"] = f"{cold:.2f} s"
    if outs:
        started = outs[0]["StartTime"].timestamp()
        third = third_high_end(sums, args.target, period_s, t0)
        # The first instance added by the scale-out: serving count above what served when the load began.
        initial = sampler.samples[0].current if sampler.samples else 1
        first_up = next(
            (s.t + t0 for s in sampler.samples if s.t + t0 >= started and s.current > initial), None
        )
        if third is not None:
            report["third high datapoint → scaling activity"] = f"{started - third:.2f} s"
        if first_up is not None:
            report["scaling activity → new instance serving"] = f"{first_up - started:.2f} s"
            if third is not None:
                report["third high datapoint → new instance serving"] = f"{first_up - third:.2f} s"
                if cold:
                    report["  ratio to a cold CreateEndpoint"] = f"{(first_up - third) / cold:.2f}×"
    if ins:
        start_in = ins[0]["StartTime"].timestamp()
        end_in = ins[-1].get("EndTime", datetime.fromtimestamp(done, UTC)).timestamp()
        report["load end → scale-in activity"] = f"{start_in - load_end:.1f} s"
        failed_in = [f for f in load.failures if start_in - 1 <= f[0] <= end_in]
        report["requests failed during scale-in"] = str(len(failed_in))
    report["requests sent / failed (whole run)"] = (
        f"{len(load.sent) + len(load.failures)} / {len(load.failures)}"
    )
    for moment, error in load.failures[:3]:
        console.print(f"[red]failure at {moment - t0:.1f} s: {error}")
    timeline = Timeline(target=args.target, period_s=period_s)
    timeline.offered = per_period(load.sent + [f[0] for f in load.failures], t0, load_end, period_s)
    # Periods without requests read as 0, as the alarms read them (SageMaker publishes zeros when idle).
    first = min(sums, default=int(t0))
    filled = {slot: sums.get(slot, 0.0) for slot in range(first, int(done), period_s)}
    timeline.metric = sorted((slot - t0, value) for slot, value in filled.items() if slot >= t0 - period_s)
    timeline.capacity = sampler.samples
    timeline.events = [
        (a["StartTime"].timestamp() - t0, f"→ {a['Description'].split()[-1].rstrip('.')}") for a in scaled
    ]
    timeline.phases = [(0.0, load_end - t0, f"{args.rate:g} req/s"), (load_end - t0, done - t0, "idle")]
    report["timeline"] = timeline
    return report
