"""Buffered event persistence: callers queue in memory, one background thread writes batches.

Endpoints and functions log from many threads at hundreds of lines a second; a SQLite transaction per
line would serialise them all behind the store's write lock, and even a shared Python lock convoys
under the GIL once a few threads contend for it. So a producer only appends one tuple to a
``collections.deque`` (thread-safe in C, no Python-level lock) and returns; the writer thread drains
it, converts, and writes whatever accumulated as one transaction every ``interval_s`` (sooner when a
lot is waiting). Readers call :meth:`flush` first, so the API always sees every accepted event.
Retention is enforced by the same thread, once a minute.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, LargeBinary, and_, cast, delete, func, select, update

from kennel.cloud.services.logs import tables as t
from kennel.cloud.statestore import StateStore
from kennel.runtime.loop import writer_loop

log = logging.getLogger("kennel.logs")

DAY_MS = 86_400_000
# (group, stream, autocreate) → [(timestamp ms, ingestion ms, message), ...]
Batch = dict[tuple[str, str, bool], list[tuple[int, int, str]]]
# Queued: (group, stream, autocreate, events, ingestion ms). With an ingestion time the events are the
# sink's raw (epoch seconds, message) pairs, converted by the writer; without, ready-made API triples.
Queued = tuple[str, str, bool, list, int | None]
_INSERT_EVENTS = (
    f"INSERT INTO {t.events.name} (group_id, stream_id, timestamp, ingested, message) VALUES (?, ?, ?, ?, ?)"
)


class EventWriter:
    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], float],
        *,
        interval_s: float = 0.5,
        retention_every_s: float = 60.0,
        wake_at: int = 2_000,
        max_queued: int = 1_000_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.retention_every_s = retention_every_s
        self.wake_at = wake_at
        self.dropped = 0
        # Bounded: if the store fails or falls far behind, the oldest telemetry goes, not the process.
        self._queue: deque[Queued] = deque(maxlen=max_queued)
        self._lock = threading.Lock()
        self._flush_lock = threading.RLock()
        self._ids: dict[tuple[str, str], tuple[int, int]] = {}
        # The one never-die loop: a failed batch or a busy database is logged and the writer goes on.
        self._loop = writer_loop(
            "kennel-logs-writer",
            interval_s,
            self.flush,
            self.enforce_retention,
            self.retention_every_s,
            clock,
        )

    # ----- producers ----------------------------------------------------------------------------------
    def push(self, item: Queued) -> None:
        """The sink's hot path: one append, and a nudge to the writer when a lot is waiting."""
        queue = self._queue
        queue.append(item)
        if len(queue) >= self.wake_at:
            self._loop.wake()

    def add(self, group: str, stream: str, events: Iterable[tuple[int, int, str]], autocreate: bool) -> None:
        """Queue converted events; ``autocreate`` makes the group and stream when missing, otherwise
        events for a stream deleted meanwhile are dropped (the API checked existence already)."""
        self._queue.append((group, stream, autocreate, list(events), None))

    # ----- the writer ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def close(self) -> None:
        self._loop.stop(timeout_s=10)
        self.flush()

    def flush(self) -> None:
        """Persist everything queued so far; returns once it is committed."""
        with self._flush_lock:
            batch = self._drain()
            if batch:
                self._write(batch)

    def _drain(self) -> Batch:
        batch: Batch = {}
        queue = self._queue
        for _ in range(len(queue)):  # only what is there now: producers may keep appending meanwhile
            group, stream, autocreate, events, ingested = queue.popleft()
            items = batch.setdefault((group, stream, autocreate), [])
            if ingested is None:
                items.extend(events)
                continue
            for event in events:
                try:
                    stamp, message = event
                    if message:  # AWS refuses empty messages; the sink skips them
                        items.append((int(stamp * 1000), ingested, str(message)))
                except (TypeError, ValueError, OverflowError):
                    self.dropped += 1  # a malformed event costs itself, never its batch
        return batch

    @contextmanager
    def deleting(self, group: str, stream: str | None = None) -> Iterator[None]:
        """For the body of a delete: everything queued so far is written first (it goes with the
        group or stream), no batch is written meanwhile, and cached ids are dropped before the next
        one, so later events resolve (or, from the sink, re-create) afresh."""
        with self._flush_lock:
            self.flush()
            yield
            self._forget(group, stream)

    def _forget(self, group: str, stream: str | None) -> None:
        with self._lock:
            for key in [k for k in self._ids if k[0] == group and (stream is None or k[1] == stream)]:
                del self._ids[key]

    def _write(self, batch: Batch) -> None:
        now = int(self.clock() * 1000)
        rows: list[tuple[int, int, int, int, str]] = []
        with self.store.write(bump=False) as conn:
            for (group, stream, autocreate), items in batch.items():
                ids = self._resolve(conn, group, stream, autocreate, now) if items else None
                if ids is None:
                    continue
                group_id, stream_id = ids
                size = 0
                for timestamp, ingested, message in items:
                    rows.append((group_id, stream_id, timestamp, ingested, message))
                    size += len(message.encode("utf-8"))
                first = min(item[0] for item in items)
                last = max(item[0] for item in items)
                conn.execute(
                    update(t.streams)
                    .where(t.streams.c.id == stream_id)
                    .values(
                        first_event=func.min(func.coalesce(t.streams.c.first_event, first), first),
                        last_event=func.max(func.coalesce(t.streams.c.last_event, last), last),
                        last_ingestion=max(item[1] for item in items),
                        stored_bytes=t.streams.c.stored_bytes + size,
                    )
                )
            if rows:
                # Straight to the driver: SQLAlchemy's per-row parameter processing cost ~10x the
                # insert itself, and this thread shares the interpreter with every request.
                conn.exec_driver_sql(_INSERT_EVENTS, rows)

    def _resolve(
        self, conn: Connection, group: str, stream: str, autocreate: bool, now: int
    ) -> tuple[int, int] | None:
        with self._lock:
            cached = self._ids.get((group, stream))
        if cached is not None:
            return cached
        group_id = conn.execute(select(t.groups.c.id).where(t.groups.c.name == group)).scalar()
        if group_id is None:
            if not autocreate:
                return None
            group_id = conn.execute(t.groups.insert().values(name=group, created=now)).inserted_primary_key[0]
        stream_id = conn.execute(
            select(t.streams.c.id).where(and_(t.streams.c.group_id == group_id, t.streams.c.name == stream))
        ).scalar()
        if stream_id is None:
            if not autocreate:
                return None
            stream_id = conn.execute(
                t.streams.insert().values(group_id=group_id, name=stream, created=now)
            ).inserted_primary_key[0]
        with self._lock:
            self._ids[(group, stream)] = (group_id, stream_id)
        return group_id, stream_id

    # ----- retention ----------------------------------------------------------------------------------
    def enforce_retention(self) -> int:
        """Delete events older than their group's retention; returns how many went."""
        now = int(self.clock() * 1000)
        with self.store.read() as conn:
            groups = conn.execute(
                select(t.groups.c.id, t.groups.c.retention_days).where(t.groups.c.retention_days.is_not(None))
            ).all()
        removed = 0
        for group_id, days in groups:
            cutoff = now - days * DAY_MS
            with self.store.write(bump=False) as conn:
                gone = conn.execute(
                    delete(t.events).where(
                        and_(t.events.c.group_id == group_id, t.events.c.timestamp < cutoff)
                    )
                ).rowcount
                if gone:
                    _recount_streams(conn, group_id)
            removed += gone or 0
        return removed


def _recount_streams(conn: Connection, group_id: int) -> None:
    """Stream statistics after events were removed (retention), recomputed from what is left."""
    remaining = t.events.alias("remaining")
    mine = remaining.c.stream_id == t.streams.c.id
    conn.execute(
        update(t.streams)
        .where(t.streams.c.group_id == group_id)
        .values(
            first_event=select(func.min(remaining.c.timestamp)).where(mine).scalar_subquery(),
            stored_bytes=select(
                func.coalesce(func.sum(func.length(cast(remaining.c.message, LargeBinary))), 0)
            )
            .where(mine)
            .scalar_subquery(),
        )
    )
