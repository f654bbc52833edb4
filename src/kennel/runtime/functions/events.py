"""Asynchronous (``Event``) invocations: a queue with AWS's retry behaviour.

From the Lambda guide (invocation-async): a function error is retried twice by default, one minute
before the second attempt and two minutes before the third; ``MaximumRetryAttempts`` (0–2) and
``MaximumEventAgeInSeconds`` (60–21600, default 6 h) from PutFunctionEventInvokeConfig change that.
Throttles and system errors go back to the queue with a backoff growing from 1 s to 5 minutes, for as
long as the event is younger than its maximum age, and do not use up retry attempts. All of these
waits are in simulated time: one minute lasts ``minute_s`` seconds (Kennel's ``time_scale_s``).

Accepted events are written to a journal (the store) before Invoke answers 202 and leave it only
when they are done, so a restart runs what was queued, waiting or running (at least once, as on
AWS). At most ``workers`` events run at once (admission still applies to each); the rest wait.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from kennel.runtime.loop import consumer_loop

log = logging.getLogger("kennel.lambda.events")

DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE_S = 21600
RETRY_DELAYS_MIN = (1.0, 2.0)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
RESTORE_DELAY_S = 1.0


class Result(enum.Enum):
    OK = "ok"
    FUNCTION_ERROR = "function-error"
    THROTTLED = "throttled"  # also system errors: back to the queue, no attempt used
    GONE = "gone"  # the function or qualifier no longer exists: drop


@dataclass
class Event:
    request_id: str
    function: str
    qualifier: str | None
    payload: bytes
    enqueued: float  # the queue's clock
    attempts: int = 0  # attempts that reached the function
    requeues: int = 0  # throttles and system errors so far


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = DEFAULT_RETRIES
    max_age_s: float = DEFAULT_MAX_AGE_S


def next_delay(event: Event, result: Result, policy: RetryPolicy, age_s: float) -> float | None:
    """Simulated seconds until the next attempt, or None when the event is done (or discarded)."""
    if result in (Result.OK, Result.GONE):
        return None
    if result is Result.FUNCTION_ERROR:
        retries_done = event.attempts - 1
        if retries_done >= policy.max_retries:
            return None
        delay = RETRY_DELAYS_MIN[min(retries_done, len(RETRY_DELAYS_MIN) - 1)] * 60.0
    else:
        delay = min(BACKOFF_FIRST_S * 2 ** max(0, event.requeues - 1), BACKOFF_MAX_S)
    return delay if age_s + delay <= policy.max_age_s else None


class Journal(Protocol):
    """Durable record of events not yet finished. ``due`` and ``enqueued`` are wall-clock epochs."""

    def save(self, event: Event, enqueued: float, due: float) -> None: ...

    def remove(self, request_id: str) -> None: ...

    def load(self) -> list[tuple[Event, float, float]]: ...


class EventQueue:
    def __init__(
        self,
        run: Callable[[Event], Result],
        policy: Callable[[Event], RetryPolicy],
        *,
        minute_s: float = 60.0,
        workers: int = 64,
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.run = run
        self.policy = policy
        self.journal = journal
        self.wall_clock = wall_clock
        self.scale = minute_s / 60.0  # real seconds per simulated second
        self.clock = clock
        self._heap: list[tuple[float, int, Event]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda-event")
        self._pending = 0
        if journal is not None:
            self._restore(journal)
        # close() wakes the condition itself, so the dispatcher needs no interrupt of its own.
        self._dispatcher = consumer_loop("lambda-events", self._next_due, self._launch)
        self._dispatcher.start()

    def _restore(self, journal: Journal) -> None:
        """Events a previous run accepted and did not finish: due ones run now, the others keep their wait."""
        now, wall = self.clock(), self.wall_clock()
        restored = journal.load()
        for event, enqueued, due in restored:
            event.enqueued = now - max(0.0, wall - enqueued)  # keeps the event's age for MaximumEventAge
            # Not before RESTORE_DELAY_S: the gateway the function may call back into is still starting.
            heapq.heappush(self._heap, (now + max(RESTORE_DELAY_S, due - wall), next(self._seq), event))
        self._pending += len(restored)
        if restored:
            log.info("restored %d queued asynchronous invocations", len(restored))

    def _record(self, event: Event, delay_s: float) -> None:
        if self.journal is not None:
            wall = self.wall_clock()
            self.journal.save(event, wall - (self.clock() - event.enqueued), wall + delay_s)

    def submit(self, event: Event, delay_s: float = 0.0) -> None:
        self._record(event, delay_s)  # durable before the caller is told 202
        with self._wake:
            heapq.heappush(self._heap, (self.clock() + delay_s, next(self._seq), event))
            self._pending += 1
            self._wake.notify()

    def pending(self) -> int:
        """Events accepted and not finished (queued, waiting to retry, or running)."""
        with self._wake:
            return self._pending

    def _next_due(self, timeout_s: float) -> Event | None:
        """The earliest event once it is due, waiting up to ``timeout_s``; None when closed (the queue
        is journaled, so nothing is lost by not dispatching what is left)."""
        with self._wake:
            if self._closed:
                return None
            if not self._due(self.clock()):
                wait = min(timeout_s, self._heap[0][0] - self.clock()) if self._heap else timeout_s
                self._wake.wait(max(0.0, wait))  # submit() and retries notify: an earlier event ends it
                if self._closed or not self._due(self.clock()):
                    return None
            return heapq.heappop(self._heap)[2]

    def _due(self, now: float) -> bool:
        return bool(self._heap) and self._heap[0][0] <= now

    def _launch(self, event: Event) -> None:
        self._pool.submit(self._attempt, event)

    def _attempt(self, event: Event) -> None:
        try:
            result = self.run(event)
        except Exception:  # a bug in one attempt must not lose the queue
            log.exception("async invocation %s failed in Kennel", event.request_id)
            result = Result.THROTTLED
        if result is Result.FUNCTION_ERROR:
            event.attempts += 1
        elif result is Result.THROTTLED:
            event.requeues += 1
        age_s = (self.clock() - event.enqueued) / self.scale
        delay = next_delay(event, result, self.policy(event), age_s)
        if delay is None:
            if result not in (Result.OK, Result.GONE):
                log.warning(
                    "discarding event %s for %s after %d attempts",
                    event.request_id,
                    event.function,
                    event.attempts,
                )
            if self.journal is not None:
                self.journal.remove(event.request_id)
            with self._wake:
                self._pending -= 1
            return
        self._record(event, delay * self.scale)
        with self._wake:
            if self._closed:
                return
            heapq.heappush(self._heap, (self.clock() + delay * self.scale, next(self._seq), event))
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._dispatcher.stop(timeout_s=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
