"""The endpoint manager's composed fleet (launcher, standby pool, upkeep) with a fake instance factory
and a fixed clock: capacity, warm standbys adopted on scale-out, dead instances replaced, a failed start
releasing what it reserved. No processes start; the real instances are covered by the integration tests.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from kennel.runtime.endpoints import profiles
from kennel.runtime.endpoints.instances import InstanceFailed
from kennel.runtime.endpoints.manager import CapacityError, DeploymentFailed, EndpointManager, VariantSpec
from kennel.runtime.endpoints.profiles import ResourceProfile
from kennel.runtime.endpoints.shared import Slot

_ids = itertools.count(1)


class FakeInstance:
    """What the manager, the router and the upkeep use of an instance, with no process behind it."""

    def __init__(self, slot: Slot, profile: ResourceProfile, gpu: int | None, *, fail: bool = False) -> None:
        self.id = f"fake-{next(_ids)}"
        self.slot, self.profile, self.gpu = slot, profile, gpu
        self.fail = fail
        self.healthy = False
        self.retired = False
        self.outstanding = 0
        self.ping_failures = 0
        self.proc = None
        self.stream = f"AllTraffic/{self.id}"
        self.notes: list[str] = []
        self.code: int | None = None
        self.stopped = threading.Event()

    def note(self, line: str) -> None:
        self.notes.append(line)

    def start(self) -> None:
        pass

    def wait_ready(self, timeout_s: float, cancelled) -> None:
        if self.fail:
            raise InstanceFailed(f"{self.id} crashed while loading the model")
        self.healthy = True

    def stop(self) -> None:
        self.healthy = False
        self.stopped.set()

    def alive(self) -> bool:
        return self.code is None and not self.stopped.is_set()

    def exit_code(self) -> int | None:
        return self.code

    def output_done(self) -> bool:
        return self.code is not None

    def take_log_events(self) -> list:
        return []

    def close_connections(self) -> None:
        pass

    def ping(self, timeout_s: float) -> bool:
        return self.alive()

    def sample(self):
        return None


class Factory:
    def __init__(self) -> None:
        self.made: list[FakeInstance] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def __call__(self, slot: Slot, profile: ResourceProfile, gpu: int | None) -> FakeInstance:
        with self.lock:
            fail = self.fail_next > 0
            self.fail_next -= fail
            instance = FakeInstance(slot, profile, gpu, fail=fail)
            self.made.append(instance)
            return instance


def spec(count: int, instance_type: str = "ml.m5.large") -> VariantSpec:
    return VariantSpec("AllTraffic", "m", None, {}, instance_type, count, 1.0)


def eventually(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def fleet(tmp_path: Path):
    factory = Factory()
    manager = EndpointManager(
        tmp_path, max_instances=4, sandbox=None, instance_factory=factory, clock=lambda: 1_700_000_000.0,
        monitor_interval_s=0.02,
    )  # fmt: skip
    yield manager, factory
    manager.close()


def deploy(manager: EndpointManager, name: str, count: int):
    endpoint = manager.register(name)
    manager.reserve(endpoint, count)
    manager.activate(endpoint, manager.launch(endpoint, "cfg", [spec(count)]))
    return endpoint


def test_launch_reserves_and_routes_every_instance(fleet) -> None:
    manager, factory = fleet
    endpoint = deploy(manager, "ep", 2)
    assert manager.in_use() == 2 and len(factory.made) == 2
    assert all(i.healthy for i in endpoint.fleet.variants["AllTraffic"].instances)
    first = factory.made[0]
    assert f"on a local ml.m5.large ({first.profile.threads} threads, CPU)" in first.notes[0]
    with pytest.raises(CapacityError, match="at most 4"):
        manager.reserve(manager.register("other"), 3)


def test_a_gpu_type_without_gpus_serves_on_cpu_and_says_so(fleet) -> None:
    manager, factory = fleet
    manager.launcher.gpus = 0  # as on a laptop, whatever this machine has
    endpoint = manager.register("gpu")
    manager.reserve(endpoint, 1)
    manager.launch(endpoint, "cfg", [spec(1, "ml.g4dn.xlarge")])
    assert factory.made[0].gpu is None
    assert any("asks for a GPU but this machine has none" in n for n in factory.made[0].notes)


def test_gpus_are_handed_out_round_robin(fleet) -> None:
    manager, factory = fleet
    manager.launcher.gpus = 2
    endpoint = manager.register("gpus")
    manager.reserve(endpoint, 3)
    manager.launch(endpoint, "cfg", [spec(3, "ml.g5.xlarge")])
    assert sorted(i.gpu for i in factory.made) == [0, 0, 1]


def test_standby_is_counted_adopted_on_scale_out_and_refilled(fleet) -> None:
    manager, factory = fleet
    endpoint = deploy(manager, "ep", 1)
    manager.keep_standby(endpoint, "AllTraffic", True)
    eventually(lambda: len(factory.made) == 2)
    eventually(lambda: manager.standbys._standby)
    spare = factory.made[1]
    assert manager.in_use() == 2  # a standby holds capacity like any instance
    manager.reserve(endpoint, 1)  # what UpdateEndpointWeightsAndCapacities reserves for count 1 → 2
    manager.scale(endpoint, {"AllTraffic": (None, 2)})
    variant = endpoint.fleet.variants["AllTraffic"]
    assert spare in variant.instances and any("adopted from standby" in n for n in spare.notes)
    eventually(lambda: len(factory.made) == 3)  # the next scale-out finds a standby again
    eventually(lambda: manager.standbys._standby)
    assert manager.in_use() == 3
    manager.keep_standby(endpoint, "AllTraffic", False)
    assert factory.made[2].stopped.is_set() and manager.in_use() == 2


def test_upkeep_replaces_an_instance_that_exits(fleet) -> None:
    manager, factory = fleet
    endpoint = deploy(manager, "ep", 1)
    dead = factory.made[0]
    dead.code = 137
    variant = endpoint.fleet.variants["AllTraffic"]
    eventually(lambda: len(variant.instances) == 1 and variant.instances[0] is not dead)
    assert dead.retired and any("exited with code 137" in n for n in dead.notes)
    assert manager.in_use() == 1  # the replacement takes the dead one's reservation


def test_a_failed_start_fails_the_deployment_and_releases_capacity(fleet) -> None:
    manager, factory = fleet
    factory.fail_next = 2  # the first try and the retry-free path both fail
    endpoint = manager.register("ep")
    manager.reserve(endpoint, 2)
    with pytest.raises(DeploymentFailed, match="crashed while loading the model"):
        manager.launch(endpoint, "cfg", [spec(2)])
    assert manager.in_use() == 0 and not endpoint.fleets


def test_instances_running_at_once_split_the_cores(fleet, monkeypatch) -> None:
    manager, factory = fleet
    monkeypatch.setattr(profiles, "machine_cores", lambda: 4)
    deploy(manager, "one", 1)  # alone on the machine: its type's 2 vCPUs (an ml.m5.large)
    deploy(manager, "two", 2)  # three instances hold capacity now: a third of the cores, rounded down
    assert [i.profile.threads for i in factory.made] == [2, 1, 1]
