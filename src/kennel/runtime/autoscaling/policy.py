"""Scaling decisions as pure functions of a context: target tracking, step scaling, bounds, cooldowns.

``decide`` takes everything a decision depends on — the time, the capacities, each policy with its
alarm states and metric value, and what earlier activities left behind (``Cooldowns``) — and returns a
``Decision``: a new desired capacity or a documented reason for keeping the old one, plus the cooldown
state to keep. Nothing here reads a clock, a store or a metric.

Target tracking (AWS publishes only that the adjustment is proportional to metric / target, fast on
the way out, gradual and conservative on the way in; the formula is Kennel's choice):

    desired = ceil(capacity × metric / target), clamped to [MinCapacity, MaxCapacity]

``capacity`` is the number of instances *serving* when the metric was measured (InvocationsPerInstance
divides every request by them), falling back to the desired count when none serve. Rounding up is the
conservative direction both ways: a scale-out adds enough instances to bring the metric to the target
or below, and a scale-in never removes so many that the metric would rise above it. That is also why
AutoScalingAnticipatedFlapping never arises here: the capacity chosen on a scale-in keeps every
target-tracking metric at or below its target by construction, so no scale-out can follow from it.

A target-tracking policy proposes a scale-out while its high alarm is in ALARM and a scale-in while its
low alarm is; INSUFFICIENT_DATA proposes nothing. With several policies a scale-out happens if any
policy proposes one, a scale-in only if every target-tracking policy with scale-in enabled proposes
one, and the largest proposed capacity wins (AWS's rule). Step-scaling proposals join the same vote.

Cooldowns (AWS's rules): after a scale-out, further scale-outs during the policy's scale-out cooldown
pass only when they are larger than the capacity that scale-out set (the capacity just added counts
toward the next one); step scaling computes its adjustment from the capacity before that scale-out.
After a scale-in, scale-ins are blocked for the scale-in cooldown; a scale-out cancels it. Scheduled
actions and bound changes ignore cooldowns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from kennel.runtime.autoscaling.alarms import ALARM

OUT, IN = "out", "in"
ALREADY_AT_MAX = "AlreadyAtMaxCapacity"
ALREADY_AT_MIN = "AlreadyAtMinCapacity"
ALREADY_AT_DESIRED = "AlreadyAtDesiredCapacity"
UNSCALABLE = "TargetServicePutResourceAsUnscalable"
ADJUSTMENT_TYPES = ("ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity")
DEFAULT_COOLDOWN_S = 300.0  # SageMaker variants, both directions, and step scaling outside EMR


@dataclass(frozen=True)
class Bounds:
    min: int
    max: int

    def clamp(self, capacity: int) -> int:
        return max(self.min, min(self.max, capacity))


@dataclass(frozen=True)
class TargetTracking:
    name: str
    target: float
    metric: float | None  # the newest datapoint of the tracked metric
    high: str  # the high alarm's state
    low: str | None  # the low alarm's state; None when there is none (DisableScaleIn)
    high_alarm: str = ""
    low_alarm: str = ""
    scale_out_cooldown_s: float = DEFAULT_COOLDOWN_S
    scale_in_cooldown_s: float = DEFAULT_COOLDOWN_S
    disable_scale_in: bool = False


@dataclass(frozen=True)
class Step:
    lower: float | None  # bounds on (metric - threshold); None: unbounded
    upper: float | None
    adjustment: int

    def contains(self, breach: float, above: bool) -> bool:
        """AWS: above the threshold the lower bound is inclusive, below it the upper bound is."""
        lower_ok = self.lower is None or (breach >= self.lower if above else breach > self.lower)
        upper_ok = self.upper is None or (breach < self.upper if above else breach <= self.upper)
        return lower_ok and upper_ok


@dataclass(frozen=True)
class StepScaling:
    name: str
    alarm: str
    alarm_state: str
    breach: float | None  # aggregated metric minus the alarm's threshold
    above: bool  # the alarm fires above its threshold (greater-than operators)
    adjustment_type: str
    steps: tuple[Step, ...]
    cooldown_s: float = DEFAULT_COOLDOWN_S
    min_adjustment_magnitude: int | None = None


Policy = TargetTracking | StepScaling


@dataclass(frozen=True)
class Cooldowns:
    """What earlier policy-driven activities leave behind for the next decision."""

    scale_out_at: float | None = None  # when the last scale-out was started
    scale_out_from: int | None = None  # the capacity before it
    scale_out_to: int | None = None  # the capacity it set
    scale_in_at: float | None = None  # when the last scale-in was started (None once cancelled)


@dataclass(frozen=True)
class Context:
    now: float
    current: int  # instances serving
    desired: int  # the scalable target's capacity now
    bounds: Bounds
    policies: tuple[Policy, ...]
    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    scale_out_suspended: bool = False
    scale_in_suspended: bool = False


@dataclass(frozen=True)
class Proposal:
    policy: str
    alarm: str
    direction: str
    capacity: int  # before the bounds are applied
    cooldown_s: float


@dataclass(frozen=True)
class NotScaled:
    code: str
    max_capacity: int | None = None
    min_capacity: int | None = None
    current_capacity: int | None = None


@dataclass(frozen=True)
class Decision:
    capacity: int | None  # the new desired capacity; None keeps the present one
    direction: str | None
    cause: Proposal | None  # the proposal that decided (or that was refused, for a not-scaled record)
    cooldowns: Cooldowns
    not_scaled: tuple[NotScaled, ...] = ()
    note: str = ""  # why nothing happened, for the log


def ceil_ratio(value: float) -> int:
    """Ceiling that ignores floating-point dust (3 × 20 / 20 must stay 3)."""
    return math.ceil(value - 1e-9)


# --- one policy -----------------------------------------------------------------------------------------


def propose(policy: Policy, ctx: Context) -> Proposal | None:
    if isinstance(policy, TargetTracking):
        return _track(policy, ctx)
    return _step(policy, ctx)


def _track(policy: TargetTracking, ctx: Context) -> Proposal | None:
    if policy.metric is None:
        return None
    base = ctx.current if ctx.current > 0 else ctx.desired
    capacity = ceil_ratio(base * policy.metric / policy.target)
    if policy.high == ALARM:
        return Proposal(policy.name, policy.high_alarm, OUT, capacity, policy.scale_out_cooldown_s)
    if policy.low == ALARM and not policy.disable_scale_in:
        return Proposal(policy.name, policy.low_alarm, IN, capacity, policy.scale_in_cooldown_s)
    return None


def _step(policy: StepScaling, ctx: Context) -> Proposal | None:
    if policy.alarm_state != ALARM or policy.breach is None:
        return None
    step = next((s for s in policy.steps if s.contains(policy.breach, policy.above)), None)
    if step is None:
        return None
    cd = ctx.cooldowns
    cooling = cd.scale_out_at is not None and ctx.now < cd.scale_out_at + policy.cooldown_s
    base = (
        cd.scale_out_from
        if cooling and step.adjustment > 0 and cd.scale_out_from is not None
        else ctx.desired
    )
    if policy.adjustment_type == "ExactCapacity":
        capacity = step.adjustment
        direction = OUT if capacity >= ctx.desired else IN
    else:
        delta = step.adjustment
        if policy.adjustment_type == "PercentChangeInCapacity":
            delta = _percent(base, step.adjustment, policy.min_adjustment_magnitude)
        if delta == 0:
            return None
        capacity = base + delta
        direction = OUT if delta > 0 else IN
    return Proposal(policy.name, policy.alarm, direction, capacity, policy.cooldown_s)


def _percent(base: int, percent: int, min_magnitude: int | None) -> int:
    """AWS rounding: magnitudes above 1 round toward zero, those between 0 and 1 become 1."""
    exact = base * percent / 100
    delta = int(exact) if abs(exact) >= 1 else (0 if exact == 0 else int(math.copysign(1, exact)))
    if min_magnitude and delta and abs(delta) < min_magnitude:
        delta = int(math.copysign(min_magnitude, delta))
    return delta


# --- all policies together ------------------------------------------------------------------------------


def decide(ctx: Context) -> Decision:
    proposals = [p for p in (propose(policy, ctx) for policy in ctx.policies) if p is not None]
    outs = [p for p in proposals if p.direction == OUT]
    if outs:
        return _scale_out(ctx, outs)
    ins = [p for p in proposals if p.direction == IN]
    if ins:
        return _scale_in(ctx, ins)
    return Decision(None, None, None, ctx.cooldowns, note="no policy asks for a change")


def _scale_out(ctx: Context, outs: list[Proposal]) -> Decision:
    keep = ctx.cooldowns
    if ctx.scale_out_suspended:
        return Decision(None, None, outs[0], keep, note="dynamic scale-out is suspended")
    passing = [p for p in outs if not _out_cooling(ctx, p)]
    if not passing:
        return Decision(
            None, None, outs[0], keep, note="scale-out cooldown: only a larger scale-out may pass"
        )
    best = max(passing, key=lambda p: p.capacity)
    capacity = ctx.bounds.clamp(best.capacity)
    if capacity > ctx.desired:
        after = Cooldowns(scale_out_at=ctx.now, scale_out_from=ctx.desired, scale_out_to=capacity)
        return Decision(capacity, OUT, best, after)  # scale_in_at dropped: a scale-out cancels it
    if best.capacity > ctx.desired and ctx.desired >= ctx.bounds.max:
        reason = NotScaled(ALREADY_AT_MAX, max_capacity=ctx.bounds.max)
    else:
        reason = NotScaled(ALREADY_AT_DESIRED, current_capacity=ctx.desired)
    return Decision(None, None, best, keep, (reason,), note=reason.code)


def _out_cooling(ctx: Context, proposal: Proposal) -> bool:
    cd = ctx.cooldowns
    if cd.scale_out_at is None or ctx.now >= cd.scale_out_at + proposal.cooldown_s:
        return False
    return ctx.bounds.clamp(proposal.capacity) <= (cd.scale_out_to or 0)


def _scale_in(ctx: Context, ins: list[Proposal]) -> Decision:
    keep = ctx.cooldowns
    if ctx.scale_in_suspended:
        return Decision(None, None, ins[0], keep, note="dynamic scale-in is suspended")
    proposing = {p.policy for p in ins}
    for policy in ctx.policies:
        if (
            isinstance(policy, TargetTracking)
            and not policy.disable_scale_in
            and policy.name not in proposing
        ):
            return Decision(None, None, ins[0], keep, note=f"policy {policy.name} does not agree to scale in")
    cd = ctx.cooldowns
    if cd.scale_in_at is not None and any(ctx.now < cd.scale_in_at + p.cooldown_s for p in ins):
        return Decision(None, None, ins[0], keep, note="scale-in cooldown")
    best = max(ins, key=lambda p: p.capacity)
    capacity = ctx.bounds.clamp(best.capacity)
    if capacity < ctx.desired:
        return Decision(capacity, IN, best, replace(cd, scale_in_at=ctx.now))
    if best.capacity < ctx.desired and ctx.desired <= ctx.bounds.min:
        reason = NotScaled(ALREADY_AT_MIN, min_capacity=ctx.bounds.min)
    else:
        reason = NotScaled(ALREADY_AT_DESIRED, current_capacity=ctx.desired)
    return Decision(None, None, best, keep, (reason,), note=reason.code)


# --- bounds ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundsChange:
    bounds: Bounds
    capacity: int | None  # where the desired capacity must move to stay inside; None: it already is


def change_bounds(
    bounds: Bounds, desired: int, *, min_capacity: int | None = None, max_capacity: int | None = None
) -> BoundsChange:
    """New bounds from a re-registration or a scheduled action; capacity outside them moves inside at
    once (no cooldown applies). Raises ValueError when the result would have min > max."""
    new = Bounds(
        bounds.min if min_capacity is None else min_capacity,
        bounds.max if max_capacity is None else max_capacity,
    )
    if new.min > new.max:
        raise ValueError(f"minimum capacity {new.min} is greater than maximum capacity {new.max}")
    inside = new.clamp(desired)
    return BoundsChange(new, inside if inside != desired else None)
