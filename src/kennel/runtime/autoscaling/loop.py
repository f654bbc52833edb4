"""The autoscaling control loop: a thread that ticks and steps every scalable target, and never dies.

Each tick runs the ``prepare`` callable once (alarm evaluation), then ``step(key, now)`` for every key
that ``keys()`` lists. Every call is isolated — an exception is logged with its key and counted, and the
next key still runs — and timed, so a slow or failing endpoint shows up in the log and in ``stats``
instead of stopping the autoscaler. ``wake()`` runs the next tick at once (a new registration should
not wait for the timer).

``ScalableResource`` is what the loop's steps act on: the capacity of one resource, and a way to ask for
a different one. The cloud implements it over the SageMaker API (UpdateEndpointWeightsAndCapacities).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("kennel.autoscaling")
SLOW_STEP_S = 1.0


@dataclass(frozen=True)
class Capacity:
    desired: int  # what the resource was last asked for
    current: int  # instances serving now
    updating: bool  # a change is still being carried out (the resource cannot take another now)
    failure: str | None = None  # the resource's latest failure message (a change that did not complete)


class ScalableResource(Protocol):
    def capacity(self, resource_id: str) -> Capacity | None:
        """The resource's capacity now; None when it does not exist."""
        ...

    def set_desired_capacity(self, resource_id: str, count: int) -> None:
        """Start moving the resource to ``count``; raises with a message the activity can show."""
        ...

    def prepare(self, resource_id: str, may_grow: bool) -> None:
        """Get ready for a possible scale-out (e.g. a warm standby) while ``may_grow``; idempotent."""
        ...


@dataclass
class StepStats:
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_duration_s: float = 0.0
    max_duration_s: float = 0.0
    last_error: str | None = None


@dataclass
class LoopStats:
    ticks: int = 0
    steps: dict[Hashable, StepStats] = field(default_factory=dict)


class ControlLoop:
    def __init__(
        self,
        keys: Callable[[], Iterable[Hashable]],
        step: Callable[[Hashable, float], None],
        *,
        interval_s: float,
        prepare: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "kennel-autoscaler",
    ) -> None:
        self.keys = keys
        self.step = step
        self.prepare = prepare
        self.interval_s = interval_s
        self.clock = clock
        self.name = name
        self.stats = LoopStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick_lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # steps are isolated already; this guards the bookkeeping around them
                log.exception("autoscaler tick failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def tick(self, now: float | None = None) -> None:
        """One pass over every target (the loop's unit of work; also what a caller runs synchronously)."""
        with self._tick_lock:
            now = self.clock() if now is None else now
            self.stats.ticks += 1
            if self.prepare is not None:
                self._timed("prepare", lambda: self.prepare(now))  # type: ignore[misc]
            try:
                keys = list(self.keys())
            except Exception:
                log.exception("listing scalable targets failed; skipping this tick")
                return
            for key in keys:
                if self._stop.is_set():
                    return
                self._timed(key, lambda key=key: self.step(key, now))

    def _timed(self, key: Hashable, call: Callable[[], None]) -> None:
        stats = self.stats.steps.setdefault(key, StepStats())
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:
            stats.failures += 1
            stats.consecutive_failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            # Log the first failure in full and then every hundredth, so a broken target cannot flood the log.
            if stats.consecutive_failures == 1 or stats.consecutive_failures % 100 == 0:
                log.exception("autoscaling step for %s failed (%d in a row)", key, stats.consecutive_failures)
        else:
            stats.consecutive_failures = 0
        finally:
            elapsed = time.perf_counter() - started
            stats.runs += 1
            stats.last_duration_s = elapsed
            stats.max_duration_s = max(stats.max_duration_s, elapsed)
            if elapsed > SLOW_STEP_S:
                log.warning("autoscaling step for %s took %.2f s", key, elapsed)

    def forget(self, key: Hashable) -> None:
        """Drop the statistics of a target that no longer exists."""
        self.stats.steps.pop(key, None)
