"""The one never-die loop: a thread that ticks, steps every key, and survives its steps' failures.

Each tick runs the ``prepare`` callable once, then ``step(key, now)`` for every key that ``keys()``
lists. Every call is isolated — an exception is logged with its key and counted, and the next key still
runs — and timed, so a slow or failing step shows up in the log and in ``stats`` instead of stopping
the loop. ``wake()`` runs the next tick at once; ``stop()`` ends it cleanly. Three shapes build on it:

* ``ticker``: one step on a timer (Lambda's telemetry and environment reaper, endpoint monitor and
  health checks);
* ``writer_loop``: a store writer's flush plus a periodic chore (CloudWatch metrics, CloudWatch Logs);
* ``consumer_loop``: a step that blocks on a queue and handles what it took, with no wait between
  items, and a drain on stop (the audit writer, Lambda's asynchronous-event dispatcher, an endpoint's
  dynamic batcher, the sandbox's reaper of exited processes, whose queue is a selector over pidfds).

Autoscaling and tuning use ``ControlLoop`` directly, one key per target. Kennel's background timer
and queue loops are all one of these. Not loops in this sense: short one-shot threads (discarding or
provisioning an environment), pumps that copy a child's output until it closes, and a training job's
own runner thread (one per job, it lives as long as the job).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger("kennel.loop")
SLOW_STEP_S = 1.0
CONSUMER_POLL_S = 0.25  # how long a consumer's take may block: the longest a stop() waits without a nudge

T = TypeVar("T")


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
        slow_s: float | None = SLOW_STEP_S,
        interrupt: Callable[[], None] | None = None,
        final: Callable[[], None] | None = None,
    ) -> None:
        """``interval_s`` 0: tick again as soon as a tick ends (a step that blocks paces the loop).
        ``slow_s``: a step taking longer is logged (None: never, for steps that wait by design).
        ``interrupt``: called by ``stop()`` to unblock a step that is waiting on something.
        ``final``: run once on the loop's thread after its last tick (a consumer's drain)."""
        self.keys = keys
        self.step = step
        self.prepare = prepare
        self.interval_s = interval_s
        self.clock = clock
        self.name = name
        self.slow_s = slow_s
        self.interrupt = interrupt
        self.final = final
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
        if self.interrupt is not None:
            try:
                self.interrupt()
            except Exception:  # stopping must not fail because a nudge did
                log.exception("%s: interrupting the step failed", self.name)
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
            if self.interval_s > 0:
                self._wake.wait(self.interval_s)
                self._wake.clear()
        if self.final is not None:
            self._timed("final", self.final)

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
            if self.slow_s is not None and elapsed > self.slow_s:
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


def consumer_loop(
    name: str,
    take: Callable[[float], T | None],
    handle: Callable[[T], None],
    *,
    poll_s: float = CONSUMER_POLL_S,
    interrupt: Callable[[], None] | None = None,
    slow_s: float | None = None,
) -> ControlLoop:
    """A queue consumer's loop (not started): each step is ``take(poll_s)``, which blocks at most
    ``poll_s`` and returns an item or None (nothing yet), then ``handle(item)``; the next step starts at
    once, so items are never held back by a timer. ``stop()`` returns within ``poll_s`` (at once when
    ``interrupt`` unblocks ``take``); after the last step the loop drains: ``take(0)`` and ``handle``
    until ``take`` returns None, so what was queued before the stop is still handled (a ``take`` that
    must not hand anything out once closed returns None). ``slow_s`` is off by default because a step
    includes the blocking wait for work."""

    def step(_key: Hashable, _now: float) -> None:
        try:
            item = take(poll_s)
        except Exception:
            # A take that fails at once would otherwise spin a core; pause a poll (or until stopped).
            loop._stop.wait(poll_s)
            raise
        if item is not None:
            handle(item)

    def drain() -> None:
        while (item := take(0.0)) is not None:
            try:
                handle(item)
            except Exception:  # one bad item must not leave the rest of the queue unhandled
                log.exception("%s: handling an item while stopping failed", name)

    loop = ControlLoop(
        lambda: (name,),
        step,
        interval_s=0.0,
        name=name,
        slow_s=slow_s,
        interrupt=interrupt,
        final=drain,
    )
    return loop
