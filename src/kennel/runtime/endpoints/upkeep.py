"""The fleet's upkeep, mixed into :class:`~kennel.runtime.endpoints.manager.EndpointManager`.

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
from typing import Any

from kennel.runtime.endpoints.instances import Instance, InstanceFailed
from kennel.runtime.endpoints.metrics import log_group, send_logs
from kennel.runtime.endpoints.router import Variant
from kennel.runtime.endpoints.shared import Endpoint, Slot
from kennel.runtime.loop import ControlLoop, ticker

log = logging.getLogger(__name__)
_PING_FAILURES_BEFORE_KILL = 3


class UpkeepMixin:
    # Set up by EndpointManager.__init__.
    endpoints: dict[str, Endpoint]
    metrics: Any
    metric_sink: Any
    log_sink: Any
    ping_interval_s: float
    sample_interval_s: float
    _lock: threading.RLock
    _slots: dict[int, Slot]
    _log_sources: list[tuple[str, Instance]]
    _stop: threading.Event
    _last_ping: float
    _last_sample: float
    _start_ready: Callable[[Endpoint, Slot], Instance]
    _upkeep_loops: list[ControlLoop]

    def start_upkeep(self, monitor_interval_s: float) -> None:
        # The one never-die loop: a failing step is logged and counted, the loop that replaces dead
        # instances goes on.
        self._upkeep_loops = [
            ticker("endpoint-monitor", monitor_interval_s, self._monitor),
            ticker("endpoint-health", 1.0, self._health),
        ]
        for loop in self._upkeep_loops:
            loop.start()

    def stop_upkeep(self) -> None:
        for loop in self._upkeep_loops:
            loop.stop(timeout_s=5.0)

    def _active(self) -> list[tuple[Endpoint, Variant, Instance]]:
        with self._lock:
            endpoints = list(self.endpoints.values())
        return [
            (ep, variant, instance)
            for ep in endpoints
            for variant in ep.fleet.variants.values()
            for instance in list(variant.instances)
            if not instance.retired
        ]

    def _monitor(self) -> None:
        for endpoint, variant, instance in self._active():
            code = instance.exit_code()
            if code is not None and not endpoint.cancelled.is_set():
                self._lost(endpoint, variant, instance, f"Instance {instance.id} exited with code {code}")
        with self._lock:
            sources = list(self._log_sources)
        finished = []
        for endpoint_name, instance in sources:
            done = instance.output_done() and instance.exit_code() is not None
            send_logs(self.log_sink, log_group(endpoint_name), instance.stream, instance.take_log_events())
            if done:
                finished.append((endpoint_name, instance))
        if finished:
            with self._lock:
                self._log_sources = [s for s in self._log_sources if s not in finished]
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
