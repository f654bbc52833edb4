"""Every endpoint's instances on this machine: capacity, start and stop, health, replacement, telemetry.

Operations that start or stop processes block (seconds); the SageMaker provider runs them in its own
threads and reports status from their outcome. The manager keeps the fleets and the capacity ledger
and composes three objects of its own: an :class:`InstanceLauncher` (built with an instance factory that
starts model servers in the sandbox), the :class:`StandbyPool` of warm spares, and the :class:`Upkeep`
loops that replace dead instances and publish telemetry.

Blue/green updates launch the new fleet beside the old one, switch the router once every new
instance answers its ping, then wait for the old instances' requests in flight before stopping them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kennel.runtime.endpoints.artifacts import Fetcher, ModelDataError, prepare_model_dir
from kennel.runtime.endpoints.instances import Instance, InstanceFailed
from kennel.runtime.endpoints.launcher import InstanceFactory, InstanceLauncher
from kennel.runtime.endpoints.metrics import MetricBuffer, NullLogSink, NullMetricSink
from kennel.runtime.endpoints.profiles import ResourceProfile, gpu_count
from kennel.runtime.endpoints.router import Fleet, Router, Variant
from kennel.runtime.endpoints.shared import CapacityError, DeploymentFailed, Endpoint, Slot, VariantSpec
from kennel.runtime.endpoints.standby import StandbyPool
from kennel.runtime.endpoints.upkeep import LogSources, Upkeep
from kennel.runtime.sandbox import Sandbox
from kennel.runtime.telemetry import LogSink, MetricSink

log = logging.getLogger(__name__)

__all__ = ["CapacityError", "DeploymentFailed", "Endpoint", "EndpointManager", "Slot", "VariantSpec"]


class EndpointManager:
    def __init__(
        self,
        work_dir: Path,
        *,
        max_instances: int,
        metric_sink: MetricSink | None = None,
        log_sink: LogSink | None = None,
        timeout_s: float = 60.0,
        monitor_interval_s: float = 0.25,
        ping_interval_s: float = 5.0,
        sample_interval_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        fetch_model_data: Fetcher | None = None,
        sandbox: Sandbox | None,
        max_in_flight_per_instance: int | None = None,
        instance_factory: InstanceFactory | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.max_in_flight_per_instance = max_in_flight_per_instance
        self.sandbox = sandbox  # every model server starts through it
        self.fetch_model_data = fetch_model_data
        self.max_instances = max_instances
        self.metric_sink: MetricSink = metric_sink or NullMetricSink()
        self.log_sink: LogSink = log_sink or NullLogSink()
        self.timeout_s = timeout_s
        self.ping_interval_s = ping_interval_s
        self.sample_interval_s = sample_interval_s
        self.clock = clock
        self.metrics = MetricBuffer(clock)
        self.endpoints: dict[str, Endpoint] = {}
        self._retiring: list[Endpoint] = []
        self._lock = threading.RLock()
        self._slots: dict[int, Slot] = {}  # id(Variant) → how to grow it
        self._stop = threading.Event()
        self.log_sources = LogSources()
        self.launcher = InstanceLauncher(
            instance_factory or self._sandboxed_instance, gpus=gpu_count(), on_new=self.log_sources.add,
            sharing=self.in_use,  # reserved instances, standbys included, split the machine's cores
        )  # fmt: skip
        self.standbys = StandbyPool(
            lock=self._lock, slots=self._slots, capacity=self, start_ready=self.launcher.start_ready
        )
        self.upkeep = Upkeep(
            endpoints=self._live_endpoints, lock=self._lock, slots=self._slots,
            start_ready=self.launcher.start_ready, log_sources=self.log_sources, metrics=self.metrics,
            metric_sink=self.metric_sink, log_sink=self.log_sink, stop=self._stop,
            ping_interval_s=ping_interval_s, sample_interval_s=sample_interval_s,
        )  # fmt: skip
        self.upkeep.start(monitor_interval_s)

    def _sandboxed_instance(self, slot: Slot, profile: ResourceProfile, gpu: int | None) -> Instance:
        """The real instance factory: a model server started through the one sandboxed spawner."""
        if self.sandbox is None:
            raise InstanceFailed("no sandbox to start a model server in")
        return Instance(
            variant=slot.spec.name,
            model_dir=slot.model_dir,
            environment=slot.spec.environment,
            profile=profile,
            gpu_index=gpu,
            timeout_s=self.timeout_s,
            clock=self.clock,
            sandbox=self.sandbox,
            socket_root=self.work_dir / "sockets",
        )

    def _live_endpoints(self) -> list[Endpoint]:
        with self._lock:
            return list(self.endpoints.values())

    def keep_standby(self, endpoint: Endpoint, variant_name: str, wanted: bool) -> None:
        self.standbys.keep(endpoint, variant_name, wanted)

    # --- capacity -------------------------------------------------------------------------------------

    def in_use(self) -> int:
        with self._lock:
            return sum(ep.reserved for ep in [*self.endpoints.values(), *self._retiring])

    def register(self, name: str) -> Endpoint:
        with self._lock:
            if name in self.endpoints:
                return self.endpoints[name]
            router = Router(
                name, Fleet(config_name=""), self.metrics, timeout_s=self.timeout_s, clock=self.clock,
                max_in_flight=self.max_in_flight_per_instance,
            )  # fmt: skip
            endpoint = self.endpoints[name] = Endpoint(name, router)
            return endpoint

    def reserve(self, endpoint: Endpoint, count: int) -> None:
        with self._lock:
            used = self.in_use()
            if used + count > self.max_instances:
                raise CapacityError(
                    f"This machine may run at most {self.max_instances} model-server instances at once "
                    f"(setting max_instances); {used} are in use or starting and this request needs {count} "
                    "more. Delete an endpoint, lower instance counts, or raise the limit."
                )
            endpoint.reserved += count

    def release(self, endpoint: Endpoint, count: int) -> None:
        with self._lock:
            endpoint.reserved = max(0, endpoint.reserved - count)

    # --- launching ------------------------------------------------------------------------------------

    def launch(self, endpoint: Endpoint, config_name: str, specs: list[VariantSpec]) -> Fleet:
        """Start every instance of ``specs`` and wait until all are healthy, or raise DeploymentFailed."""
        fleet = Fleet(config_name=config_name)
        with self._lock:
            endpoint.fleets.append(fleet)
        # Every variant exists before anything can fail, so stopping the fleet releases all it reserved.
        for spec in specs:
            fleet.variants[spec.name] = Variant(
                spec.name, spec.weight, desired_count=spec.instance_count, desired_weight=spec.weight
            )
        slots: list[Slot] = []
        try:
            for spec in specs:
                try:
                    model_dir = prepare_model_dir(
                        spec.model_data_url, self.work_dir / "models", spec.model_name, self.fetch_model_data
                    )
                except ModelDataError as exc:
                    raise DeploymentFailed(f"Variant {spec.name}: {exc}") from exc
                slot = Slot(spec, model_dir, fleet)
                self._slots[id(fleet.variants[spec.name])] = slot
                slots.extend([slot] * spec.instance_count)
            self._start_all(endpoint, slots)
        except BaseException:
            self.stop_fleet(endpoint, fleet)
            raise
        return fleet

    def _start_all(self, endpoint: Endpoint, slots: list[Slot]) -> None:
        errors: list[str] = []

        def one(slot: Slot) -> None:
            try:
                instance = self.launcher.start_ready(endpoint, slot)
            except InstanceFailed as exc:
                errors.append(f"Variant {slot.spec.name}: {exc.reason}")
                return
            variant = slot.fleet.variants[slot.spec.name]
            with endpoint.router.cond:
                variant.instances.append(instance)
                endpoint.router.cond.notify_all()

        threads = [threading.Thread(target=one, args=(slot,), daemon=True) for slot in slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if endpoint.cancelled.is_set():
            raise DeploymentFailed("The endpoint was deleted while it was being deployed.")
        if errors:
            raise DeploymentFailed(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))

    def activate(self, endpoint: Endpoint, fleet: Fleet) -> Fleet:
        """Route to ``fleet`` from now on; returns the fleet it replaces."""
        with endpoint.router.cond:
            cancelled = endpoint.cancelled.is_set()
            if not cancelled:
                old, endpoint.router.fleet = endpoint.router.fleet, fleet
                endpoint.router.cond.notify_all()
        if cancelled:  # deleted while the fleet started: shutdown may already have looked for it
            self.stop_fleet(endpoint, fleet)
            raise DeploymentFailed("The endpoint was deleted while it was being deployed.")
        return old

    def swap(self, endpoint: Endpoint, fleet: Fleet) -> None:
        """Blue/green: switch to ``fleet``, then drain and stop the old one."""
        old = self.activate(endpoint, fleet)
        self.stop_fleet(endpoint, old, drain=True)

    def stop_fleet(self, endpoint: Endpoint, fleet: Fleet, *, drain: bool = False) -> None:
        self.standbys.drop(endpoint, list(fleet.variants.values()))
        instances = fleet.all_instances()
        with endpoint.router.cond:
            for instance in instances:
                instance.retired = True
        if drain and instances:
            endpoint.router.wait_drained(instances, self.timeout_s + 5)
        _stop_all(instances)
        with self._lock:
            if fleet in endpoint.fleets:
                endpoint.fleets.remove(fleet)
            for variant in fleet.variants.values():
                self._slots.pop(id(variant), None)
            self.release(endpoint, sum(v.desired_count for v in fleet.variants.values()))

    def scale(self, endpoint: Endpoint, desired: dict[str, tuple[float | None, int | None]]) -> None:
        """UpdateEndpointWeightsAndCapacities: (weight, count) per variant; extra capacity is reserved
        by the caller beforehand, capacity given up is released here."""
        fleet = endpoint.fleet
        for name, (weight, count) in desired.items():
            variant = fleet.variants[name]
            slot = self._slots.get(id(variant))
            if count is not None and slot is not None and count != variant.desired_count:
                if count > variant.desired_count:
                    before, adding = len(variant.instances), count - variant.desired_count
                    variant.desired_count = count
                    if self.standbys.adopt(endpoint, variant):
                        # The caller reserved room for every new instance; the standby held its own.
                        self.release(endpoint, 1)
                        before, adding = before + 1, adding - 1
                    try:
                        if adding:
                            self._start_all(endpoint, [slot] * adding)
                    except DeploymentFailed:
                        missing = adding - (len(variant.instances) - before)
                        variant.desired_count -= missing
                        self.release(endpoint, missing)
                        raise
                    self.standbys.refill(endpoint, variant)  # the next scale-out finds a standby again
                else:
                    surplus = sorted(variant.instances, key=lambda i: i.outstanding)[
                        : variant.desired_count - count
                    ]
                    self.release(endpoint, variant.desired_count - count)
                    variant.desired_count = count
                    with endpoint.router.cond:
                        for instance in surplus:
                            instance.retired = True
                    endpoint.router.wait_drained(surplus, self.timeout_s + 5)
                    _stop_all(surplus)
                    with endpoint.router.cond:
                        variant.instances = [i for i in variant.instances if i not in surplus]
            if weight is not None:
                variant.desired_weight = weight
                variant.weight = weight

    def detach(self, name: str) -> Endpoint | None:
        """Take the endpoint out of service now (its deployments in progress see the cancellation); its
        instances keep counting against capacity until :meth:`shutdown` has stopped them."""
        with self._lock:
            endpoint = self.endpoints.pop(name, None)
            if endpoint is not None:
                self._retiring.append(endpoint)
        if endpoint is not None:
            endpoint.cancelled.set()
        return endpoint

    def shutdown(self, endpoint: Endpoint) -> None:
        fleets = [*endpoint.fleets, endpoint.router.fleet]
        for fleet in {id(f): f for f in fleets}.values():
            self.stop_fleet(endpoint, fleet)
        with self._lock:
            if endpoint in self._retiring:
                self._retiring.remove(endpoint)

    def remove(self, name: str) -> None:
        endpoint = self.detach(name)
        if endpoint is not None:
            self.shutdown(endpoint)

    def close(self) -> None:
        self._stop.set()
        self.upkeep.stop()
        with self._lock:
            endpoints = [*self.endpoints.values(), *self._retiring]
        instances = [
            i
            for ep in endpoints
            for f in {id(x): x for x in [*ep.fleets, ep.fleet]}.values()
            for i in f.all_instances()
        ]
        for ep in endpoints:
            ep.cancelled.set()
        instances += self.standbys.take_all()
        _stop_all(instances)
        self.upkeep.monitor()


def _stop_all(instances: list[Instance]) -> None:
    """Stop in parallel: each may take its grace period, and a fleet's should not add up."""
    threads = [threading.Thread(target=i.stop, daemon=True) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
