"""Metric data in memory, then in the store: 1-second buckets, background flushes, roll-ups.

The sink's hot path (endpoints and functions publish hundreds of values a second from many threads)
is one append to ``queue``, a ``collections.deque``: thread-safe in C, so publishers never contend
for a Python lock (which convoys under the GIL). A background thread drains the queue into 1-second
buckets and flushes them to SQLite every ``interval_s`` in one transaction; queries flush first, so
they see every accepted value. API writes (PutMetricData) fold into buckets directly, under a lock.

Retention follows AWS's ladder: 1-second buckets are kept for 3 hours, then rolled up into 60-second
buckets; those are kept 15 days, then become 5-minute buckets; those 63 days, then 1-hour buckets, which
are dropped after 455 days. A query for a Period that a rolled-up resolution does not divide gets no
data from it (AWS returns no 1-second data older than 3 hours either).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, literal, select, update

from kennel.cloud.services.cloudwatch import aggregate as agg
from kennel.cloud.services.cloudwatch import tables as t
from kennel.cloud.statestore import StateStore
from kennel.runtime.loop import writer_loop

log = logging.getLogger("kennel.cloudwatch")

Dimensions = tuple[tuple[str, str], ...]
MetricKey = tuple[str, str, Dimensions]  # namespace, name, dimensions sorted by name
# (source resolution, age at which it rolls up, target resolution); target None: dropped.
LADDER: tuple[tuple[int, int, int | None], ...] = (
    (1, 3 * 3600, 60),
    (60, 15 * 86_400, 300),
    (300, 63 * 86_400, 3600),
    (3600, 455 * 86_400, None),
)
RESOLUTIONS = (1, 60, 300, 3600)
ROLLUP_CHUNK = 20_000
READ_MERGE_LIMIT = 16 * agg.MAX_SAMPLES  # distinct values a period may gather before compressing
_BUCKET_COLUMNS = (t.buckets.c.metric_id, t.buckets.c.unit, t.buckets.c.ts, t.buckets.c.sum,
                   t.buckets.c.count, t.buckets.c.min, t.buckets.c.max, t.buckets.c.samples)  # fmt: skip


class MetricRecorder:
    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], float],
        *,
        interval_s: float = 1.0,
        rollup_every_s: float = 60.0,
        max_queued: int = 1_000_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.rollup_every_s = rollup_every_s
        self.dropped = 0
        # (namespace, name, dimension items, unit, epoch seconds, value) from the sink. Bounded: if the
        # store fails or falls far behind, the oldest values go rather than the process's memory.
        self.queue: deque[tuple[Any, ...]] = deque(maxlen=max_queued)
        self._dimensions: dict[tuple, Dimensions] = {}
        self._pending: dict[tuple[str, str, Dimensions, str, int], agg.Bucket] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._ids: dict[MetricKey, int] = {}
        # The one never-die loop: a failed flush or roll-up is logged and persistence goes on.
        self._loop = writer_loop(
            "kennel-metrics-writer", interval_s, self.flush, self.rollup, self.rollup_every_s, clock
        )

    # ----- producers ----------------------------------------------------------------------------------
    def record(self, metric: MetricKey, unit: str, second: int, value: float, count: float = 1.0) -> None:
        key = (metric[0], metric[1], metric[2], unit, second)
        with self._lock:
            bucket = self._pending.get(key)
            if bucket is None:
                bucket = self._pending[key] = agg.new_bucket()
            agg.add_value(bucket, value, count)

    def record_set(
        self, metric: MetricKey, unit: str, second: int, count: float, total: float, lo: float, hi: float
    ) -> None:
        key = (metric[0], metric[1], metric[2], unit, second)
        with self._lock:
            bucket = self._pending.get(key)
            if bucket is None:
                bucket = self._pending[key] = agg.new_bucket()
            agg.add_statistic_set(bucket, count, total, lo, hi)

    # ----- the background thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def close(self) -> None:
        self._loop.stop(timeout_s=10)
        self.flush()

    def flush(self) -> None:
        """Persist everything recorded so far; returns once it is committed."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            self._drain(batch)
            if not batch:
                return
            now = self.clock()
            rows: list[dict[str, Any]] = []
            touched: set[int] = set()
            with self.store.write(bump=False) as conn:
                for (namespace, name, dims, unit, second), bucket in batch.items():
                    metric_id = self._metric_id(conn, (namespace, name, dims), now)
                    touched.add(metric_id)
                    rows.append({"metric_id": metric_id, "unit": unit, "resolution": 1, "ts": second,
                                 "sum": bucket[agg.SUM], "count": bucket[agg.COUNT], "min": bucket[agg.MIN],
                                 "max": bucket[agg.MAX],
                                 "samples": agg.encode_samples(bucket[agg.SAMPLES])})  # fmt: skip
                conn.execute(t.buckets.insert(), rows)
                conn.execute(
                    update(t.metrics).where(t.metrics.c.id == bindparam("metric")).values(last_put=now),
                    [{"metric": metric_id} for metric_id in touched],
                )

    def _drain(self, batch: dict[tuple[str, str, Dimensions, str, int], agg.Bucket]) -> None:
        """Fold the sink's queued values into ``batch``; a malformed value costs itself only."""
        queue = self.queue
        for _ in range(len(queue)):  # only what is there now: publishers may keep appending meanwhile
            namespace, name, items, unit, when, value = queue.popleft()
            try:
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(value)  # AWS would refuse it; the sink drops it
                dims = self._dimensions.get(items)
                if dims is None:
                    if len(self._dimensions) > 10_000:
                        self._dimensions.clear()
                    dims = self._dimensions[items] = tuple(sorted((str(k), str(v)) for k, v in items))
                key = (str(namespace), str(name), dims, str(unit), math.floor(when))
                bucket = batch.get(key)
                if bucket is None:
                    bucket = batch[key] = agg.new_bucket()
                agg.add_value(bucket, number)
            except (TypeError, ValueError, OverflowError):
                self.dropped += 1

    def _metric_id(self, conn, metric: MetricKey, now: float) -> int:
        found = self._ids.get(metric)
        if found is not None:
            return found
        namespace, name, dims = metric
        encoded = json.dumps([list(pair) for pair in dims])
        where = and_(
            t.metrics.c.namespace == namespace, t.metrics.c.name == name, t.metrics.c.dimensions == encoded
        )
        found = conn.execute(select(t.metrics.c.id).where(where)).scalar()
        if found is None:
            found = conn.execute(
                t.metrics.insert().values(namespace=namespace, name=name, dimensions=encoded, last_put=now)
            ).inserted_primary_key[0]
        self._ids[metric] = found
        return found

    # ----- reading --------------------------------------------------------------------------------------
    def find(self, metric: MetricKey) -> int | None:
        """The stored id of a metric, or None if nothing was ever published to it."""
        self.flush()
        found = self._ids.get(metric)
        if found is not None:
            return found
        namespace, name, dims = metric
        encoded = json.dumps([list(pair) for pair in dims])
        with self.store.read() as conn:
            return conn.execute(
                select(t.metrics.c.id).where(
                    and_(t.metrics.c.namespace == namespace, t.metrics.c.name == name,
                         t.metrics.c.dimensions == encoded)
                )
            ).scalar()  # fmt: skip

    def periods(
        self, metric_id: int, start: int, end: int, period: int, unit: str | None, samples: bool
    ) -> dict[tuple[str, int], agg.Bucket]:
        """One bucket per (unit, period start) for data in [start, end); ``start`` is already aligned.

        Without ``samples`` SQLite does the summing; percentiles need the value distributions, so then
        the rows come back and are merged here.
        """
        resolutions = [r for r in RESOLUTIONS if period % r == 0]
        where = [t.buckets.c.metric_id == metric_id, t.buckets.c.ts >= start, t.buckets.c.ts < end,
                 t.buckets.c.resolution.in_(resolutions)]  # fmt: skip
        if unit is not None:
            where.append(t.buckets.c.unit == unit)
        out: dict[tuple[str, int], agg.Bucket] = {}
        with self.store.read() as conn:
            if not samples:
                # SQLite divides integers as integers, which is exactly the floor we need (ts >= start).
                slot = (literal(start) + (t.buckets.c.ts - start) // period * period).label("slot")
                query = (
                    select(t.buckets.c.unit, slot, func.sum(t.buckets.c.sum), func.sum(t.buckets.c.count),
                           func.min(t.buckets.c.min), func.max(t.buckets.c.max))
                    .where(*where)
                    .group_by(t.buckets.c.unit, slot)
                )  # fmt: skip
                for unit_name, at, total, count, lo, hi in conn.execute(query):
                    out[(unit_name, int(at))] = [total, count, lo, hi, {}]
                return out
            query = select(t.buckets.c.unit, t.buckets.c.ts, t.buckets.c.sum, t.buckets.c.count,
                           t.buckets.c.min, t.buckets.c.max, t.buckets.c.samples).where(*where)  # fmt: skip
            for unit_name, ts, total, count, lo, hi, blob in conn.execute(query):
                key = (unit_name, agg.slot(ts, start, period))
                found = out.get(key)
                if found is None:
                    found = out[key] = agg.new_bucket()
                agg.merge(found, agg.from_row(total, count, lo, hi, blob), READ_MERGE_LIMIT)
        return out

    # ----- retention ------------------------------------------------------------------------------------
    def rollup(self, now: float | None = None) -> int:
        """Apply the retention ladder; returns how many rows were rolled up or dropped."""
        now = self.clock() if now is None else now
        changed = 0
        for source, age, target in LADDER:
            cutoff = int(now - age)
            if target is None:
                with self.store.write(bump=False) as conn:
                    changed += (
                        conn.execute(
                            delete(t.buckets).where(
                                and_(t.buckets.c.resolution == source, t.buckets.c.ts < cutoff)
                            )
                        ).rowcount
                        or 0
                    )
                continue
            cutoff -= cutoff % target  # only whole target buckets, so none is split across two roll-ups
            while True:
                moved = self._rollup_chunk(source, target, cutoff)
                changed += moved
                if moved < ROLLUP_CHUNK:
                    break
        return changed

    def _rollup_chunk(self, source: int, target: int, cutoff: int) -> int:
        old = and_(t.buckets.c.resolution == source, t.buckets.c.ts < cutoff)
        with self.store.write(bump=False) as conn:
            rows = conn.execute(
                select(t.buckets.c.id, *_BUCKET_COLUMNS)
                .where(old).order_by(t.buckets.c.id).limit(ROLLUP_CHUNK)
            ).all()  # fmt: skip
            if not rows:
                return 0
            merged: dict[tuple[int, str, int], agg.Bucket] = {}
            for _, metric_id, unit, ts, total, count, lo, hi, blob in rows:
                key = (metric_id, unit, ts - ts % target)
                found = merged.get(key)
                if found is None:
                    found = merged[key] = agg.new_bucket()
                agg.merge(found, agg.from_row(total, count, lo, hi, blob))
            conn.execute(delete(t.buckets).where(and_(old, t.buckets.c.id <= rows[-1].id)))
            conn.execute(
                t.buckets.insert(),
                [{"metric_id": metric_id, "unit": unit, "resolution": target, "ts": ts, "sum": b[agg.SUM],
                  "count": b[agg.COUNT], "min": b[agg.MIN], "max": b[agg.MAX],
                  "samples": agg.encode_samples(b[agg.SAMPLES])}
                 for (metric_id, unit, ts), b in merged.items()],
            )  # fmt: skip
        return len(rows)
