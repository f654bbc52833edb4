"""Every authorisation decision, recorded off the request path.

Requests only enqueue; a writer thread commits batches, and also updates RoleLastUsed and the access
keys' last use from the same records (the data IAM's access advisor is built from).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from sqlalchemy import update

from kennel.cloud.auth import tables as t
from kennel.cloud.store import Store

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
    def __init__(self, store: Store, *, flush_interval_s: float = 0.2) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kennel-audit", daemon=True)
        self._thread.start()

    def record(self, entry: AuditRecord) -> None:
        self._queue.put(entry)

    def flush(self) -> None:
        """Block until everything recorded so far is committed (tests and the advisor call this)."""
        done = threading.Event()
        self._queue.put(_Flush(done))  # type: ignore[arg-type]
        done.wait(timeout=10)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            batch: list[AuditRecord] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            stop = item is None
            while item is not None:
                if isinstance(item, _Flush):
                    waiters.append(item.done)
                else:
                    batch.append(item)
                try:
                    item = self._queue.get(timeout=self.flush_interval_s if not waiters else 0)
                except queue.Empty:
                    break
                if item is None:
                    stop = True
            try:
                if batch:
                    self._commit(batch)
            except Exception:  # the audit trail must never take the gateway down
                log.exception("could not write %d audit records", len(batch))
            for waiter in waiters:
                waiter.set()
            if stop:
                return

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
