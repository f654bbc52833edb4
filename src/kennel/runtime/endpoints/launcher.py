"""Making and starting model-server instances, apart from the fleet bookkeeping that decides when.

``InstanceLauncher`` is built with an *instance factory* (the endpoint manager's builds a sandboxed
:class:`~kennel.runtime.endpoints.instances.Instance`; a test can pass a fake), hands out GPUs
round-robin to accelerated instance types, registers every new instance's log with the upkeep, and
starts an instance until it answers its ping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kennel.runtime.endpoints.instances import Instance, InstanceFailed
from kennel.runtime.endpoints.profiles import ResourceProfile, profile_for
from kennel.runtime.endpoints.shared import Endpoint, Slot

# (slot, its resource profile, the GPU it gets or None) → an instance not yet started
InstanceFactory = Callable[[Slot, ResourceProfile, int | None], Instance]


class InstanceLauncher:
    def __init__(
        self,
        factory: InstanceFactory,
        *,
        gpus: int,
        on_new: Callable[[str, Instance], None] = lambda endpoint, instance: None,
        sharing: Callable[[], int] = lambda: 1,
    ) -> None:
        self.factory = factory
        self.gpus = gpus
        # How many instances hold capacity on this machine now (this one included): they split the cores.
        self.sharing = sharing
        self.on_new = on_new  # the upkeep's log registry: an instance's lines flow from its first note
        self._next_gpu = 0
        self._lock = threading.Lock()

    def new(self, endpoint: Endpoint, slot: Slot) -> Instance:
        profile = profile_for(slot.spec.instance_type, sharing=self.sharing())
        gpu = None
        if profile.wants_gpu and self.gpus:
            with self._lock:
                gpu, self._next_gpu = self._next_gpu % self.gpus, self._next_gpu + 1
        instance = self.factory(slot, profile, gpu)
        where = f"GPU {gpu}" if gpu is not None else "CPU"
        instance.note(
            f"Starting model server for {slot.spec.model_name} on a local {slot.spec.instance_type} "
            f"({profile.threads} threads, {where})"
        )
        if profile.wants_gpu and gpu is None:
            instance.note(
                f"{slot.spec.instance_type} asks for a GPU but this machine has none: serving on CPU"
            )
        self.on_new(endpoint.name, instance)
        return instance

    def start_ready(self, endpoint: Endpoint, slot: Slot) -> Instance:
        """One instance, started and healthy (a port taken in the meantime gets one more try)."""
        for attempt in (0, 1):
            instance = self.new(endpoint, slot)
            instance.start()
            try:
                instance.wait_ready(slot.spec.startup_timeout_s, endpoint.cancelled.is_set)
                instance.note(f"Instance {instance.id} is healthy")
                return instance
            except InstanceFailed as exc:
                instance.stop()
                instance.note(exc.reason)
                if not (exc.port_in_use and attempt == 0):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
