"""Warm standby instances: one started, healthy, unrouted model server per variant that may grow.

A new model server spends seconds importing its framework and loading the model — on a small machine
already busy serving, most of a scale-out. Autoscaling asks for a standby while a variant is below
its maximum; a scale-out then adopts it at once (it is already healthy) and a replacement standby
starts in the background. Standbys count against ``max_instances`` like any instance, and are
skipped, not forced, when the machine has no room for one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kennel.runtime.endpoints.instances import Instance, InstanceFailed
from kennel.runtime.endpoints.shared import Endpoint, Slot

if TYPE_CHECKING:
    from kennel.runtime.endpoints.router import Variant

log = logging.getLogger(__name__)


class Capacity(Protocol):
    """The machine's instance ledger: a standby holds one reservation like any instance."""

    def reserve(self, endpoint: Endpoint, count: int) -> None: ...
    def release(self, endpoint: Endpoint, count: int) -> None: ...


class StandbyPool:
    """Owned by the endpoint manager; shares its lock and its slots (id(Variant) → how to grow it)."""

    def __init__(self, *, lock: threading.RLock, slots: dict[int, Slot], capacity: Capacity,
                 start_ready: Callable[[Endpoint, Slot], Instance]) -> None:  # fmt: skip
        self._lock = lock
        self._slots = slots
        self._capacity = capacity
        self._start_ready = start_ready
        self._standby: dict[int, Instance] = {}  # id(Variant) → its standby
        self._wanted: set[int] = set()
        self._starting: set[int] = set()

    def keep(self, endpoint: Endpoint, variant_name: str, wanted: bool) -> None:
        """Ask for (or give up) a standby for ``variant_name`` of the endpoint's active fleet. Idempotent."""
        variant = endpoint.fleet.variants.get(variant_name)
        if variant is None:
            return
        key = id(variant)
        with self._lock:
            if not wanted:
                self._wanted.discard(key)
                spare = self._standby.pop(key, None)
            else:
                self._wanted.add(key)
                spare = None
        if spare is not None:
            spare.stop()
            self._capacity.release(endpoint, 1)
        elif wanted:
            self.refill(endpoint, variant)

    def refill(self, endpoint: Endpoint, variant: Variant) -> None:
        key = id(variant)
        with self._lock:
            slot: Slot | None = self._slots.get(key)
            if slot is None or key in self._standby or key in self._starting:
                return
            if key not in self._wanted or endpoint.cancelled.is_set():
                return
            try:
                self._capacity.reserve(endpoint, 1)
            except Exception as exc:  # CapacityError: no room for a spare, which is fine
                log.info("no standby for %s/%s: %s", endpoint.name, variant.name, exc)
                return
            self._starting.add(key)
        threading.Thread(target=self._start, args=(endpoint, slot, key), daemon=True).start()

    def _start(self, endpoint: Endpoint, slot: Slot, key: int) -> None:
        try:
            instance = self._start_ready(endpoint, slot)
        except InstanceFailed as exc:
            log.warning("standby for %s/%s failed to start: %s", endpoint.name, slot.spec.name, exc.reason)
            with self._lock:
                self._starting.discard(key)
            self._capacity.release(endpoint, 1)
            return
        instance.note(f"Instance {instance.id} is a warm standby (not routed until a scale-out adopts it)")
        with self._lock:
            self._starting.discard(key)
            keep = key in self._wanted and key in self._slots and not endpoint.cancelled.is_set()
            if keep:
                self._standby[key] = instance
        if not keep:
            instance.stop()
            self._capacity.release(endpoint, 1)

    def adopt(self, endpoint: Endpoint, variant: Variant) -> bool:
        """Move the variant's standby into rotation; its reservation becomes the new instance's."""
        with self._lock:
            spare = self._standby.pop(id(variant), None)
        if spare is None or not (spare.healthy and spare.alive()):
            if spare is not None:
                spare.stop()
                self._capacity.release(endpoint, 1)
            return False
        with endpoint.router.cond:
            variant.instances.append(spare)
            endpoint.router.cond.notify_all()
        spare.note(f"Instance {spare.id} adopted from standby into {variant.name}")
        return True

    def drop(self, endpoint: Endpoint, variants: list[Variant]) -> None:
        with self._lock:
            spares = [self._standby.pop(id(v)) for v in variants if id(v) in self._standby]
            for v in variants:
                self._wanted.discard(id(v))
        for spare in spares:
            spare.stop()
        if spares:
            self._capacity.release(endpoint, len(spares))

    def take_all(self) -> list[Instance]:
        """Every standby, handed over for stopping (the manager is closing)."""
        with self._lock:
            spares = list(self._standby.values())
            self._standby.clear()
        return spares
