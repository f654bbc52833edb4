"""The one never-die loop: a thread that ticks, steps every key, and survives its steps' failures.

Each tick runs the ``prepare`` callable once, then ``step(key, now)`` for every key that ``keys()``
lists. Every call is isolated — an exception is logged with its key and counted, and the next key still
runs — and timed, so a slow or failing step shows up in the log and in ``stats`` instead of stopping
the loop. ``wake()`` runs the next tick at once; ``stop()`` ends it cleanly. ``ticker`` is the common
case of one step on a timer. Every background control loop in Kennel (autoscaling, endpoint upkeep,
tuning, the CloudWatch Logs writer) is one of these.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("kennel.loop")
SLOW_STEP_S = 1.0


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
        name: str = "kennel-loop",
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
        # is_set() first: Event.set() takes a lock, and producers on a hot path nudging every call convoy.
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # steps are isolated already; this guards the bookkeeping around them
                log.exception("%s tick failed", self.name)
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def tick(self, now: float | None = None) -> None:
        """One pass over every key (the loop's unit of work; also what a caller runs synchronously)."""
        with self._tick_lock:
            now = self.clock() if now is None else now
            self.stats.ticks += 1
            if self.prepare is not None:
                self._timed("prepare", lambda: self.prepare(now))  # type: ignore[misc]
            try:
                keys = list(self.keys())
            except Exception:
                log.exception("%s: listing keys failed; skipping this tick", self.name)
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
                log.exception(
                    "%s step for %s failed (%d in a row)", self.name, key, stats.consecutive_failures
                )
        else:
            stats.consecutive_failures = 0
        finally:
            elapsed = time.perf_counter() - started
            stats.runs += 1
            stats.last_duration_s = elapsed
            stats.max_duration_s = max(stats.max_duration_s, elapsed)
            if elapsed > SLOW_STEP_S:
                log.warning("%s step for %s took %.2f s", self.name, key, elapsed)

    def forget(self, key: Hashable) -> None:
        """Drop the statistics of a key that no longer exists."""
        self.stats.steps.pop(key, None)


def ticker(name: str, interval_s: float, step: Callable[[], None]) -> ControlLoop:
    """A loop with one step on a timer (not started)."""
    return ControlLoop(lambda: (name,), lambda _key, _now: step(), interval_s=interval_s, name=name)


def writer_loop(
    name: str,
    interval_s: float,
    flush: Callable[[], None],
    chore: Callable[[], None],
    chore_every_s: float,
    clock: Callable[[], float] = time.time,
) -> ControlLoop:
    """A store writer's loop (not started): ``flush`` every tick, ``chore`` (a roll-up, retention) at most
    every ``chore_every_s``; each its own isolated step, so a failing chore never stops the flushing."""
    due = [0.0]

    def step(key: Hashable, now: float) -> None:
        if key == "flush":
            flush()
        elif now >= due[0]:
            chore()
            due[0] = clock() + chore_every_s

    return ControlLoop(lambda: ("flush", "chore"), step, interval_s=interval_s, clock=clock, name=name)
