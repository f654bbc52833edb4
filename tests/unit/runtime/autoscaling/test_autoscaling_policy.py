"""Scaling decisions on a fake clock: proportional tracking, clamps, rounding, cooldowns, several policies,
step scaling, bounds, schedules, and a control loop that survives failing steps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from kennel.runtime.autoscaling import policy as p
from kennel.runtime.autoscaling.alarms import ALARM, INSUFFICIENT_DATA, OK
from kennel.runtime.autoscaling.loop import ControlLoop
from kennel.runtime.autoscaling.schedule import ScheduleError, due, parse, zone

NOW = 10_000.0
BOUNDS = p.Bounds(1, 4)


def tracking(metric: float | None, *, high=OK, low=OK, target=20.0, name="tt", **kw) -> p.TargetTracking:
    return p.TargetTracking(name, target, metric, high, low, f"{name}-AlarmHigh", f"{name}-AlarmLow", **kw)


def ctx(*policies, current=1, desired=None, bounds=BOUNDS, cooldowns=None, now=NOW, **kw) -> p.Context:
    desired = current if desired is None else desired
    return p.Context(now, current, desired, bounds, tuple(policies), cooldowns or p.Cooldowns(), **kw)


# --- proportional target tracking ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "metric", "bounds", "expected"),
    [
        (1, 60.0, BOUNDS, 3),  # 60 per instance, target 20: three instances
        (1, 61.0, BOUNDS, 4),  # rounded up: never leave the metric above the target
        (2, 30.0, BOUNDS, 3),
        (1, 200.0, BOUNDS, 4),  # clamped to MaxCapacity
        (3, 20.000000001, BOUNDS, None),  # float dust above the target is not a scale-out
        (1, 20.5, p.Bounds(1, 8), 2),
    ],
)
def test_scale_out_is_proportional_and_clamped(current, metric, bounds, expected):
    decision = p.decide(ctx(tracking(metric, high=ALARM), current=current, bounds=bounds))
    assert decision.capacity == expected
    if expected is not None:
        assert decision.direction == p.OUT and decision.cause.alarm == "tt-AlarmHigh"


@pytest.mark.parametrize(
    ("current", "metric", "bounds", "expected"),
    [
        (4, 5.0, BOUNDS, 1),  # 4 × 5 / 20 = 1
        (4, 6.0, BOUNDS, 2),  # 1.2 rounds up: scale-in never removes too much
        (4, 0.0, BOUNDS, 1),  # no traffic: down to MinCapacity
        (4, 0.0, p.Bounds(2, 4), 2),
        (3, 17.0, BOUNDS, None),  # ceil(2.55) = 3: nothing to remove
    ],
)
def test_scale_in_rounds_up_and_respects_min(current, metric, bounds, expected):
    decision = p.decide(ctx(tracking(metric, low=ALARM), current=current, bounds=bounds))
    assert decision.capacity == expected
    if expected is not None:
        assert decision.direction == p.IN and decision.cooldowns.scale_in_at == NOW


def test_not_scaled_reasons():
    at_max = p.decide(ctx(tracking(100.0, high=ALARM), current=4))
    assert at_max.capacity is None and at_max.not_scaled == (p.NotScaled(p.ALREADY_AT_MAX, max_capacity=4),)
    at_min = p.decide(ctx(tracking(0.0, low=ALARM), current=1))
    assert at_min.not_scaled == (p.NotScaled(p.ALREADY_AT_MIN, min_capacity=1),)
    # Instances still starting already cover the need: the desired capacity is right.
    covered = p.decide(ctx(tracking(60.0, high=ALARM), current=1, desired=3))
    assert covered.not_scaled == (p.NotScaled(p.ALREADY_AT_DESIRED, current_capacity=3),)


def test_no_decision_without_alarm_or_data():
    assert p.decide(ctx(tracking(60.0))).capacity is None
    assert p.decide(ctx(tracking(None, high=ALARM))).capacity is None
    insufficient = p.decide(ctx(tracking(0.0, low=INSUFFICIENT_DATA), current=3))
    assert insufficient.capacity is None and not insufficient.not_scaled


def test_disable_scale_in_never_removes_capacity():
    policy = tracking(0.0, low=ALARM, disable_scale_in=True)
    assert p.decide(ctx(policy, current=3)).capacity is None
    assert p.decide(ctx(tracking(80.0, high=ALARM, disable_scale_in=True))).capacity == 4


def test_ratio_uses_desired_capacity_when_nothing_serves():
    assert p.decide(ctx(tracking(60.0, high=ALARM), current=0, desired=1)).capacity == 3


# --- cooldowns ------------------------------------------------------------------------------------------


def test_scale_out_cooldown_lets_only_a_larger_scale_out_through():
    after = p.Cooldowns(scale_out_at=NOW - 10, scale_out_from=1, scale_out_to=3)
    same = ctx(tracking(60.0, high=ALARM), current=1, desired=2, cooldowns=after)
    blocked = p.decide(same)
    assert blocked.capacity is None and "cooldown" in blocked.note and not blocked.not_scaled
    larger = p.decide(ctx(tracking(80.0, high=ALARM), current=1, desired=3, cooldowns=after))
    assert (
        larger.capacity == 4 and larger.cooldowns.scale_out_to == 4 and larger.cooldowns.scale_out_from == 3
    )
    expired = p.decide(ctx(tracking(60.0, high=ALARM), current=1, desired=2, cooldowns=after, now=NOW + 300))
    assert expired.capacity == 3


def test_scale_in_cooldown_blocks_and_a_scale_out_cancels_it():
    after_in = p.Cooldowns(scale_in_at=NOW - 10)
    blocked = p.decide(ctx(tracking(0.0, low=ALARM), current=3, cooldowns=after_in))
    assert blocked.capacity is None and blocked.note == "scale-in cooldown"
    assert p.decide(ctx(tracking(0.0, low=ALARM), current=3, cooldowns=after_in, now=NOW + 291)).capacity == 1
    out = p.decide(ctx(tracking(60.0, high=ALARM), current=1, cooldowns=after_in))
    assert out.capacity == 3 and out.cooldowns.scale_in_at is None


def test_cooldowns_come_from_the_policy():
    after_in = p.Cooldowns(scale_in_at=NOW - 10)
    quick = tracking(0.0, low=ALARM, scale_in_cooldown_s=5)
    assert p.decide(ctx(quick, current=3, cooldowns=after_in)).capacity == 1


# --- several policies -----------------------------------------------------------------------------------


def test_scale_out_if_any_policy_wants_it_and_the_largest_wins():
    a = tracking(60.0, high=ALARM, name="a")  # wants 3
    b = tracking(10.0, name="b", target=5.0, high=ALARM)  # wants 2
    c = tracking(0.0, low=ALARM, name="c")  # wants in
    decision = p.decide(ctx(a, b, c))
    assert decision.capacity == 3 and decision.cause.policy == "a"


def test_scale_in_only_if_every_enabled_tracking_policy_agrees():
    a = tracking(4.0, low=ALARM, name="a")  # 4 × 4 / 20 → 1
    b = tracking(4.0, low=ALARM, name="b", target=8.0)  # 4 × 4 / 8 → 2
    both = p.decide(ctx(a, b, current=4))
    assert both.capacity == 2 and both.cause.policy == "b"
    vetoed = p.decide(ctx(a, tracking(10.0, name="b"), current=4))
    assert vetoed.capacity is None and "does not agree" in vetoed.note
    not_voting = tracking(10.0, name="b", disable_scale_in=True)
    assert p.decide(ctx(a, not_voting, current=4)).capacity == 1


def test_suspended_directions():
    out = p.decide(ctx(tracking(60.0, high=ALARM), scale_out_suspended=True))
    assert out.capacity is None and "suspended" in out.note
    inn = p.decide(ctx(tracking(0.0, low=ALARM), current=3, scale_in_suspended=True))
    assert inn.capacity is None and "suspended" in inn.note


# --- step scaling ---------------------------------------------------------------------------------------


def stepper(breach, kind="ChangeInCapacity", steps=None, state=ALARM, above=True, **kw) -> p.StepScaling:
    steps = steps or (p.Step(0, 10, 1), p.Step(10, None, 2))
    return p.StepScaling("step", "cpu-high", state, breach, above, kind, tuple(steps), **kw)


@pytest.mark.parametrize(("breach", "expected"), [(0.0, 2), (9.99, 2), (10.0, 3), (50.0, 3), (-1.0, None)])
def test_step_intervals_above_the_threshold(breach, expected):
    assert p.decide(ctx(stepper(breach))).capacity == expected


def test_step_bounds_below_the_threshold_include_the_upper_end():
    steps = (p.Step(None, -10, -2), p.Step(-10, 0, -1))
    assert p.decide(ctx(stepper(-10.0, steps=steps, above=False), current=4)).capacity == 2
    assert p.decide(ctx(stepper(0.0, steps=steps, above=False), current=4)).capacity == 3


@pytest.mark.parametrize(
    ("current", "percent", "magnitude", "expected"),
    [
        (4, 50, None, 6),
        (3, 50, None, 4),
        (1, 10, None, 2),
        (2, 10, 2, 4),
        (4, -50, None, 2),
        (3, -10, None, 2),
    ],
)
def test_percent_change_rounding(current, percent, magnitude, expected):
    policy = stepper(
        1.0, "PercentChangeInCapacity", (p.Step(0, None, percent),), min_adjustment_magnitude=magnitude
    )
    assert p.decide(ctx(policy, current=current, bounds=p.Bounds(1, 10))).capacity == expected


def test_exact_capacity():
    assert p.decide(ctx(stepper(1.0, "ExactCapacity", (p.Step(0, None, 3),)))).capacity == 3
    assert p.decide(ctx(stepper(1.0, "ExactCapacity", (p.Step(0, None, 1),)), current=3)).capacity == 1


def test_step_scale_out_during_cooldown_counts_from_the_capacity_before_it():
    # AWS's example: 2 → 4 by +2; within the cooldown a +3 step gives 5 (not 7), a +2 step nothing.
    after = p.Cooldowns(scale_out_at=NOW - 10, scale_out_from=2, scale_out_to=4)
    bounds = p.Bounds(1, 10)
    plus3 = stepper(1.0, steps=(p.Step(0, None, 3),))
    assert p.decide(ctx(plus3, current=4, bounds=bounds, cooldowns=after)).capacity == 5
    plus2 = stepper(1.0, steps=(p.Step(0, None, 2),))
    assert p.decide(ctx(plus2, current=4, bounds=bounds, cooldowns=after)).capacity is None
    assert p.decide(ctx(plus2, current=4, bounds=bounds, cooldowns=after, now=NOW + 300)).capacity == 6


def test_step_alarm_not_in_alarm_proposes_nothing():
    assert p.decide(ctx(stepper(20.0, state=OK))).capacity is None


# --- bounds ---------------------------------------------------------------------------------------------


def test_change_bounds_moves_capacity_inside_at_once():
    assert p.change_bounds(BOUNDS, 1, min_capacity=2) == p.BoundsChange(p.Bounds(2, 4), 2)
    assert p.change_bounds(BOUNDS, 4, max_capacity=3) == p.BoundsChange(p.Bounds(1, 3), 3)
    assert p.change_bounds(BOUNDS, 2, min_capacity=1, max_capacity=5) == p.BoundsChange(p.Bounds(1, 5), None)
    with pytest.raises(ValueError, match="greater than maximum"):
        p.change_bounds(BOUNDS, 2, min_capacity=5)


# --- schedules ------------------------------------------------------------------------------------------


def epoch(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_at_schedule_runs_once_in_its_time_zone():
    at = parse("at(2030-01-01T09:00:00)")
    paris = zone("Europe/Paris")
    nine_paris = epoch(2030, 1, 1, 8, 0)
    assert not due(at, paris, now=nine_paris - 1, last_run=None, created=0)
    assert due(at, paris, now=nine_paris, last_run=None, created=0)
    assert not due(at, paris, now=nine_paris + 5, last_run=nine_paris, created=0)


def test_rate_schedule_scales_with_the_time_factor():
    rate = parse("rate(5 minutes)")
    assert not due(rate, zone(None), now=299, last_run=None, created=0)
    assert due(rate, zone(None), now=300, last_run=None, created=0)
    assert due(rate, zone(None), now=5, last_run=None, created=0, time_factor=1 / 60)  # 1 s per minute
    assert not due(rate, zone(None), now=400, last_run=300, created=0)


def test_cron_schedule_with_names_steps_and_a_window():
    weekdays = parse("cron(0/15 9-17 ? * MON-FRI *)")
    monday_915 = epoch(2030, 1, 7, 9, 15)  # 7 January 2030 is a Monday
    utc = zone("UTC")
    assert due(weekdays, utc, now=monday_915 + 20, last_run=None, created=0)
    assert not due(weekdays, utc, now=monday_915 + 20, last_run=monday_915 + 1, created=0)  # same minute
    assert not due(weekdays, utc, now=monday_915 + 60, last_run=None, created=0)  # 9:16
    assert not due(weekdays, utc, now=epoch(2030, 1, 6, 9, 15), last_run=None, created=0)  # Sunday
    assert not due(weekdays, utc, now=monday_915, last_run=None, created=0, end=monday_915 - 1)
    monthly = parse("cron(30 2 1 JAN,JUL ? 2030-2031)")
    assert due(monthly, utc, now=epoch(2030, 7, 1, 2, 30), last_run=None, created=0)
    assert not due(monthly, utc, now=epoch(2032, 7, 1, 2, 30), last_run=None, created=0)


@pytest.mark.parametrize(
    "expression",
    [
        "rate(0 minutes)",
        "rate(1 minutes)",
        "rate(2 minute)",
        "cron(0 9 * * * *)",
        "cron(0 9 ? * ? *)",
        "cron(0 9 L * ? *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(61 9 ? * * *)",
        "cron(0 9 * *)",
        "at(2030-13-01T00:00:00)",
        "every day",
    ],
)
def test_bad_schedules(expression):
    with pytest.raises(ScheduleError):
        parse(expression)


def test_unknown_time_zone():
    with pytest.raises(ScheduleError, match="time zone"):
        zone("Mars/Olympus_Mons")


# --- the control loop -----------------------------------------------------------------------------------


def test_a_failing_step_does_not_stop_the_others():
    ran = []

    def step(key, now):
        if key == "bad":
            raise RuntimeError("endpoint on fire")
        ran.append((key, now))

    def prepare(now):
        raise OSError("alarm store unreachable")

    loop = ControlLoop(lambda: ["bad", "good"], step, interval_s=1.0, prepare=prepare, clock=lambda: 42.0)
    loop.tick()
    loop.tick()
    assert ran == [("good", 42.0), ("good", 42.0)]
    bad = loop.stats.steps["bad"]
    assert bad.failures == 2 and bad.consecutive_failures == 2 and "endpoint on fire" in bad.last_error
    assert loop.stats.steps["good"].failures == 0 and loop.stats.steps["prepare"].failures == 2


def test_the_loop_thread_ticks_until_stopped_and_wakes_on_demand():
    ticked = threading.Event()
    loop = ControlLoop(lambda: ["t"], lambda key, now: ticked.set(), interval_s=60.0)
    loop.start()
    try:
        assert ticked.wait(5)  # the first tick runs at once
        ticked.clear()
        loop.wake()
        assert ticked.wait(5)  # and wake() runs the next without waiting a minute
    finally:
        loop.stop()
