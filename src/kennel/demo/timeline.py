"""A scaling timeline as a picture: offered load, InvocationsPerInstance against the target, instance counts.

The upper panel puts everything in the metric's unit — invocations per simulated minute (one period) —
so the offered load (all instances together), the per-instance metric the alarms read, the target and
the low-alarm threshold (90 % of it) share one axis. The lower panel shows the instances asked for
(desired) and the instances serving (current), with the scaling activities marked on both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CapacitySample:
    t: float  # seconds since the run started
    current: int
    desired: int


@dataclass
class Timeline:
    target: float  # invocations per instance per period
    period_s: float  # real seconds in one simulated minute
    offered: list[tuple[float, float]] = field(default_factory=list)  # (t, invocations per period, all)
    metric: list[tuple[float, float]] = field(
        default_factory=list
    )  # (period start t, InvocationsPerInstance)
    capacity: list[CapacitySample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # (t, label) for scaling activities
    phases: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, label)


def per_period(
    sent_at: Iterable[float], start: float, end: float, period_s: float
) -> list[tuple[float, float]]:
    """Requests sent in each period from ``start`` to ``end``, as (period start - start, count)."""
    bins = max(1, int((end - start) // period_s) + 1)
    counts = [0] * bins
    for moment in sent_at:
        index = int((moment - start) // period_s)
        if 0 <= index < bins:
            counts[index] += 1
    return [(i * period_s, float(c)) for i, c in enumerate(counts)]


def plot(timeline: Timeline, path: Path, *, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    fig, (load, count) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 2))
    for index, (start, end, label) in enumerate(timeline.phases):
        if index % 2 == 0:  # every other phase shaded, so neighbouring phases stay apart
            for axis in (load, count):
                axis.axvspan(start, end, color="0.93", zorder=0)
        load.text(
            (start + end) / 2,
            0.97,
            label,
            transform=load.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=8,
            color="0.35",
        )
    if timeline.offered:
        xs, ys = zip(*timeline.offered, strict=True)
        load.step(xs, ys, where="post", color="tab:gray", label="offered load (all instances)")
    if timeline.metric:
        xs, ys = zip(*timeline.metric, strict=True)
        load.step(xs, ys, where="post", color="tab:blue", lw=2, label="InvocationsPerInstance (Sum)")
    load.axhline(timeline.target, color="tab:red", ls="--", label=f"target {timeline.target:g}")
    load.axhline(0.9 * timeline.target, color="tab:orange", ls=":", label="low alarm (90 % of target)")
    load.set_ylabel(f"invocations per period ({timeline.period_s:g} s)")
    load.legend(loc="center right", fontsize=8)
    load.set_title(title)
    if timeline.capacity:
        xs = [s.t for s in timeline.capacity]
        count.step(
            xs, [s.desired for s in timeline.capacity], where="post", color="tab:purple", label="desired"
        )
        count.step(
            xs,
            [s.current for s in timeline.capacity],
            where="post",
            color="tab:green",
            lw=2,
            label="serving (current)",
        )
        top = max(max(s.desired for s in timeline.capacity), max(s.current for s in timeline.capacity))
        count.set_ylim(-0.2, top + 0.8)
    _mark(count, load, timeline.events)
    count.set_ylabel("instances")
    count.set_xlabel("seconds since the load started")
    count.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mark(count, load, events: Sequence[tuple[float, str]]) -> None:
    for moment, label in events:
        for axis in (load, count):
            axis.axvline(moment, color="0.5", lw=0.8, ls="-.")
        count.annotate(label, (moment, 0), xytext=(3, 3), textcoords="offset points", fontsize=7, rotation=90)
