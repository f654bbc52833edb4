"""The full path's single-request overhead and its tail, with and without the start-up heap freeze.

    .venv/bin/python benchmarks/invoke_tail.py [--calls 400] [--rounds 2]

A gateway process of its own serves a trivial scripted model (``model_fn``/``transform_fn`` that echo);
one boto3 client calls InvokeEndpoint and sts GetCallerIdentity alternately, one request at a time, so
load from elsewhere lands on both alike. GetCallerIdentity is the baseline: signed HTTP, SigV4, routing
and serialization with no IAM decision, no router and no model server. Printed: p50/p90/p99/max of
each, the overhead (invoke − STS) at p50 and p99, and the endpoint's own server-side latencies from
CloudWatch (ModelLatency: the router's call to the instance; OverheadLatency: the gateway's part).
Targets (issue 15): invoke p50 ≤ 1.5 ms and p99 ≤ 5 ms on a quiet machine.

Each round starts two gateways in turn, ``KENNEL_GC_FREEZE=0`` (CPython's collector walks every
object loaded at start-up in each full collection) and the default freeze (``runtime/heap.py``), so
the tail that full collections cause shows as the difference between them, measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from endpoint_support import Cloud, echo_artifact, percentile


def server_side(cloud: Cloud, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, float]]:
    """The endpoint's own CloudWatch latencies over the run (microseconds → ms): ModelLatency is the
    router's call to the instance (socket + model server), OverheadLatency the gateway's part from the
    request's arrival to the router's answer. What the client saw beyond their sum is the client
    (botocore), the HTTP exchange with the gateway and the scheduling of three processes on the cores."""
    time.sleep(3)  # the metric writer flushes about every second
    cloudwatch = cloud.client("cloudwatch")
    found = {}
    for metric in ("ModelLatency", "OverheadLatency"):
        reply = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric,
            Dimensions=[{"Name": "EndpointName", "Value": "echo"},
                        {"Name": "VariantName", "Value": "AllTraffic"}],
            StartTime=start - dt.timedelta(seconds=1), EndTime=end + dt.timedelta(seconds=61), Period=3600,
            ExtendedStatistics=["p50", "p99"],
        )  # fmt: skip
        points = reply["Datapoints"]
        if len(points) == 1:  # one period covers the run; otherwise percentiles cannot be merged
            found[metric] = {k: v / 1000 for k, v in points[0]["ExtendedStatistics"].items()}
    return found


def measure(calls: int, freeze: bool) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """The client's latencies of each call, and the endpoint's own server-side figures over the run."""
    os.environ["KENNEL_GC_FREEZE"] = "1" if freeze else "0"  # read by the gateway process at start
    with tempfile.TemporaryDirectory(prefix="kennel-tail-") as tmp:
        root = Path(tmp)
        cloud = Cloud(root)
        try:
            cloud.deploy("echo", echo_artifact(root), {})
            runtime, sts = cloud.client("sagemaker-runtime"), cloud.client("sts")
            invoke_ms, sts_ms = [], []
            gc.collect()
            gc.freeze()  # this client's own collections must not land in the figures either
            start = dt.datetime.now(dt.UTC)
            for i in range(calls + 20):
                started = time.perf_counter()
                runtime.invoke_endpoint(EndpointName="echo", Body=b"{}", ContentType="application/json")[
                    "Body"
                ].read()
                middle = time.perf_counter()
                sts.get_caller_identity()
                ended = time.perf_counter()
                if i >= 20:  # the first calls open connections and fill caches
                    invoke_ms.append((middle - started) * 1000)
                    sts_ms.append((ended - middle) * 1000)
            gc.unfreeze()
            served = server_side(cloud, start, dt.datetime.now(dt.UTC))
            return {"invoke": invoke_ms, "sts": sts_ms}, served
        finally:
            cloud.close()


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    console = Console(width=140)
    best: dict[bool, dict[str, dict[str, float]]] = {}
    for round_no in range(args.rounds):
        for freeze in (False, True):
            samples, served = measure(args.calls, freeze)
            got = {name: summary(v) for name, v in samples.items()}
            label = "freeze" if freeze else "no freeze"
            invoke, sts = got["invoke"], got["sts"]
            console.print(
                f"round {round_no + 1} {label}: invoke p50 {invoke['p50']:.2f} p99 {invoke['p99']:.2f} ms; "
                f"sts p50 {sts['p50']:.2f} p99 {sts['p99']:.2f} ms"
            )
            # Other work on the machine only ever adds to a tail: keep each mode's least disturbed round.
            for metric, figures in served.items():
                p50, p99 = figures["p50"], figures["p99"]
                console.print(f"    server side {metric}: p50 {p50:.2f} p99 {p99:.2f} ms")
            if freeze not in best or got["invoke"]["p99"] < best[freeze]["invoke"]["p99"]:
                best[freeze] = got
    table = Table(title=f"one request at a time, {args.calls} calls each (best round of {args.rounds})")
    for column in ("gateway", "call", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if column.endswith("ms") else "left")
    for freeze, got in best.items():
        for call in ("invoke", "sts"):
            s = got[call]
            table.add_row("freeze" if freeze else "no freeze", call, *(f"{s[k]:.2f}" for k in s))
        table.add_row(
            "", "overhead (invoke − sts)", f"{got['invoke']['p50'] - got['sts']['p50']:.2f}", "",
            f"{got['invoke']['p99'] - got['sts']['p99']:.2f}", "",
        )  # fmt: skip
    console.print(table)
    if True in best and False in best:
        ratio = best[True]["invoke"]["p99"] / best[False]["invoke"]["p99"]
        console.print(f"invoke p99 with the freeze / without: {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
