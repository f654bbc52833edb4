"""The asynchronous-invocation queue's journal in the store, so queued events survive a restart."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert

from kennel.cloud.services.lambda_ import tables as t
from kennel.cloud.statestore import StateStore
from kennel.runtime.functions.events import Event


class StoreJournal:
    """Implements ``kennel.runtime.functions.events.Journal``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def save(self, event: Event, enqueued: float, due: float) -> None:
        values = {
            "request_id": event.request_id, "function": event.function, "qualifier": event.qualifier,
            "payload": event.payload, "enqueued": enqueued, "due": due, "attempts": event.attempts,
            "requeues": event.requeues,
        }  # fmt: skip
        statement = insert(t.async_events).values(**values)
        changed = {k: statement.excluded[k] for k in ("due", "attempts", "requeues")}
        with self.store.write(bump=False) as conn:  # bookkeeping: no cache depends on it
            conn.execute(statement.on_conflict_do_update(index_elements=["request_id"], set_=changed))

    def remove(self, request_id: str) -> None:
        with self.store.write(bump=False) as conn:  # bookkeeping: no cache depends on it
            conn.execute(delete(t.async_events).where(t.async_events.c.request_id == request_id))

    def load(self) -> list[tuple[Event, float, float]]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.async_events).order_by(t.async_events.c.due)).all()
        return [
            (
                Event(r.request_id, r.function, r.qualifier, r.payload, 0.0, r.attempts, r.requeues),
                r.enqueued,
                r.due,
            )
            for r in rows
        ]
