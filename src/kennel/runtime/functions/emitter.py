"""Logs and metrics leave the invocation path: buffered, then written by one background thread.

A CloudWatch write costs a store transaction; doing several per invocation on the request thread
would multiply the warm-invoke latency. Recording is an append under a lock (no thread wake-up per
item, so nothing competes with the request for the interpreter); the thread drains the buffer every
``batch_s`` seconds, one LogSink call per stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from kennel.runtime.loop import ticker
from kennel.runtime.telemetry import LogSink, MetricSink

log = logging.getLogger("kennel.lambda.telemetry")

NAMESPACE = "AWS/Lambda"


class Emitter:
    def __init__(self, logs: LogSink | None, metrics: MetricSink | None, *, batch_s: float = 0.2) -> None:
        self.logs = logs
        self.metrics = metrics
        self.batch_s = batch_s
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, str], list[tuple[float, str]]] = {}
        self._metrics: list[tuple[str, dict[str, str], float, str, float]] = []
        self._flushed: list[threading.Event] = []
        self._loop = ticker("lambda-telemetry", batch_s, self._drain)  # the one never-die loop
        self._loop.start()

    def log(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None:
        if events and self.logs is not None:
            with self._lock:
                self._logs.setdefault((group, stream), []).extend(events)

    def metric(self, name: str, dimensions: Mapping[str, str], value: float, unit: str = "Count") -> None:
        if self.metrics is not None:
            with self._lock:
                self._metrics.append((name, dict(dimensions), float(value), unit, time.time()))

    def throttle(self, function: str, qualifier: str | None) -> None:
        for dims in dimensions(function, qualifier):
            self.metric("Throttles", dims, 1)

    def invocation(
        self,
        function: str,
        qualifier: str | None,
        error: bool | None,  # None: the environment never ran it (no Errors/Duration datapoint)
        duration_ms: float | None,
        concurrency: int,
        account_concurrency: int,
        *,
        spillover: bool = False,
        utilization: float | None = None,  # busy/configured of the provisioned pool that served it
    ) -> None:
        """The AWS/Lambda datapoints of one invocation, per FunctionName and, if qualified, Resource."""
        self.metric("ConcurrentExecutions", {}, account_concurrency)
        for dims in dimensions(function, qualifier):
            self.metric("ConcurrentExecutions", dims, concurrency)
            self.metric("Invocations", dims, 1)
            if error is not None:
                self.metric("Errors", dims, int(error))
            if duration_ms is not None:
                self.metric("Duration", dims, duration_ms, "Milliseconds")
            if spillover:
                self.metric("ProvisionedConcurrencySpilloverInvocations", dims, 1)
            if utilization is not None:
                self.metric("ProvisionedConcurrencyInvocations", dims, 1)
                self.metric("ProvisionedConcurrencyUtilization", dims, utilization, "None")

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything recorded so far is written (tests, shutdown)."""
        done = threading.Event()
        with self._lock:
            self._flushed.append(done)
        self._loop.wake()
        return done.wait(timeout_s)

    def close(self) -> None:
        self._loop.stop(timeout_s=5)
        self._drain()  # what was recorded after the last tick

    def _drain(self) -> None:
        with self._lock:
            streams, self._logs = self._logs, {}
            metrics, self._metrics = self._metrics, []
            flushed, self._flushed = self._flushed, []
        try:
            self._write(streams, metrics)
        finally:
            for done in flushed:
                done.set()

    def _write(self, streams: dict, metrics: list) -> None:
        for name, dims, value, unit, stamp in metrics:
            try:
                assert self.metrics is not None
                self.metrics.put(NAMESPACE, name, dims, value, unit=unit, timestamp=stamp)
            except Exception:  # a broken sink must not stop the thread or the invocations
                log.exception("could not put metric %s", name)
        for (group, stream), events in streams.items():
            try:
                assert self.logs is not None
                self.logs.append(group, stream, events)
            except Exception:
                log.exception("could not append to %s %s", group, stream)


def dimensions(function: str, qualifier: str | None) -> list[dict[str, str]]:
    dims = [{"FunctionName": function}]
    if qualifier:
        dims.append({"FunctionName": function, "Resource": f"{function}:{qualifier}"})
    return dims
