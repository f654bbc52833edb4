"""The one never-die loop: steps are isolated, timed and counted; stop is clean."""

from __future__ import annotations

import queue
import threading
import time

from kennel.runtime.loop import SLOW_STEP_S, ControlLoop, consumer_loop, ticker


def test_a_failing_step_does_not_stop_the_others():
    seen = []

    def step(key, now):
        if key == "bad":
            raise RuntimeError("boom")
        seen.append((key, now))

    loop = ControlLoop(lambda: ["bad", "good"], step, interval_s=1.0, clock=lambda: 7.0)
    loop.tick()
    loop.tick()
    assert seen == [("good", 7.0), ("good", 7.0)]
    assert loop.stats.steps["bad"].consecutive_failures == 2
    assert loop.stats.steps["bad"].last_error == "RuntimeError: boom"
    assert loop.stats.steps["good"].failures == 0 and loop.stats.ticks == 2


def test_a_failing_key_listing_skips_the_tick():
    loop = ControlLoop(lambda: 1 / 0, lambda key, now: None, interval_s=1.0)
    loop.tick()  # logged, not raised
    assert loop.stats.ticks == 1 and loop.stats.steps == {}


def test_ticker_runs_on_its_thread_and_stops():
    ran = threading.Event()
    loop = ticker("test-ticker", 60.0, ran.set)
    loop.start()
    assert ran.wait(5)
    loop.stop(timeout_s=5)
    assert loop._thread is None


def test_writer_loop_flushes_every_tick_and_does_its_chore_when_due() -> None:
    from kennel.runtime.loop import writer_loop

    now = [100.0]
    flushed, chores = [], []

    def chore() -> None:
        chores.append(now[0])
        if len(chores) == 2:
            raise RuntimeError("database busy")  # a failing chore must not stop the flushing

    loop = writer_loop("w", 60.0, lambda: flushed.append(now[0]), chore, 30.0, clock=lambda: now[0])
    for t in (100.0, 110.0, 131.0, 140.0, 165.0):
        now[0] = t
        loop.tick()
    assert flushed == [100.0, 110.0, 131.0, 140.0, 165.0]
    assert chores == [100.0, 131.0, 140.0]  # due 30 s after a success; a failed one is retried next tick
    assert loop.stats.steps["chore"].failures == 1


# ----- consumer_loop ----------------------------------------------------------------------------------
def _queue_take(q: queue.Queue):
    """A consumer's take over a queue.Queue: None is both 'nothing yet' and the stop nudge."""

    def take(timeout_s: float):
        try:
            return q.get(timeout=timeout_s)
        except queue.Empty:
            return None

    return take


def test_consumer_loop_handles_items_in_order_without_waiting_between_them() -> None:
    q: queue.Queue = queue.Queue()
    seen: list[int] = []
    done = threading.Event()

    def handle(item: int) -> None:
        seen.append(item)
        if item == 199:
            done.set()

    loop = consumer_loop("test-consumer", _queue_take(q), handle, poll_s=5.0, interrupt=lambda: q.put(None))
    loop.start()
    started = time.monotonic()
    for i in range(200):
        q.put(i)
    assert done.wait(5)
    # A timer between items would cost at least 200 polls; a blocking take costs nothing like it.
    assert time.monotonic() - started < 2.0
    assert seen == list(range(200))
    loop.stop(timeout_s=5)


def test_consumer_loop_survives_failing_handles_and_takes() -> None:
    q: queue.Queue = queue.Queue()
    seen: list[str] = []
    take_failed = [False]
    inner = _queue_take(q)

    def take(timeout_s: float):
        item = inner(timeout_s)
        if item == "bad-take" and not take_failed[0]:
            take_failed[0] = True
            raise OSError("queue broke")
        return item

    def handle(item: str) -> None:
        if item == "bad":
            raise RuntimeError("cannot handle")
        seen.append(item)

    loop = consumer_loop("test-consumer", take, handle, poll_s=0.05)
    loop.start()
    for item in ("a", "bad", "b", "bad-take", "c"):
        q.put(item)
    deadline = time.monotonic() + 5
    while seen[-1:] != ["c"] and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop(timeout_s=5)
    assert seen == ["a", "b", "c"]
    stats = loop.stats.steps["test-consumer"]
    assert stats.failures == 2 and stats.consecutive_failures == 0


def test_consumer_loop_drains_what_was_queued_before_stop() -> None:
    q: queue.Queue = queue.Queue()
    seen: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def handle(item: int) -> None:
        if item == 1:
            entered.set()
            release.wait(5)  # the stop arrives while this item is being handled
        seen.append(item)

    loop = consumer_loop("test-consumer", _queue_take(q), handle, poll_s=5.0)
    loop.start()
    q.put(1)
    assert entered.wait(5)
    q.put(2)
    q.put(3)
    stopper = threading.Thread(target=loop.stop)
    stopper.start()
    release.set()
    stopper.join(5)
    assert not stopper.is_alive() and seen == [1, 2, 3]
    assert loop.stats.steps["final"].failures == 0


def test_consumer_loop_stop_is_prompt_with_an_interrupt_and_bounded_without() -> None:
    q: queue.Queue = queue.Queue()
    nudged = consumer_loop(
        "test-nudged", _queue_take(q), lambda item: None, poll_s=30.0, interrupt=lambda: q.put(None)
    )
    nudged.start()
    time.sleep(0.05)  # let the take block
    started = time.monotonic()
    nudged.stop(timeout_s=10)
    assert time.monotonic() - started < 2.0 and nudged._thread is None

    polled = consumer_loop("test-polled", _queue_take(queue.Queue()), lambda item: None, poll_s=0.1)
    polled.start()
    time.sleep(0.05)
    started = time.monotonic()
    polled.stop(timeout_s=10)
    assert time.monotonic() - started < 2.0 and polled._thread is None


def test_a_consumer_step_waiting_for_work_is_not_reported_slow() -> None:
    # The step includes the blocking wait for work, so consumers default to no slow-step warning.
    loop = consumer_loop("test-idle", _queue_take(queue.Queue()), lambda item: None, poll_s=0.01)
    assert loop.slow_s is None
    assert ControlLoop(lambda: (), lambda k, n: None, interval_s=1.0).slow_s == SLOW_STEP_S
