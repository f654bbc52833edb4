"""The one never-die loop: steps are isolated, timed and counted; stop is clean."""

from __future__ import annotations

import threading

from kennel.runtime.loop import ControlLoop, ticker


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
