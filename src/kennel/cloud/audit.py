"""Every authorisation decision, recorded off the request path.

Requests only enqueue; a writer (a consumer loop) commits batches, and also updates RoleLastUsed and
the access keys' last use from the same records (the data IAM's access advisor is built from). A batch
is what arrives until the queue has been quiet for ``flush_interval_s``, or less when someone waits on
a flush.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from sqlalchemy import update

from kennel.cloud.auth import tables as t
from kennel.cloud.statestore import StateStore
from kennel.runtime.loop import consumer_loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditRecord:
    time: float
    principal_arn: str
    identity_arn: str
    action: str
    resource: str
    decision: str
    source_ip: str
    region: str
    request_id: str
    access_key_id: str = ""
    role_name: str = ""


class AuditLog:
    def __init__(self, store: StateStore, *, flush_interval_s: float = 0.2) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        # None is the stop nudge: it ends a gathering batch and unblocks the writer's wait.
        self._queue: queue.Queue[AuditRecord | _Flush | None] = queue.Queue()
        self._loop = consumer_loop(
            "kennel-audit", self._take, self._write, interrupt=lambda: self._queue.put(None)
        )
        self._loop.start()

    def record(self, entry: AuditRecord) -> None:
        self._queue.put(entry)

    def flush(self) -> None:
        """Block until everything recorded so far is committed (tests and the advisor call this)."""
        done = threading.Event()
        self._queue.put(_Flush(done))
        done.wait(timeout=10)

    def close(self) -> None:
        self.flush()
        self._loop.stop(timeout_s=10)  # the loop drains whatever was recorded after the flush

    def _take(self, timeout_s: float) -> _Batch | None:
        """The next batch: waits up to ``timeout_s`` for a first item, then gathers until a quiet gap."""
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        batch = _Batch()
        while item is not None:
            if isinstance(item, _Flush):
                batch.waiters.append(item.done)
            else:
                batch.records.append(item)
            try:
                # A waiting flush() ends the batch at the first gap: commit now rather than gather more.
                item = self._queue.get(timeout=self.flush_interval_s if not batch.waiters else 0)
            except queue.Empty:
                break
        return batch if batch.records or batch.waiters else None

    def _write(self, batch: _Batch) -> None:
        try:
            if batch.records:
                self._commit(batch.records)
        except Exception:  # the audit trail must never take the gateway down
            log.exception("could not write %d audit records", len(batch.records))
        finally:
            for waiter in batch.waiters:
                waiter.set()

    def _commit(self, batch: list[AuditRecord]) -> None:
        with self.store.write(bump=False) as conn:
            conn.execute(
                t.audit.insert(),
                [
                    {
                        "time": r.time, "principal_arn": r.principal_arn, "identity_arn": r.identity_arn,
                        "action": r.action, "resource": r.resource, "decision": r.decision,
                        "source_ip": r.source_ip, "region": r.region, "request_id": r.request_id,
                    }
                    for r in batch
                ],
            )  # fmt: skip
            for r in batch:
                if r.role_name:
                    conn.execute(
                        update(t.roles)
                        .where(t.roles.c.name == r.role_name)
                        .values(last_used=r.time, last_used_region=r.region)
                    )
                elif r.access_key_id.startswith("AKIA"):
                    conn.execute(
                        update(t.access_keys)
                        .where(t.access_keys.c.access_key_id == r.access_key_id)
                        .values(
                            last_used=r.time,
                            last_used_service=r.action.split(":")[0],
                            last_used_region=r.region,
                        )
                    )


@dataclass(frozen=True)
class _Flush:
    done: threading.Event


@dataclass
class _Batch:
    records: list[AuditRecord] = field(default_factory=list)
    waiters: list[threading.Event] = field(default_factory=list)  # flush() callers to release once written
