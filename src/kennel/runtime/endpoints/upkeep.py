"""The fleet's upkeep, an object the :class:`~kennel.runtime.endpoints.manager.EndpointManager` owns.

* the *monitor* (4 Hz) notices exited processes, takes them out of routing and starts replacements
  (retrying with back-off while the endpoint exists), and flushes log lines and metric data points;
* the *health* thread (1 Hz) pings every instance every ``ping_interval_s`` (three failed pings in
  a row and the instance is killed, so the monitor replaces it, as SageMaker does) and samples CPU
  and memory per instance every ``sample_interval_s``.

Each step runs isolated: an exception is logged and the loop goes on, since these loops are what
keeps endpoints alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kennel.runtime.endpoints.instances import Instance, InstanceFailed
from kennel.runtime.endpoints.metrics import MetricBuffer, log_group, send_logs
from kennel.runtime.endpoints.router import Variant
from kennel.runtime.endpoints.shared import Endpoint, Slot
from kennel.runtime.loop import ControlLoop, ticker
from kennel.runtime.telemetry import LogSink, MetricSink

log = logging.getLogger(__name__)
_PING_FAILURES_BEFORE_KILL = 3


class LogSources:
    """Instances whose output still flows to CloudWatch Logs, by endpoint name (the monitor drains them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[tuple[str, Instance]] = []

    def add(self, endpoint_name: str, instance: Instance) -> None:
        with self._lock:
            self._sources.append((endpoint_name, instance))

    def snapshot(self) -> list[tuple[str, Instance]]:
        with self._lock:
            return list(self._sources)

    def forget(self, finished: list[tuple[str, Instance]]) -> None:
        with self._lock:
            self._sources = [s for s in self._sources if s not in finished]


class Upkeep:
    """Owned by the endpoint manager; shares its lock and its slots (id(Variant) → how to grow it)."""

    def __init__(
        self,
        *,
        endpoints: Callable[[], list[Endpoint]],
        lock: threading.RLock,
        slots: dict[int, Slot],
        start_ready: Callable[[Endpoint, Slot], Instance],
        log_sources: LogSources,
        metrics: MetricBuffer,
        metric_sink: MetricSink,
        log_sink: LogSink,
        stop: threading.Event,
        ping_interval_s: float,
        sample_interval_s: float,
    ) -> None:
        self._endpoints = endpoints
        self._lock = lock
        self._slots = slots
        self._start_ready = start_ready
        self.log_sources = log_sources
        self.metrics = metrics
        self.metric_sink = metric_sink
        self.log_sink = log_sink
        self._stop = stop
        self.ping_interval_s = ping_interval_s
        self.sample_interval_s = sample_interval_s
        self._last_ping = self._last_sample = 0.0
        self._loops: list[ControlLoop] = []

    def start(self, monitor_interval_s: float) -> None:
        # The one never-die loop: a failing step is logged and counted, the loop that replaces dead
        # instances goes on.
        self._loops = [
            ticker("endpoint-monitor", monitor_interval_s, self.monitor),
            ticker("endpoint-health", 1.0, self._health),
        ]
        for loop in self._loops:
            loop.start()

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop(timeout_s=5.0)

    def _active(self) -> list[tuple[Endpoint, Variant, Instance]]:
        endpoints = self._endpoints()
        return [
            (ep, variant, instance)
            for ep in endpoints
            for variant in ep.fleet.variants.values()
            for instance in list(variant.instances)
            if not instance.retired
        ]

    def monitor(self) -> None:
        for endpoint, variant, instance in self._active():
            code = instance.exit_code()
            if code is not None and not endpoint.cancelled.is_set():
                self._lost(endpoint, variant, instance, f"Instance {instance.id} exited with code {code}")
        finished = []
        for endpoint_name, instance in self.log_sources.snapshot():
            done = instance.output_done() and instance.exit_code() is not None
            send_logs(self.log_sink, log_group(endpoint_name), instance.stream, instance.take_log_events())
            if done:
                finished.append((endpoint_name, instance))
        if finished:
            self.log_sources.forget(finished)
        self.metrics.flush(self.metric_sink)

    def _lost(self, endpoint: Endpoint, variant: Variant, instance: Instance, why: str) -> None:
        with endpoint.router.cond:
            if instance.retired:
                return
            instance.healthy = False
            instance.retired = True
            variant.instances = [i for i in variant.instances if i is not instance]
        instance.close_connections()
        instance.note(f"{why}; starting a replacement")
        log.warning("endpoint %s: %s; replacing it", endpoint.name, why)
        slot = self._slots.get(id(variant))
        if slot is not None:
            threading.Thread(target=self._replace, args=(endpoint, slot), daemon=True).start()

    def _replace(self, endpoint: Endpoint, slot: Slot) -> None:
        backoff = 1.0
        while not endpoint.cancelled.is_set() and not self._stop.is_set():
            variant = slot.fleet.variants[slot.spec.name]
            if id(variant) not in self._slots:
                return  # the fleet was stopped (updated away or deleted) meanwhile
            try:
                instance = self._start_ready(endpoint, slot)
            except InstanceFailed as exc:
                log.warning(
                    "endpoint %s: replacement failed (%s); retrying in %.0f s", endpoint.name, exc, backoff
                )
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 60.0)
                continue
            with endpoint.router.cond:
                keep = id(variant) in self._slots and not endpoint.cancelled.is_set()
                if keep:
                    variant.instances.append(instance)
                    endpoint.router.cond.notify_all()
            if not keep:
                instance.stop()
            return

    def _health(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.ping_interval_s:
            self._last_ping = now
            for _, _, instance in self._active():
                if not instance.healthy or not instance.alive():
                    continue
                if instance.ping(timeout_s=2.0):
                    instance.ping_failures = 0
                    continue
                instance.ping_failures += 1
                if instance.ping_failures >= _PING_FAILURES_BEFORE_KILL:
                    instance.note(
                        f"Instance {instance.id} failed {instance.ping_failures} pings in a row; killing it"
                    )
                    if instance.proc is not None:
                        instance.proc.kill()
        if now - self._last_sample >= self.sample_interval_s:
            self._last_sample = now
            for endpoint, variant, instance in self._active():
                sample = instance.sample()
                if sample is not None:
                    self.metrics.instance_sample(endpoint.name, variant.name, *sample)
