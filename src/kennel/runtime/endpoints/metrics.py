"""Endpoint metrics and logs on their way to the sinks, kept off the request path.

A request appends its data points to an in-memory buffer (a deque append, no lock contention worth
measuring); the fleet's monitor thread hands them to the :class:`MetricSink` about once a second.
Names, units and dimensions are SageMaker's: invocation metrics in ``AWS/SageMaker`` and instance
metrics in ``/aws/sagemaker/Endpoints``, both with ``EndpointName`` and ``VariantName``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from kennel.runtime.telemetry import LogSink, MetricSink

log = logging.getLogger(__name__)

INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
_MAX_BUFFERED = 200_000


def log_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


class NullMetricSink:
    def put(self, namespace, name, dimensions, value, *, unit="None", timestamp=None) -> None:
        return None


class NullLogSink:
    def append(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None:
        return None


class MetricBuffer:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._points: deque[tuple[str, str, tuple[tuple[str, str], ...], float, str, float]] = deque(
            maxlen=_MAX_BUFFERED
        )

    def add(
        self, namespace: str, name: str, dims: tuple[tuple[str, str], ...], value: float, unit: str
    ) -> None:
        self._points.append((namespace, name, dims, value, unit, self.clock()))

    def invocation(
        self,
        endpoint: str,
        variant: str,
        *,
        instances: int,
        model_us: float | None,
        overhead_us: float | None,
        status: int | None,
    ) -> None:
        """The data points SageMaker publishes for one InvokeEndpoint routed to ``variant``.

        ``status`` is the model's HTTP status (None when it never answered). The error counts are
        published as 0 on success too, so their Average is the error rate, as on AWS.
        """
        dims = (("EndpointName", endpoint), ("VariantName", variant))
        now = self.clock()
        points = self._points
        points.append((INVOCATION_NAMESPACE, "Invocations", dims, 1.0, "Count", now))
        points.append(
            (INVOCATION_NAMESPACE, "InvocationsPerInstance", dims, 1.0 / max(1, instances), "Count", now)
        )
        if model_us is not None:
            points.append((INVOCATION_NAMESPACE, "ModelLatency", dims, float(model_us), "Microseconds", now))
        if overhead_us is not None:
            points.append(
                (
                    INVOCATION_NAMESPACE,
                    "OverheadLatency",
                    dims,
                    float(max(0.0, overhead_us)),
                    "Microseconds",
                    now,
                )
            )
        client_error = 1.0 if status is not None and 400 <= status < 500 else 0.0
        server_error = 1.0 if status is None or status >= 500 else 0.0
        points.append((INVOCATION_NAMESPACE, "Invocation4XXErrors", dims, client_error, "Count", now))
        points.append((INVOCATION_NAMESPACE, "Invocation5XXErrors", dims, server_error, "Count", now))

    def instance_sample(self, endpoint: str, variant: str, cpu_percent: float, memory_percent: float) -> None:
        dims = (("EndpointName", endpoint), ("VariantName", variant))
        self.add(INSTANCE_NAMESPACE, "CPUUtilization", dims, cpu_percent, "Percent")
        self.add(INSTANCE_NAMESPACE, "MemoryUtilization", dims, memory_percent, "Percent")

    def flush(self, sink: MetricSink) -> int:
        sent = 0
        while True:
            try:
                namespace, name, dims, value, unit, stamp = self._points.popleft()
            except IndexError:
                return sent
            try:
                sink.put(namespace, name, dict(dims), value, unit=unit, timestamp=stamp)
            except Exception:  # a failing sink costs data points, never the endpoint
                log.exception("publishing %s/%s failed", namespace, name)
            sent += 1

    def __len__(self) -> int:
        return len(self._points)


def send_logs(sink: LogSink, group: str, stream: str, events: list[tuple[float, str]]) -> None:
    if not events:
        return
    try:
        sink.append(group, stream, events)
    except Exception:
        log.exception("writing %d log events to %s %s failed", len(events), group, stream)
