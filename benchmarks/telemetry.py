"""Telemetry sinks: the cost of ``cloud.metrics.put`` and ``cloud.logs.append`` to the caller.

Endpoints and functions call these on their request path, so what matters is the time a call takes
in the publishing thread (the background flush to SQLite is included: it runs during the measurement
and competes for the interpreter like it would in the gateway). Figures, all measured in this run:

- µs per call from 1 thread and from 8 threads at once, two ways: as a publishing thread sees it
  (its wall time / its calls, which includes waiting for the GIL while the others run) and as the
  machine pays it (run wall time / all calls, i.e. 1 / throughput);
- the same for a baseline that appends a tuple to a plain list under a lock, with the same call
  signature, and the ratio of the two machine costs;
- how long flushing what the writer thread had not caught up with took after each run, and a check
  that every metric value was stored.

    python benchmarks/telemetry.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kennel.cloud.cloudstate import Cloud
from kennel.settings import Settings

ENDPOINTS = [{"EndpointName": f"dogs-{i}", "VariantName": "AllTraffic"} for i in range(4)]


class Baseline:
    """The cheapest thread-safe sink imaginable: a list behind a lock."""

    def __init__(self) -> None:
        self.items: list = []
        self.lock = threading.Lock()

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
        with self.lock:
            self.items.append((namespace, name, dimensions, value, unit, timestamp))

    def append(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None:
        with self.lock:
            self.items.append((group, stream, events))


def run(threads: int, calls: int, one_call: Callable[[int, int], None]) -> tuple[float, float]:
    """(µs per call as a publishing thread sees it, µs of run wall time per call)."""
    per_thread = calls // threads
    spent: list[float] = []
    barrier = threading.Barrier(threads + 1)

    def work(thread: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        for i in range(per_thread):
            one_call(thread, i)
        spent.append(time.perf_counter() - started)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    return sum(spent) / len(spent) / per_thread * 1e6, wall / (per_thread * threads) * 1e6


def metric_call(sink) -> Callable[[int, int], None]:
    def call(thread: int, i: int) -> None:
        sink.put("AWS/SageMaker", "ModelLatency", ENDPOINTS[i & 3], float(i % 1000), unit="Microseconds")

    return call


def log_call(sink) -> Callable[[int, int], None]:
    def call(thread: int, i: int) -> None:
        sink.append(
            "/aws/sagemaker/Endpoints/dogs",
            f"AllTraffic/i-{thread}",
            [(time.time(), f"request {i} served in {i % 97} ms")],
        )

    return call


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200_000, help="calls per measurement")
    args = parser.parse_args()
    console = Console(width=120)
    table = Table(title=f"telemetry sinks, {args.calls} calls per row")
    columns = ("sink", "threads", "µs/call thread", "µs/call machine", "backlog flush ms",
               "baseline thread", "baseline machine", "ratio")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right" if column != "sink" else "left")
    with tempfile.TemporaryDirectory() as tmp:
        cloud = Cloud(Settings(state_dir=Path(tmp) / "state", port=1))
        try:
            started_at = time.time()
            for label, make in (("metrics.put", metric_call), ("logs.append", log_call)):
                sink = cloud.metrics if label == "metrics.put" else cloud.logs
                flush = cloud.metrics.recorder.flush if label == "metrics.put" else cloud.logs.writer.flush
                for threads in (1, 8):
                    cost, wall = run(threads, args.calls, make(sink))
                    # What the writer thread had not caught up with yet; drained before the baseline
                    # runs so that background work never inflates the baseline.
                    flushed = time.perf_counter()
                    flush()
                    backlog_ms = (time.perf_counter() - flushed) * 1e3
                    base_cost, base_wall = run(threads, args.calls, make(Baseline()))
                    table.add_row(
                        label,
                        str(threads),
                        f"{cost:.2f}",
                        f"{wall:.2f}",
                        f"{backlog_ms:.0f}",
                        f"{base_cost:.2f}",
                        f"{base_wall:.2f}",
                        f"{wall / base_wall:.1f}x",
                    )
            console.print(table)
            check(cloud, console, started_at, expected=args.calls + 8 * (args.calls // 8))
        finally:
            cloud.close()


def check(cloud: Cloud, console: Console, started_at: float, expected: int) -> None:
    """Every metric value published above is stored: sum the sample counts back."""
    from kennel.cloud.auth.identity import Principal
    from kennel.cloud.services.base import Context

    admin = Principal(
        "arn:aws:iam::000000000000:user/admin",
        "arn:aws:iam::000000000000:user/admin",
        "user",
        "admin",
        "AIDABENCH",
        "000000000000",
    )
    ctx = Context(
        "bench", "cloudwatch", "GetMetricStatistics", admin, "us-east-1", "000000000000", datetime.now(UTC)
    )
    stored = 0
    for dims in ENDPOINTS:
        params = {
            "Namespace": "AWS/SageMaker",
            "MetricName": "ModelLatency",
            "Period": 60,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "StartTime": datetime.fromtimestamp(started_at - 60, UTC),
            "EndTime": datetime.fromtimestamp(time.time() + 60, UTC),
            "Statistics": ["SampleCount"],
        }
        stored += sum(
            p["SampleCount"] for p in cloud.metrics.get_metric_statistics(params, ctx)["Datapoints"]
        )
    verdict = "all stored" if stored == expected else f"MISMATCH: expected {expected}"
    console.print(f"metric values stored: {stored:,.0f} ({verdict})")


if __name__ == "__main__":
    main()
