"""Statistic buckets: how CloudWatch data points are summarised, merged into periods and read back.

A bucket is a plain list ``[sum, count, min, max, samples]`` (lists are what the hot ``put`` path can
update fastest). ``samples`` maps a value to the weight it carries — every observation while there are
few distinct values, weighted centroids once a bucket holds more than ``MAX_SAMPLES`` — so percentiles
are exact for small buckets and close for large ones, with precise tails (see ``compress``). Once a
bucket has absorbed a statistic set (sum, count, min and max without the values behind them) its
distribution is unknown: ``samples`` becomes ``None`` and percentiles over it are not reported.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable
from typing import Any

SUM, COUNT, MIN, MAX, SAMPLES = range(5)
MAX_SAMPLES = 256
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d{1,10})?|100(?:\.0{1,10})?)")

Bucket = list  # [sum, count, min, max, dict[float, float] | None]


def new_bucket() -> Bucket:
    return [0.0, 0.0, math.inf, -math.inf, {}]


def add_value(bucket: Bucket, value: float, count: float = 1.0) -> None:
    bucket[SUM] += value * count
    bucket[COUNT] += count
    if value < bucket[MIN]:
        bucket[MIN] = value
    if value > bucket[MAX]:
        bucket[MAX] = value
    samples = bucket[SAMPLES]
    if samples is not None:
        samples[value] = samples.get(value, 0.0) + count
        if len(samples) > MAX_SAMPLES:
            bucket[SAMPLES] = compress(samples)


def add_statistic_set(bucket: Bucket, count: float, total: float, minimum: float, maximum: float) -> None:
    bucket[SUM] += total
    bucket[COUNT] += count
    bucket[MIN] = min(bucket[MIN], minimum)
    bucket[MAX] = max(bucket[MAX], maximum)
    bucket[SAMPLES] = None


def merge(into: Bucket, other: Bucket, limit: int = MAX_SAMPLES) -> None:
    """Fold ``other`` into ``into``; readers merging many buckets pass a larger ``limit`` so the
    distribution is compressed once in a while rather than after every bucket."""
    into[SUM] += other[SUM]
    into[COUNT] += other[COUNT]
    into[MIN] = min(into[MIN], other[MIN])
    into[MAX] = max(into[MAX], other[MAX])
    if into[SAMPLES] is None or other[SAMPLES] is None:
        into[SAMPLES] = None
        return
    samples = into[SAMPLES]
    for value, weight in other[SAMPLES].items():
        samples[value] = samples.get(value, 0.0) + weight
    if len(samples) > limit:
        into[SAMPLES] = compress(samples)


def compress(samples: dict[float, float], delta: int = MAX_SAMPLES // 2) -> dict[float, float]:
    """Merge neighbouring values into weighted centroids, t-digest style.

    Total weight is preserved exactly. Centroids may span at most one unit of the scale
    ``k(q) = delta / 2π · asin(2q − 1)``, which is steep near q = 0 and q = 1: the tails keep small,
    precise centroids (p99 stays accurate) while the middle is summarised coarsely. That bounds the
    result to roughly ``delta`` centroids whatever the input.
    """
    items = sorted(samples.items())
    total = sum(weight for _, weight in items)
    if total <= 0:
        return dict(items)

    def scale(q: float) -> float:
        return delta / (2 * math.pi) * math.asin(max(-1.0, min(1.0, 2 * q - 1)))

    out: dict[float, float] = {}
    value, weight = items[0]
    before = 0.0  # weight of every centroid already emitted
    for next_value, next_weight in items[1:]:
        if scale((before + weight + next_weight) / total) - scale(before / total) <= 1.0:
            value = (value * weight + next_value * next_weight) / (weight + next_weight)
            weight += next_weight
            continue
        out[value] = out.get(value, 0.0) + weight
        before += weight
        value, weight = next_value, next_weight
    out[value] = out.get(value, 0.0) + weight
    return out


def percentile(samples: dict[float, float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value whose cumulative weight reaches p% of the total."""
    total = sum(samples.values())
    if total <= 0:
        return None
    target = total * p / 100.0
    running = 0.0
    ordered = sorted(samples.items())
    for value, weight in ordered:
        running += weight
        if running >= target - 1e-9 * total:
            return value
    return ordered[-1][0]


def parse_percentile(name: str) -> float | None:
    """``p99`` → 99.0, ``p99.9`` → 99.9; ``None`` for anything that is not a percentile statistic."""
    match = _PERCENTILE.fullmatch(name)
    return float(match.group(1)) if match else None


def statistic(bucket: Bucket, name: str) -> float | None:
    """One statistic of a bucket; ``None`` when it cannot be known (a percentile over a statistic set)."""
    count = bucket[COUNT]
    if name == "SampleCount":
        return count
    if name == "Sum":
        return bucket[SUM]
    if name == "Average":
        return bucket[SUM] / count if count else None
    if name == "Minimum":
        return bucket[MIN] if count else None
    if name == "Maximum":
        return bucket[MAX] if count else None
    p = parse_percentile(name)
    if p is None or bucket[SAMPLES] is None or not count:
        return None
    if p >= 100:
        return bucket[MAX]  # exact even after compression has merged the largest values
    if p <= 0:
        return bucket[MIN]
    return percentile(bucket[SAMPLES], p)


def valid_period(period: int) -> bool:
    return period in HIGH_RESOLUTION_PERIODS or (period > 0 and period % 60 == 0)


def align(start: int, period: int) -> int:
    """Where the first period begins: AWS rounds StartTime down to the minute for minute-multiple
    periods, and to a multiple of the period for high-resolution ones."""
    base = 60 if period % 60 == 0 else period
    return start - start % base


def slot(timestamp: int, origin: int, period: int) -> int:
    """The start of the period (counted from ``origin``) that ``timestamp`` falls in."""
    return origin + (timestamp - origin) // period * period


def by_period(rows: Iterable[tuple[int, Bucket]], origin: int, period: int) -> dict[int, Bucket]:
    """Buckets (timestamp, bucket) combined into one bucket per period, keyed by period start."""
    out: dict[int, Bucket] = {}
    for timestamp, bucket in rows:
        key = slot(timestamp, origin, period)
        found = out.get(key)
        if found is None:
            found = out[key] = new_bucket()
        merge(found, bucket)
    return out


def encode_samples(samples: dict[float, float] | None) -> bytes | None:
    if samples is None:
        return None
    flat = array("d")
    for value, weight in samples.items():
        flat.append(value)
        flat.append(weight)
    return flat.tobytes()


def decode_samples(blob: bytes | None) -> dict[float, float] | None:
    if blob is None:
        return None
    flat = array("d")
    flat.frombytes(blob)
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def from_row(total: float, count: float, minimum: float, maximum: float, blob: Any) -> Bucket:
    return [total, count, minimum, maximum, decode_samples(blob)]
